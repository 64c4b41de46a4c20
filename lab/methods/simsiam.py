"""SimSiam (Chen & He, 2021): predictor + stop-gradient, L = −½[cos(p1, sg z2) + cos(p2, sg z1)].

Defaults from the SimSiam paper: predictor on, stop-gradient on, the predictor at the same learning
rate as the rest (their "fixed lr for the predictor" is 1.0 × base; the paper here sweeps 1 %…100 %).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lab.checks import check_range
from lab.methods.base import Method, negative_cosine, predictor_head, register


@dataclass(frozen=True)
class SimSiamConfig:
    predictor: bool = True
    stop_grad: bool = True
    predictor_lr_scale: float = 1.0
    predictor_hidden: int = 16  # SimSiam's bottleneck predictor: hidden = D/4 at ImageNet scale; wider here
    # SimSiam's ImageNet recipe keeps the predictor's lr fixed while the rest follows the schedule
    # (the trainer honours the group's `fixed_lr`); the toy trainer has no schedule.
    predictor_fixed_lr: bool = field(default=False, metadata={"scale": "imagenet"})

    def __post_init__(self):
        check_range("predictor_lr_scale", self.predictor_lr_scale, 0.0, 100.0, low_open=True)
        check_range("predictor_hidden", self.predictor_hidden, 1, 65536)


@register
class SimSiam(Method):
    name = "simsiam"
    Config = SimSiamConfig
    collapse_loss = "-1"

    def __init__(self, cfg, seeds, in_dim, dim, hidden=64, **kw):
        super().__init__(cfg, seeds, in_dim, dim, hidden, **kw)
        self.predictor = predictor_head(self.head_gens, dim, cfg.predictor_hidden, cfg.predictor)

    def loss(self, x1, x2):
        z1, z2 = self.encoder(x1)[1], self.encoder(x2)[1]
        p1, p2 = (self.predictor(z1), self.predictor(z2)) if self.predictor is not None else (z1, z2)
        t1, t2 = (z1.detach(), z2.detach()) if self.cfg.stop_grad else (z1, z2)
        return 0.5 * (negative_cosine(p1, t2) + negative_cosine(p2, t1)), {}

    def param_groups(self, lr):
        if self.predictor is None:
            return super().param_groups(lr)
        head = {"params": list(self.predictor.parameters()), "lr": lr * self.cfg.predictor_lr_scale}
        if self.cfg.predictor_fixed_lr:
            head["fixed_lr"] = True
        return [{"params": list(self.encoder.parameters()), "lr": lr}, head]
