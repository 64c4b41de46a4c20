"""From a `TrainConfig` to a `Run` ready to train: ranks and device, data loaders, model, optimizer, the
learning-rate schedule's sizes, and the state of a checkpoint to resume from (`prepare`).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn

from lab.core.seeds import OFFSET, seed_globals, seed_stream
from lab.data.fmnist import is_fashion_mnist
from lab.engine import dist
from lab.data.augment import SSLAugment
from lab.engine.config import TrainConfig, get_recipe
from lab.data.folder import check_split, make_loader
from lab.engine.model import build_model, collapse_value, method_params
from lab.engine.optim import build_optimizer
from lab.engine.recipes import SCALES
from lab.engine.runfiles import RunFiles, load_start


class _LossModule(nn.Module):
    """What DDP wraps: the whole method loss, so DDP sees every forward of the encoder and heads."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        loss, _ = self.model.loss(v1, v2)
        return loss.sum()


@dataclass
class Run:
    """Everything `prepare` validated and built; `lab.engine.loop.run_loop` trains it."""

    cfg: TrainConfig
    recipe: Any
    params: dict
    device: torch.device
    rank: int
    world: int
    out: Path
    files: RunFiles
    loader: Any
    knn_loaders: tuple | None
    model: nn.Module
    ddp: nn.Module
    optimizer: torch.optim.Optimizer
    augment: nn.Module
    base_lr: float
    group_scales: list[float]
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    collapse_loss: float | None
    start: dict  # resume state: epoch, step, step_in_epoch, guard, status, acc
    group_cache: dict = field(default_factory=dict)
    probe: torch.Tensor | None = None

    def autocast(self):
        """bf16 autocast on CUDA unless --no-amp; nothing on CPU."""
        if self.device.type == "cuda" and self.cfg.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


# ----------------------------------------------------------------------------------------- distributed

def _dist_env() -> tuple[int, int, int]:
    """(rank, local_rank, world) from torchrun's environment; (0, 0, 1) without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _init_dist(device: torch.device, world: int) -> torch.device:
    return dist.setup(device) if world > 1 else device


# ----------------------------------------------------------------------------------------- prepare

def prepare(cfg: TrainConfig) -> Run:
    """Validate, set up ranks, scan data, build model, optimizer, loaders; load a checkpoint if RUN has one.

    Bad input raises ValueError (one line) before anything heavy runs.
    """
    cfg = cfg.resolved()
    recipe = get_recipe(cfg.method, cfg.scale, cfg.set)
    params = method_params(cfg.method, cfg.set, cfg.scale)
    rank, local_rank, world = _dist_env()
    device = _resolve_device(cfg.device, local_rank)
    _check_batch_split(cfg, world)
    has_val = _check_data(cfg.data)
    device = _init_dist(device, world)
    seed_globals(seed_stream(cfg.seed, rank, strides=(OFFSET,)))  # each rank its own global draws
    out = Path(cfg.out)
    start = load_start(cfg, out, device)
    loader, steps = _train_loader(cfg, rank, world, device)
    knn_loaders = _knn_loaders(cfg, rank, world) if has_val else None

    files = RunFiles(out, rank, cfg.progress)  # the run folder appears once the input checked out
    model = _build_model(cfg, params, world, device)
    base_lr = (cfg.lr if cfg.lr is not None else recipe.lr) * cfg.batch_size / 256
    optimizer, scales = _build_optimizer(recipe, model, base_lr)
    if start.get("model") is not None:
        model.load_state_dict(start.pop("model"))
        optimizer.load_state_dict(start.pop("optimizer"))
    ddp = _LossModule(model)
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(ddp, device_ids=[device.index] if device.type == "cuda" else None)
    augment = SSLAugment(cfg.image_size, min_scale=recipe.min_scale, mean=SCALES[cfg.scale].mean,
                         std=SCALES[cfg.scale].std).to(device)
    total = cfg.epochs * steps
    warmup = min(int(round(recipe.warmup_epochs * steps)), max(total - 1, 0))
    return Run(cfg=cfg, recipe=recipe, params=dict(params), device=device, rank=rank, world=world, out=out,
               files=files, loader=loader, knn_loaders=knn_loaders, model=model, ddp=ddp, optimizer=optimizer,
               augment=augment, base_lr=base_lr, group_scales=scales, steps_per_epoch=steps, total_steps=total,
               warmup_steps=warmup, start=start,
               collapse_loss=collapse_value(cfg.method, params, recipe.dim, cfg.batch_size))


def _check_batch_split(cfg: TrainConfig, world: int) -> None:
    groups = cfg.aug_groups or world
    if cfg.batch_size % world:
        raise ValueError(f"batch_size must be a multiple of the world size {world}, got {cfg.batch_size}")
    if groups % world or (cfg.batch_size // world) % (groups // world):
        raise ValueError(f"aug_groups must be a multiple of the world size {world} dividing batch_size "
                         f"{cfg.batch_size}, got {groups}")


def _check_data(data: str) -> bool:
    """Whether data has a val split (kNN runs only then); a missing or empty data/train -> DataError, one
    line. Fashion-MNIST needs all four files: its test split is the val split."""
    check_split(data, "train")
    if is_fashion_mnist(data):
        check_split(data, "val")
        return True
    try:
        check_split(data, "val")
    except ValueError:
        return False
    return True


def _train_loader(cfg: TrainConfig, rank: int, world: int, device: torch.device):
    """This rank's training loader and the steps per epoch (the same on every rank)."""
    loader = make_loader(cfg.data, "train", size=cfg.load_size, batch_size=cfg.batch_size // world,
                         workers=cfg.workers, shuffle=True, drop_last=True, seed=cfg.seed, rank=rank, world_size=world,
                         cache=cfg.cache)
    steps = len(loader)
    if world > 1:  # every rank must run the same number of steps
        t = torch.tensor([steps], device=device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MIN)
        steps = int(t)
    if steps < 1:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the training set "
                         f"({loader.n_images} images); use a smaller --batch-size")
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    return loader, steps


def _knn_loaders(cfg: TrainConfig, rank: int, world: int) -> tuple:
    """(train, val) loaders for kNN: unshuffled, every image once (the val split is never cached)."""
    per_rank = cfg.batch_size // world
    return tuple(make_loader(cfg.data, split, size=cfg.load_size, batch_size=min(256, max(per_rank, 64)),
                             workers=cfg.workers, shuffle=False, drop_last=False, seed=cfg.seed, rank=rank,
                             world_size=world, cache=None if split == "val" else cfg.cache)
                 for split in ("train", "val"))


def _build_model(cfg: TrainConfig, params: dict, world: int, device: torch.device) -> nn.Module:
    model = build_model(cfg.method, params, seed=cfg.seed, scale=cfg.scale)
    if world > 1:
        model = dist.sync_batchnorm(model, device)
    model = model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _build_optimizer(recipe, model: nn.Module, base_lr: float) -> tuple[torch.optim.Optimizer, list[float]]:
    """The recipe's optimizer and each parameter group's lr scale (the schedule keeps them)."""
    optimizer = build_optimizer(recipe, model.param_groups(base_lr), base_lr, recipe.weight_decay, recipe.momentum)
    return optimizer, [g.get("lr_scale", 1.0) for g in optimizer.param_groups]
