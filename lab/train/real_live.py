"""Real images, live: one SSL method trained on Fashion-MNIST step by step while a page watches its held-out
features move on the sphere, and a knob turned mid-run acts from the next step (`lab.train.live`).

The model is the engine's Fashion-MNIST model as the shipped claims train it (`lab.engine.model.build_model` at
scale "fmnist": ResNet-18 in its small-image form, width 16, the method's recipe carried over by the stated rule),
so a live run and a shipped verdict are the same network. What differs, and why:
- batch 128, not 256: a step takes ~0.22 s on one core of a 2-core CPU (the other serves the page), and with the
  held-out reading (~0.11 s for 300 images) the page gets 2-3 new frames a second;
- a constant learning rate after a WARMUP_STEPS warmup, not a cosine over the run: a knob turned late acts at
  the same lr as one turned early, and a run has no fixed end to decay towards.

After every step the held-out images (a fixed, class-balanced sample of the test split) are read in train mode,
as the loss sees a batch, with the model's BatchNorm statistics put back afterwards (training goes on exactly as
without the reading), at the projector's output BEFORE its output BatchNorm (SimSiam's recipe family: that
BatchNorm gives every dimension zero mean, so after it ‖s‖ stays near 0 even at complete collapse). From them:
‖s‖, the effective rank of the rows on the sphere, kNN accuracy (the lab's one protocol, 5-fold within the
held-out sample) and the 3-D picture (`lab.core.geometry.sphere_basis`, as "Check a model" draws an embedding).
Only the 3-D points are kept per step, so memory grows by ~4 kB a step (N = 300), bounded by `steps`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch

from lab.core import geometry as geo
from lab.core import metrics as M
from lab.core.checks import check_range
from lab.core.seeds import generator
from lab.data import fmnist
from lab.data.augment import SSLAugment, eval_transform
from lab.engine.model import build_model, method_params
from lab.engine.optim import build_optimizer, set_lr, split_groups
from lab.engine.recipes import SCALES, recipe
from lab.methods import METHOD_NAMES, method_class, method_config
from lab.train.changes import Change, change_check, parse_changes
from lab.train.live import LiveControl, LiveTraining

WARMUP_STEPS = 10
# Torch threads of a live run. One: on a 2-core machine two threads trained 3.3 steps/s alone but 1.2 in the
# browser (their spin-waits and the server's reruns fight over the cores), one thread 2.4 alone and 1.8 in the
# browser (`python -m lab.bench real`). LAB_LIVE_THREADS sets another number for a bigger server.
LIVE_THREADS = int(os.environ.get("LAB_LIVE_THREADS", 0)) or 1
KNN_FOLDS = 5
SCALE = "fmnist"


def _field(default: Any, label: str, help: str, range: tuple | None = None) -> Any:
    meta = {"label": label, "help": help} | ({"range": range} if range else {})
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RealLiveConfig:
    """One live Fashion-MNIST run. Each field's label, help and range are in its metadata (widgets, link)."""

    method: str = _field("simsiam", "Method", "The SSL method, with its ImageNet recipe carried to Fashion-MNIST.")
    params: tuple = ()  # the method's knobs that differ from its recipe, ((knob, value), ...)
    seed: int = _field(0, "Seed", "Initial weights, batch order and augmentations.", (0, 10**6))
    # At most 2,000 steps (~13 minutes here): each rerun of a page re-reads every step's readings (9 ms at 1,000
    # steps, 45 ms at 5,000), several times a second.
    steps: int = _field(300, "Steps", "The run's budget in optimizer steps (batch 128: 469 steps are one pass "
                                      "over the 60,000 training images).", (10, 2000))
    batch_size: int = _field(128, "Batch size", "Images per step, two views each.", (16, 512))
    lr: float | None = _field(None, "Learning rate", "Base lr for a batch of 256 (scaled by batch/256); "
                                                     "empty: the method's recipe.", (0.0, 10.0))
    sgd_momentum: float | None = _field(None, "Optimizer momentum", "Empty: the recipe's (0.9).", (0.0, 0.999))
    weight_decay: float | None = _field(None, "Weight decay", "Empty: the recipe's.", (0.0, 0.1))
    held_out: int = _field(300, "Held-out images", "Test images read and drawn after every step, the same "
                                                   "number of each class.", (50, 2000))
    changes: tuple = ()  # Change(step, knob, value): after `step` steps the knob takes value
    data: str = str(fmnist.DEBIAN_DIR)

    def __post_init__(self):
        if self.method not in METHOD_NAMES:
            raise ValueError(f"method must be one of {', '.join(METHOD_NAMES)}, got {self.method!r}")
        params = tuple(sorted(dict(self.params).items()))
        object.__setattr__(self, "params", params)
        method_config(self.method, dict(params))  # one-line ValueError naming a bad knob
        for f in dataclasses.fields(self):
            bounds, value = f.metadata.get("range"), getattr(self, f.name)
            if bounds is None or value is None:
                continue
            if f.type in ("int", int) and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{f.name} must be a whole number in [{bounds[0]}, {bounds[1]}], got {value!r}")
            check_range(f.name, value, bounds[0], bounds[1], low_open=f.name == "lr")
        items = self.changes if isinstance(self.changes, str) else [
            Change(*c) if isinstance(c, (tuple, list)) and not isinstance(c, Change) else c for c in self.changes]
        object.__setattr__(self, "changes", parse_changes(items, self.method, dict(params), self.steps,
                                                          RealLiveConfig.__dataclass_fields__))


