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

from lab.data.augment import eval_transform
from lab.data.folder import epoch_batches
from lab.engine.run import Run
from lab.core import geometry as geo
from lab.core.collapse import collapse_kind, collapse_signs, phrase
from lab.methods import method_class
from lab.core.metrics import knn_accuracy
from lab.core.vocab import COLLAPSE_THRESHOLD

# What the engine's kNN votes on (the vote itself: `lab.core.metrics.KNN_PROTOCOL`); config.json records both.
KNN_FEATURES = ("backbone features h (8 × width: 512-d at ImageNet, 128 at Fashion-MNIST; model in eval mode), "
                "val images (Fashion-MNIST: the test split) against all train images, each "
                "image short-side resized to load_size, center-cropped, resized to image_size, normalised; no "
                "augmentation")
KNN_CHUNK = 1024  # val images per pass: memory stays at KNN_CHUNK × N_train similarities
# Every line of metrics.jsonl has "kind": "step" | "epoch" | "end". Keys of an epoch line:
EPOCH_KEYS = ("kind", "epoch", "step", "loss", "collapse_loss", "center_norm", "center_share",
              "center_norm_pre_bn",
              "center_norm_post_bn", "residual_norm", "z_std", "z_std_healthy", "effective_rank", "effective_rank_post_bn",
              "effective_rank_max",
              "knn_acc", "lr", "images_per_s", "epoch_seconds", "n_corrupt", "collapse_signs",
              "collapse_kind", "collapsed")


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


# Where center_norm is read, by projector kind (config.json says it for each run).
READ_AT = {"proj_out_bn": "before the projector's output BatchNorm (train mode; after it the mean is 0 by "
                          "construction)",
           "plain": "on the projector output (no normalising layer follows it in the projector)"}


class _Moments:
    """Sums over views of L2-normalised features z (D,): Σz, Σz², and (with cov) Σzzᵀ; float64 on the device."""

    def __init__(self, cov: bool):
        self.with_cov = cov
        self.sum = self.sum2 = self.cov = None

    def add(self, z: torch.Tensor) -> None:
        """z: (n, D) float32, L2-normalised."""
        s, s2 = z.sum(0).double(), z.square().sum(0).double()
        if self.sum is None:
            self.sum, self.sum2 = torch.zeros_like(s), torch.zeros_like(s)
            if self.with_cov:
                self.cov = torch.zeros(s.shape[0], s.shape[0], dtype=torch.float64, device=s.device)
        self.sum += s
        self.sum2 += s2
        if self.with_cov:
            self.cov += (z.T @ z).double()  # float32 product of one batch, float64 over the epoch

    def packed(self) -> list[torch.Tensor]:
        return [self.sum, self.sum2] + ([self.cov.flatten()] if self.with_cov else [])

    def unpack(self, flat: torch.Tensor) -> None:
        d = self.sum.shape[0]
        self.sum, self.sum2 = flat[:d].clone(), flat[d:2 * d].clone()
        if self.with_cov:
            self.cov = flat[2 * d:].view(d, d).clone()


