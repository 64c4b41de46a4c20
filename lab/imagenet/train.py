"""ImageNet-100 training: `python -m lab.imagenet.train --data DIR --method simsiam --out RUN ...`.

One process (CPU or one GPU) or the same module under `torchrun --nproc_per_node=G` (DDP: gloo on CPU,
NCCL on CUDA; per-rank batch = global / G; BatchNorm over the global batch). `train(cfg)` is the plain
function behind the command line, a notebook and the runs launcher; bad input raises ValueError (the
command line prints it as one line and exits 2).

A step: uint8 batch -> device -> two augmented views (kornia, on the device; each augmentation group
reseeded from (seed, step), so a resumed run draws the same views) -> `model.loss` (K = 1) -> backward
-> optimizer step at the warmup-cosine lr (per-group scales kept) -> `model.after_step(progress)`.

RUN/ holds (rank 0 writes):
- metrics.jsonl, one JSON object per line, each with "kind":
  {"kind": "step", "epoch": 3, "step": 250, "loss": -0.91, "batch_center_norm": 0.05, "lr": 0.49} every
  --log-every steps; one "epoch" line per epoch with `EPOCH_KEYS` (plus the method's extra metrics:
  center_norm_pre_bn / center_norm_post_bn for barlow, teacher_entropy / teacher_entropy_max for dino,
  and knn_seconds), e.g. {"kind": "epoch", "epoch": 3, "step": 750, "loss": -0.91, "collapse_loss": -1.0,
  "center_norm": 0.04, "residual_norm": 0.999, "z_std": 0.0221, "z_std_healthy": 0.0221, "knn_acc": 0.41,
  "lr": 0.49, "images_per_s": 5210.0, "epoch_seconds": 24.3, "knn_seconds": 6.1, "n_corrupt": 0,
  "collapsed": false}; and a last {"kind": "end", "status": "finished" | "collapsed" | "stopped", "epoch",
  "step"}. "epoch" counts epochs done (1-based in epoch lines).
- config.json (resolved config, method params, recipe, world size, kNN protocol), train.log (the human
  log), checkpoint.pt (model, optimizer, EMA teachers, DINO center, step, RNG states, guard counter).

Resume: the same command with the same --out continues from checkpoint.pt (a checkpoint of other
settings is an error). The epoch's metrics line is written before its checkpoint, and a resume first
rewrites metrics.jsonl without the lines the checkpoint does not cover, so no epoch appears twice even
after kill -9 between the two. SIGTERM / SIGINT: the current step finishes, a mid-epoch checkpoint is
written (with the epoch's partial metric sums), an "end" line with status "stopped", exit status 0; the
resume skips the batches already trained (the loader's order is fixed by seed and epoch). Under torchrun
the ranks agree on stopping every `DDP_STOP_CHECK_EVERY` steps; the workers exit 0, torchrun's own
agent reports the signal as a failure (its behaviour, not the trainer's).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn
from torch.nn import functional as F

from lab.methods import METHOD_NAMES
from lab.methods.base import check_range

EXIT_BAD_INPUT = 2
CHECKPOINT = "checkpoint.pt"
# Config fields that define the run: resuming with another value is an error, not a silent new run.
# "set" compares as the resolved method knobs (so --set predictor=false and {"predictor": False} agree),
# "data" as an absolute path.
IDENTITY_FIELDS = ("data", "method", "set", "epochs", "batch_size", "image_size", "load_size", "seed", "lr",
                   "max_steps_per_epoch", "aug_groups")
KNN_PROTOCOL = ("weighted kNN (DINO/InstDisc vote: weights exp(cos/T)), cosine similarity on L2-normalised "
                "backbone features h (512-d, model in eval mode), val images against all train images, each "
                "image short-side resized to load_size, center-cropped, resized to image_size, normalised; no "
                "augmentation")
# Every line of metrics.jsonl has "kind": "step" | "epoch" | "end". Keys of an epoch line:
EPOCH_KEYS = ("kind", "epoch", "step", "loss", "collapse_loss", "center_norm", "residual_norm", "z_std",
              "z_std_healthy", "knn_acc", "lr", "images_per_s", "epoch_seconds", "n_corrupt", "collapsed")
DDP_STOP_CHECK_EVERY = 10  # steps between the collective that agrees on a SIGTERM (a GPU sync point)


# ----------------------------------------------------------------------------------------- config

@dataclass(frozen=True)
class TrainConfig:
    """One ImageNet run. None means the method's recipe default (`lab.imagenet.recipes.RECIPES`).

    batch_size is the global batch (split evenly over the DDP ranks); lr is the base learning rate for
    batch 256 (scaled linearly by batch_size / 256), as in the recipes. aug_groups (default: the world
    size) splits the global batch into groups augmented with their own random stream, so a one-process
    run with aug_groups = G sees exactly the views of a G-process run.
    """

    data: str
    method: str
    set: Mapping[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    batch_size: int | None = None
    image_size: int = 224
    load_size: int | None = None  # None: image_size · 256/224, rounded
    device: str = "auto"  # auto: cuda when present, else cpu; under torchrun cuda:LOCAL_RANK
    out: str = "runs/imagenet"
    seed: int = 0
    workers: int = 4
    cache: str | None = None
    knn_every: int = 10  # epochs between kNN evaluations (and always after the last epoch); 0: only at the end
    knn_k: int = 20
    knn_temperature: float = 0.07
    log_every_steps: int = 50
    collapse_threshold: float | None = None  # guard off by default
    collapse_patience: int = 3
    lr: float | None = None
    max_steps_per_epoch: int | None = None
    amp: bool = True  # bf16 autocast; CUDA only
    channels_last: bool = True  # CUDA only (CPU convolutions gain nothing from it)
    aug_groups: int | None = None
    progress: bool = True  # a progress bar on stderr when it is a terminal

    def __post_init__(self):
        if self.method not in METHOD_NAMES:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHOD_NAMES)}")
        object.__setattr__(self, "set", dict(sorted(dict(self.set).items())))
        object.__setattr__(self, "data", str(self.data))
        object.__setattr__(self, "out", str(self.out))
        if self.cache is not None:
            object.__setattr__(self, "cache", str(self.cache))
        ints = {"epochs": (1, 100_000), "batch_size": (2, 1 << 20), "image_size": (16, 1024),
                "load_size": (16, 2048), "seed": (0, 2**31 - 1), "workers": (0, 256), "knn_every": (0, 100_000),
                "knn_k": (1, 10_000), "log_every_steps": (1, 1 << 30), "collapse_patience": (1, 100_000),
                "max_steps_per_epoch": (1, 1 << 30), "aug_groups": (1, 4096)}
        for name, (low, high) in ints.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
            check_range(name, value, low, high)
        check_range("knn_temperature", self.knn_temperature, 0.0, 100.0, low_open=True)
        if self.collapse_threshold is not None:
            check_range("collapse_threshold", self.collapse_threshold, 0.0, 1.0)
        if self.lr is not None:
            check_range("lr", self.lr, 0.0, 100.0, low_open=True)
        if self.load_size is not None and self.load_size < self.image_size:
            raise ValueError(f"load_size must be >= image_size ({self.image_size}), got {self.load_size}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}") from None

    def resolved(self) -> "TrainConfig":
        """Recipe defaults filled in (epochs, batch_size, load_size); everything else unchanged."""
        recipe = get_recipe(self.method)
        return dataclasses.replace(
            self, epochs=self.epochs or recipe.epochs, batch_size=self.batch_size or recipe.batch_size,
            load_size=self.load_size or int(round(self.image_size * 256 / 224)))


def get_recipe(method: str):
    from lab.imagenet.recipes import RECIPES

    if method not in RECIPES:
        raise ValueError(f"no ImageNet recipe for method {method!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[method]


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """['key=value', ...] -> {key: value} (values stay strings; the method config parses them)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


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
    from lab.imagenet import dist

    return dist.setup(device) if world > 1 else device