@dataclass
class RealRun:
    """A finished (or stopped) live run. steps: (T,) the steps read (0 = untrained); points: (T, N, 3) the
    held-out rows in the 3 shown directions, put on the sphere; centers: (T, 3) s seen in them; metrics:
    name -> (T,) floats; labels: (N,) classes; images: (N, 28, 28) uint8; config holds every change made."""

    config: RealLiveConfig
    steps: list[int]
    points: np.ndarray
    centers: np.ndarray
    metrics: dict[str, np.ndarray]
    labels: np.ndarray
    images: np.ndarray
    dim: int
    seconds: float
    diverged: str | None = None


def knob_defaults(method: str) -> dict[str, Any]:
    """The method's knobs a live run can turn (those that do not shape its layers), at their values in the
    Fashion-MNIST recipe: what the page's widgets start from. The others stay as the recipe has them."""
    values = method_params(method, scale=SCALE)
    return {f.name: values[f.name] for f in method_class(method).movable_knobs() if f.name in values}


def held_out_sample(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of n // 10 test images of each class (seeded), class by class: the rows the page draws."""
    g = generator(seed)
    per_class = max(1, n // len(fmnist.CLASSES))
    picks = []
    for c in range(len(fmnist.CLASSES)):
        idx = (labels == c).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]].sort().values)
    return torch.cat(picks)


def load_data(config: RealLiveConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training images (60000, 1, 28, 28) uint8, held-out images (N, 1, 28, 28) uint8, their labels (N,)).
    A missing data set -> FashionMNISTError (one line naming the Debian package to install)."""
    if not fmnist.is_fashion_mnist(config.data):
        raise fmnist.FashionMNISTError(f"no Fashion-MNIST at {config.data}; {fmnist.INSTALL_HINT}")
    (train_x, _), (test_x, test_y) = _split(config.data, "train"), _split(config.data, "val")
    pick = held_out_sample(test_y, config.held_out, config.seed)
    return train_x, test_x[pick].contiguous(), test_y[pick].contiguous()


@functools.lru_cache(maxsize=2)
def _split(data: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A split read once per process (a second of gunzip): every live run of the server shares it, read-only."""
    return fmnist.load_split(data, split)


