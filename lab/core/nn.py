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
from torch.nn import functional as F

from lab.core.seeds import generator


def seed_generators(seeds: Sequence[int], stream: int) -> list[torch.Generator]:
    """One generator per seed; `stream` separates uses (weights, batches, heads) of the same seed."""
    return [generator(s, stream) for s in seeds]


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
        if self.weight.shape[2] <= _THIN_OUT and self.weight.shape[1] >= _THIN_IN:
            return _ThinLinear.apply(x, self.weight, self.bias)
        return torch.baddbmm(self.bias, x, self.weight)


# A projection to the circle or sphere (64 -> 2 or 3) is a matmul with 2 or 3 output columns, which
# BLAS runs several times slower than the same product transposed (2 or 3 rows). _ThinLinear computes
# y and the weight gradient in that orientation: same products, same values up to float rounding.
_THIN_OUT, _THIN_IN = 4, 32


class _ThinLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        yt = torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), x.transpose(1, 2))  # (K, d_out, N)
        return yt.transpose(1, 2).contiguous()

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, w = ctx.saved_tensors
        gx = torch.bmm(g, w.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(g.transpose(1, 2), x).transpose(1, 2).contiguous()  # (K, d_out, N)·(K, N, d_in), transposed
        return gx, gw, g.sum(1, keepdim=True)


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
        # One native batch_norm over (N, K·F) columns instead of mean/var/rsqrt by hand: the same
        # statistics (biased var to normalise, unbiased for the running var), one fused kernel
        # forward and backward, and no slow Welford var over a middle dimension.
        k, n, f = x.shape
        out = F.batch_norm(x.transpose(0, 1).reshape(n, k * f), self.running_mean.view(-1),
                           self.running_var.view(-1), _flat(self.weight), _flat(self.bias),
                           self.training, self.momentum, self.eps)
        return out.view(n, k, f).transpose(0, 1)


def _flat(p: torch.Tensor | None) -> torch.Tensor | None:
    return None if p is None else p.view(-1)


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
def ema_update(target: nn.Module, source: nn.Module, momentum: float | torch.Tensor) -> None:
    """target ← momentum·target + (1 − momentum)·source for the parameters; buffers copied.

    momentum: a float, or a (K,) tensor of one value per stacked seed (every parameter's leading dim)."""
    if torch.is_tensor(momentum):
        weight = (1.0 - momentum).to(torch.float32)
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, weight.view(-1, *([1] * (t.dim() - 1))))
    else:
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, 1.0 - momentum)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)
