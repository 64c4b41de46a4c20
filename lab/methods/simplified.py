"""The paper's simplified objective (§3.1, eq. 32): L = 0.5 (L_inv − λ ‖s‖), λ = −1 in the paper.

With λ < 0 the loss adds a penalty on the center magnitude of the batch; λ = 0 is invariance only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lab.core import geometry as geo
from lab.core.checks import check_knobs, knob
from lab.core.dist import all_reduce_sum, is_dist, world_size
from lab.core.pull import ALONG, NOT_ALONG
from lab.methods import fused
from lab.methods.base import Method, register, squared_distance


@dataclass(frozen=True)
class SimplifiedConfig:
    # paper §3.1: "λ_L ... which we set to −1"
    lam: float = knob(-1.0, "λ: center penalty weight", "L = 0.5 (L_inv − λ‖s‖); the paper's λ = −1 adds ‖s‖ as a "
                      "penalty. λ ≥ 0 lets it collapse.", stops=(-5.0, -2.0, -1.0, -0.5, -0.2, -0.1, 0.0, 0.1, 0.5, 1.0),
                      range=(-100.0, 100.0))

    def __post_init__(self):
        check_knobs(self)


def simplified_loss(z1: torch.Tensor, z2: torch.Tensor, lam: float) -> torch.Tensor:
    """0.5 (E‖z1 − z2‖² − λ ‖s‖), s the center of both views. z1, z2: (K, B, D) -> (K,)."""
    z = torch.cat([geo.normalize(z1), geo.normalize(z2)], dim=-2)
    # under DDP the center of the global batch, as one process would see it
    s = all_reduce_sum(z.sum(-2)) / (z.shape[-2] * world_size()) if is_dist() else geo.center_vector(z)
    return 0.5 * (squared_distance(z1, z2) - lam * s.norm(dim=-1))


@register
class Simplified(Method):
    name = "simplified"
    label = "Simplified (paper §3.1)"
    Config = SimplifiedConfig
    collapse_loss = "0.5·(0 − λ) (invariance met, ‖s‖ = 1)"

    @classmethod
    def collapse_value(cls, cfg, dim, batch):
        return -0.5 * cfg.lam

    @classmethod
    def pull_prediction(cls, cfg):
        lam = cfg.lam
        if lam < 0:
            return NOT_ALONG, (f"§3.1, eq. 32: λ = {lam:g} adds {-lam / 2:g}·‖s‖ to the loss, whose pull on "
                               "every feature points along −s: against s.")
        return ALONG, f"§3.1: λ = {lam:g} ≥ 0 leaves the invariance pull (eq. 4), or adds to it: along s."

    fused_knobs = ("lam",)

    def fused_head(self, yt, b):
        zn, nz, loss, gz = fused.squared_distance_forward(yt, b)
        lam = self.cfg.lam
        s = zn.mean(2, keepdim=True)  # (K, D, 1)
        s_norm = s.square().sum(1, keepdim=True).sqrt_()
        loss = 0.5 * (loss - lam * s_norm.view(-1))
        gz.mul_(0.5).sub_(s / s_norm.clamp_min(1e-30), alpha=0.5 * lam / (2 * b))
        return loss, fused.norm_backward(zn, nz, gz)

    def loss(self, x1, x2):
        z1, z2 = self.encoder(x1)[1], self.encoder(x2)[1]
        return simplified_loss(z1, z2, self.cfg.lam), {}