def held_out(config: RealLiveConfig) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,)) of the held-out rows a run of `config` reads, in its order
    (read-only: shared by every page that shows the run)."""
    return _held_out(config.data, config.held_out, config.seed)


@functools.lru_cache(maxsize=16)
def _held_out(data: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    test_x, test_y = _split(data, "val")
    pick = held_out_sample(test_y, n, seed)
    images, labels = test_x[pick, 0].numpy(), test_y[pick].numpy()
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _build(config: RealLiveConfig):
    """The engine's model of this setting. A module that can be switched (SimSiam's or BYOL's predictor) is
    built even when it starts off, then switched off, so that it can be turned on mid-run; built last from its
    own generators and unused while off, it leaves the run as one built without it."""
    params = dict(config.params)
    knobs = method_config(config.method, params)
    off = {k: False for k in method_class(config.method).toggled_modules if getattr(knobs, k) is False}
    model = build_model(config.method, params | {k: True for k in off}, seed=config.seed, scale=SCALE)
    if off:
        model.change_knobs(off)
    return model


class _PreBN:
    """The projector's output before its output BatchNorm (or its output where it has none), of the last
    forward pass while `active`: where the loss acts and ‖s‖ can show a collapse."""

    def __init__(self, model):
        projector = model.encoder.projector
        self.bn = isinstance(projector[-1], torch.nn.BatchNorm1d) and not projector[-1].affine
        self.active, self.value = False, None
        target = projector[-1] if self.bn else projector
        target.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if self.active:
            self.value = (inputs[0] if self.bn else output).detach().float()


def readings(z: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """z: (N, D) pre-BN features of the held-out rows -> ‖s‖, the share of rows within the collapse angle of s,
    the effective rank of the rows on the sphere (of D) and kNN accuracy (`KNN_FOLDS`-fold within the rows)."""
    u = geo.normalize(z.double())
    out = {"center_norm": float(geo.center_norm(u)),
           "effective_rank": float(M.effective_rank(u[None])[0])}
    folds = torch.arange(len(u)) % KNN_FOLDS
    hits = 0.0
    for k in range(KNN_FOLDS):
        bank, query = folds != k, folds == k
        acc = M.knn_accuracy(u[bank][None].float(), labels[bank], u[query][None].float(), labels[query],
                             n_classes=len(fmnist.CLASSES))
        hits += float(acc[0]) * int(query.sum())
    out["knn_acc"] = hits / len(u)
    return out


class _Trainer:
    """One live run's state and its steps; `run()` trains to the end (or until the page stops it)."""

    def __init__(self, config: RealLiveConfig, control: LiveControl | None):
        self.c, self.live = config, control
        self.began = time.perf_counter()
        self.train_x, held_x, self.labels = load_data(config)
        self.rec = recipe(config.method, SCALE, dict(config.params))
        scale = SCALES[SCALE]
        self.held = eval_transform(held_x, scale.image_size, scale.mean, scale.std)
        self.held_images = held_x[:, 0].numpy()
        self.model = _build(config)
        self.pre = _PreBN(self.model)
        self.base_lr = (config.lr if config.lr is not None else self.rec.lr) * config.batch_size / 256
        self.hyper = {"lr": config.lr, "sgd_momentum": config.sgd_momentum, "weight_decay": config.weight_decay}
        self.opt = build_optimizer(self.rec, self.model.param_groups(self.base_lr), self.base_lr,
                                   _or(config.weight_decay, self.rec.weight_decay),
                                   _or(config.sgd_momentum, self.rec.momentum))
        self.augment = SSLAugment(scale.image_size, min_scale=self.rec.min_scale, mean=scale.mean, std=scale.std)
        self.order = generator(config.seed)
        self.batches: list[torch.Tensor] = []
        self.basis: np.ndarray | None = None
        self.steps_seen: list[int] = []
        self.points: list[torch.Tensor] = []  # (1, N, 3) per reading: what `LiveControl` hands the page
        self.logs: list[dict[str, torch.Tensor]] = []
        self.applied: list[Change] = []
        self.diverged: str | None = None

    # -- reading
    @torch.no_grad()
    def read(self, step: int, loss: float | None, batch_center: float | None) -> None:
        """The held-out rows after `step` steps: readings, the 3-D picture, published to the page."""
        saved = {k: v.clone() for k, v in self.model.named_buffers()}
        self.pre.active = True
        self.model.encoder(self.held[None])
        self.pre.active = False
        for k, v in self.model.named_buffers():
            v.copy_(saved[k])
        z = self.pre.value.reshape(len(self.held), -1)
        values = readings(z, self.labels)
        u = geo.normalize(z.double()).numpy()
        s = u.mean(0)
        basis, share = geo.sphere_basis(u, s)
        self.basis = basis = geo.aligned_basis(basis, self.basis)
        shown = u @ basis
        points = shown / np.maximum(np.linalg.norm(shown, axis=1, keepdims=True), 1e-12)
        values |= {"share": share, "loss": math.nan if loss is None else loss,
                   "batch_center_norm": math.nan if batch_center is None else batch_center}
        log = {k: torch.tensor([v], dtype=torch.float64) for k, v in values.items()}
        log["s3"] = torch.from_numpy(s @ basis)[None]
        # The step last: a reader takes as many entries as there are steps (`LiveControl.latest`).
        self.points.append(torch.from_numpy(points.astype(np.float32))[None])
        self.logs.append(log)
        self.steps_seen.append(step)
        if self.live is not None:
            self.live.publish(self.steps_seen, self.points, self.logs)

    # -- training
    def batch(self, step: int) -> torch.Tensor:
        """The images of `step`: one seeded permutation of the training set per pass."""
        per_pass = len(self.train_x) // self.c.batch_size
        if step % per_pass == 0:
            perm = torch.randperm(len(self.train_x), generator=self.order)
            self.batches = list(perm[: per_pass * self.c.batch_size].view(per_pass, -1))
        return self.train_x[self.batches[step % per_pass]]

    def step(self, step: int) -> tuple[float, float]:
        """Optimizer step `step` (0-based) -> (loss, ‖s‖ of the step's training views before the output BN)."""
        lr = self.base_lr * min(1.0, (step + 1) / WARMUP_STEPS)
        set_lr(self.opt, lr)
        torch.manual_seed(self.c.seed * 1_000_003 + step)  # the augmentations' draws
        v1, v2 = self.augment(self.batch(step))
        self.pre.active = True
        loss, _ = self.model.loss(v1[None], v2[None])
        self.pre.active = False
        batch_center = float(geo.center_norm(geo.normalize(self.pre.value.reshape(-1, self.pre.value.shape[-1]))))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.model.after_step((step + 1) / self.c.steps)
        value = float(loss.detach())
        if not math.isfinite(value):
            self.diverged = (f"training diverged at step {step + 1}: the loss became {value} "
                             f"(try a smaller learning rate)")
        return value, batch_center

    def apply(self, changes: Sequence[Change]) -> None:
        """Knob changes from the next step: method knobs to the model, lr / momentum / weight decay to the
        optimizer (momentum buffers kept), and each group's lr scale again (SimSiam's predictor lr)."""
        if not changes:
            return
        knobs = {ch.knob: ch.value for ch in changes if ch.knob not in self.hyper}
        self.hyper.update({ch.knob: ch.value for ch in changes if ch.knob in self.hyper})
        if knobs:
            self.model.change_knobs(knobs)
        if self.hyper["lr"] is not None:
            self.base_lr = self.hyper["lr"] * self.c.batch_size / 256
        decay = _or(self.hyper["weight_decay"], self.rec.weight_decay)
        fresh = split_groups(self.model.param_groups(self.base_lr), self.base_lr, decay)
        for group, new in zip(self.opt.param_groups, fresh):  # the same groups in the same order
            group["lr_scale"], group["weight_decay"] = new["lr_scale"], new["weight_decay"]
            group["momentum"] = _or(self.hyper["sgd_momentum"], self.rec.momentum)
            if group.get("fixed_lr"):
                group["lr"] = new["lr"]
        self.applied.extend(changes)

    def run(self) -> RealRun:
        c = self.c
        self.apply([ch for ch in c.changes if ch.epoch == 0])
        self.read(0, None, None)
        for step in range(c.steps):
            if self.live is not None:
                asked = self.live.wait_turn(step)
                if asked is None:
                    break
                self.apply(asked)
            loss, batch_center = self.step(step)
            if self.diverged:
                break
            self.apply([ch for ch in c.changes if ch.epoch == step + 1])
            self.read(step + 1, loss, batch_center)
        if self.live is not None:
            self.live.end_work_turn()
        return self.result()

    def result(self) -> RealRun:
        n = len(self.steps_seen)
        applied = [ch for ch in self.applied if ch not in self.c.changes]
        config = replace(self.c, changes=tuple(self.c.changes) + tuple(applied)) if applied else self.c
        metrics = {k: torch.cat([m[k] for m in self.logs[:n]]).numpy() for k in self.logs[0] if k != "s3"}
        return RealRun(config, list(self.steps_seen), torch.cat(self.points[:n]).numpy(),
                       torch.cat([m["s3"] for m in self.logs[:n]]).numpy(), metrics, self.labels.numpy(),
                       self.held_images, int(self.pre.value.shape[-1]), time.perf_counter() - self.began,
                       self.diverged)


