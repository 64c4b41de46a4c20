"""The plain way to train one B.1 setting: nn.Module, autograd and optim.SGD, one step at a time.

It is the yardstick for `lab.bench b1` and the test that the hand-written stacked trainer in
`lab.train.b1` takes exactly the same steps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lab.train.b1 import B1Config, init_weights, make_data, sample_order


def plain_projector(c: B1Config) -> nn.Sequential:
    """Two nn.Linear layers R³ → R^hidden → R^D holding the same initial weights as the fast trainer."""
    w = init_weights(c)
    net = nn.Sequential(nn.Linear(3, c.hidden), nn.Linear(c.hidden, c.dim))
    with torch.no_grad():
        net[0].weight.copy_(w["W1"])
        net[0].bias.copy_(w["b1"])
        net[1].weight.copy_(w["W2"])
        net[1].bias.copy_(w["b2"])
    return net


def train_plain(c: B1Config) -> dict[str, torch.Tensor]:
    """Train one setting the plain way; returns per-epoch snapshots z (E+1, N, D), z_aug (E+1, N·A, D)."""
    data = make_data(c)
    flat = data.x_aug.reshape(-1, 3)
    anchors, partners = sample_order(c)
    net = plain_projector(c)
    opt = torch.optim.SGD(net.parameters(), lr=c.lr)

    def snapshot() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return F.normalize(net(data.x), dim=-1), F.normalize(net(flat), dim=-1)

    zs, zas = [], []
    z, za = snapshot()
    zs.append(z), zas.append(za)
    for epoch in range(c.epochs):
        for step in range(c.steps_per_epoch):
            za_ = F.normalize(net(flat[anchors[epoch, step]]), dim=-1)
            zb_ = F.normalize(net(flat[partners[epoch, step]]), dim=-1)
            loss = (1 - (za_ * zb_).sum(-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        z, za = snapshot()
        zs.append(z), zas.append(za)
    return {"z": torch.stack(zs), "z_aug": torch.stack(zas)}
