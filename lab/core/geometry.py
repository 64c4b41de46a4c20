"""Center vector geometry on the unit hypersphere (paper §2, eq. 4).

Every function is pure and works on the last dimension, so leading batch dimensions
(settings, seeds, epochs) pass through untouched. ``z`` is always L2-normalised.
"""
from __future__ import annotations

import math

import torch


def normalize(y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Project onto the unit sphere. y: (..., D) -> (..., D)."""
    return y / y.norm(dim=-1, keepdim=True).clamp_min(eps)


def center_vector(z: torch.Tensor) -> torch.Tensor:
    """Center vector s = E[z]. z: (..., N, D) -> (..., D)."""
    return z.mean(dim=-2)


def center_norm(z: torch.Tensor) -> torch.Tensor:
    """‖s‖ in [0, 1]; 1 means every feature is the same point (collapse). z: (..., N, D) -> (...)."""
    return center_vector(z).norm(dim=-1)


def center_cosines(z: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
    """cos(z_i, s): each sample's cosine to the mean direction (0 where s = 0). Their mean is ‖s‖ exactly.
    z: (..., N, D), s: (..., D) or None (use E[z]) -> (..., N)."""
    if s is None:
        s = center_vector(z)
    return (z * normalize(s).unsqueeze(-2)).sum(-1)


def center_share(z: torch.Tensor, cos_min: float, s: torch.Tensor | None = None) -> torch.Tensor:
    """The share of samples whose cosine to the mean direction is at least cos_min: ‖s‖'s robust twin. ‖s‖ is
    the mean of those cosines, so a share f of samples on the far side pulls it down by up to 2f (92 % at one
    point, 8 % opposite: ‖s‖ 0.84); this share counts each sample once, wherever the others are.
    z: (..., N, D) -> (...) in [0, 1]."""
    return (center_cosines(z, s) >= cos_min).to(z.dtype).mean(dim=-1)


def residuals(z: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample residuals r_z = z - s. z: (..., N, D), s: (..., D) or None (use E[z]) -> (..., N, D)."""
    if s is None:
        s = center_vector(z)
    return z - s.unsqueeze(-2)


def residual_norm(z: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ‖r_z‖ over samples. z: (..., N, D) -> (...)."""
    return residuals(z, s).norm(dim=-1).mean(dim=-1)


def batch_center(z: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
    """Center estimated from one mini-batch, as a training step sees it.

    z: (N, D) features of the dataset points; batch_index: (B,) indices into N (repeats allowed) -> (D,).
    """
    return z.index_select(-2, batch_index).mean(dim=-2)


def augmented_center(z_aug: torch.Tensor) -> torch.Tensor:
    """Center of the augmented features, E_x E_ω[z(ω(x))]. z_aug: (..., N, A, D) -> (..., D)."""
    return z_aug.mean(dim=(-3, -2))


def center_angle_deg(s: torch.Tensor) -> torch.Tensor:
    """Direction of s in the plane of its first two coordinates, in degrees (-180, 180]. s: (..., D) -> (...)."""
    return torch.rad2deg(torch.atan2(s[..., 1], s[..., 0]))


def angle_between_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between two vectors in degrees [0, 180]. a, b: (..., D) -> (...)."""
    cos = (normalize(a) * normalize(b)).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def z_std(z: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the per-dimension std of z; healthy ≈ 1/√D. z: (..., N, D) -> (...)."""
    return z.std(dim=-2, unbiased=False).mean(dim=-1)


def gradient_split(z_aug: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pull of the invariance loss on each sample, split as in the paper's eq. 4.

    For -<z, z_ω> the negative gradient on z is E_ω[z_ω] = μ_z, which splits into the
    common center term s = E_x[μ_z] and the sample's residual term μ_z - s.
    z_aug: (..., N, A, D) -> (center_term (..., D), residual_term (..., N, D)).
    """
    mu = z_aug.mean(dim=-2)
    s = mu.mean(dim=-2)
    return s, mu - s.unsqueeze(-2)


def healthy_z_std(dim: int) -> float:
    """z_std of features spread evenly over the sphere S^{D-1}."""
    return 1.0 / math.sqrt(dim)
