"""Collectives the losses need under DDP, each a no-op (the identity) when no process group is up.

Toy runs, notebooks and one-process ImageNet runs never initialise torch.distributed, so every helper
here returns its input untouched and the methods' single-process code paths stay exactly as they were.
The differentiable ones follow DDP's convention: every rank computes the same global objective and DDP
averages the gradients over ranks, so a collective's backward sums the gradients of all ranks.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        g = g.clone()
        dist.all_reduce(g)
        return g


class _AllGatherCat(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor, dim: int) -> torch.Tensor:
        ctx.dim, ctx.size = dim, t.shape[dim]
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        g = g.contiguous().clone()
        dist.all_reduce(g)  # every rank's loss depends on this rank's slice
        return g.narrow(ctx.dim, dist.get_rank() * ctx.size, ctx.size), None


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of t over ranks, differentiable (backward: the sum of the ranks' gradients). Identity without DDP."""
    if not is_dist():
        return t
    if torch.is_grad_enabled() and t.requires_grad:
        return _AllReduceSum.apply(t)
    out = t.clone()
    dist.all_reduce(out)
    return out


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    """Elementwise max over ranks, no gradient. Identity without DDP."""
    if not is_dist():
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def all_gather_cat(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Every rank's t concatenated along `dim` in rank order, differentiable. Same shape on every rank.

    Identity without DDP.
    """
    if not is_dist():
        return t
    if torch.is_grad_enabled() and t.requires_grad:
        return _AllGatherCat.apply(t, dim)
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=dim)
