"""SimCLR (Chen et al., 2020): InfoNCE over the batch; the other samples are negatives.

Default temperature 0.2 (solo-learn's ImageNet-100 recipe; SimCLR's own is 0.1–0.5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lab.core import geometry as geo
from lab.core.checks import check_knobs, knob
from lab.core.dist import all_gather_cat, is_dist, rank, world_size
from lab.core.pull import NOT_ALONG
from lab.methods.base import Method, encode_views, joint_bn_knob, register


@dataclass(frozen=True)
class SimCLRConfig:
    temperature: float = knob(0.2, "Temperature τ", stops=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0), range=(0.0, 10.0),
                              low_open=True)
    joint_bn: bool = joint_bn_knob()

    def __post_init__(self):
        check_knobs(self)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent. z1, z2: (K, B, D) -> (K,). Each of 2B samples must pick its partner among 2B − 1."""
    z = geo.normalize(torch.cat([z1, z2], dim=1))
    b2 = z.shape[1]
    sim = torch.bmm(z, z.transpose(1, 2)) / temperature
    sim = sim.masked_fill(torch.eye(b2, dtype=torch.bool, device=z.device), float("-inf"))
    partner = (torch.arange(b2) + b2 // 2) % b2
    logp = torch.log_softmax(sim, dim=-1)
    return -logp[:, torch.arange(b2), partner].mean(-1)


def info_nce_global(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent with the samples of every rank as negatives (DDP). z1, z2: (K, B, D) -> (K,), the mean over
    this rank's 2B anchors; the mean over ranks is the loss of the global batch."""
    b = z1.shape[1]
    w, r = world_size(), rank()
    z = geo.normalize(torch.cat([z1, z2], dim=1))  # this rank's anchors
    everyone = geo.normalize(torch.cat([all_gather_cat(z1, 1), all_gather_cat(z2, 1)], dim=1))  # (K, 2WB, D)
    sim = torch.bmm(z, everyone.transpose(1, 2)) / temperature  # (K, 2B, 2WB)
    local = torch.arange(b, device=z.device) + r * b  # global index of this rank's view-1 samples
    own = torch.cat([local, local + w * b])
    partner = torch.cat([local + w * b, local])
    sim = sim.masked_fill(own.view(1, -1, 1) == torch.arange(2 * w * b, device=z.device).view(1, 1, -1),
                          float("-inf"))
    logp = torch.log_softmax(sim, dim=-1)
    return -logp[:, torch.arange(2 * b, device=z.device), partner].mean(-1)


@register
class SimCLR(Method):
    name = "simclr"
    label = "SimCLR (InfoNCE)"
    Config = SimCLRConfig
    collapse_loss = "ln(2B − 1) (every sample equally similar)"

    @classmethod
    def collapse_value(cls, cfg, dim, batch):
        return math.log(2 * batch - 1)  # negatives gathered over ranks: 2B − 1 candidates, all alike

    @classmethod
    def pull_prediction(cls, cfg):
        return NOT_ALONG, ("§2.2, eq. 9–13: the negatives contribute −s, which cancels the positives' +s "
                           "(hard negatives at low τ): no pull along s, or against it.")

    def loss(self, x1, x2):
        nce = info_nce_global if is_dist() else info_nce
        (_, y1), (_, y2) = encode_views(self.encoder, x1, x2, self.cfg.joint_bn)
        return nce(y1, y2, self.cfg.temperature), {}
