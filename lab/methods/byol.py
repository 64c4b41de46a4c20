"""BYOL (Grill et al., 2020): online encoder + predictor, EMA target, L = −½[cos(p1, t2) + cos(p2, t1)] × scale.

BYOL's own loss (eq. 2, summed over both views as DeepMind's and solo-learn's code do) is Σ (2 − 2 cos) =
4 × (−½ Σ cos) + 4: the ImageNet recipe sets scale 4, so its gradients are the originals'. The toy keeps 1.

Defaults: momentum 0.99 (solo-learn's ImageNet-100 BYOL starts at 0.99; BYOL's own is 0.996),
predictor on. The paper here (§2.4) argues the EMA keeps the center near its start: lower momentum,
larger center.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from lab.core.checks import check_knobs, knob
from lab.core.collapse import CENTER, CONCENTRATED, LOSS_AT_COLLAPSE, RANK
from lab.core.pull import NOT_ALONG
from lab.methods.base import (Method, negative_cosine, online_predictions, predictor_head, predictor_hidden_knob,
                              predictor_knob, register)
from lab.core.nn import ema_update
from lab.core.schedules import cosine_to_one


@dataclass(frozen=True)
class BYOLConfig:
    momentum: float = knob(0.99, "EMA momentum ε", "EMA of the teacher: lower → the teacher follows the student "
                           "faster (paper Fig. 7).", stops=(0.0, 0.5, 0.9, 0.95, 0.99, 0.996, 0.999, 1.0),
                           range=(0.0, 1.0))
    predictor: bool = predictor_knob()
    predictor_hidden: int = predictor_hidden_knob()
    # BYOL's cosine schedule of the EMA momentum from `momentum` to 1 over training (the ImageNet recipe);
    # off: `momentum` throughout.
    momentum_schedule: bool = knob(False, "Momentum schedule", "Cosine from ε to 1 over training (BYOL's recipe).",
                                   scale="imagenet")
    # Under LARS the trust ratio cancels a constant factor on the weights' gradients but not on the biases' and
    # BatchNorm's (excluded from it) nor against weight decay: so the factor is part of the recipe.
    scale: float = knob(1.0, "Loss scale", "A constant factor on the loss; 4 makes it BYOL's Σ (2 − 2 cos) up to "
                        "a constant (DeepMind's and solo-learn's).", range=(0.0, 1000.0), low_open=True,
                        scale="imagenet")

    def __post_init__(self):
        check_knobs(self)


@register
class BYOL(Method):
    name = "byol"
    Config = BYOLConfig
    structural_knobs = ("predictor_hidden",)  # layers or optimizer groups: fixed for a run
    toggled_modules = {"predictor": "predictor"}  # off mid-run: unused; on: only where the run was built with it
    label = "BYOL"
    collapse_loss = "-1 × the loss scale"  # the predictions meet their EMA targets: cos = 1
    signature = (CENTER, CONCENTRATED, LOSS_AT_COLLAPSE, RANK)
    seed_knobs = ("momentum",)  # only the EMA reads it (`lab.core.nn.ema_update` takes a (K,) tensor)

    @classmethod
    def collapse_value(cls, cfg, dim, batch):
        return -cfg.scale

    @classmethod
    def pull_prediction(cls, cfg):
        if not cfg.predictor:
            return None, ("§2.4 argues through the predictor and the EMA together; the EMA alone only partly "
                          "cancels the center term, so the paper gives no sign without the predictor.")
        return NOT_ALONG, ("§2.4, eq. 26: the pull is towards the EMA target's features, whose center the momentum "
                           "keeps near its start (≈ 0): no pull along s.")

    def __init__(self, cfg, seeds, in_dim, dim, hidden=64, **kw):
        super().__init__(cfg, seeds, in_dim, dim, hidden, **kw)
        self.predictor = predictor_head(self.head_gens, dim, cfg.predictor_hidden, cfg.predictor)
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)

    def loss(self, x1, x2):
        z1, z2 = self.encoder(x1)[1], self.encoder(x2)[1]
        p1, p2 = online_predictions(self.active_predictor, z1, z2)
        with torch.no_grad():
            t1, t2 = self.target(x1)[1], self.target(x2)[1]
        loss = 0.5 * (negative_cosine(p1, t2) + negative_cosine(p2, t1))
        return (loss if self.cfg.scale == 1.0 else loss * self.cfg.scale), {}

    def target_momentum(self, progress: float):
        m = self.knob_value("momentum")
        return cosine_to_one(progress, m) if self.cfg.momentum_schedule else m

    def after_step(self, progress):
        ema_update(self.target, self.encoder, self.target_momentum(progress))
