"""BYOL (Grill et al., 2020): online encoder + predictor, EMA target, L = −½[cos(p1, t2) + cos(p2, t1)].

Defaults: momentum 0.99 (solo-learn's ImageNet-100 BYOL starts at 0.99; BYOL's own is 0.996),
predictor on. The paper here (§2.4) argues the EMA keeps the center near its start: lower momentum,
larger center.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from lab.checks import check_range
from lab.methods.base import Method, negative_cosine, predictor_head, register
from lab.schedules import cosine_to_one
from lab.nn import ema_update


@dataclass(frozen=True)
class BYOLConfig:
    momentum: float = 0.99
    predictor: bool = True
    predictor_hidden: int = 16
    # BYOL's cosine schedule of the EMA momentum from `momentum` to 1 over training (the ImageNet recipe);
    # off: `momentum` throughout.
    momentum_schedule: bool = field(default=False, metadata={"scale": "imagenet"})

    def __post_init__(self):
        check_range("momentum", self.momentum, 0.0, 1.0)
        check_range("predictor_hidden", self.predictor_hidden, 1, 65536)


@register
class BYOL(Method):
    name = "byol"
    Config = BYOLConfig
    collapse_loss = "-1"

    def __init__(self, cfg, seeds, in_dim, dim, hidden=64, **kw):
        super().__init__(cfg, seeds, in_dim, dim, hidden, **kw)
        self.predictor = predictor_head(self.head_gens, dim, cfg.predictor_hidden, cfg.predictor)
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)

    def loss(self, x1, x2):
        z1, z2 = self.encoder(x1)[1], self.encoder(x2)[1]
        p1, p2 = (self.predictor(z1), self.predictor(z2)) if self.predictor is not None else (z1, z2)
        with torch.no_grad():
            t1, t2 = self.target(x1)[1], self.target(x2)[1]
        return 0.5 * (negative_cosine(p1, t2) + negative_cosine(p2, t1)), {}

    def target_momentum(self, progress: float) -> float:
        return cosine_to_one(progress, self.cfg.momentum) if self.cfg.momentum_schedule else self.cfg.momentum

    def after_step(self, progress):
        ema_update(self.target, self.encoder, self.target_momentum(progress))
