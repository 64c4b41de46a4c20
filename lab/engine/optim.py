"""SGD and LARS for the ImageNet recipes, with biases and norm parameters left out of weight decay and
of LARS's layer-wise adaptation (as SimCLR, BYOL and solo-learn do).

`build_optimizer` splits every group a method returns (`Method.param_groups(lr)`) into a weight group
and a vector group (biases, BN γ/β: parameters with at most one dimension longer than 1, which also
catches the (1, 1, F) biases of `lab.core.nn`'s seed layers). Each group remembers `lr_scale`, its lr as a
multiple of the base lr (SimSiam's `predictor_lr_scale`), so `set_lr` can apply a schedule; a group with
`fixed_lr` (SimSiam's predictor in its paper's recipe) keeps the lr it started with.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

OPTIMIZERS = ("sgd", "lars")


def is_vector_like(p: torch.Tensor) -> bool:
    """Biases and norm scales/shifts: at most one dimension longer than 1."""
    return sum(s > 1 for s in p.shape) <= 1


class LARS(torch.optim.Optimizer):
    """SGD with momentum and the layer-wise trust ratio of You et al. (2017), as in solo-learn.

    For a group with `lars=True`: d = g + wd·p, ratio = η‖p‖ / (‖g‖ + wd‖p‖ + eps) (1 where either norm
    is 0), clipped to lr when `clip` (step = min(ratio, lr)·d, solo-learn's clip_lr); buf = μ·buf + d;
    p -= lr·buf. Groups with `lars=False` are plain SGD with momentum.
    No host synchronisation: the ratios stay on the device.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.02, eps: float = 1e-8, clip: bool = True):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, eps=eps,
                                      clip=clip, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
            grads = [p.grad for p in params]
            steps = torch._foreach_add(grads, params, alpha=wd) if wd else [g.clone() for g in grads]
            if group["lars"]:
                p_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                ratio = group["eta"] * p_norm / (g_norm + wd * p_norm + group["eps"])
                ratio = torch.where((p_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))
                if group["clip"] and lr > 0:
                    ratio = torch.clamp(ratio / lr, max=1.0)
                for s, r in zip(steps, ratio.unbind()):
                    s.mul_(r)
            if mom:
                bufs = []
                for p, s in zip(params, steps):
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = s.clone()
                    else:
                        state["momentum_buffer"].mul_(mom).add_(s)
                    bufs.append(state["momentum_buffer"])
                steps = bufs
            torch._foreach_add_(params, steps, alpha=-lr)
        return loss


def split_groups(param_groups: list[dict], lr: float, weight_decay: float) -> list[dict]:
    """Each group -> (weights: wd, LARS on) + (vectors: no wd, no LARS); keeps the group's other keys."""
    out = []
    for g in param_groups:
        extra = {k: v for k, v in g.items() if k != "params"}
        group_lr = extra.pop("lr", lr)
        extra["lr"] = group_lr
        extra["lr_scale"] = group_lr / lr if lr > 0 else 1.0
        params = [p for p in g["params"] if p.requires_grad]
        weights = [p for p in params if not is_vector_like(p)]
        vectors = [p for p in params if is_vector_like(p)]
        if weights:
            out.append({**extra, "params": weights, "weight_decay": weight_decay, "lars": True})
        if vectors:
            out.append({**extra, "params": vectors, "weight_decay": 0.0, "lars": False})
    return out


def build_optimizer(recipe_or_name: Any, param_groups: list[dict], lr: float, weight_decay: float,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD or LARS (η 0.02, clipped, solo-learn's) over `param_groups` (from `Method.param_groups(lr)`).

    recipe_or_name: a `Recipe` (its `optimizer` field) or "sgd" / "lars".
    """
    name = getattr(recipe_or_name, "optimizer", recipe_or_name)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    groups = split_groups(param_groups, lr, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Apply a scheduled base lr: each group gets lr × its `lr_scale`; `fixed_lr` groups keep theirs."""
    for g in optimizer.param_groups:
        if not g.get("fixed_lr", False):
            g["lr"] = lr * g.get("lr_scale", 1.0)
