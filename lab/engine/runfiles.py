"""The run folder RUN/ on disk: metrics.jsonl, train.log, and reading checkpoint.pt back (formats: the
`lab.engine.train` docstring; `lab.engine.save` writes checkpoint.pt and config.json).

Rank 0 writes. config.json and checkpoint.pt are replaced atomically (`atomic_write_bytes`), so a kill -9
leaves the old or the new file; a resume reads the checkpoint back (`load_start`) and first trims
metrics.jsonl to what it covers (`trim_metrics`). metrics.jsonl is read by `lab.core.runlog.read_jsonl`, the
reader the launcher uses too.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from lab.engine.config import TrainConfig, jsonable
from lab.engine.model import method_params
from lab.core.runlog import read_jsonl as read_metrics

CHECKPOINT = "checkpoint.pt"
# Config fields that define the run: resuming with another value is an error, not a silent new run.
# "set" compares as the resolved method knobs (so --set predictor=false and {"predictor": False} agree),
# "data" as an absolute path.
IDENTITY_FIELDS = ("data", "method", "set", "epochs", "batch_size", "image_size", "load_size", "seed", "lr",
                   "max_steps_per_epoch", "aug_groups")


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
            # Step lines are many and a lost one costs nothing; epoch and end lines are what a resume trusts.
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


# ----------------------------------------------------------------------------------------- resume

def identity(cfg: TrainConfig) -> dict:
    """The IDENTITY_FIELDS of cfg as the checkpoint stores and compares them."""
    values = {k: getattr(cfg, k) for k in IDENTITY_FIELDS}
    values["set"] = method_params(cfg.method, cfg.set, cfg.scale)
    values["data"] = str(Path(cfg.data).absolute())
    return jsonable(values)


def load_start(cfg: TrainConfig, out: Path, device: torch.device) -> dict:
    """The checkpoint's state, or a fresh start. A checkpoint of another run -> ValueError."""
    path = out / CHECKPOINT
    fresh = {"epoch": 0, "step": 0, "step_in_epoch": 0, "guard": 0, "status": None, "acc": None,
             "epoch_time": 0.0, "rng": None, "model": None, "optimizer": None}
    if not path.exists():
        return fresh
    state = torch.load(path, map_location=device, weights_only=False)
    theirs, ours = state["identity"], identity(cfg)
    diff = [k for k in IDENTITY_FIELDS if theirs.get(k) != ours.get(k)]
    if diff:
        k = diff[0]
        raise ValueError(f"{out} holds a run with {k}={theirs.get(k)!r}, not {ours.get(k)!r}; "
                         f"use another --out or the same settings to resume")
    return {**fresh, **state}


def restore_rng(rng: dict | None) -> None:
    """Put back the CPU random states a checkpoint saved (None: a checkpoint without them)."""
    if rng:
        torch.set_rng_state(rng["torch"].cpu())
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
