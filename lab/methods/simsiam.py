"""SimSiam (Chen & He, 2021): predictor + stop-gradient, L = −½[cos(p1, sg z2) + cos(p2, sg z1)].

Defaults from the SimSiam paper: predictor on, stop-gradient on, the predictor at the same learning
rate as the rest (their "fixed lr for the predictor" is 1.0 × base; the paper here sweeps 1 %…100 %).
"""
from __future__ import annotations

from dataclasses import dataclass

from lab.core.checks import check_knobs, knob
from lab.core.collapse import CENTER, CONCENTRATED, LOSS_AT_COLLAPSE, RANK
from lab.core.pull import ALONG, EQ4_PULL, NOT_ALONG
from lab.methods import fused
from lab.methods.base import (Method, negative_cosine, online_predictions, predictor_head, predictor_hidden_knob,
                              predictor_knob, register)


@dataclass(frozen=True)
class SimSiamConfig:
    predictor: bool = predictor_knob(" SimSiam without it collapses (paper Fig. 4).")
    stop_grad: bool = knob(True, "Stop-gradient",
                           "No gradient through the target branch. SimSiam without it collapses (paper Fig. 4).")
    predictor_lr_scale: float = knob(
        1.0, "Predictor learning rate (× lr)", "The predictor's learning rate as a fraction of lr (paper Fig. B.6: "
        "1 %…100 %).", stops=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), range=(0.0, 100.0),
        low_open=True, sweep=(0.01, 1.0, True))  # issue 12's phase diagram: Fig. B.6's 1 %…100 % against the lr
    predictor_hidden: int = predictor_hidden_knob()
    # SimSiam's ImageNet recipe keeps the predictor's lr fixed while the rest follows the schedule
    # (the trainer honours the group's `fixed_lr`); the toy trainer has no schedule.
    predictor_fixed_lr: bool = knob(False, "Fixed predictor lr", "The predictor's lr stays at its start value "
                                    "while the rest follows the schedule (SimSiam's recipe).", scale="imagenet")

    def __post_init__(self):
        check_knobs(self)


@register
class SimSiam(Method):
    name = "simsiam"
    label = "SimSiam"
    Config = SimSiamConfig
    structural_knobs = ("predictor_hidden", "predictor_fixed_lr")  # layers or optimizer groups: fixed for a run
    toggled_modules = {"predictor": "predictor"}  # off mid-run: unused; on: only where the run was built with it
    collapse_loss = "-1"
    signature = (CENTER, CONCENTRATED, LOSS_AT_COLLAPSE, RANK)

    def __init__(self, cfg, seeds, in_dim, dim, hidden=64, **kw):
        super().__init__(cfg, seeds, in_dim, dim, hidden, **kw)
        self.predictor = predictor_head(self.head_gens, dim, cfg.predictor_hidden, cfg.predictor)

    @classmethod
    def pull_prediction(cls, cfg):
        if not cfg.stop_grad:
            return ALONG, ("§3.2: without stop-gradient eq. 18 and 25 no longer hold, so nothing in the loss "
                           "cancels the center term: along s (Fig. 4).")
        if not cfg.predictor:
            return ALONG, f"Without the predictor the loss is −⟨z_a, sg z_b⟩: {EQ4_PULL} (§2.3, §3.2, Fig. 4)."
        return NOT_ALONG, ("§2.3: the fast predictor maps z^{t−1}_a to z^{t−1}_b, so the loss is ≈ the shift of "
                           "the features between iterations (eq. 24–25) and the center term drops out: no pull "
                           "along s.")

    fused_knobs = ("predictor", "stop_grad", "predictor_lr_scale", "predictor_hidden", "predictor_fixed_lr")
    seed_knobs = ("predictor_lr_scale",)  # only the optimizer reads it

    def fused_head(self, yt, b):
        predictor = self.active_predictor
        if predictor is None and self.predictor is not None:  # turned off mid-run: written, not accumulated
            for p in self.predictor.parameters():
                p.grad.zero_()
        pt, cache = fused.predictor_forward(predictor, yt, b) if predictor is not None else (yt, None)
        pn, np_ = fused.norm_forward(pt)
        zn, nz = (pn, np_) if cache is None else fused.norm_forward(yt)
        target = fused.swap_views(zn)  # view 2's z for view 1's p and back
        cos = (pn * target).sum(1)  # (K, 2B)
        loss = cos.sum(1).mul_(-0.5 / b)
        g = -0.5 / b
        gp = fused.norm_backward(pn, np_, target * g)
        gyt = fused.predictor_backward(predictor, gp, cache) if cache is not None else gp
        if not self.cfg.stop_grad:
            gyt = gyt + fused.norm_backward(zn, nz, fused.swap_views(pn * g))
        return loss, gyt

    def loss(self, x1, x2):
        z1, z2 = self.encoder(x1)[1], self.encoder(x2)[1]
        p1, p2 = online_predictions(self.active_predictor, z1, z2)
        t1, t2 = (z1.detach(), z2.detach()) if self.cfg.stop_grad else (z1, z2)
        return 0.5 * (negative_cosine(p1, t2) + negative_cosine(p2, t1)), {}

    def param_groups(self, lr):
        if self.predictor is None:
            return super().param_groups(lr)
        head = {"params": list(self.predictor.parameters()), "lr": lr * self.knob_value("predictor_lr_scale")}
        if self.cfg.predictor_fixed_lr:
            head["fixed_lr"] = True
        return [{"params": list(self.encoder.parameters()), "lr": lr}, head]
