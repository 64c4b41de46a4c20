"""Layers that hold K independent copies (one per seed) and run them as one batched program.

A (K, N, d) tensor goes in, each copy k sees only x[k]: training K seeds costs one program, not K.
With K = 1 and a squeeze they are ordinary layers, which the ImageNet trainer can use too.
Each copy is initialised from its own generator, so a seed's run does not depend on its neighbours.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def seed_generators(seeds: Sequence[int], stream: int) -> list[torch.Generator]:
    """One generator per seed; `stream` separates uses (weights, batches, heads) of the same seed."""
    return [torch.Generator().manual_seed(int(s) * 1_000_003 + stream) for s in seeds]


class SeedLinear(nn.Module):
    """K independent nn.Linear(d_in, d_out) layers with nn.Linear's default init. x: (K, N, d_in) -> (K, N, d_out)."""

    def __init__(self, gens: Sequence[torch.Generator], d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)

        def uniform(*shape: int) -> torch.Tensor:
            return torch.stack([(torch.rand(*shape, generator=g) * 2 - 1) * bound for g in gens])

        self.weight = nn.Parameter(uniform(d_in, d_out))
        self.bias = nn.Parameter(uniform(1, d_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)


class SeedBatchNorm(nn.Module):
    """BatchNorm1d per copy: statistics over N of x: (K, N, F), running averages for eval."""

    def __init__(self, k: int, features: int, affine: bool = True, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(k, 1, features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(k, 1, features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(k, 1, features))
        self.register_buffer("running_var", torch.ones(k, 1, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean(1, keepdim=True)
            var = x.var(1, unbiased=False, keepdim=True)
            with torch.no_grad():
                n = x.shape[1]
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            out = out * self.weight + self.bias
        return out


def seed_mlp(gens: Sequence[torch.Generator], dims: Sequence[int], batchnorm: bool = False) -> nn.Sequential:
    """Linear (+ BN) + ReLU between every pair of dims, a plain Linear at the end."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(SeedLinear(gens, a, b))
        if i < len(dims) - 2:
            if batchnorm:
                layers.append(SeedBatchNorm(len(gens), b))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """target ← momentum·target + (1 − momentum)·source, parameters and buffers alike."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, 1.0 - momentum)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)
