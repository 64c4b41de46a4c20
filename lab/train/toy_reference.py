"""The plain way to train a toy setting: one seed at a time, one step at a time.

It is the yardstick for `python -m lab.bench toy` and the test that the stacked trainer in
`lab.train.toy` takes exactly the same steps. For each seed it builds the method with that seed
alone (K = 1: the lab's layers then hold exactly the stacked model's slice for that seed, ordinary
(1, N, d) batched matmuls), draws the same batch order and partners from the seed's generator, and
trains with autograd and a default `torch.optim.SGD`, indexing each batch as it goes. It evaluates
at the same epochs with the same metrics (`lab.train.toy._evaluate` on one seed).

Nothing here is stacked, pre-gathered or vectorised over seeds; that is the point.
"""
from __future__ import annotations

import time

import torch

from lab.core.seeds import TOY_BATCHES, generator
from lab.data.toy import make_toy
from lab.methods import build_method
from lab.core.schedules import evenly_spaced
from lab.train.toy import ToyConfig, _evaluate, _pair_indices, _positive_probes


def train_seed_plain(config: ToyConfig, seed: int) -> dict:
    """One seed of `config` -> {"epochs", "z": (T, N, D), "metrics": {name: (T,)}, "diverged": epoch or None}."""
    c = config
    data = make_toy(c.dataset, c.data_seed, c.n_train, c.n_test)
    x, y = data.x_train, data.y_train
    model = build_method(c.method, dict(c.params), [seed], data.in_dim, c.dim, c.hidden)
    opt = torch.optim.SGD(model.param_groups(c.lr), lr=c.lr, momentum=c.sgd_momentum, weight_decay=c.weight_decay)
    g = generator(seed, TOY_BATCHES)  # the stacked trainer's batch stream for this seed
    steps, b = c.steps_per_epoch, c.batch_size
    eval_at = set(evenly_spaced(c.epochs, c.max_evals))
    zs, logs, epochs, diverged = [], [], [], None
    probe = _positive_probes(y[None])

    def record(epoch: int, loss: torch.Tensor) -> None:
        z, m = _evaluate(model, x[None], data.x_test[None], y[None], data.y_test[None], probe)
        m["loss"] = loss.reshape(1)
        zs.append(z[0]), logs.append({k: v[0] for k, v in m.items()}), epochs.append(epoch)

    with torch.no_grad():  # the loss before training, leaving every buffer as it was
        saved = [t.clone() for t in model.buffers()]
        first = model.loss(x[None, :b], x[None, _pair_indices(y, torch.arange(b), g)])[0]
        for t, old in zip(model.buffers(), saved):
            t.copy_(old)
    record(0, first)
    for epoch in range(1, c.epochs + 1):
        anchors = torch.randperm(len(y), generator=g)[: steps * b].view(steps, b)
        partners = _pair_indices(y, anchors, g)
        epoch_loss = torch.zeros(())
        for step in range(steps):
            loss = model.loss(x[anchors[step]][None], x[partners[step]][None])[0][0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.after_step((epoch - 1 + (step + 1) / steps) / c.epochs)
            epoch_loss += loss.detach()
        epoch_loss /= steps
        if not torch.isfinite(epoch_loss):
            diverged = epoch
            break
        if epoch in eval_at:
            record(epoch, epoch_loss)
    return {"epochs": epochs, "z": torch.stack(zs), "diverged": diverged,
            "metrics": {k: torch.stack([m[k] for m in logs]) for k in logs[0]}}


def train_toy_plain(config: ToyConfig) -> dict:
    """Every seed of `config`, one after the other.

    -> {"epochs": evaluated epochs, "z": (T, K, N, D), "metrics": {name: (T, K)}, "diverged": [epoch or None
    per seed], "train_seconds"}. Seeds that diverge stop early; z and metrics keep the epochs all seeds reached.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the stacked trainer does
    try:
        start = time.perf_counter()
        runs = [train_seed_plain(config, s) for s in config.seed_list]
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    t = min(len(r["epochs"]) for r in runs)
    return {"epochs": runs[0]["epochs"][:t], "z": torch.stack([r["z"][:t] for r in runs], 1),
            "metrics": {k: torch.stack([r["metrics"][k][:t] for r in runs], 1) for k in runs[0]["metrics"]},
            "diverged": [r["diverged"] for r in runs], "train_seconds": seconds}
