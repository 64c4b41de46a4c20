"""SwAV (Caron et al., 2020): swapped prediction of Sinkhorn-Knopp codes over prototypes.

Defaults from SwAV: ε = 0.05, 3 Sinkhorn iterations, temperature 0.1; 16 prototypes for a 3-class
toy instead of 3,000. `fixed_prototypes` freezes them at their random start (paper Fig. 6: still no
collapse); `sinkhorn_iters = 0` replaces Sinkhorn by a plain softmax, which drops the equipartition.

The ImageNet recipe's two stabilisers are knobs (off on the toy, whose batch of 64 sees 4 samples per
prototype): `queue_size` past features per view join the batch in Sinkhorn, from `queue_start` (a fraction of
training) once the queue is full, as in SwAV's main_swav.py, because 3,000 prototypes in a batch of 256 see
under 0.1 sample each and Sinkhorn's equipartition over so few samples is mostly noise; `prototype_freeze`
(a fraction of training) keeps the prototypes out of the gradient at first (SwAV's freeze_prototypes_niters).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lab.core import geometry as geo
from lab.core.checks import check_knobs, knob
from lab.core.collapse import CENTER, CONCENTRATED, RANK, UNIFORM, Sign
from lab.core.dist import all_reduce_max, all_reduce_sum, is_dist, world_size
from lab.core.pull import NOT_ALONG
from lab.methods.base import PROTOTYPE_STOPS, TEMPERATURE_STOPS, Method, encode_views, joint_bn_knob, register


@dataclass(frozen=True)
class SwAVConfig:
    fixed_prototypes: bool = knob(False, "Fixed prototypes", "Keep the prototypes at their random start "
                                  "(paper Fig. 6).")
    n_prototypes: int = knob(16, "Prototypes", stops=PROTOTYPE_STOPS, range=(2, 100_000), head_size=True)
    epsilon: float = knob(0.05, "Sinkhorn ε", stops=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), range=(0.0, 10.0),
                          low_open=True)
    sinkhorn_iters: int = knob(3, "Sinkhorn iterations", "0 = no Sinkhorn-Knopp equipartition.",
                               stops=(0, 1, 2, 3, 5, 10), range=(0, 100))
    temperature: float = knob(0.1, "Temperature τ", stops=TEMPERATURE_STOPS, range=(0.0, 10.0), low_open=True)
    queue_size: int = knob(0, "Queue", "Past features per view that join the batch in Sinkhorn (0 = none).",
                           stops=(0, 64, 256, 1024, 3840), range=(0, 1_000_000), head_size=True)
    queue_start: float = knob(0.0, "Queue from", "The fraction of training after which the queue fills and, "
                              "once full, is used.", stops=(0.0, 0.125, 0.25, 0.5), range=(0.0, 1.0))
    prototype_freeze: float = knob(0.0, "Prototype freeze", "The fraction of training during which the "
                                   "prototypes get no gradient.", stops=(0.0, 0.005, 0.05, 0.2), range=(0.0, 1.0))
    joint_bn: bool = joint_bn_knob()

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
    structural_knobs = ("n_prototypes", "fixed_prototypes", "queue_size")  # layers or optimizer groups: fixed for a run
    collapse_loss = "ln P (codes spread evenly, features carry no information)"
    signature = (CENTER, CONCENTRATED, Sign(UNIFORM, "code_sample_entropy", "≥", "code_entropy_max", 0.95), RANK)

    @classmethod
    def collapse_value(cls, cfg, dim, batch):
        return math.log(cfg.n_prototypes)

    @classmethod
    def pull_prediction(cls, cfg):
        if cfg.sinkhorn_iters == 0:
            return None, "Without Sinkhorn-Knopp the codes need not spread; §A.1 gives no sign for a plain softmax."
        return NOT_ALONG, ("§A.1, eq. 33–36: Sinkhorn spreads the codes evenly over prototypes spread on the "
                           "sphere, so the targets' center is ≈ 0: no pull along s, or against it.")

    def __init__(self, cfg, seeds, in_dim, dim, hidden=64, **kw):
        super().__init__(cfg, seeds, in_dim, dim, hidden, **kw)
        start = torch.stack([torch.randn(dim, cfg.n_prototypes, generator=g) for g in self.head_gens])
        self.prototypes = nn.Parameter(geo.normalize(start.transpose(1, 2)).transpose(1, 2),
                                       requires_grad=not cfg.fixed_prototypes)
        # Past normalised features per view (newest first) and how many are filled: state, so checkpointed.
        # Each rank keeps its share, queue_size // world (SwAV's main_swav.py): the Sinkhorn over all ranks
        # then sees queue_size past features per view, as one process does.
        self.queue_len = cfg.queue_size // world_size()
        if cfg.queue_size and not self.queue_len:
            raise ValueError(f"queue_size must be 0 or at least the world size {world_size()}, got {cfg.queue_size}")
        self.register_buffer("queue", torch.zeros(self.k, 2, self.queue_len, dim))
        self.register_buffer("queue_filled", torch.zeros(self.k, dtype=torch.long))  # per seed, all alike
        # The fraction of training done, as the last after_step saw it: a buffer, so a resumed run goes on
        # with the freeze and the queue where it stopped.
        self.register_buffer("progress", torch.zeros(self.k, dtype=torch.float64))

    def loss(self, x1, x2):
        (_, y1), (_, y2) = encode_views(self.encoder, x1, x2, self.cfg.joint_bn)
        z1, z2 = geo.normalize(y1), geo.normalize(y2)
        progress = float(self.progress[0])
        frozen = progress < self.cfg.prototype_freeze
        prototypes = self.prototypes.detach() if frozen else self.prototypes
        s1, s2 = torch.bmm(z1, prototypes), torch.bmm(z2, prototypes)
        q1, q2 = self._codes(s1.detach(), 0), self._codes(s2.detach(), 1)
        if self.cfg.queue_size and progress >= self.cfg.queue_start:
            self._enqueue(z1.detach(), z2.detach())
        return swav_loss(s1, s2, q1, q2, self.cfg.temperature), {}

    def _codes(self, scores: torch.Tensor, view: int) -> torch.Tensor:
        """Sinkhorn codes of a batch's scores (K, B, P), over the batch and, once full, the view's queue."""
        c = self.cfg
        if not self.queue_len or int(self.queue_filled[0]) < self.queue_len:
            return sinkhorn(scores, c.epsilon, c.sinkhorn_iters)
        queued = torch.bmm(self.queue[:, view], self.prototypes.detach())
        return sinkhorn(torch.cat([scores, queued], dim=1), c.epsilon, c.sinkhorn_iters)[:, :scores.shape[1]]

    @torch.no_grad()
    def _enqueue(self, z1: torch.Tensor, z2: torch.Tensor) -> None:
        """Push this rank's batch features (K, B, D) in front of each view's queue, dropping the oldest."""
        new = torch.stack([z1, z2], dim=1)[:, :, : self.queue_len]
        self.queue.copy_(torch.cat([new, self.queue], dim=2)[:, :, : self.queue_len])
        self.queue_filled.fill_(min(self.queue_len, int(self.queue_filled[0]) + new.shape[2]))

    def extra_metrics(self, x):
        """code_entropy: entropy of the batch-mean prediction softmax(z·c / τ) over the P prototypes;
        code_sample_entropy: the mean over x of each sample's; code_entropy_max: ln P. A uniform collapse reads
        ln P on both. x: (K, N, d) -> (K,) each."""
        z = geo.normalize(self.encoder(x)[1])
        p = torch.softmax(torch.bmm(z, self.prototypes) / self.cfg.temperature, dim=-1)
        mean = p.mean(1)
        return {"code_entropy": -(mean * mean.clamp_min(1e-12).log()).sum(-1),
                "code_sample_entropy": -(p * p.clamp_min(1e-12).log()).sum(-1).mean(-1),
                "code_entropy_max": torch.full((self.k,), math.log(self.cfg.n_prototypes))}

    @torch.no_grad()
    def after_step(self, progress):
        self.progress.fill_(progress)
        self.prototypes.copy_(geo.normalize(self.prototypes.transpose(1, 2)).transpose(1, 2))
