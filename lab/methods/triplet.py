"""Triplet loss with another sample of the batch as the negative (paper §2.2, eq. 6).

Default margin: the paper's limit α → ∞, L = ½(‖z_a − z_p‖² − ‖z_a − z_n‖²) with no hinge;
a finite margin gives the usual max(0, ‖z_a − z_p‖² − ‖z_a − z_n‖² + α).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lab.core import geometry as geo
from lab.core.checks import knob
from lab.core.pull import NOT_ALONG
from lab.methods.base import Method, register


@dataclass(frozen=True)
class TripletConfig:
    margin: float = knob(math.inf, "Margin α", "∞ = the paper's limit, no hinge.",
                         stops=(0.1, 0.2, 0.5, 1.0, 2.0, math.inf))

    def __post_init__(self):
        if not (self.margin > 0):
            raise ValueError(f"margin must be > 0 (inf: the paper's limit), got {self.margin!r}")


def triplet_loss(za: torch.Tensor, zp: torch.Tensor, zn: torch.Tensor, margin: float) -> torch.Tensor:
    """za, zp, zn: (K, B, D) normalised anchor, positive, negative -> (K,)."""
    gap = (za - zp).square().sum(-1) - (za - zn).square().sum(-1)
    return (0.5 * gap if math.isinf(margin) else torch.relu(gap + margin)).mean(-1)


@register
class Triplet(Method):
    name = "triplet"
    label = "Triplet"
    Config = TripletConfig
    collapse_loss = "0 (or the margin, with a hinge)"

    @classmethod
    def collapse_value(cls, cfg, dim, batch):
        return 0.0 if math.isinf(cfg.margin) else cfg.margin

    @classmethod
    def pull_prediction(cls, cfg):
        return NOT_ALONG, ("§2.2, eq. 6–8: −∂L/∂z_a = z_p − z_n = r_p − r_n, the negative's −s cancels "
                           "the positive's +s: no pull along s.")

    def loss(self, x1, x2):
        za, zp = geo.normalize(self.encoder(x1)[1]), geo.normalize(self.encoder(x2)[1])
        return triplet_loss(za, zp, zp.roll(1, dims=1), self.cfg.margin), {}
