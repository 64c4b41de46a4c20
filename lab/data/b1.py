"""The paper's B.1 toy data: points in R³ from N(0, I), each with a few noisy augmentations."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lab.core.seeds import B1_NOISE, B1_STRIDE, generator


@dataclass(frozen=True)
class B1Data:
    """x: (N, 3) dataset points; x_aug: (N, A, 3) their augmentations."""

    x: torch.Tensor
    x_aug: torch.Tensor

    @property
    def n_points(self) -> int:
        return self.x.shape[0]

    @property
    def n_aug(self) -> int:
        return self.x_aug.shape[1]


def make_b1_data(
    seed: int,
    n_points: int = 100,
    n_aug: int = 10,
    noise: float = 0.1,
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0),
    noise_seed: int | None = None,
) -> B1Data:
    """Draw x ~ N(0, I₃) and x_ω = x + k + σ·ε with ε ~ N(0, I₃).

    The noise ε depends only on the seed, so a centered and a shifted run with the same
    seed see the same points and the same augmentation noise; only k differs (as in the paper).
    `noise_seed` draws ε from its own stream instead, the points staying the seed's (the null
    of the B.1 turn claim: two centered runs that differ only in their noise).
    """
    g = generator(seed)
    x = torch.randn(n_points, 3, generator=g)
    if noise_seed is not None:
        g = generator(noise_seed, B1_NOISE, strides=(B1_STRIDE,))
    eps = torch.randn(n_points, n_aug, 3, generator=g)
    k = torch.tensor(shift, dtype=x.dtype)
    return B1Data(x=x, x_aug=x.unsqueeze(1) + noise * eps + k)
