"""Toy datasets for the method playground (paper Figs. 3 and 4).

Each has 3 classes. As in the paper, "samples of one class are treated as augmentations of a single
image": a positive pair is two samples of the same class. Held-out points per class are for kNN and
linear evaluation. Inputs are standardised per coordinate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from lab.core.seeds import generator

N_CLASSES = 3


@dataclass(frozen=True)
class ToyData:
    """x_train: (N, d), y_train: (N,), x_test: (M, d), y_test: (M,); classes 0..2."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def in_dim(self) -> int:
        return self.x_train.shape[1]


def _blobs(n: int, g: torch.Generator, dim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.arange(N_CLASSES) * 2 * math.pi / N_CLASSES
    centers = torch.stack([angles.cos(), angles.sin()], 1) * 3.0
    if dim == 3:
        centers = torch.cat([centers, torch.tensor([[0.0], [2.0], [-2.0]])], 1)
    y = torch.arange(N_CLASSES).repeat_interleave(n)
    return centers[y] + torch.randn(len(y), dim, generator=g), y


def _moons(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # A chain of three interleaved half-circles: scikit-learn's two moons and a third, upper one,
    # placed so that no two arcs touch (the closest ends are 0.5 apart, 5 noise std).
    t = torch.rand(N_CLASSES, n, generator=g) * math.pi
    arcs = [torch.stack([t[0].cos(), t[0].sin()], 1),
            torch.stack([1 - t[1].cos(), 0.5 - t[1].sin()], 1),
            torch.stack([3 + t[2].cos(), t[2].sin()], 1)]
    x = torch.cat(arcs) + 0.1 * torch.randn(N_CLASSES * n, 2, generator=g)
    return x, torch.arange(N_CLASSES).repeat_interleave(n)


def _circles(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.rand(N_CLASSES * n, generator=g) * 2 * math.pi
    y = torch.arange(N_CLASSES).repeat_interleave(n)
    r = (y + 1).float() + 0.15 * torch.randn(len(y), generator=g)
    return torch.stack([r * t.cos(), r * t.sin()], 1), y


DATASETS: dict[str, Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]] = {
    "blobs": _blobs,
    "moons": _moons,
    "circles": _circles,
    "blobs3d": lambda n, g: _blobs(n, g, dim=3),
}
DATASET_LABELS = {"blobs": "blobs (2-D)", "moons": "moons (2-D)", "circles": "circles (2-D)",
                  "blobs3d": "blobs (3-D input)"}


def make_toy(name: str, seed: int = 0, n_train: int = 200, n_test: int = 100) -> ToyData:
    """`n_train` and `n_test` points per class; the same seed gives the same data."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if not (2 <= n_train <= 100_000 and 1 <= n_test <= 100_000):
        raise ValueError(f"n_train must be in [2, 100000] and n_test in [1, 100000], got {n_train}, {n_test}")
    g = generator(seed)
    x, y = DATASETS[name](n_train + n_test, g)
    x = (x - x.mean(0)) / x.std(0)
    order = torch.randperm(len(y), generator=g)
    x, y = x[order], y[order]
    test = torch.zeros(len(y), dtype=torch.bool)
    for c in range(N_CLASSES):  # the first n_test of each class are held out
        test[(y == c).nonzero().squeeze(1)[:n_test]] = True
    return ToyData(name, x[~test], y[~test], x[test], y[test])