def _all_sum(t: torch.Tensor) -> torch.Tensor:
    if tdist.is_initialized():
        tdist.all_reduce(t)
    return t


def _gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows (rank order); ranks may hold different counts. (n_r, ...) -> (Σ n_r, ...)."""
    if not tdist.is_initialized():
        return t
    world = tdist.get_world_size()
    n = torch.tensor([t.shape[0]], device=t.device)
    counts = [torch.zeros_like(n) for _ in range(world)]
    tdist.all_gather(counts, n)
    counts = [int(c) for c in counts]
    pad = t.new_zeros((max(counts) - t.shape[0], *t.shape[1:]))
    parts = [t.new_zeros((max(counts), *t.shape[1:])) for _ in range(world)]
    tdist.all_gather(parts, torch.cat([t, pad]))
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


# ----------------------------------------------------------------------------------------- metrics

class ViewRecorder:
    """Forward hook on model.encoder: sums of the L2-normalised projector outputs of the training views.

    Over an epoch: center_norm = ‖Σz / n‖, z_std = mean_d sqrt(E z_d² − (E z_d)²) (= lab.geometry.z_std),
    residual_norm = sqrt(E‖z − s‖²) = sqrt(1 − ‖s‖²) (root mean square; exact from the sums, no second
    pass). Sums stay on the device in float64; nothing syncs until `epoch_values`.
    """

    def __init__(self, encoder: nn.Module, device: torch.device):
        self.device, self.active = device, False
        self.sum = self.sum2 = self.batch_sum = None
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.batch_count = 0
        self.handle = encoder.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if not self.active:
            return
        z = output[1].detach().float()
        z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        z = z.reshape(-1, z.shape[-1])
        s, s2 = z.sum(0).double(), z.square().sum(0).double()
        if self.sum is None:
            self.sum, self.sum2 = torch.zeros_like(s), torch.zeros_like(s)
        self.sum += s
        self.sum2 += s2
        self.count += z.shape[0]
        self.batch_sum = s if self.batch_sum is None else self.batch_sum + s
        self.batch_count += z.shape[0]

    def new_step(self) -> None:
        self.batch_sum, self.batch_count = None, 0

    def batch_center_norm(self) -> float:
        """‖mean z‖ of this step's views, all ranks together (a collective: call on every rank)."""
        packed = _all_sum(torch.cat([self.batch_sum, torch.tensor([float(self.batch_count)], dtype=torch.float64,
                                                                   device=self.device)]))
        return float((packed[:-1] / packed[-1]).norm())

    def state(self) -> dict:
        return {"sum": self.sum, "sum2": self.sum2, "count": self.count}

    def load(self, state: Mapping) -> None:
        self.sum, self.sum2 = state["sum"], state["sum2"]
        self.count = state["count"].to(self.device)
        if self.sum is not None:
            self.sum, self.sum2 = self.sum.to(self.device), self.sum2.to(self.device)

    def gather_to_rank0(self) -> None:
        """Put every rank's partial sums on rank 0 (for a mid-epoch checkpoint, which rank 0 writes)."""
        if not tdist.is_initialized():
            return
        d = self.sum.shape[0]
        packed = _all_sum(torch.cat([self.sum, self.sum2, self.count.view(1)]))
        if tdist.get_rank() == 0:
            self.sum, self.sum2, self.count = packed[:d], packed[d:2 * d], packed[-1]
        else:
            self.sum, self.sum2 = torch.zeros_like(self.sum), torch.zeros_like(self.sum2)
            self.count = torch.zeros_like(self.count)

    def reset(self) -> None:
        self.sum = self.sum2 = None
        self.count = torch.zeros((), dtype=torch.float64, device=self.device)

    def epoch_values(self) -> dict[str, float]:
        """All-reduced over ranks (a collective)."""
        packed = _all_sum(torch.cat([self.sum, self.sum2, self.count.view(1)]))
        d = self.sum.shape[0]
        n = packed[-1]
        mean, mean2 = packed[:d] / n, packed[d:2 * d] / n
        center = float(mean.norm())
        return {"center_norm": center, "residual_norm": math.sqrt(max(0.0, 1.0 - center**2)),
                "z_std": float((mean2 - mean.square()).clamp_min(0).sqrt().mean()),
                "z_std_healthy": 1.0 / math.sqrt(d), "n_views": int(n)}


