"""DINO (Caron et al., 2021): student vs EMA teacher over K prototypes, teacher centered and sharpened.

L = Σ_views CE(softmax((t − C)/τ_t), log_softmax(s/τ_s)), C ← m·C + (1 − m)·mean(t).
Defaults from DINO: student temperature 0.1, teacher temperature 0.04, center momentum 0.9,
teacher momentum 0.996. Without centering the teacher's softmax settles on one prototype and the
features collapse (paper Fig. B.4).

Why 16 prototypes on the toy's 3-D output (written before any toy verdict read it). The logits are
cosines between a feature and K unit prototypes, so a softmax at temperature τ can tell two prototypes
θ apart by a logit gap of (1 − cos θ)/τ. DINO's student must be able to put most of its mass on one
prototype when its feature sits on it (the teacher's sharpened targets are nearly one-hot); with n
nearest neighbours at angle θ_K that mass is 1 / (1 + n e^{−(1 − cos θ_K)/τ_s}). Asking for ≥ 0.9 with
n = 5 (a well-spread arrangement on the sphere) at DINO's τ_s = 0.1 needs 1 − cos θ_K ≥ 0.1 ln 45 = 0.38,
θ_K ≥ 52°. The best any K points on S² can do is the Tammes angle: 63.4° for 12, 52.2° for 16, 47.4° for
20, 37.5° for 32. So K = 16 is the most prototypes the student can still tell apart; at the former 32
its best one-prototype mass is about 0.6. The temperatures stay DINO's: τ_s = 0.1 sets the gap above,
and τ_t = 0.04 (the ratio 0.4 DINO sharpens by) gives the teacher a gap of 9.7 at 52°, one-hot targets.
On the circle (D = 2) a prototype has two neighbours and K of them are at best 360°/K apart: the same
ask needs θ ≥ 45°, so 8 or fewer there; the default is the sphere's, the toy's default D.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from lab.core import geometry as geo
from lab.core.checks import check_knobs, knob
from lab.core.collapse import CENTER, CONCENTRATED, COMPLETE, RANK, UNIFORM, Sign
from lab.core.dist import all_reduce_sum, is_dist, world_size
from lab.core.pull import ALONG, NOT_ALONG
from lab.methods.base import PROTOTYPE_STOPS, TEMPERATURE_STOPS, Method, encode_views, joint_bn_knob, register
from lab.core.nn import SeedLinear, ema_update
from lab.core.schedules import cosine_to_one, linear_warmup


@dataclass(frozen=True)
class DINOConfig:
    centering: bool = knob(True, "Centering", "Subtract an EMA of the teacher's batch mean. DINO without it "
                           "collapses (paper Fig. B.4).")
    center_momentum: float = knob(0.9, "Center momentum", stops=(0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0),
                                  range=(0.0, 1.0))
    temperature: float = knob(0.1, "Temperature τ", stops=TEMPERATURE_STOPS, range=(0.0, 10.0), low_open=True)
    teacher_temperature: float = knob(0.04, "Teacher temperature",
                                      stops=(0.01, 0.02, 0.04, 0.07, 0.1, 0.2, 0.5, 1.0), range=(0.0, 10.0),
                                      low_open=True)
    teacher_momentum: float = knob(0.996, "Teacher EMA momentum", stops=(0.0, 0.9, 0.99, 0.996, 0.999, 1.0),
                                   range=(0.0, 1.0))
    # 16: the most the student's softmax at τ 0.1 can tell apart on the sphere (module docstring)
    n_prototypes: int = knob(16, "Prototypes", stops=PROTOTYPE_STOPS, range=(2, 65536), head_size=True)
    # The ImageNet recipe's schedules (all off by default): teacher EMA momentum cosine to 1, and the
    # teacher temperature from `teacher_temperature` linearly to `teacher_temperature_final` over the
    # first `teacher_temperature_warmup` of training (a fraction; 0 = constant `teacher_temperature`).
    teacher_momentum_schedule: bool = knob(False, "Teacher momentum schedule", scale="imagenet")
    teacher_temperature_final: float = knob(0.07, "Final teacher temperature", range=(0.0, 10.0), low_open=True,
                                            scale="imagenet")
    teacher_temperature_warmup: float = knob(0.0, "Teacher temperature warmup (fraction of training)",
                                             range=(0.0, 1.0), scale="imagenet")
    # DINO's main_dino.py and solo-learn keep the last layer (the prototypes) fixed for the first epoch
    # (`freeze_last_layer` 1): a fraction of training here, as SwAV's prototype freeze.
    last_layer_freeze: float = knob(0.0, "Last-layer freeze", "The fraction of training during which the "
                                    "prototypes (the head's last layer) get no gradient.",
                                    stops=(0.0, 0.0025, 0.01, 0.1), range=(0.0, 1.0), scale="imagenet")
    joint_bn: bool = joint_bn_knob()

    def __post_init__(self):
        check_knobs(self)


class DINOHead(nn.Module):
    """Normalised bottleneck -> weight-normalised prototypes. y: (K, B, D) -> logits (K, B, P)."""

    def __init__(self, gens, dim: int, n_prototypes: int):
        super().__init__()
        self.last = SeedLinear(gens, dim, n_prototypes, bias=False)

    def forward(self, y: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """frozen: the prototypes take no gradient (DINO's last-layer freeze)."""
        w = self.last.weight.detach() if frozen else self.last.weight
        return torch.bmm(geo.normalize(y), geo.normalize(w.transpose(1, 2)).transpose(1, 2))


def teacher_batch_mean(t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """Mean teacher logit over both views and, under DDP, over every rank's batch. t: (K, B, P) -> (K, 1, P)."""
    t = torch.cat([t1, t2], dim=1)
    if not is_dist():
        return t.mean(1, keepdim=True)
    return all_reduce_sum(t.sum(1, keepdim=True)) / (t.shape[1] * world_size())


def dino_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor, tau_s: float,
              tau_t: float) -> torch.Tensor:
    """Cross-entropy of the centered, sharpened teacher against the student.

    student, teacher: (K, B, P) logits of different views; center: (K, 1, P) -> (K,).
    """
    target = torch.softmax((teacher - center) / tau_t, dim=-1)
    return -(target * torch.log_softmax(student / tau_s, dim=-1)).sum(-1).mean(-1)


@register
class DINO(Method):
    name = "dino"
    label = "DINO"
    Config = DINOConfig
    structural_knobs = ("n_prototypes",)  # layers or optimizer groups: fixed for a run
    collapse_loss = "0 with one prototype taking all (teacher entropy 0), ln K if uniform"
    signature = (CENTER, CONCENTRATED, Sign(COMPLETE, "teacher_entropy", "≤", "teacher_entropy_max", 0.05),
                 Sign(UNIFORM, "teacher_sample_entropy", "≥", "teacher_entropy_max", 0.95), RANK)

    @classmethod
    def collapse_value(cls, cfg, dim, batch):
        return math.log(cfg.n_prototypes)  # the uniform teacher, the collapse centering leads to

    @classmethod
    def pull_prediction(cls, cfg):
        if not cfg.centering:
            return ALONG, "Without centering the teacher keeps its center and the pull goes along s (§2.5, Fig. B.4)."
        return NOT_ALONG, ("§2.5: subtracting the EMA center C ≈ E[z] from the teacher removes the center term: "
                           "no pull along s, or against it.")

    def __init__(self, cfg, seeds, in_dim, dim, hidden=64, **kw):
        super().__init__(cfg, seeds, in_dim, dim, hidden, **kw)
        self.head = DINOHead(self.head_gens, dim, cfg.n_prototypes)
        self.teacher = copy.deepcopy(nn.ModuleDict({"encoder": self.encoder, "head": self.head}))
        self.teacher.requires_grad_(False)
        self.register_buffer("center", torch.zeros(self.k, 1, cfg.n_prototypes))
        self.progress = 0.0  # of training, as the last after_step saw it (the temperature schedule)

    @property
    def teacher_temp(self) -> float:
        c = self.cfg
        return linear_warmup(self.progress, c.teacher_temperature, c.teacher_temperature_final,
                             c.teacher_temperature_warmup)

    def teacher_ema(self, progress: float) -> float:
        c = self.cfg
        return cosine_to_one(progress, c.teacher_momentum) if c.teacher_momentum_schedule else c.teacher_momentum

    def _teacher_logits(self, x):
        return self.teacher["head"](self.teacher["encoder"](x)[1])

    def loss(self, x1, x2):
        frozen, joint = self.progress < self.cfg.last_layer_freeze, self.cfg.joint_bn
        (_, y1), (_, y2) = encode_views(self.encoder, x1, x2, joint)
        s1, s2 = self.head(y1, frozen), self.head(y2, frozen)
        with torch.no_grad():
            (_, u1), (_, u2) = encode_views(self.teacher["encoder"], x1, x2, joint)
            t1, t2 = self.teacher["head"](u1), self.teacher["head"](u2)
        c, ts, tt = self.center, self.cfg.temperature, self.teacher_temp
        loss = 0.5 * (dino_loss(s1, t2, c, ts, tt) + dino_loss(s2, t1, c, ts, tt))
        if self.cfg.centering:
            with torch.no_grad():
                self.center.lerp_(teacher_batch_mean(t1, t2), 1.0 - self.cfg.center_momentum)
        return loss, {}

    def resume_at(self, progress):
        self.progress = progress

    def after_step(self, progress):
        self.progress = progress
        m = self.teacher_ema(progress)
        ema_update(self.teacher["encoder"], self.encoder, m)
        ema_update(self.teacher["head"], self.head, m)

    @torch.no_grad()
    def extra_metrics(self, x):
        """teacher_entropy: entropy of the mean teacher distribution over x; teacher_sample_entropy: the mean
        over x of each sample's teacher entropy. Both against ln K: a healthy teacher reads ln K on the first
        (every prototype used) and far below it on the second (each sample sharp); a uniform collapse reads ln K
        on both; a one-prototype collapse 0 on both. x: (K, N, d) -> (K,) each."""
        t = torch.softmax((self._teacher_logits(x) - self.center) / self.teacher_temp, dim=-1)
        mean = t.mean(1)
        per_sample = -(t * t.clamp_min(1e-12).log()).sum(-1).mean(-1)
        return {"teacher_entropy": -(mean * mean.clamp_min(1e-12).log()).sum(-1),
                "teacher_sample_entropy": per_sample,
                "teacher_entropy_max": torch.full((self.k,), math.log(self.cfg.n_prototypes))}
