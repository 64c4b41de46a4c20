"""Representation metrics beyond the center (pure functions; a leading seed dimension K passes through).

Center metrics live in `lab.core.geometry`. Here: kNN and linear accuracy, alignment and uniformity
(Wang & Isola, 2020), effective rank (Roy & Vetterli, 2007).
"""
from __future__ import annotations

import math

import torch

from lab.core import geometry as geo
from lab.core.vocab import COLLAPSE_THRESHOLD

# The one kNN protocol of the lab (the toy trainer's knn_acc and the ImageNet engine's config.json).
KNN_PROTOCOL = ("weighted kNN (InstDisc/DINO vote): each of the k nearest bank features by cosine similarity "
                "(L2-normalised features) votes for its class with weight exp(sim/T); the largest vote wins")


def knn_accuracy(bank: torch.Tensor, bank_y: torch.Tensor, query: torch.Tensor, query_y: torch.Tensor,
                 k: int = 20, temperature: float = 0.07, n_classes: int | None = None,
                 chunk: int | None = None) -> torch.Tensor:
    """Weighted kNN accuracy (`KNN_PROTOCOL`), on the device of its inputs.

    bank: (K, N, D) normalised, bank_y: (N,) or (K, N), query: (K, M, D) normalised,
    query_y: (M,) or (K, M) -> (K,) accuracy. chunk: queries per pass (memory K·chunk·N similarities
    instead of K·M·N; None: all at once).
    """
    kk, m = bank.shape[0], query.shape[1]
    bank_y, query_y = bank_y.expand(kk, -1), query_y.expand(kk, -1)
    n_classes = n_classes or int(max(bank_y.max(), query_y.max())) + 1
    step = m if chunk is None else chunk
    hits = [_knn_hits(bank, bank_y, query[:, s:s + step], query_y[:, s:s + step], k, temperature, n_classes)
            for s in range(0, max(m, 1), max(step, 1))]  # m = 0: one empty pass (accuracy nan, as before)
    return torch.cat(hits, -1).float().mean(-1)


def _knn_hits(bank: torch.Tensor, bank_y: torch.Tensor, query: torch.Tensor, query_y: torch.Tensor, k: int,
              temperature: float, n_classes: int) -> torch.Tensor:
    """(K, m) bool: whether each query's weighted vote names its label."""
    sim = torch.bmm(query, bank.transpose(1, 2))  # (K, m, N)
    top, idx = top_k_last(sim, min(k, bank.shape[1]))
    labels = torch.gather(bank_y.unsqueeze(1).expand(-1, idx.shape[1], -1), 2, idx)
    votes = torch.zeros(*top.shape[:2], n_classes, dtype=top.dtype, device=top.device)
    votes.scatter_add_(-1, labels, (top / temperature).exp())
    return votes.argmax(-1) == query_y


def top_k_last(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest values along the last dimension and their indices, in no particular order.

    x: (..., N) -> values (..., k), indices (..., k). The same values as `x.topk(k, sorted=False)`
    (among equal values either may pick any), ~1.4x faster on a CPU for k ≪ N: torch's topk
    costs ~9 ns per element, so it runs on fewer elements. Cut each row into blocks of b and keep
    the k blocks with the largest maxima: they hold a top-k, because fewer than k blocks can have a
    maximum above the k-th largest value v, and each chosen block with maximum v holds an element
    equal to v. Then topk over the k·b candidates; b ≈ √(N/k) balances the two topk calls.
    """
    n = x.shape[-1]
    b = max(1, round(math.sqrt(n / max(k, 1))))
    if k < 1 or b < 2 or n // b < k:  # too few blocks to gain anything
        return x.topk(k, dim=-1, sorted=False)
    blocks = -(-n // b)
    padded = x if blocks * b == n else torch.nn.functional.pad(x, (0, blocks * b - n), value=-math.inf)
    best = padded.unflatten(-1, (blocks, b)).amax(-1).topk(k, dim=-1, sorted=False)[1]  # (..., k)
    cand = (best.unsqueeze(-1) * b + torch.arange(b, device=x.device)).flatten(-2)  # (..., k·b) indices into padded
    values, pick = torch.gather(padded, -1, cand).topk(k, dim=-1, sorted=False)
    return values, torch.gather(cand, -1, pick)


def linear_accuracy(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor,
                    ridge: float = 1e-3, n_classes: int | None = None) -> torch.Tensor:
    """A linear classifier fit in closed form (ridge regression on one-hot labels, with bias).

    train: (K, N, D), train_y: (N,) or (K, N), test: (K, M, D), test_y: (M,) or (K, M) -> (K,) test accuracy.
    Closed form, so K seeds × epochs stay cheap.
    """
    kk = train.shape[0]
    train_y, test_y = train_y.expand(kk, -1), test_y.expand(kk, -1)
    n_classes = n_classes or int(max(train_y.max(), test_y.max())) + 1
    ones = torch.ones(*train.shape[:2], 1)
    a = torch.cat([train, ones], -1)
    target = torch.nn.functional.one_hot(train_y, n_classes).to(train.dtype)
    gram = a.transpose(1, 2) @ a + ridge * train.shape[1] * torch.eye(a.shape[-1])
    w = torch.linalg.solve(gram, a.transpose(1, 2) @ target)
    pred = torch.cat([test, torch.ones(*test.shape[:2], 1)], -1) @ w
    return (pred.argmax(-1) == test_y).float().mean(-1)


def alignment(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """E‖z1 − z2‖² over positive pairs (lower: more invariant). (K, N, D) -> (K,)."""
    return (z1 - z2).square().sum(-1).mean(-1)


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log E exp(−t‖z_i − z_j‖²) over pairs i ≠ j (lower: more uniform; 0 when collapsed). (K, N, D) -> (K,)."""
    n = z.shape[1]
    d2 = (2 - 2 * torch.bmm(z, z.transpose(1, 2))).clamp_min_(0)
    # Every term is at most 1 and the n diagonal terms are exactly exp(0) = 1: drop them after summing.
    total = torch.exp(d2.mul_(-t)).sum((1, 2)) - n
    return torch.log(total.clamp_min(1e-30) / (n * (n - 1)))


def effective_rank(z: torch.Tensor) -> torch.Tensor:
    """exp(entropy of the normalised singular values) of the centered features, in [1, D]. (K, N, D) -> (K,)."""
    s = torch.linalg.svdvals(z - z.mean(1, keepdim=True))
    p = s / s.sum(-1, keepdim=True).clamp_min(1e-12)
    return torch.exp(-(p * p.clamp_min(1e-12).log()).sum(-1))


def embedding_readings(y: torch.Tensor) -> dict[str, float]:
    """The readings `lab.core.collapse.EMBEDDING` judges, of any embedding: each sample put on the unit sphere
    first (the sphere the loss sees, where no sample weighs more than another), then ‖s‖, the share of samples
    within arccos(COLLAPSE_THRESHOLD) of the mean direction and the effective rank of the centered features, out
    of D. y: (N, D) -> dict of floats."""
    z = geo.normalize(y.double()).unsqueeze(0)
    return {"center_norm": float(geo.center_norm(z)),
            "center_share": float(geo.center_share(z, COLLAPSE_THRESHOLD)),
            "effective_rank": float(effective_rank(z)), "effective_rank_max": float(y.shape[-1])}
