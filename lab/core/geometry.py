"""Center vector geometry on the unit hypersphere (paper §2, eq. 4).

Every function is pure and works on the last dimension, so leading batch dimensions
(settings, seeds, epochs) pass through untouched. ``z`` is always L2-normalised.
"""
from __future__ import annotations

import math

import numpy as np
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


def sphere_basis(u: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, float]:
    """Where to look at unit rows from (`lab.doctor.project`, the live Real images view): the top-3 directions
    of their second moment about the origin, not about their mean, so that s stays in view (a collapse
    gathers the rows on the first axis). u: (M, D) unit rows, mean: (D,) their mean -> (D, 3) orthonormal
    columns (padded with zero columns where D < 3 or the rows span fewer) and the share of the second moment
    they hold (1 where D ≤ 3)."""
    m, dim = u.shape
    if dim <= 3:
        return np.eye(dim, 3), 1.0
    # The smaller of the two Gram matrices: M × M for a sample narrower than D, D × D otherwise.
    if m < dim:
        lam, w = np.linalg.eigh(u @ u.T)
        top = np.argsort(lam)[::-1][:3]
        basis = u.T @ w[:, top] / np.sqrt(np.maximum(lam[top], 1e-300))
    else:
        lam, v = np.linalg.eigh(u.T @ u)
        top = np.argsort(lam)[::-1][:3]
        basis = v[:, top]
    # Directions the sample does not spread along (a single point has one) are left out, not made of round-off.
    held = lam[top] > 1e-9 * m
    basis = np.pad(basis[:, held], ((0, 0), (0, 3 - int(held.sum()))))
    # Each direction's sign is arbitrary: point it along s (or along the sample's first row where s is 0 in
    # it), so that the same embedding is always drawn the same way round.
    ref = mean if np.linalg.norm(mean) > 1e-9 else u[0]
    signs = np.where(ref @ basis < 0, -1.0, 1.0)
    return basis * signs, float(np.clip(lam[top][held].sum() / m, 0.0, 1.0))




def aligned_basis(basis: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """basis (D, 3) turned within its own span to lie closest to `previous` (D, 3) (orthogonal Procrustes):
    frames of a moving embedding then turn smoothly instead of jumping when two directions swap order or
    flip sign. None or a padded basis: as it is."""
    if previous is None or previous.shape != basis.shape or not np.all(np.linalg.norm(basis, axis=0) > 0.5):
        return basis
    a, _, bt = np.linalg.svd(basis.T @ previous)
    return basis @ (a @ bt)