def _or(value, default):
    return default if value is None else value


def train_real(config: RealLiveConfig, control: LiveControl | None = None) -> RealRun:
    """Train `config` to its end (a notebook, a test, the survey) or under a live page's `control`."""
    return _Trainer(config, control).run()


def live_real(config: RealLiveConfig, playing: bool = True, steps_per_second: float | None = None,
              idle_hold_s: float | None = None, threads: int = LIVE_THREADS) -> LiveTraining:
    """`config` trained live in a background thread (`lab.train.live`): every step read and published, knobs
    changeable from the next step; held while nobody has read it for idle_hold_s."""
    return LiveTraining(config, train_real, playing, steps_per_second, check=change_check(config.method, config.params, config.steps,
                                     RealLiveConfig.__dataclass_fields__),
                        idle_hold_s=idle_hold_s, threads=threads)


_WARM = threading.Lock()
_warmed: set[str] = set()


def warm_up(data: str = str(fmnist.DEBIAN_DIR)) -> None:
    """Read the data set and build a model once, in a background thread (a page calls it when it shows the live
    controls): the first run of a fresh server then starts in milliseconds, not the ~1.5 s of gunzip, imports
    and torch's first calls."""
    with _WARM:
        if data in _warmed:
            return
        _warmed.add(data)

    def work() -> None:
        try:  # a step and a reading of a small run: torch's first convolutions and kornia's first crops
            trainer = _Trainer(RealLiveConfig(data=data, held_out=50, batch_size=16, steps=10), None)
            trainer.read(0, None, None)
            trainer.step(0)
            _held_out(data, RealLiveConfig.held_out, 0)
        except (OSError, ValueError):  # a missing data set: the page says so when a run starts
            pass

    threading.Thread(target=work, name="lab-real-warm", daemon=True).start()