class ViewRecorder:
    """Hooks on the online encoder: moments of the training views' features, before and after normalising.

    pre: the projector's output before its output BatchNorm (SimSiam's recipe family), or the projector's
    output where it has none. This is where collapse can show: a train-mode BatchNorm gives every batch zero
    mean per dimension by construction, so after it ‖s‖ stays near 0 even when every pre-BN output is one
    point. post: what the loss is given, after that BatchNorm and the method's own normalisation
    (`Method.loss_view`: Barlow Twins standardises each dimension over the batch). Both are L2-normalised per
    view before averaging. Over an epoch, on `pre`: center_norm = ‖Σz / n‖, z_std = mean_d sqrt(E z_d² −
    (E z_d)²) (= lab.core.geometry.z_std), effective_rank = exp(entropy of the normalised singular values of the
    centered z) from the epoch's covariance (= lab.core.metrics.effective_rank over all views), and
    effective_rank_post_bn the same on `post` (Barlow Twins: of the standardised embedding); residual_norm is
    DESIGN §4's mean ‖z − s‖ over a sample of the views (every SAMPLE_EVERY-th, at most SAMPLE_MAX per rank)
    kept on the device, since s is known only at the epoch's end, and center_share the share of that sample's
    views within arccos(COLLAPSE_THRESHOLD) of s/‖s‖ (`lab.core.geometry.center_share`). center_norm_post_bn:
    ‖Σ post / n‖.
    Nothing syncs until `epoch_values`.
    """

    SAMPLE_EVERY, SAMPLE_MAX = 8, 4096

    def __init__(self, encoder: nn.Module, device: torch.device, out_bn: nn.Module | None = None,
                 loss_view=None):
        self.device, self.active = device, False
        self.loss_view = loss_view
        self.pre, self.post = _Moments(cov=True), _Moments(cov=True)
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.batch_sum, self.batch_count = None, 0
        self.sample: list[torch.Tensor] = []
        self.sample_n = 0
        self._pre_bn: torch.Tensor | None = None
        self.handles = [encoder.register_forward_hook(self._hook)]
        if out_bn is not None:
            self.handles.append(out_bn.register_forward_hook(self._bn_hook))

    def _bn_hook(self, module, inputs, output):
        if self.active:
            self._pre_bn = inputs[0].detach()

    def _hook(self, module, inputs, output):
        if not self.active:
            return
        y = output[1].detach().float()
        pre = y if self._pre_bn is None else self._pre_bn.float().view(y.shape)
        self._pre_bn = None
        post = y if self.loss_view is None else self.loss_view(y).float()
        z, zp = (_unit(t.reshape(-1, t.shape[-1])) for t in (pre, post))
        self.pre.add(z)
        self.post.add(zp)
        self.count += z.shape[0]
        s = z.sum(0).double()
        self.batch_sum = s if self.batch_sum is None else self.batch_sum + s
        self.batch_count += z.shape[0]
        if self.sample_n < self.SAMPLE_MAX:
            kept = z[:: self.SAMPLE_EVERY][: self.SAMPLE_MAX - self.sample_n]
            self.sample.append(kept.clone())
            self.sample_n += kept.shape[0]

    def new_step(self) -> None:
        self.batch_sum, self.batch_count = None, 0

    def batch_center_norm(self) -> float:
        """‖mean z‖ (pre) of this step's views, all ranks together (a collective: call on every rank)."""
        packed = all_sum(torch.cat([self.batch_sum, torch.tensor([float(self.batch_count)], dtype=torch.float64,
                                                                   device=self.device)]))
        return float((packed[:-1] / packed[-1]).norm())

    def _flat(self) -> torch.Tensor:
        return torch.cat(self.pre.packed() + self.post.packed() + [self.count.view(1)])

    def _unflat(self, flat: torch.Tensor) -> None:
        d = self.pre.sum.shape[0]
        n_pre = 2 * d + d * d
        self.pre.unpack(flat[:n_pre])
        self.post.unpack(flat[n_pre:-1])
        self.count = flat[-1].clone()

    def state(self) -> dict:
        sample = torch.cat(self.sample) if self.sample else None
        return {"flat": None if self.pre.sum is None else self._flat(), "dims": self._dims(), "count": self.count,
                "sample": sample}

    def _dims(self) -> tuple[int, int] | None:
        return None if self.pre.sum is None else (self.pre.sum.shape[0], self.post.sum.shape[0])

    def load(self, state: Mapping) -> None:
        self.reset()
        if state.get("flat") is None:  # nothing recorded yet (or a checkpoint from before pre/post readings)
            return
        d_pre, d_post = state["dims"]
        if state["flat"].numel() != 2 * d_pre + d_pre ** 2 + 2 * d_post + d_post ** 2 + 1:
            return  # a checkpoint from before the post-BN covariance: this epoch's readings restart
        self.pre.sum = torch.zeros(d_pre, dtype=torch.float64, device=self.device)
        self.post.sum = torch.zeros(d_post, dtype=torch.float64, device=self.device)
        self._unflat(state["flat"].to(self.device))
        sample = state.get("sample")
        self.sample = [] if sample is None else [sample.to(self.device)]
        self.sample_n = 0 if sample is None else sample.shape[0]

    def gather_to_rank0(self) -> None:
        """Put every rank's partial sums on rank 0 (for a mid-epoch checkpoint, which rank 0 writes)."""
        if not tdist.is_initialized():
            return
        packed = all_sum(self._flat())
        self._unflat(packed if tdist.get_rank() == 0 else torch.zeros_like(packed))
        # The residual sample stays per rank: rank 0's part goes into the checkpoint, and after a resume
        # the other ranks sample afresh (still views of this epoch, scored against the epoch's s).

    def reset(self) -> None:
        self.pre, self.post = _Moments(cov=True), _Moments(cov=True)
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

    def _center_share(self, s: torch.Tensor) -> float:
        """The share of every rank's sample within arccos(COLLAPSE_THRESHOLD) of s/‖s‖ (a collective)."""
        if self.sample:
            near = geo.center_cosines(torch.cat(self.sample).double(), s) >= COLLAPSE_THRESHOLD
            local = torch.stack([near.sum().double(), torch.tensor(float(near.numel()), dtype=torch.float64,
                                                                     device=near.device)])
        else:
            local = torch.zeros(2, dtype=torch.float64, device=self.device)
        near, n = all_sum(local).tolist()
        return near / n if n else float("nan")

    def epoch_values(self) -> dict[str, float]:
        """All-reduced over ranks (a collective)."""
        self._unflat(all_sum(self._flat()))
        n = self.count
        d = self.pre.sum.shape[0]
        mean, mean2 = self.pre.sum / n, self.pre.sum2 / n
        center = float(mean.norm())
        cov = self.pre.cov / n - torch.outer(mean, mean)
        post_mean = self.post.sum / n
        post_cov = self.post.cov / n - torch.outer(post_mean, post_mean)
        return {"center_norm": center, "center_norm_pre_bn": center,
                "center_norm_post_bn": float(post_mean.norm()),
                "effective_rank_post_bn": effective_rank_of_covariance(post_cov),
                "residual_norm": self._residual_norm(mean),
                "center_share": self._center_share(mean),
                "z_std": float((mean2 - mean.square()).clamp_min(0).sqrt().mean()),
                "z_std_healthy": 1.0 / math.sqrt(d), "effective_rank": effective_rank_of_covariance(cov),
                "effective_rank_max": float(d), "n_views": int(n)}


