"""SwAV (Caron et al., 2020): swapped prediction of Sinkhorn-Knopp codes over prototypes.

Defaults from SwAV: ε = 0.05, 3 Sinkhorn iterations, temperature 0.1; 16 prototypes for a 3-class
toy instead of 3,000. `fixed_prototypes` freezes them at their random start (paper Fig. 6: still no
collapse); `sinkhorn_iters = 0` replaces Sinkhorn by a plain softmax, which drops the equipartition.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lab import geometry as geo
from lab.checks import check_knobs, knob
from lab.dist import all_reduce_max, all_reduce_sum, is_dist, world_size
from lab.methods.base import PROTOTYPE_STOPS, TEMPERATURE_STOPS, Method, register


@dataclass(frozen=True)
class SwAVConfig:
    fixed_prototypes: bool = knob(False, "Fixed prototypes", "Keep the prototypes at their random start "
                                  "(paper Fig. 6).")
    n_prototypes: int = knob(16, "Prototypes", stops=PROTOTYPE_STOPS, range=(2, 100_000))
    epsilon: float = knob(0.05, "Sinkhorn ε", stops=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), range=(0.0, 10.0),
                          low_open=True)
    sinkhorn_iters: int = knob(3, "Sinkhorn iterations", "0 = no Sinkhorn-Knopp equipartition.",
                               stops=(0, 1, 2, 3, 5, 10), range=(0, 100))
    temperature: float = knob(0.1, "Temperature τ", stops=TEMPERATURE_STOPS, range=(0.0, 10.0), low_open=True)

    def __post_init__(self):
        check_knobs(self)


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float, iters: int) -> torch.Tensor:
    """Codes that split the batch evenly over the prototypes. scores: (K, B, P) -> q: (K, B, P), rows sum to 1.

    iters = 0: a plain softmax(scores/ε), no equipartition.
    """
    if iters == 0:
        return torch.softmax(scores / epsilon, dim=-1)
    if is_dist():
        return _sinkhorn_global(scores, epsilon, iters)
    q = torch.exp((scores - scores.amax(dim=(1, 2), keepdim=True)) / epsilon)
    q = q / q.sum(dim=(1, 2), keepdim=True)
    b, p = q.shape[1], q.shape[2]
    for _ in range(iters):
        q = q / (q.sum(1, keepdim=True) * p)  # each prototype gets 1/P of the mass
        q = q / (q.sum(2, keepdim=True) * b)  # each sample 1/B
    return q * b


def _sinkhorn_global(scores: torch.Tensor, epsilon: float, iters: int) -> torch.Tensor:
    """Sinkhorn over the batch of all ranks (as the SwAV repo does): the sums over samples and the
    shift for stability are all-reduced; each rank keeps the codes of its own samples. (K, B, P) -> (K, B, P)."""
    q = torch.exp((scores - all_reduce_max(scores.amax(dim=(1, 2), keepdim=True))) / epsilon)
    q = q / all_reduce_sum(q.sum(dim=(1, 2), keepdim=True))
    b, p = q.shape[1] * world_size(), q.shape[2]
    for _ in range(iters):
        q = q / (all_reduce_sum(q.sum(1, keepdim=True)) * p)
        q = q / (q.sum(2, keepdim=True) * b)
    return q * b


def swav_loss(scores1: torch.Tensor, scores2: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """Swapped prediction: each view predicts the other's code. scores, q: (K, B, P) -> (K,)."""
    l1 = -(q2 * torch.log_softmax(scores1 / temperature, -1)).sum(-1).mean(-1)
    l2 = -(q1 * torch.log_softmax(scores2 / temperature, -1)).sum(-1).mean(-1)
    return 0.5 * (l1 + l2)


@register
class SwAV(Method):
    name = "swav"
    label = "SwAV"
    Config = SwAVConfig
    collapse_loss = "ln P (codes spread evenly, features carry no information)"

    @classmethod
    def collapse_value(cls, cfg, dim, batch):
        return math.log(cfg.n_prototypes)

    def __init__(self, cfg, seeds, in_dim, dim, hidden=64, **kw):
        super().__init__(cfg, seeds, in_dim, dim, hidden, **kw)
        start = torch.stack([torch.randn(dim, cfg.n_prototypes, generator=g) for g in self.head_gens])
        self.prototypes = nn.Parameter(geo.normalize(start.transpose(1, 2)).transpose(1, 2),
                                       requires_grad=not cfg.fixed_prototypes)

    def loss(self, x1, x2):
        z1, z2 = geo.normalize(self.encoder(x1)[1]), geo.normalize(self.encoder(x2)[1])
        s1, s2 = torch.bmm(z1, self.prototypes), torch.bmm(z2, self.prototypes)
        q1 = sinkhorn(s1.detach(), self.cfg.epsilon, self.cfg.sinkhorn_iters)
        q2 = sinkhorn(s2.detach(), self.cfg.epsilon, self.cfg.sinkhorn_iters)
        return swav_loss(s1, s2, q1, q2, self.cfg.temperature), {}

    @torch.no_grad()
    def after_step(self, progress):
        self.prototypes.copy_(geo.normalize(self.prototypes.transpose(1, 2)).transpose(1, 2))
