"""Barlow Twins (Zbontar et al., 2021): cross-correlation of batch-normalised views towards identity.

L = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij². Default λ = 0.0051 (Barlow Twins), BatchNorm on. The paper
here (Fig. 5) argues BN removes the center: even λ = 0 does not collapse; `batchnorm = False`
correlates the raw projector outputs instead.

Why λ is scaled with D on the toy (written before any toy verdict read it). The diagonal term has D
entries, the off-diagonal one D(D − 1). Barlow Twins chose λ = 0.0051 for D = 8192, so there the
off-diagonal block carries λ(D − 1) = 41.8 times the weight of the diagonal. At the toy's D = 3 the same
λ leaves it 0.0102 times the diagonal's, so "Barlow" on the toy would be the invariance term alone, λ = 0
in all but name. Keeping the ratio, λ_D = λ · (8192 − 1) / (D − 1): 20.9 at D = 3. `lam_per_d` (on for the
toy) applies that scaling to the paper's literal `lam`; off, `lam` acts as written. The ImageNet and
Fashion-MNIST recipes turn it off: their D (2048) is the recipe's own, and solo-learn uses 0.0051 there.
What this does not match: at D = 8192 each off-diagonal C_ij of a decorrelated batch is noise of size
1/√N, so most of that weight is spent on noise, which the count above does not model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lab.core import geometry as geo
from lab.core.checks import check_knobs, knob
from lab.core.collapse import DIMENSIONAL, N_CLASSES, Sign
from lab.core.dist import all_reduce_sum, is_dist, world_size
from lab.core.pull import ALONG, NOT_ALONG
from lab.methods.base import Method, register


@dataclass(frozen=True)
class BarlowConfig:
    lam: float = knob(0.0051, "λ: off-diagonal weight", "Weight of the off-diagonal (redundancy) term; 0 keeps "
                      "only the invariance term.", stops=(0.0, 0.001, 0.002, 0.0051, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
                      range=(0.0, 100.0))
    lam_per_d: bool = knob(True, "Scale λ with D", "On: λ acts as λ · 8191 / (D − 1), the weight Barlow Twins' "
                           "0.0051 gives the off-diagonal term at its D = 8192, kept at this D. Off: λ as written.")
    batchnorm: bool = knob(True, "BatchNorm", "Standardise each feature over the batch before the cross-correlation.")
    # A constant factor on the loss (solo-learn's scale_loss, 0.1 in its ImageNet-100 recipe): with LARS
    # it shifts the balance between the gradient and the weight decay.
    scale: float = knob(1.0, "Loss scale", "A constant factor on the loss (solo-learn's scale_loss).",
                        range=(0.0, 1000.0), low_open=True, scale="imagenet")

    def __post_init__(self):
        check_knobs(self)


def batch_standardize(y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """BatchNorm without affine parameters, over samples. y: (K, B, D) -> (K, B, D)."""
    return (y - y.mean(1, keepdim=True)) / (y.var(1, unbiased=False, keepdim=True) + eps).sqrt()


def global_batch_standardize(y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """`batch_standardize` with the mean and variance of every rank's batch (DDP). y: (K, B, D) -> (K, B, D)."""
    n = y.shape[1] * world_size()
    mean = all_reduce_sum(y.sum(1, keepdim=True)) / n
    var = all_reduce_sum((y - mean).square().sum(1, keepdim=True)) / n
    return (y - mean) / (var + eps).sqrt()


def cross_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = aᵀb / N over the global batch (all ranks under DDP). a, b: (K, B, D) -> (K, D, D)."""
    if not is_dist():
        return torch.bmm(a.transpose(1, 2), b) / a.shape[1]
    return all_reduce_sum(torch.bmm(a.transpose(1, 2), b)) / (a.shape[1] * world_size())


def barlow_loss(a: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor:
    """a, b: (K, B, D) (batch-normalised) views -> (K,)."""
    c = cross_correlation(a, b)
    diag = torch.diagonal(c, dim1=1, dim2=2)
    off = c.square().sum((1, 2)) - diag.square().sum(-1)
    return (1 - diag).square().sum(-1) + lam * off


BARLOW_D = 8192  # the projector output Barlow Twins set λ = 0.0051 for


def effective_lam(lam: float, per_d: bool, dim: int) -> float:
    """The λ the loss uses: `lam` as written, or scaled so that λ(D − 1) equals its value at D = 8192."""
    return lam * (BARLOW_D - 1) / (dim - 1) if per_d else lam


@register
class Barlow(Method):
    name = "barlow"
    label = "Barlow Twins"
    Config = BarlowConfig
    collapse_loss = "D (no correlation left: C = 0)"
    # The loss standardises each dimension, so the raw center is invisible to it: judged by what the loss
    # can lose, the directions of the standardised embedding (kNN shows the rest).
    signature = (Sign(DIMENSIONAL, "effective_rank_post_bn", "<", N_CLASSES, offset=-1.0),)

    @classmethod
    def setting_note(cls, cfg, dim: int) -> str:
        lam = effective_lam(cfg.lam, cfg.lam_per_d, dim)
        if cfg.lam_per_d:
            return (f"λ in effect: {lam:.4g}, the λ = {cfg.lam:g} as written scaled to D = {dim} (× 8191 / {dim - 1}), "
                    f"so the off-diagonal term weighs against the diagonal as Barlow Twins' 0.0051 does at D = 8192. "
                    f"Turn 'Scale λ with D' off for the paper's literal value.")
        return (f"λ in effect: {lam:g}, as written (Barlow Twins' 0.0051 was set for D = 8192; at D = {dim} it gives "
                f"the off-diagonal term {lam * (dim - 1):.3g} × the diagonal's weight, against 41.8 there).")

    @classmethod
    def collapse_value(cls, cfg, dim, batch):
        return cfg.scale * dim  # C = 0: Σ (1 − 0)² = D, times the loss scale

    @classmethod
    def pull_prediction(cls, cfg):
        if cfg.batchnorm:
            return NOT_ALONG, ("§3.3, Fig. 5: BatchNorm takes the center out of what the loss sees, so the loss "
                               "cannot pull along it: ≈ 0, even with λ = 0.")
        if cfg.lam == 0.0:
            return ALONG, "Without BatchNorm and with λ = 0 only the invariance term is left: eq. 4, along s."
        return NOT_ALONG, ("§A.2: the off-diagonal term acts as negatives (contrastive, §2.2): no pull along s, "
                           "or against it.")

    def loss_view(self, y):
        if not self.cfg.batchnorm:
            return y
        return global_batch_standardize(y) if is_dist() else batch_standardize(y)

    def loss(self, x1, x2):
        y1, y2 = self.encoder(x1)[1], self.encoder(x2)[1]
        lam = effective_lam(self.cfg.lam, self.cfg.lam_per_d, y1.shape[-1])
        loss = barlow_loss(self.loss_view(y1), self.loss_view(y2), lam)
        return (loss if self.cfg.scale == 1.0 else loss * self.cfg.scale), {}

    @torch.no_grad()
    def extra_metrics(self, x):
        y = self.encoder(x)[1]
        return {"center_norm_pre_bn": geo.center_norm(geo.normalize(y)),
                "center_norm_post_bn": geo.center_norm(geo.normalize(batch_standardize(y)))}
