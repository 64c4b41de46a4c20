"""What a run measures: the collapse geometry of the training views (`ViewRecorder`), the method's own
metrics on a probe batch, kNN accuracy, and the epoch line of metrics.jsonl that holds them (`EPOCH_KEYS`).

Everything that reduces over ranks is a collective: every rank calls it, in the same order.
"""
from __future__ import annotations

import math
import time
from typing import Mapping

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn
from torch.nn import functional as F

from lab.imagenet.augment import eval_transform
from lab.imagenet.folder import epoch_batches
from lab.imagenet.run import Run
from lab.metrics import knn_accuracy

# What the engine's kNN votes on (the vote itself: `lab.metrics.KNN_PROTOCOL`); config.json records both.
KNN_FEATURES = ("backbone features h (512-d, model in eval mode), val images against all train images, each "
                "image short-side resized to load_size, center-cropped, resized to image_size, normalised; no "
                "augmentation")
KNN_CHUNK = 1024  # val images per pass: memory stays at KNN_CHUNK × N_train similarities
# Every line of metrics.jsonl has "kind": "step" | "epoch" | "end". Keys of an epoch line:
EPOCH_KEYS = ("kind", "epoch", "step", "loss", "collapse_loss", "center_norm", "residual_norm", "z_std",
              "z_std_healthy", "knn_acc", "lr", "images_per_s", "epoch_seconds", "n_corrupt", "collapsed")


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """t summed over ranks, in place (t itself without a process group)."""
    if tdist.is_initialized():
        tdist.all_reduce(t)
    return t


def gather_rows(t: torch.Tensor) -> torch.Tensor:
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


class ViewRecorder:
    """Forward hook on model.encoder: sums of the L2-normalised projector outputs of the training views.

    Over an epoch: center_norm = ‖Σz / n‖, z_std = mean_d sqrt(E z_d² − (E z_d)²) (= lab.geometry.z_std).
    residual_norm is DESIGN §4's mean ‖z − s‖ with the epoch's s, which is known only at the epoch's end:
    it is taken over a sample of the views (every SAMPLE_EVERY-th, at most SAMPLE_MAX per rank) kept on
    the device. (The root mean square sqrt(1 − ‖s‖²) would need no sample, but it says nothing that
    center_norm does not.) Sums stay on the device in float64; nothing syncs until `epoch_values`.
    """

    SAMPLE_EVERY, SAMPLE_MAX = 8, 4096

    def __init__(self, encoder: nn.Module, device: torch.device):
        self.device, self.active = device, False
        self.sum = self.sum2 = self.batch_sum = None
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.batch_count = 0
        self.sample: list[torch.Tensor] = []
        self.sample_n = 0
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
        if self.sample_n < self.SAMPLE_MAX:
            kept = z[:: self.SAMPLE_EVERY][: self.SAMPLE_MAX - self.sample_n]
            self.sample.append(kept.clone())
            self.sample_n += kept.shape[0]

    def new_step(self) -> None:
        self.batch_sum, self.batch_count = None, 0

    def batch_center_norm(self) -> float:
        """‖mean z‖ of this step's views, all ranks together (a collective: call on every rank)."""
        packed = all_sum(torch.cat([self.batch_sum, torch.tensor([float(self.batch_count)], dtype=torch.float64,
                                                                   device=self.device)]))
        return float((packed[:-1] / packed[-1]).norm())

    def state(self) -> dict:
        sample = torch.cat(self.sample) if self.sample else None
        return {"sum": self.sum, "sum2": self.sum2, "count": self.count, "sample": sample}

    def load(self, state: Mapping) -> None:
        self.sum, self.sum2 = state["sum"], state["sum2"]
        self.count = state["count"].to(self.device)
        sample = state.get("sample")  # absent in checkpoints written before the sample existed
        self.sample = [] if sample is None else [sample.to(self.device)]
        self.sample_n = 0 if sample is None else sample.shape[0]
        if self.sum is not None:
            self.sum, self.sum2 = self.sum.to(self.device), self.sum2.to(self.device)

    def gather_to_rank0(self) -> None:
        """Put every rank's partial sums on rank 0 (for a mid-epoch checkpoint, which rank 0 writes)."""
        if not tdist.is_initialized():
            return
        d = self.sum.shape[0]
        packed = all_sum(torch.cat([self.sum, self.sum2, self.count.view(1)]))
        if tdist.get_rank() == 0:
            self.sum, self.sum2, self.count = packed[:d], packed[d:2 * d], packed[-1]
        else:
            self.sum, self.sum2 = torch.zeros_like(self.sum), torch.zeros_like(self.sum2)
            self.count = torch.zeros_like(self.count)
        # The residual sample stays per rank: rank 0's part goes into the checkpoint, and after a resume
        # the other ranks sample afresh (still views of this epoch, scored against the epoch's s).

    def reset(self) -> None:
        self.sum = self.sum2 = None
        self.sample, self.sample_n = [], 0
        self.count = torch.zeros((), dtype=torch.float64, device=self.device)

    def _residual_norm(self, s: torch.Tensor) -> float:
        """Mean ‖z − s‖ over every rank's sample, s: (D,) the epoch's center (a collective)."""
        if self.sample:
            z = torch.cat(self.sample).double()
            local = torch.stack([(z - s).norm(dim=1).sum(), torch.tensor(float(z.shape[0]), dtype=torch.float64,
                                                                          device=z.device)])
        else:
            local = torch.zeros(2, dtype=torch.float64, device=self.device)
        total, n = all_sum(local).tolist()
        return total / n if n else float("nan")

    def epoch_values(self) -> dict[str, float]:
        """All-reduced over ranks (a collective)."""
        packed = all_sum(torch.cat([self.sum, self.sum2, self.count.view(1)]))
        d = self.sum.shape[0]
        n = packed[-1]
        mean, mean2 = packed[:d] / n, packed[d:2 * d] / n
        center = float(mean.norm())
        return {"center_norm": center, "residual_norm": self._residual_norm(mean),
                "z_std": float((mean2 - mean.square()).clamp_min(0).sqrt().mean()),
                "z_std_healthy": 1.0 / math.sqrt(d), "n_views": int(n)}


