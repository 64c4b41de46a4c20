"""SimCLR (Chen et al., 2020): InfoNCE over the batch; the other samples are negatives.

Default temperature 0.2 (solo-learn's ImageNet-100 recipe; SimCLR's own is 0.1–0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lab import geometry as geo
from lab.methods.base import Method, check_range, register


@dataclass(frozen=True)
class SimCLRConfig:
    temperature: float = 0.2

    def __post_init__(self):
        check_range("temperature", self.temperature, 0.0, 10.0, low_open=True)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent. z1, z2: (K, B, D) -> (K,). Each of 2B samples must pick its partner among 2B − 1."""
    z = geo.normalize(torch.cat([z1, z2], dim=1))
    b2 = z.shape[1]
    sim = torch.bmm(z, z.transpose(1, 2)) / temperature
    sim = sim.masked_fill(torch.eye(b2, dtype=torch.bool), float("-inf"))
    partner = (torch.arange(b2) + b2 // 2) % b2
    logp = torch.log_softmax(sim, dim=-1)
    return -logp[:, torch.arange(b2), partner].mean(-1)


@register
class SimCLR(Method):
    name = "simclr"
    Config = SimCLRConfig
    collapse_loss = "ln(2B − 1) (every sample equally similar)"

    def loss(self, x1, x2):
        return info_nce(self.encoder(x1)[1], self.encoder(x2)[1], self.cfg.temperature), {}
