"""ImageNet-100 training: `python -m lab.engine.train --data DIR --method simsiam --out RUN ...`; the same
engine on Fashion-MNIST when DIR holds its four idx files (`lab.engine.recipes.SCALES`: a small-image
ResNet-18 at width 16 and the recipes' heads scaled with it).

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
  --log-every-steps steps; one "epoch" line per epoch with `EPOCH_KEYS` (plus the method's extra metrics:
  teacher_entropy / teacher_entropy_max for dino, and knn_seconds), e.g. {"kind": "epoch", "epoch": 3,
  "step": 750, "loss": -0.91, "collapse_loss": -1.0, "center_norm": 0.31, "center_norm_pre_bn": 0.31,
  "center_norm_post_bn": 0.04, "residual_norm": 0.95, "z_std": 0.0201, "z_std_healthy": 0.0221,
  "effective_rank": 410.2, "effective_rank_max": 2048, "knn_acc": 0.41, "lr": 0.49, "images_per_s": 5210.0,
  "epoch_seconds": 24.3, "knn_seconds": 6.1, "n_corrupt": 0, "collapsed": false}; and a last {"kind":
  "end", "status": "finished" | "collapsed" | "stopped", "epoch", "step"}. "epoch" counts epochs done; the
  first epoch line, epoch 0 (step 0), reads the untrained model. center_norm is center_norm_pre_bn: read
  before the projector's output BatchNorm, which erases it (`lab.engine.metrics.ViewRecorder`).
- config.json (resolved config, method params, recipe, world size, kNN protocol), train.log (the human
  log), checkpoint.pt (model, optimizer, EMA teachers, DINO center, step, RNG states, guard counter).

Flags: one per `TrainConfig` field, of the same name (`--help`); `--config FILE.json` reads a JSON object of
fields (the runs launcher writes RUN/train_config.json and starts `--config` that file), flags beside it
override it.

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
import shlex
import sys
from typing import Sequence

import torch.distributed as tdist

# Re-exported: the names a notebook or a test reaches for beside `train`.
from lab.engine.config import (PROG, TrainConfig, build_parser, check_config, config_from_args, config_to_argv,
                                 fields_given, preset_configs)
from lab.engine.loop import DDP_STOP_CHECK_EVERY, run_loop
from lab.engine.metrics import EPOCH_KEYS, ViewRecorder
from lab.engine.model import collapse_value
from lab.engine.run import Run, prepare
from lab.engine.runfiles import CHECKPOINT, IDENTITY_FIELDS, RunFiles, read_metrics, trim_metrics

__all__ = ["CHECKPOINT", "DDP_STOP_CHECK_EVERY", "EPOCH_KEYS", "EXIT_BAD_INPUT", "IDENTITY_FIELDS", "Run", "RunFiles",
           "TrainConfig", "ViewRecorder", "collapse_value", "main", "prepare", "read_metrics", "train", "trim_metrics"]

EXIT_BAD_INPUT = 2


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) one run; returns {"status", "epoch", "step", "out", "last"}. Bad input -> ValueError."""
    owned = not tdist.is_initialized()  # under torchrun, whoever starts the process group ends it
    try:
        result = run_loop(prepare(cfg))
        if owned and tdist.is_initialized():
            tdist.barrier()  # as in main()
        return result
    finally:
        if owned and tdist.is_initialized():
            tdist.destroy_process_group()


def _configs(args: argparse.Namespace) -> list[TrainConfig] | None:
    """The configs to train, in order; None when a preset's commands were only printed."""
    preset = getattr(args, "preset", None)
    if preset is None:
        if getattr(args, "run", False):
            raise ValueError("--run goes with --preset NAME")
        return [config_from_args(args)]
    given = fields_given(args)
    if not getattr(args, "run", False):
        for _, cfg in preset_configs(preset, {"data": "DATA", **given}):
            print(f"{PROG} {shlex.join(config_to_argv(cfg))}")
        return None
    if "data" not in given:
        raise ValueError("--preset NAME --run needs --data")
    return [check_config(cfg) for _, cfg in preset_configs(preset, given)]


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    # torch warns when --workers exceeds its core-count guess; the user asked for that number.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    try:
        configs = _configs(build_parser().parse_args(argv))
        if configs is None:
            return 0
        run = prepare(configs[0])
    except ValueError as e:
        return _bad_input(e)
    try:
        run_loop(run)
        for cfg in configs[1:]:
            try:
                nxt = prepare(cfg)
            except ValueError as e:
                return _bad_input(e)
            run_loop(nxt)
        if tdist.is_initialized():
            # Every rank past its last collective before any tears gloo down: a rank that destroys the group
            # while another still sends aborts now and then ("terminate called without an active exception").
            tdist.barrier()
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
    return 0


def _bad_input(e: ValueError) -> int:
    print(f"error: {e}".splitlines()[0], file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