# ----------------------------------------------------------------------------------------- epoch line

def epoch_row(run: Run, epoch: int, step: int, loss_sum: torch.Tensor, recorder: ViewRecorder, lr: float,
              seconds: float, images: int) -> dict:
    """The epoch's metrics.jsonl line (`EPOCH_KEYS` and the method's extras), "collapsed" not yet decided;
    kNN when due. A collective: every rank calls it."""
    cfg = run.cfg
    views = recorder.epoch_values()
    loss = float(all_sum(loss_sum.clone()) / (run.world * run.steps_per_epoch))
    extra = _extra_metrics(run)
    n_corrupt = int(all_sum(torch.tensor([float(getattr(run.loader, "n_corrupt", 0))], device=run.device)))
    knn_due = run.knn_loaders is not None and (epoch + 1 == cfg.epochs or
                                               (cfg.knn_every and (epoch + 1) % cfg.knn_every == 0))
    knn_start = time.perf_counter()
    knn = knn_eval(run) if knn_due else None
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
    with torch.no_grad(), run.autocast():
        values = run.model.extra_metrics(probe[None])
    run.model.load_state_dict(saved, strict=False)
    return {name: float(all_sum(value.detach().float().reshape(-1)[:1].clone()) / run.world)
            for name, value in values.items()}


def _probe_batch(run: Run) -> torch.Tensor:
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


def epoch_line(row: dict, epochs: int) -> str:
    """An epoch row as its train.log line."""
    knn = f" knn {row['knn_acc']:.4f}" if row.get("knn_acc") is not None else ""
    return (f"epoch {row['epoch']}/{epochs} loss {row['loss']:.4f} center {row['center_norm']:.4f} "
            f"z_std {row['z_std']:.4f} (healthy {row['z_std_healthy']:.4f}){knn} lr {row['lr']:.4g} "
            f"{row['images_per_s']:,.0f} img/s {row['epoch_seconds']:.1f} s"
            + (" COLLAPSED" if row["collapsed"] else ""))


# ----------------------------------------------------------------------------------------- kNN

def knn_eval(run: Run) -> float:
    """Weighted kNN accuracy of the backbone features, val against train (`lab.metrics.KNN_PROTOCOL` on
    `KNN_FEATURES`); all ranks call."""
    was_training = run.model.training
    run.model.eval()
    try:
        train_f, train_y = _features(run, run.knn_loaders[0])
        val_f, val_y = _features(run, run.knn_loaders[1])
    finally:
        run.model.train(was_training)
    acc = knn_accuracy(train_f[None], train_y, val_f[None], val_y, k=run.cfg.knn_k,
                       temperature=run.cfg.knn_temperature, n_classes=len(run.loader.classes), chunk=KNN_CHUNK)
    return float(acc[0])


@torch.no_grad()
def _features(run: Run, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features of a whole split, L2-normalised, every rank's shard gathered. -> (N, F) float, (N,) int64."""
    feats, labels = [], []
    for images, y in loader:
        x = eval_transform(images.to(run.device, non_blocking=True), run.cfg.image_size)
        if run.device.type == "cuda" and run.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with run.autocast():
            h = run.model.encoder(x[None])[0][0]
        feats.append(F.normalize(h.float(), dim=-1))
        labels.append(y.to(run.device))
    f = torch.cat(feats) if feats else torch.zeros(0, 1, device=run.device)
    y = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64, device=run.device)
    f, y = gather_rows(f), gather_rows(y)
    keep = _first_copies(loader, run.world, f.shape[0])
    return (f, y) if keep is None else (f[keep], y[keep])


def _first_copies(loader, world: int, gathered: int) -> torch.Tensor | None:
    """Rows to keep of an unshuffled split gathered over ranks (rank order): the loader pads the order to
    a multiple of the world size by wrapping, as DistributedSampler, so a few images come twice.
    None: keep all (one process, or not the layout `lab.imagenet.folder.epoch_batches` describes)."""
    if world == 1:
        return None
    index = np.concatenate([np.concatenate(epoch_batches(loader.n_images, batch_size=loader.batch_size,
                                                         shuffle=False, drop_last=False, seed=0, epoch=0,
                                                         rank=r, world_size=world))
                            for r in range(world)])
    if len(index) != gathered:  # e.g. a batch shortened by corrupt files
        return None
    _, first = np.unique(index, return_index=True)
    return torch.from_numpy(np.sort(first))