def collapse_value(method: str, params: Mapping[str, Any], dim: int, global_batch: int) -> float | None:
    """The loss a collapsed model reaches (every feature one point), as a number: the method's
    `collapse_loss` text evaluated at these settings; None for a method this does not know."""
    if method in ("simsiam", "byol"):
        return -1.0
    if method in ("dino", "swav"):  # codes / teacher uniform over the K prototypes
        return math.log(int(params["n_prototypes"]))
    if method == "simclr":  # negatives gathered over ranks: 2B − 1 candidates, all equally similar
        return math.log(2 * global_batch - 1)
    if method == "barlow":  # C = 0: Σ (1 − 0)² = D, times the recipe's loss scale
        return float(params.get("scale", 1.0)) * dim
    if method == "simplified":  # invariance met, ‖s‖ = 1: 0.5 (0 − λ)
        return -0.5 * float(params["lam"])
    if method == "triplet":  # gap 0: ½·0 without a hinge, the margin with one
        margin = float(params.get("margin", math.inf))
        return 0.0 if math.isinf(margin) else margin
    if method == "invariance":
        return 0.0
    return None


# ----------------------------------------------------------------------------------------- files

def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, write: Callable[[Any], None]) -> None:
    """write(fileobj) into path.tmp, fsync, os.replace: a reader (or a kill -9) sees the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_metrics(path: Path) -> list[dict]:
    """The JSON lines of a metrics file; a torn last line (a kill mid-write) is left out."""
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return rows


def trim_metrics(path: Path, epoch: int, step: int) -> int:
    """Keep only what the checkpoint (epoch epochs done, step steps) already covers; atomically. -> lines dropped."""
    rows = read_metrics(path)
    keep = [r for r in rows if r.get("kind") != "end" and int(r.get("step", 0)) <= step
            and not (r.get("kind") == "epoch" and int(r.get("epoch", 0)) > epoch)]
    text = "".join(json.dumps(r) + "\n" for r in keep)
    if path.exists() and path.read_text() != text:
        atomic_write_bytes(path, lambda f: f.write(text.encode()))
    return len(rows) - len(keep)


class RunFiles:
    """RUN/metrics.jsonl, RUN/train.log, RUN/config.json; rank 0 writes, the other ranks do nothing."""

    def __init__(self, out: Path, rank: int, progress: bool):
        self.out, self.rank = out, rank
        self.writer = rank == 0
        self.bar = progress and self.writer and sys.stderr.isatty()
        self._bar_shown = False
        if self.writer:
            out.mkdir(parents=True, exist_ok=True)

    def log(self, message: str) -> None:
        if not self.writer:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        with open(self.out / "train.log", "a") as f:
            f.write(line + "\n")
        if self._bar_shown:
            sys.stderr.write("\r\033[K")
            self._bar_shown = False
        print(line, file=sys.stderr, flush=True)

    def metric(self, row: dict) -> None:
        if not self.writer:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            if row.get("kind") != "step":
                os.fsync(f.fileno())

    def progress(self, epoch: int, epochs: int, done: int, total: int, rate: float, loss: float | None) -> None:
        if not self.bar:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        tail = f" loss {loss:.4f}" if loss is not None else ""
        sys.stderr.write(f"\repoch {epoch}/{epochs} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                         f"{rate:,.0f} img/s{tail}\033[K")
        sys.stderr.flush()
        self._bar_shown = True

    def end_bar(self) -> None:
        if self._bar_shown:
            sys.stderr.write("\n")
            self._bar_shown = False


# ----------------------------------------------------------------------------------------- the run

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
    """Everything `prepare` validated and built; `_loop` trains it."""

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


def _identity(cfg: TrainConfig) -> dict:
    from lab.imagenet.model import resolved_method_params

    values = {k: getattr(cfg, k) for k in IDENTITY_FIELDS}
    values["set"] = resolved_method_params(cfg.method, cfg.set)
    values["data"] = str(Path(cfg.data).absolute())
    return _jsonable(values)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _step_seed(seed: int, step: int, group: int) -> int:
    """The random stream of one augmentation group at one global step (same on any number of ranks)."""
    return (seed * 1_000_003 + step * 4099 + group) % (2**63 - 1)


def prepare(cfg: TrainConfig) -> Run:
    """Validate, set up ranks, scan data, build model, optimizer, loaders; load a checkpoint if RUN has one.

    Bad input raises ValueError (one line) before anything heavy runs.
    """
    from lab.imagenet.augment import SSLAugment
    from lab.imagenet.folder import make_loader, scan
    from lab.imagenet.model import build_model, resolved_method_params
    from lab.imagenet.optim import build_optimizer

    cfg = cfg.resolved()
    recipe = get_recipe(cfg.method)
    params = resolved_method_params(cfg.method, cfg.set)
    rank, local_rank, world = _dist_env()
    device = _resolve_device(cfg.device, local_rank)
    groups = cfg.aug_groups or world
    if cfg.batch_size % world:
        raise ValueError(f"batch_size must be a multiple of the world size {world}, got {cfg.batch_size}")
    if groups % world or (cfg.batch_size // world) % (groups // world):
        raise ValueError(f"aug_groups must be a multiple of the world size {world} dividing batch_size "
                         f"{cfg.batch_size}, got {groups}")
    scan(cfg.data, "train")  # DataError (a ValueError) with one line when missing or empty
    has_val = True
    try:
        scan(cfg.data, "val")
    except ValueError:
        has_val = False
    device = _init_dist(device, world)
    _seed_everything(cfg.seed + rank)
    out = Path(cfg.out)
    start = _load_start(cfg, out, device)

    per_rank = cfg.batch_size // world
    loader = make_loader(cfg.data, "train", size=cfg.load_size, batch_size=per_rank, workers=cfg.workers,
                         shuffle=True, drop_last=True, seed=cfg.seed, rank=rank, world_size=world, cache=cfg.cache)
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
    knn_loaders = None
    if has_val:
        knn_loaders = tuple(make_loader(cfg.data, split, size=cfg.load_size, batch_size=min(256, max(per_rank, 64)),
                                        workers=cfg.workers, shuffle=False, drop_last=False, seed=cfg.seed,
                                        rank=rank, world_size=world, cache=None if split == "val" else cfg.cache)
                            for split in ("train", "val"))

    files = RunFiles(out, rank, cfg.progress)  # the run folder appears once the input checked out
    model = build_model(cfg.method, params, seed=cfg.seed)
    if world > 1:
        from lab.imagenet.dist import sync_batchnorm

        model = sync_batchnorm(model, device)
    model = model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    base_lr = (cfg.lr if cfg.lr is not None else recipe.lr) * cfg.batch_size / 256
    optimizer = build_optimizer(recipe, model.param_groups(base_lr), base_lr, recipe.weight_decay, recipe.momentum)
    scales = [g.get("lr_scale", 1.0) for g in optimizer.param_groups]
    if start.get("model") is not None:
        model.load_state_dict(start.pop("model"))
        optimizer.load_state_dict(start.pop("optimizer"))
    ddp = _LossModule(model)
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(ddp, device_ids=[device.index] if device.type == "cuda" else None)
    augment = SSLAugment(cfg.image_size, min_scale=recipe.min_scale).to(device)
    total = cfg.epochs * steps
    warmup = min(int(round(recipe.warmup_epochs * steps)), max(total - 1, 0))
    return Run(cfg=cfg, recipe=recipe, params=dict(params), device=device, rank=rank, world=world, out=out,
               files=files, loader=loader, knn_loaders=knn_loaders, model=model, ddp=ddp, optimizer=optimizer,
               augment=augment, base_lr=base_lr, group_scales=scales, steps_per_epoch=steps, total_steps=total,
               warmup_steps=warmup, start=start,
               collapse_loss=collapse_value(cfg.method, params, recipe.dim, cfg.batch_size))


def _load_start(cfg: TrainConfig, out: Path, device: torch.device) -> dict:
    """The checkpoint's state, or a fresh start. A checkpoint of another run -> ValueError."""
    path = out / CHECKPOINT
    fresh = {"epoch": 0, "step": 0, "step_in_epoch": 0, "guard": 0, "status": None, "acc": None,
             "epoch_time": 0.0, "rng": None, "model": None, "optimizer": None}
    if not path.exists():
        return fresh
    state = torch.load(path, map_location=device, weights_only=False)
    theirs, ours = state["identity"], _identity(cfg)
    diff = [k for k in IDENTITY_FIELDS if theirs.get(k) != ours.get(k)]
    if diff:
        k = diff[0]
        raise ValueError(f"{out} holds a run with {k}={theirs.get(k)!r}, not {ours.get(k)!r}; "
                         f"use another --out or the same settings to resume")
    return {**fresh, **state}


