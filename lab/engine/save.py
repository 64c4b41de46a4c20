"""What a run saves about itself into RUN/: checkpoint.pt (`save_checkpoint`; `lab.engine.runfiles.load_start`
reads it back) and config.json (`write_config`: the resolved config and everything needed to read the
metrics of the run). Both are replaced atomically; rank 0 writes.
"""
from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import torch

from lab.engine.config import jsonable
from lab.engine.metrics import EPOCH_KEYS, KNN_FEATURES, READ_AT, ViewRecorder
from lab.engine.run import Run
from lab.engine.runfiles import CHECKPOINT, atomic_write_bytes, identity
from lab.core.metrics import KNN_PROTOCOL


def save_checkpoint(run: Run, epoch: int, step: int, step_in_epoch: int, guard: int, status: str | None,
                    recorder: ViewRecorder | None, acc: dict | None, epoch_time: float) -> None:
    """Every rank calls (state is identical); rank 0 writes."""
    if run.rank != 0:
        return
    state = {"version": 1, "identity": identity(run.cfg), "config": jsonable(dataclasses.asdict(run.cfg)),
             "epoch": epoch, "step": step, "step_in_epoch": step_in_epoch, "guard": guard, "status": status,
             "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "acc": None if acc is None else {**acc, "views": recorder.state()}, "epoch_time": epoch_time,
             "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                     "cuda": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else None}}
    atomic_write_bytes(run.out / CHECKPOINT, lambda f: torch.save(state, f))


def write_config(run: Run) -> None:
    """RUN/config.json: the resolved config and everything needed to read the metrics of this run."""
    if run.rank != 0:
        return
    cfg = run.cfg
    doc = {"config": jsonable(dataclasses.asdict(cfg)), "method_params": jsonable(run.params),
           "recipe": jsonable(run.recipe.as_dict() if hasattr(run.recipe, "as_dict") else run.recipe),
           "world_size": run.world, "device": str(run.device),
           "device_name": torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else "cpu",
           "per_rank_batch": cfg.batch_size // run.world, "aug_groups": cfg.aug_groups or run.world,
           "base_lr": run.base_lr, "lr_scales": run.group_scales, "steps_per_epoch": run.steps_per_epoch,
           "total_steps": run.total_steps, "warmup_steps": run.warmup_steps, "collapse_loss": run.collapse_loss,
           "collapse_loss_note": getattr(type(run.model), "collapse_loss", None),
           "knn_protocol": {"description": KNN_PROTOCOL, "k": cfg.knn_k, "temperature": cfg.knn_temperature,
                            "features": KNN_FEATURES, "every_epochs": cfg.knn_every,
                            "enabled": run.knn_loaders is not None},
           "metrics_schema": {"epoch": list(EPOCH_KEYS),
                              "residual_norm": "mean ‖z − s‖ over a sample of the epoch's views "
                                               "(every 8th, at most 4096 per rank)",
                              "center_norm": "= center_norm_pre_bn: ‖mean of L2-normalised projector outputs over "
                                             "the epoch's training views, all ranks‖, read " + READ_AT[
                                                 "proj_out_bn" if run.recipe.proj_out_bn else "plain"],
                              "center_norm_post_bn": "the same after the projector's output BatchNorm and the "
                                                     "loss's own normalisation (Barlow: standardised per "
                                                     "dimension over each rank's batch); train mode",
                              "center_share": "the share of the residual_norm sample's views within arccos 0.9 "
                                              "(25.8°) of the epoch's mean direction s/‖s‖ (pre-BN, on the sphere)",
                              "effective_rank": "exp(entropy of the normalised singular values) of the centered, "
                                                "L2-normalised pre-BN views of the epoch, 1 … effective_rank_max = D",
                              "effective_rank_post_bn": "the same of the post-BN views (what the loss is given)",
                              "epoch 0": "the untrained model on up to 64 training batches of epoch 0's order"},
           "n_classes": len(run.loader.classes),
           "torch": torch.__version__, "amp": cfg.amp and run.device.type == "cuda"}
    text = json.dumps(doc, indent=2) + "\n"
    atomic_write_bytes(run.out / "config.json", lambda f: f.write(text.encode()))
