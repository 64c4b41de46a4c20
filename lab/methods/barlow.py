"""Barlow Twins (Zbontar et al., 2021): cross-correlation of batch-normalised views towards identity.

L = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij². Default λ = 0.0051 (Barlow Twins), BatchNorm on. The paper
here (Fig. 5) argues BN removes the center: even λ = 0 does not collapse; `batchnorm = False`
correlates the raw projector outputs instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lab import geometry as geo
from lab.methods.base import Method, check_range, register


@dataclass(frozen=True)
class BarlowConfig:
    lam: float = 0.0051
    batchnorm: bool = True

    def __post_init__(self):
        check_range("lam", self.lam, 0.0, 100.0)


def batch_standardize(y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """BatchNorm without affine parameters, over samples. y: (K, B, D) -> (K, B, D)."""
    return (y - y.mean(1, keepdim=True)) / (y.var(1, unbiased=False, keepdim=True) + eps).sqrt()


def barlow_loss(a: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor:
    """a, b: (K, B, D) (batch-normalised) views -> (K,)."""
    c = torch.bmm(a.transpose(1, 2), b) / a.shape[1]
    diag = torch.diagonal(c, dim1=1, dim2=2)
    off = c.square().sum((1, 2)) - diag.square().sum(-1)
    return (1 - diag).square().sum(-1) + lam * off


@register
class Barlow(Method):
    name = "barlow"
    Config = BarlowConfig
    collapse_loss = "D (no correlation left: C = 0)"

    def _view(self, x):
        y = self.encoder(x)[1]
        return batch_standardize(y) if self.cfg.batchnorm else y

    def loss(self, x1, x2):
        return barlow_loss(self._view(x1), self._view(x2), self.cfg.lam), {}

    @torch.no_grad()
    def extra_metrics(self, x):
        y = self.encoder(x)[1]
        return {"center_norm_pre_bn": geo.center_norm(geo.normalize(y)),
                "center_norm_post_bn": geo.center_norm(geo.normalize(batch_standardize(y)))}