def _unit(z: torch.Tensor) -> torch.Tensor:
    return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def effective_rank_of_covariance(cov: torch.Tensor) -> float:
    """`lab.core.metrics.effective_rank` from the covariance C = ZᵀZ/n − μμᵀ (D, D) of the centered features:
    their singular values are sqrt(n λ_i) for the eigenvalues λ_i of C, and the factor √n cancels."""
    lam = torch.linalg.eigvalsh(cov.double()).clamp_min(0)
    s = lam.sqrt()
    p = s / s.sum().clamp_min(1e-300)
    return float(torch.exp(-(p * p.clamp_min(1e-300).log()).sum()))


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
           **extra, **{k: views[k] for k in EPOCH_KEYS if k in views}, "knn_acc": knn, "lr": lr,
           "images_per_s": run.steps_per_epoch * cfg.batch_size / max(seconds, 1e-9), "epoch_seconds": seconds,
           "knn_seconds": time.perf_counter() - knn_start if knn_due else 0.0, "n_corrupt": n_corrupt,
           "collapsed": False}
    row["collapse_signs"] = collapse_signs(method_class(cfg.method).signature, row, cfg.collapse_threshold,
                                           _n_classes(run))
    row["collapse_kind"] = collapse_kind(row["collapse_signs"])
    if not math.isfinite(loss):
        run.files.log(f"warning: loss is {loss} in epoch {epoch + 1}")
    return row


def _n_classes(run: Run) -> int | None:
    classes = getattr(run.loader, "classes", None)
    return len(classes) if classes else None


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
    x = eval_transform(run.probe.to(run.device), run.cfg.image_size, run.augment.mean.flatten().tolist(),
                       run.augment.std.flatten().tolist())
    if run.device.type == "cuda" and run.cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def epoch_line(row: dict, epochs: int) -> str:
    """An epoch row as its train.log line."""
    knn = f" knn {row['knn_acc']:.4f}" if row.get("knn_acc") is not None else ""
    return (f"epoch {row['epoch']}/{epochs} loss {row['loss']:.4f} center {row['center_norm']:.4f} "
            f"z_std {row['z_std']:.4f} (healthy {row['z_std_healthy']:.4f}){knn} lr {row['lr']:.4g} "
            f"{row['images_per_s']:,.0f} img/s {row['epoch_seconds']:.1f} s"
            + (f" [collapse sign: {'; '.join(map(phrase, row['collapse_signs']))}]" if row.get("collapse_signs") else "")
            + (" COLLAPSED" if row["collapsed"] else ""))


# ----------------------------------------------------------------------------------------- kNN

def knn_eval(run: Run) -> float:
    """Weighted kNN accuracy of the backbone features, val against train (`lab.core.metrics.KNN_PROTOCOL` on
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
        x = eval_transform(images.to(run.device, non_blocking=True), run.cfg.image_size,
                           run.augment.mean.flatten().tolist(), run.augment.std.flatten().tolist())
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
    None: keep all (one process, or not the layout `lab.data.folder.epoch_batches` describes)."""
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