def _checkpoint(run: Run, epoch: int, step: int, step_in_epoch: int, guard: int, status: str | None,
                recorder: ViewRecorder | None, acc: dict | None, epoch_time: float) -> None:
    """Every rank calls (state is identical); rank 0 writes."""
    if run.rank != 0:
        return
    state = {"version": 1, "identity": _identity(run.cfg), "config": _jsonable(dataclasses.asdict(run.cfg)),
             "epoch": epoch, "step": step, "step_in_epoch": step_in_epoch, "guard": guard, "status": status,
             "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "acc": None if acc is None else {**acc, "views": recorder.state()}, "epoch_time": epoch_time,
             "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                     "cuda": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else None}}
    atomic_write_bytes(run.out / CHECKPOINT, lambda f: torch.save(state, f))


def _write_config(run: Run) -> None:
    if run.rank != 0:
        return
    cfg = run.cfg
    doc = {"config": _jsonable(dataclasses.asdict(cfg)), "method_params": _jsonable(run.params),
           "recipe": _jsonable(run.recipe.as_dict() if hasattr(run.recipe, "as_dict") else run.recipe),
           "world_size": run.world, "device": str(run.device),
           "device_name": torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else "cpu",
           "per_rank_batch": cfg.batch_size // run.world, "aug_groups": cfg.aug_groups or run.world,
           "base_lr": run.base_lr, "lr_scales": run.group_scales, "steps_per_epoch": run.steps_per_epoch,
           "total_steps": run.total_steps, "warmup_steps": run.warmup_steps, "collapse_loss": run.collapse_loss,
           "collapse_loss_note": getattr(type(run.model), "collapse_loss", None),
           "knn_protocol": {"description": KNN_PROTOCOL, "k": cfg.knn_k, "temperature": cfg.knn_temperature,
                            "features": "backbone h", "every_epochs": cfg.knn_every,
                            "enabled": run.knn_loaders is not None},
           "metrics_schema": {"epoch": list(EPOCH_KEYS),
                              "residual_norm": "root mean square ‖z − s‖ over the epoch",
                              "center_norm": "‖mean of L2-normalised projector outputs over the epoch's training "
                                             "views, all ranks‖"},
           "torch": torch.__version__, "amp": cfg.amp and run.device.type == "cuda"}
    text = json.dumps(doc, indent=2) + "\n"
    atomic_write_bytes(run.out / "config.json", lambda f: f.write(text.encode()))


@torch.no_grad()
def _features(run: Run, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features of a whole split, every rank's shard gathered. -> (N, F) float, (N,) int64."""
    from lab.imagenet.augment import eval_transform

    feats, labels = [], []
    for images, y in loader:
        x = eval_transform(images.to(run.device, non_blocking=True), run.cfg.image_size)
        if run.device.type == "cuda" and run.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(run):
            h = run.model.encoder(x[None])[0][0]
        feats.append(F.normalize(h.float(), dim=-1))
        labels.append(y.to(run.device))
    f = torch.cat(feats) if feats else torch.zeros(0, 1, device=run.device)
    y = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64, device=run.device)
    f, y = _gather_rows(f), _gather_rows(y)
    keep = _first_copies(loader, run.world, f.shape[0])
    return (f, y) if keep is None else (f[keep], y[keep])


def _first_copies(loader, world: int, gathered: int) -> torch.Tensor | None:
    """Rows to keep of an unshuffled split gathered over ranks (rank order): the loader pads the order to
    a multiple of the world size by wrapping, as DistributedSampler, so a few images come twice.
    None: keep all (one process, or not the layout `lab.imagenet.folder.epoch_batches` describes)."""
    if world == 1:
        return None
    from lab.imagenet.folder import epoch_batches

    index = np.concatenate([np.concatenate(epoch_batches(loader.n_images, batch_size=loader.batch_size,
                                                         shuffle=False, drop_last=False, seed=0, epoch=0,
                                                         rank=r, world_size=world))
                            for r in range(world)])
    if len(index) != gathered:  # e.g. a batch shortened by corrupt files
        return None
    _, first = np.unique(index, return_index=True)
    return torch.from_numpy(np.sort(first))


def _knn(run: Run) -> float:
    from lab.imagenet.knn import weighted_knn

    was_training = run.model.training
    run.model.eval()
    try:
        train_f, train_y = _features(run, run.knn_loaders[0])
        val_f, val_y = _features(run, run.knn_loaders[1])
    finally:
        run.model.train(was_training)
    n_classes = len(run.loader.classes)
    return float(weighted_knn(train_f, train_y, val_f, val_y, n_classes, k=run.cfg.knn_k,
                              temperature=run.cfg.knn_temperature))


def _autocast(run: Run):
    if run.device.type == "cuda" and run.cfg.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _views(run: Run, images: torch.Tensor, epoch: int, i: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two augmented views of this rank's batch i; each augmentation group draws from its own seeded stream.

    Group q of the global batch is the batch rank q of a G-rank run would load (`_group_positions`),
    so G groups on W ranks (W dividing G) give every image the same views for any W.
    """
    cfg = run.cfg
    x = images.to(run.device, non_blocking=True)
    groups = _group_positions(run, epoch, i, x.shape[0])
    parts1, parts2 = [], []
    for q, pos in groups:
        torch.manual_seed(_step_seed(cfg.seed, step, q))
        v1, v2 = run.augment(x if pos is None else x[pos])
        parts1.append(v1)
        parts2.append(v2)
    v1, v2 = (torch.cat(parts1), torch.cat(parts2)) if len(groups) > 1 else (parts1[0], parts2[0])
    if run.device.type == "cuda" and cfg.channels_last:
        v1, v2 = v1.contiguous(memory_format=torch.channels_last), v2.contiguous(memory_format=torch.channels_last)
    return v1, v2


def _group_positions(run: Run, epoch: int, i: int, n_loaded: int) -> list[tuple[int, torch.Tensor | None]]:
    """[(group id, positions in this rank's batch)] of the augmentation groups this rank holds.

    The loader strides a permutation over ranks and sorts each batch (lab.imagenet.folder.epoch_batches),
    so a G-rank batch is a subset of this rank's batch when W divides G: rank r holds groups r, r + W, ...
    """
    groups = run.cfg.aug_groups or run.world
    if groups == run.world:
        return [(run.rank, None)]
    from lab.imagenet.folder import epoch_batches

    key = (epoch, i)
    if run.group_cache.get("key") != key:
        n, b = run.loader.n_images, run.cfg.batch_size
        kw = dict(shuffle=True, drop_last=True, seed=run.cfg.seed, epoch=epoch)
        if run.group_cache.get("epoch") != epoch:
            run.group_cache.clear()
            run.group_cache["epoch"] = epoch
            run.group_cache["local"] = epoch_batches(n, batch_size=b // run.world, rank=run.rank,
                                                     world_size=run.world, **kw)
            run.group_cache["groups"] = {q: epoch_batches(n, batch_size=b // groups, rank=q, world_size=groups, **kw)
                                         for q in range(run.rank, groups, run.world)}
        local = run.group_cache["local"][i]
        if len(local) != n_loaded:  # a batch shortened by corrupt files: no exact grouping left
            return [(run.rank, None)]
        run.group_cache["key"] = key
        run.group_cache["pos"] = [(q, torch.from_numpy(np.searchsorted(local, g[i])).to(run.device))
                                  for q, g in run.group_cache["groups"].items()]
    return run.group_cache["pos"]


def _set_lr(run: Run, step: int) -> float:
    from lab.imagenet.schedules import warmup_cosine

    from lab.imagenet.optim import set_lr

    lr = warmup_cosine(step, run.total_steps, run.warmup_steps, run.base_lr)
    set_lr(run.optimizer, lr)  # each group keeps its lr_scale (SimSiam's predictor); fixed_lr groups stay
    return lr


class _Stop:
    """SIGTERM / SIGINT: finish the step, checkpoint, exit 0. A second signal acts as usual."""

    def __init__(self):
        self.requested, self.signal_name, self._old = False, None, {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested, self.signal_name = True, signal.Signals(signum).name
        signal.signal(signum, self._old.get(signum, signal.SIG_DFL))

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def agreed(self, run: Run, step: int, force: bool = False) -> bool:
        """Whether every rank stops now; in DDP a collective every DDP_STOP_CHECK_EVERY steps."""
        if run.world == 1:
            return self.requested
        if not force and step % DDP_STOP_CHECK_EVERY:
            return False
        flag = torch.tensor([1.0 if self.requested else 0.0], device=run.device)
        tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
        return bool(flag.item())


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) one run; returns {"status", "epoch", "step", "out", "last"}. Bad input -> ValueError."""
    owned = not tdist.is_initialized()  # under torchrun, whoever starts the process group ends it
    try:
        return _loop(prepare(cfg))
    finally:
        if owned and tdist.is_initialized():
            tdist.destroy_process_group()


def _loop(run: Run) -> dict:
    cfg, files, start = run.cfg, run.files, run.start
    out_summary = {"out": str(run.out), "epoch": start["epoch"], "step": start["step"]}
    if start["status"] in ("finished", "collapsed"):
        files.log(f"run already {start['status']} at epoch {start['epoch']}; nothing to do")
        last = [r for r in read_metrics(run.out / "metrics.jsonl") if r.get("kind") == "epoch"]
        return {**out_summary, "status": start["status"], "last": last[-1] if last else None}
    if run.rank == 0:
        dropped = trim_metrics(run.out / "metrics.jsonl", start["epoch"], start["step"])
    else:
        dropped = 0
    _write_config(run)
    if start["step"]:
        files.log(f"resuming {cfg.method} from epoch {start['epoch']} step {start['step']} "
                  f"(step {start['step_in_epoch']} of epoch {start['epoch'] + 1}); {dropped} metric lines "
                  f"past the checkpoint dropped")
        rng = start.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"].cpu())
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])
    else:
        files.log(f"training {cfg.method} on {cfg.data}: {cfg.epochs} epochs x {run.steps_per_epoch} steps, "
                  f"global batch {cfg.batch_size} on {run.world} x {run.device}, image {cfg.image_size} px, "
                  f"base lr {run.base_lr:g}")
    recorder = ViewRecorder(run.model.encoder, run.device)
    run.ddp.train()
    step, guard, status, last = start["step"], start["guard"], "finished", None
    with _Stop() as stop:
        for epoch in range(start["epoch"], cfg.epochs):
            skip = start["step_in_epoch"] if epoch == start["epoch"] else 0
            acc = start["acc"] if skip and start["acc"] is not None else None
            result = _epoch(run, epoch, step, skip, acc, recorder, stop, start["epoch_time"] if skip else 0.0)
            step = result["step"]
            if result["stopped"]:
                _checkpoint(run, epoch, step, result["step_in_epoch"], guard, None, recorder, result["acc"],
                            result["elapsed"])
                files.end_bar()
                files.log(f"{stop.signal_name or 'signal'}: stopped after step {step} (epoch {epoch + 1}, step "
                          f"{result['step_in_epoch']}/{run.steps_per_epoch}); checkpoint written, the same "
                          f"command resumes")
                files.metric({"kind": "end", "status": "stopped", "epoch": epoch, "step": step})
                return {**out_summary, "status": "stopped", "epoch": epoch, "step": step, "last": last}
            row = result["row"]
            if cfg.collapse_threshold is not None and row["center_norm"] > cfg.collapse_threshold:
                guard += 1
            else:
                guard = 0
            collapsed = cfg.collapse_threshold is not None and guard >= cfg.collapse_patience
            row["collapsed"] = collapsed
            last = row
            files.end_bar()
            files.metric(row)
            files.log(_epoch_line(row, cfg.epochs))
            done = epoch + 1 == cfg.epochs
            state = "collapsed" if collapsed else ("finished" if done else None)
            _checkpoint(run, epoch + 1, step, 0, guard, state, recorder, None, 0.0)
            if result.get("stop_after") and not done and not collapsed:
                files.log(f"{stop.signal_name or 'signal'}: stopped at the end of epoch {epoch + 1}; checkpoint "
                          f"written, the same command resumes")
                files.metric({"kind": "end", "status": "stopped", "epoch": epoch + 1, "step": step})
                return {**out_summary, "status": "stopped", "epoch": epoch + 1, "step": step, "last": last}
            if collapsed:
                status = "collapsed"
                files.log(f"collapse guard: center_norm {row['center_norm']:.4f} > {cfg.collapse_threshold} for "
                          f"{guard} epoch(s); stopping as collapsed")
                break
    epoch_done = last["epoch"] if last else start["epoch"]
    files.metric({"kind": "end", "status": status, "epoch": epoch_done, "step": step})
    files.log(f"{status}: epoch {epoch_done}, step {step}")
    return {**out_summary, "status": status, "epoch": epoch_done, "step": step, "last": last}


def _epoch_line(row: dict, epochs: int) -> str:
    knn = f" knn {row['knn_acc']:.4f}" if row.get("knn_acc") is not None else ""
    return (f"epoch {row['epoch']}/{epochs} loss {row['loss']:.4f} center {row['center_norm']:.4f} "
            f"z_std {row['z_std']:.4f} (healthy {row['z_std_healthy']:.4f}){knn} lr {row['lr']:.4g} "
            f"{row['images_per_s']:,.0f} img/s {row['epoch_seconds']:.1f} s"
            + (" COLLAPSED" if row["collapsed"] else ""))


def _epoch(run: Run, epoch: int, step: int, skip: int, acc: dict | None, recorder: ViewRecorder, stop: _Stop,
           elapsed: float) -> dict:
    """One epoch from step `skip` on (a mid-epoch resume). -> {"step", "stopped", "row" | "acc", ...}."""
    cfg, files = run.cfg, run.files
    run.loader.set_epoch(epoch)
    recorder.reset()
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    if acc is not None and run.rank == 0:  # the checkpoint holds all ranks' partial sums, on rank 0
        recorder.load(acc["views"])
        loss_sum += float(acc["loss_sum"])
    n_steps, lr = run.steps_per_epoch, acc["lr"] if acc else 0.0
    began, images = time.perf_counter(), 0
    i = skip
    shown_loss = None
    batches = _epoch_batches(run.loader, skip)
    for i in range(skip, n_steps):
        images_u8, _ = next(batches)
        lr = _set_lr(run, step)
        v1, v2 = _views(run, images_u8, epoch, i, step)
        recorder.active = True
        recorder.new_step()
        with _autocast(run):
            loss = run.ddp(v1[None], v2[None])
        recorder.active = False
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        step += 1
        run.model.after_step(step / run.total_steps)
        loss_sum += loss.detach().double()
        images += images_u8.shape[0] * run.world
        if step % cfg.log_every_steps == 0:
            shown_loss = float(_all_sum(loss.detach().double().clone()) / run.world)
            files.metric({"kind": "step", "epoch": epoch + 1, "step": step, "loss": shown_loss,
                          "batch_center_norm": recorder.batch_center_norm(), "lr": lr})
        rate = images / max(time.perf_counter() - began, 1e-9)
        files.progress(epoch + 1, cfg.epochs, i + 1, n_steps, rate, shown_loss)
        if stop.agreed(run, step, force=i + 1 == n_steps):
            if i + 1 < n_steps:
                recorder.gather_to_rank0()
                acc = {"loss_sum": float(_all_sum(loss_sum.clone())), "lr": lr}
                return {"step": step, "stopped": True, "step_in_epoch": i + 1, "acc": acc,
                        "elapsed": elapsed + time.perf_counter() - began}
            stopping = True
            break
    else:
        stopping = False
    del batches
    train_seconds = elapsed + time.perf_counter() - began
    row = _epoch_row(run, epoch, step, loss_sum, recorder, lr, train_seconds, images)
    if stopping:  # the signal came on the epoch's last step: the epoch is complete, record it, then stop
        return {"step": step, "stopped": False, "row": row, "stop_after": True}
    return {"step": step, "stopped": False, "row": row}


def _epoch_batches(loader, skip: int):
    """An iterator over this epoch's batches from batch `skip` on (a mid-epoch resume; the order is
    fixed by seed and epoch).

    lab.imagenet.folder.ImageLoader has no public start offset: the first index batches are dropped from
    its epoch plan so they are not decoded; any other loader has its first batches read and thrown away.
    """
    plan = getattr(loader, "_batches", None)
    if skip and isinstance(plan, list) and len(plan) >= skip:
        loader._batches = plan[skip:]
        return iter(loader)
    it = iter(loader)
    for _ in range(skip):
        next(it)
    return it


def _epoch_row(run: Run, epoch: int, step: int, loss_sum: torch.Tensor, recorder: ViewRecorder, lr: float,
               seconds: float, images: int) -> dict:
    cfg = run.cfg
    views = recorder.epoch_values()
    loss = float(_all_sum(loss_sum.clone()) / (run.world * run.steps_per_epoch))
    extra = _extra_metrics(run)
    n_corrupt = int(_all_sum(torch.tensor([float(getattr(run.loader, "n_corrupt", 0))], device=run.device)))
    knn_due = run.knn_loaders is not None and (epoch + 1 == cfg.epochs or
                                               (cfg.knn_every and (epoch + 1) % cfg.knn_every == 0))
    knn_start = time.perf_counter()
    knn = _knn(run) if knn_due else None
    row = {"kind": "epoch", "epoch": epoch + 1, "step": step, "loss": loss, "collapse_loss": run.collapse_loss,
           **{k: views[k] for k in ("center_norm", "residual_norm", "z_std", "z_std_healthy")},
           **extra, "knn_acc": knn, "lr": lr,
           "images_per_s": run.steps_per_epoch * cfg.batch_size / max(seconds, 1e-9), "epoch_seconds": seconds,
           "knn_seconds": time.perf_counter() - knn_start if knn_due else 0.0, "n_corrupt": n_corrupt,
           "collapsed": False}
    if not math.isfinite(loss):
        run.files.log(f"warning: loss is {loss} in epoch {epoch + 1}")
    return row


def _extra_metrics(run: Run) -> dict:
    """The method's own metrics (Barlow's center before/after BN, DINO's teacher entropy) on a fixed probe
    batch (the first val batch, else the first train batch; no augmentation), averaged over ranks.

    Train mode like the loss sees it; BatchNorm running statistics are put back afterwards.
    """
    probe = _probe_batch(run)
    saved = {k: v.clone() for k, v in run.model.state_dict().items() if "running_" in k or "num_batches" in k}
    with torch.no_grad(), _autocast(run):
        values = run.model.extra_metrics(probe[None])
    run.model.load_state_dict(saved, strict=False)
    return {name: float(_all_sum(value.detach().float().reshape(-1)[:1].clone()) / run.world)
            for name, value in values.items()}


def _probe_batch(run: Run) -> torch.Tensor:
    from lab.imagenet.augment import eval_transform

    if run.probe is None:
        loader = run.knn_loaders[1] if run.knn_loaders is not None else run.loader
        if loader is run.loader:
            loader.set_epoch(0)
        images = next(iter(loader))[0]
        run.probe = images[: max(2, run.cfg.batch_size // run.world)]
    x = eval_transform(run.probe.to(run.device), run.cfg.image_size)
    if run.device.type == "cuda" and run.cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


# ----------------------------------------------------------------------------------------- command line

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise ValueError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m lab.imagenet.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", help="ImageFolder root with train/<class>/*.jpg (and val/ for kNN)")
    p.add_argument("--method", help="one of: " + ", ".join(METHOD_NAMES))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a method knob (e.g. predictor=false, lam=0, momentum=0.9); repeatable")
    p.add_argument("--epochs", type=int, help="default: the method's recipe")
    p.add_argument("--batch-size", type=int, help="global batch over all ranks; default: the recipe's")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--load-size", type=int, help="decoded size before cropping; default image-size·256/224")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")
    p.add_argument("--out", help="run folder (checkpoint, metrics.jsonl, config.json, train.log); "
                                 "the same --out resumes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=4, help="data-loading processes per rank")
    p.add_argument("--cache", help="pre-decoded cache folder (python -m lab.imagenet.cache)")
    p.add_argument("--lr", type=float, help="base lr for batch 256 (scaled by batch/256); default: the recipe's")
    p.add_argument("--collapse-guard", type=float, metavar="T",
                   help="stop when center_norm > T for --collapse-patience epochs (off by default)")
    p.add_argument("--collapse-patience", type=int, default=3, metavar="N")
    p.add_argument("--knn-every", type=int, default=10, metavar="E", help="kNN every E epochs and at the end")
    p.add_argument("--knn-k", type=int, default=20)
    p.add_argument("--knn-temperature", type=float, default=0.07)
    p.add_argument("--log-every", type=int, default=50, metavar="STEPS", help="a step line every STEPS steps")
    p.add_argument("--max-steps-per-epoch", type=int, metavar="S", help="cut epochs short (tests, demos)")
    p.add_argument("--aug-groups", type=int, help="augmentation groups of the global batch (default: world size)")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--preset", metavar="NAME", help="print a paper preset's runs as commands (--run: run them)")
    p.add_argument("--run", action="store_true", help="with --preset: run them one after another into --out/<name>")
    return p


def config_from_args(args: argparse.Namespace, **over) -> TrainConfig:
    values = dict(data=args.data, method=args.method, set=parse_sets(args.set), epochs=args.epochs,
                  batch_size=args.batch_size, image_size=args.image_size, load_size=args.load_size,
                  device=args.device, out=args.out, seed=args.seed, workers=args.workers, cache=args.cache,
                  knn_every=args.knn_every, knn_k=args.knn_k, knn_temperature=args.knn_temperature,
                  log_every_steps=args.log_every, collapse_threshold=args.collapse_guard,
                  collapse_patience=args.collapse_patience, lr=args.lr, max_steps_per_epoch=args.max_steps_per_epoch,
                  amp=not args.no_amp, channels_last=not args.no_channels_last, aug_groups=args.aug_groups,
                  progress=not args.no_progress)
    values.update(over)
    return TrainConfig(**values)


_PASSTHROUGH = (("batch_size", "--batch-size"), ("image_size", "--image-size"), ("load_size", "--load-size"),
                ("device", "--device"), ("seed", "--seed"), ("workers", "--workers"), ("cache", "--cache"),
                ("lr", "--lr"), ("max_steps_per_epoch", "--max-steps-per-epoch"), ("knn_every", "--knn-every"),
                ("knn_k", "--knn-k"), ("knn_temperature", "--knn-temperature"), ("log_every", "--log-every"),
                ("collapse_guard", "--collapse-guard"), ("collapse_patience", "--collapse-patience"),
                ("aug_groups", "--aug-groups"), ("no_amp", "--no-amp"), ("no_channels_last", "--no-channels-last"),
                ("no_progress", "--no-progress"))


def preset_commands(name: str, args: argparse.Namespace) -> list[tuple[dict, list[str]]]:
    """(run, argv) for each run of a preset; the user's other flags are passed on."""
    from lab.imagenet.presets import preset_runs

    runs = preset_runs(name)
    out = Path(args.out or f"runs/{name}")
    result = []
    for r in runs:
        argv = ["--data", args.data or "DATA", "--method", r["method"]]
        for k, v in r.get("set", {}).items():
            argv += ["--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
        epochs = args.epochs or r.get("epochs")
        if epochs:
            argv += ["--epochs", str(epochs)]
        for attr, flag in _PASSTHROUGH:
            value = getattr(args, attr)
            default = build_parser().get_default(attr)
            if value is True:
                argv.append(flag)
            elif value is not None and value is not False and value != default:
                argv += [flag, str(value)]
        argv += ["--out", str(out / r["name"])]
        result.append((r, argv))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    # torch warns when --workers exceeds its core-count guess; the user asked for that number.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    try:
        args = build_parser().parse_args(argv)
        if args.preset:
            commands = preset_commands(args.preset, args)
            if not args.run:
                for _, cmd in commands:
                    print("python -m lab.imagenet.train " + " ".join(shlex.quote(a) for a in cmd))
                return 0
            if not args.data:
                raise ValueError("--preset NAME --run needs --data")
            configs = [prepare_check(config_from_args(build_parser().parse_args(cmd))) for _, cmd in commands]
        else:
            missing = [f for f in ("data", "method", "out") if getattr(args, f) is None]
            if missing:
                raise ValueError(f"missing --{missing[0]} (needed: --data, --method, --out)")
            configs = [config_from_args(args)]
        run = prepare(configs[0])
    except ValueError as e:
        print(f"error: {e}".splitlines()[0], file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        _loop(run)
        for cfg in configs[1:]:
            try:
                nxt = prepare(cfg)
            except ValueError as e:
                print(f"error: {e}".splitlines()[0], file=sys.stderr)
                return EXIT_BAD_INPUT
            _loop(nxt)
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
    return 0


def prepare_check(cfg: TrainConfig) -> TrainConfig:
    """The cheap checks of a preset's runs before the first one starts (method knobs, recipe)."""
    from lab.imagenet.model import resolved_method_params

    resolved_method_params(cfg.method, cfg.set)
    get_recipe(cfg.method)
    return cfg


if __name__ == "__main__":
    sys.exit(main())
