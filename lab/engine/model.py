"""An SSL method of the toy lab's registry on ResNet-18 with its ImageNet recipe's projector and heads.

`build_model("byol")` is `lab.methods.build_method("byol", recipe params, [seed], encoder=ResNetEncoder(...))`
with K = 1: the same method classes, losses and knobs as the toy lab, at ImageNet sizes. The predictor
heads the methods build from `lab.core.nn.SeedBatchNorm` are switched to plain BatchNorm1d modules so that
`lab.engine.dist.sync_batchnorm` (or torch's SyncBatchNorm) can make them use the global batch.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
from torch import nn

from lab.engine.recipes import Recipe, recipe, recipe_knobs, split_knobs
from lab.engine.resnet import resnet18
from lab.methods import Method, build_method, method_class, method_config
from lab.core.nn import SeedBatchNorm


def projector(rec: Recipe, in_dim: int | None = None) -> nn.Sequential:
    """Linear (+ BN) + activation per hidden dim of `rec.proj_dims`, then Linear to D (+ BN without affine).

    (N, in_dim) -> (N, D). A Linear followed by BN has no bias (BN's shift replaces it).
    """
    act = {"relu": nn.ReLU, "gelu": nn.GELU}[rec.proj_act]
    in_dim = rec.features if in_dim is None else in_dim
    layers: list[nn.Module] = []
    dims = (in_dim,) + tuple(rec.proj_dims)
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers.append(nn.Linear(a, b, bias=not rec.proj_hidden_bn))
        if rec.proj_hidden_bn:
            layers.append(nn.BatchNorm1d(b))
        layers.append(act())
    layers.append(nn.Linear(dims[-2], dims[-1], bias=not rec.proj_out_bn))
    if rec.proj_out_bn:
        layers.append(nn.BatchNorm1d(dims[-1], affine=False))
    if rec.proj_init == "trunc_normal":  # DINOHead's _init_weights
        for layer in layers:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class ResNetEncoder(nn.Module):
    """ResNet-18 backbone (the recipe's stem, width and channels) + the recipe's projector, in the toy Encoder's
    shapes with K = 1.

    x: (1, N, C, H, W) or (N, C, H, W) -> h: (1, N, F) backbone features, y: (1, N, D) projector output.
    With `autocast_dtype` set (see `enable_autocast`) the backbone and projector run under autocast and
    h, y come back as float32, so the heads and losses after them keep full precision.
    """

    def __init__(self, rec: Recipe, zero_init_residual: bool = False):
        super().__init__()
        self.backbone = resnet18(zero_init_residual, rec.stem, rec.width, rec.in_channels)
        self.projector = projector(rec)
        self.autocast_dtype: torch.dtype | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() == 5:
            if x.shape[0] != 1:
                raise ValueError(f"the ImageNet encoder trains one seed (K = 1), got K = {x.shape[0]}")
            x = x[0]
        if self.autocast_dtype is None:
            h = self.backbone(x)
            return h.unsqueeze(0), self.projector(h).unsqueeze(0)
        with torch.autocast(x.device.type, dtype=self.autocast_dtype):
            h = self.backbone(x)
            y = self.projector(h)
        return h.float().unsqueeze(0), y.float().unsqueeze(0)


def enable_autocast(model: nn.Module, dtype: torch.dtype | None = torch.bfloat16) -> nn.Module:
    """Run every ResNetEncoder in `model` (online, EMA target, teacher) under autocast to `dtype`; the heads
    and losses stay float32 (DINO's teacher softmax at T = 0.04 and Barlow's 2048² correlation need
    it). None turns it off. Call it instead of wrapping `model.loss` in torch.autocast."""
    for m in model.modules():
        if isinstance(m, ResNetEncoder):
            m.autocast_dtype = dtype
    return model


class FlatBatchNorm(nn.Module):
    """A K = 1 SeedBatchNorm as nn.BatchNorm1d over the flattened batch. x: (1, N, F) -> (1, N, F)."""

    def __init__(self, seed_bn: SeedBatchNorm):
        super().__init__()
        features = seed_bn.running_mean.shape[-1]
        self.bn = nn.BatchNorm1d(features, eps=seed_bn.eps, momentum=seed_bn.momentum,
                                 affine=seed_bn.weight is not None)
        with torch.no_grad():
            if seed_bn.weight is not None:
                self.bn.weight.copy_(seed_bn.weight.view(-1))
                self.bn.bias.copy_(seed_bn.bias.view(-1))
            self.bn.running_mean.copy_(seed_bn.running_mean.view(-1))
            self.bn.running_var.copy_(seed_bn.running_var.view(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).view(x.shape)


def _flatten_seed_bn(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, SeedBatchNorm):
            if child.running_mean.shape[0] != 1:
                raise ValueError(f"expected K = 1 seed layers, got K = {child.running_mean.shape[0]}")
            module.add_module(name, FlatBatchNorm(child))
        else:
            _flatten_seed_bn(child)


def method_params(method: str, params: Mapping[str, Any] | None = None, scale: str = "imagenet") -> dict[str, Any]:
    """Every knob of `method` at `scale`: the recipe's values, overridden by `params` (strings are parsed by
    field type, as `--set key=value` gives them), and the recipe knobs among `params` (`recipes.RECIPE_KNOBS`),
    parsed. Unknown method or key -> ValueError listing the valid ones."""
    own, knobs = split_knobs(params)
    merged = {**recipe(method, scale).method_params, **knobs}
    return {**dataclasses.asdict(method_config(method, merged)), **recipe_knobs(method, own)}


def collapse_value(method: str, params: Mapping[str, Any], dim: int, global_batch: int) -> float | None:
    """The loss a collapsed model reaches (every feature one point), as a number at these settings: the
    method's own `collapse_value`; None where the method has no single one."""
    return method_class(method).collapse_value(method_config(method, split_knobs(params)[1]), dim, global_batch)


def build_model(method: str, params: Mapping[str, Any] | None = None, seed: int = 0,
                zero_init_residual: bool = False, scale: str = "imagenet") -> Method:
    """`method` on ResNet-18 with its recipe's projector and heads at `scale` (K = 1, seed `seed`).

    Deterministic in `seed`; leaves the global RNG as it was. The recipe is at `model.recipe`.
    """
    rec = recipe(method, scale, params)
    resolved = split_knobs(method_params(method, params, scale))[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = ResNetEncoder(rec, zero_init_residual)
    model = build_method(method, resolved, [seed], rec.features, rec.dim, hidden=rec.features, encoder=encoder)
    _flatten_seed_bn(model)
    model.recipe = rec
    return model
