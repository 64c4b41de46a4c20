"""`python -m lab.bench fmnist`: Fashion-MNIST training and data throughput of the engine's default backbone.

Training: SimSiam at the Fashion-MNIST scale (`lab.engine.recipes.SCALES["fmnist"]`: small-image ResNet-18
at width 16, the recipe's heads scaled with it), real batches of Debian's files, two augmented views
(kornia), forward, backward, optimizer step, with the engine's view recorder on (pre- and post-BN moments,
the covariance for the effective rank), as `lab.engine.train` runs a step. Against it, in the same run: a
plain PyTorch loop of the same model written as one would by hand (nn.Sequential backbone, projector and
predictor, F.cosine_similarity, torch.optim.SGD, the same kornia views), no recorder.
Data: the in-memory loader's batches and the augmentation alone, images/s.
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from lab.data import fmnist
from lab.data.augment import SSLAugment
from lab.data.folder import make_loader
from lab.engine.metrics import ViewRecorder
from lab.engine.model import build_model
from lab.engine.optim import build_optimizer
from lab.engine.recipes import SCALES, recipe

SCALE = SCALES["fmnist"]


def _median_rate(step, batch: int, steps: int, warmup: int = 2) -> float:
    for i in range(warmup):
        step(i)
    times = []
    for i in range(steps):  # the median: robust to a neighbour's load on a shared machine
        start = time.perf_counter()
        step(warmup + i)
        times.append(time.perf_counter() - start)
    return batch / sorted(times)[len(times) // 2]


def _batches(data, batch_size: int, n: int) -> list[torch.Tensor]:
    loader = make_loader(data, "train", size=fmnist.SIDE, batch_size=batch_size, workers=0, seed=0)
    return [images for _, (images, _labels) in zip(range(n), loader)]


def lab_step_rate(data, batch_size: int, steps: int, method: str = "simsiam") -> float:
    """Images/s of the engine's step (views, loss, backward, step, after_step, recorder on)."""
    rec = recipe(method, "fmnist")
    model = build_model(method, seed=0, scale="fmnist")
    lr = rec.scaled_lr(batch_size)
    opt = build_optimizer(rec, model.param_groups(lr), lr, rec.weight_decay, rec.momentum)
    aug = SSLAugment(SCALE.image_size, rec.min_scale, SCALE.mean, SCALE.std)
    out_bn = model.encoder.projector[-1] if rec.proj_out_bn else None
    recorder = ViewRecorder(model.encoder, torch.device("cpu"), out_bn=out_bn, loss_view=model.loss_view)
    batches = _batches(data, batch_size, 4)

    def step(i: int) -> None:
        torch.manual_seed(i)
        v1, v2 = aug(batches[i % len(batches)])
        recorder.active = True
        loss, _ = model.loss(v1[None], v2[None])
        recorder.active = False
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        model.after_step(0.5)

    return _median_rate(step, batch_size, steps)


class _PlainSimSiam(nn.Module):
    """The same backbone and projector as plain modules, SimSiam's predictor of the same sizes as an
    nn.Sequential, SimSiam's loss by hand."""

    def __init__(self, lab_model):
        super().__init__()
        self.backbone = copy.deepcopy(lab_model.encoder.backbone)
        self.projector = copy.deepcopy(lab_model.encoder.projector)
        dim, hidden = recipe("simsiam", "fmnist").dim, lab_model.cfg.predictor_hidden
        self.predictor = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                                       nn.Linear(hidden, dim))

    def forward(self, x1, x2):
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return -0.5 * (F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean())


def plain_step_rate(data, batch_size: int, steps: int) -> float:
    """Images/s of a hand-written loop of the same SimSiam model."""
    rec = recipe("simsiam", "fmnist")
    model = _PlainSimSiam(build_model("simsiam", seed=0, scale="fmnist"))
    lr = rec.scaled_lr(batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=rec.momentum, weight_decay=rec.weight_decay)
    aug = SSLAugment(SCALE.image_size, rec.min_scale, SCALE.mean, SCALE.std)
    batches = _batches(data, batch_size, 4)

    def step(i: int) -> None:
        torch.manual_seed(i)
        v1, v2 = aug(batches[i % len(batches)])
        loss = model(v1, v2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _median_rate(step, batch_size, steps)


def data_rates(data, batch_size: int, n_batches: int = 100) -> dict[str, float]:
    """Images/s of the in-memory loader (a full epoch's batches) and of the two views alone."""
    loader = make_loader(data, "train", size=fmnist.SIDE, batch_size=batch_size, workers=0, seed=0)
    start, n = time.perf_counter(), 0
    for images, _ in loader:
        n += images.shape[0]
    load = n / (time.perf_counter() - start)
    aug = SSLAugment(SCALE.image_size, 0.2, SCALE.mean, SCALE.std)
    batches = _batches(data, batch_size, 4)
    views = _median_rate(lambda i: aug(batches[i % 4]), batch_size, 10)
    return {"loader": load, "augment": views}


def bench_fmnist(data=fmnist.DEBIAN_DIR, batch_size: int = 256, steps: int = 10) -> dict:
    """Measure and print the table (one torch thread per core the machine gives)."""
    if not fmnist.is_fashion_mnist(data):
        raise ValueError(f"{data}: no Fashion-MNIST files; {fmnist.INSTALL_HINT}")
    print(f"Fashion-MNIST scale: {SCALE.stem} ResNet-18 at width {SCALE.width}, {SCALE.image_size} px, batch "
          f"{batch_size}, {steps} timed steps, {torch.get_num_threads()} torch threads")
    plain = plain_step_rate(data, batch_size, steps)
    lab = lab_step_rate(data, batch_size, steps)
    rates = data_rates(data, batch_size)
    epoch_s = 60_000 / lab
    print(f"training step, SimSiam, two views  lab {lab:,.0f} images/s   plain loop {plain:,.0f} images/s   "
          f"ratio {lab / plain:.2f}")
    print(f"data: in-memory loader {rates['loader']:,.0f} images/s, two augmented views {rates['augment']:,.0f} images/s")
    print(f"one epoch of 60,000 images: {epoch_s:.0f} s of training")
    return {"lab": lab, "plain": plain, "ratio": lab / plain, **rates, "epoch_seconds": epoch_s}
