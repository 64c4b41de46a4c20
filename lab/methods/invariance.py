"""Invariance only: pull two views together, nothing pushes the center back. Collapses (paper eq. 2)."""
from __future__ import annotations

from dataclasses import dataclass

from lab.core.pull import ALONG, EQ4_PULL
from lab.methods import fused
from lab.methods.base import Method, register, squared_distance


@dataclass(frozen=True)
class InvarianceConfig:
    pass


@register
class Invariance(Method):
    name = "invariance"
    label = "Invariance only (collapses)"
    Config = InvarianceConfig
    collapse_loss = "0 (every feature the same point)"

    @classmethod
    def collapse_value(cls, cfg, dim, batch):
        return 0.0

    @classmethod
    def pull_prediction(cls, cfg):
        return ALONG, f"Eq. 4: {EQ4_PULL} (§2, eq. 2–4)."

    fused_knobs = ()

    def fused_head(self, yt, b):
        zn, nz, loss, gz = fused.squared_distance_forward(yt, b)
        return loss, fused.norm_backward(zn, nz, gz)

    def loss(self, x1, x2):
        z1, z2 = self.encoder(x1)[1], self.encoder(x2)[1]
        return squared_distance(z1, z2), {}
