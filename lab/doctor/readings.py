"""The doctor's readings of an embedding, streamed over chunks of rows so that a 1 M × 2048 memory-mapped .npy
needs bounded memory: a chunk holds at most `CHUNK_ROWS` rows and `CHUNK_VALUES` values (64 MiB as float64),
and every accumulator is float64 of size D or D × D.

Each row is put on the unit sphere first (the sphere the SSL losses see, where no sample weighs more than
another: a row with 1,000× the norm of the others counts once); rows with a NaN or an inf, or of norm zero, have
no direction: they are counted (`skipped_rows`) and left out. Two passes over the rows:
1. the count, the sum and the sum of outer products of the normalised rows: the mean s, ‖s‖ (`center_norm`),
   and the scatter Σ (z_i − s)(z_i − s)ᵀ (N × their covariance), whose eigenvalues λ_i give the singular values
   σ_i = √λ_i of the (N, D) matrix of centered rows: the spectrum, the effective rank, the per-dimension std;
2. each row's cosine to s/‖s‖: `center_share`, `median_cosine`.
The scatter squares the rows' spread, so it resolves no σ below about √(D·ε)·σ_max (3e-7·σ_max at D = 512)
where an SVD of the rows resolves ε·σ_max: eigenvalues under D·ε·λ_max are the round-off of the sums and read 0.
Such σ move the effective rank by ~1e-5 relative at most (rows exactly in a subspace, stored as float32); on rows
of full numerical rank it equals `lab.core.metrics.effective_rank` to ~1e-12. A streamed QR of the centered rows
(SVD-exact) took 3× as long: 67 s against 21 s for 50,000 × 2048 on 2 busy cores.
Then samples (seeded): kNN accuracy with labels, alignment and uniformity with views, and the points the rows
sit on (`points`, for prototype collapse).
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import torch

from lab.core import metrics
from lab.core.vocab import COLLAPSE_THRESHOLD
from lab.doctor.load import Embeddings

CHUNK_ROWS = 65_536
CHUNK_VALUES = 1 << 23  # 64 MiB of float64 per chunk whatever D: 4,096 rows at D = 2048
HISTOGRAM_BINS = 2_000  # cosines in [-1, 1] in bins of width 1e-3
KNN_SAMPLE, KNN_FOLDS = 10_000, 5
PAIR_SAMPLE = 5_000
POINT_SAMPLE = 2_000
# Two rows within arccos(0.999) ≈ 2.6° of each other are one point: a healthy embedding of 2,000 rows in D ≥ 8
# puts almost no two rows that close, a point with noise puts all of its rows within it.
POINT_COSINE = 0.999
POINTS_READ_MAX = 64  # more points than this read as None: too many to be a few
SHIFT_ROWS = 4_096  # the sums are taken about the mean direction of the first rows (see `_scatter_pass`)
EPS = 1e-12  # the norm below which a direction is undefined (`lab.core.geometry.normalize`'s clamp)


def readings(emb: Embeddings, chunk: int = CHUNK_ROWS, seed: int = 0) -> dict[str, Any]:
    """The readings of `emb` (z: (N, D), optional labels (N,) and views (N, D)) as a JSON-able dict:
    n (rows in the file), dim, skipped_rows, center_norm, center_share, median_cosine, effective_rank,
    effective_rank_max (= D), std_normalized, std_healthy (1/√D), spectrum (D singular values, descending),
    points; with labels: n_classes, knn_acc, knn_sample; with views: alignment, uniformity, pair_sample.
    chunk: rows per chunk (the results do not depend on it beyond rounding); seed: of every sample."""
    n, dim = emb.z.shape
    count, skipped, mean, scatter = _scatter_pass(emb.z, chunk)
    if count < 2:
        raise ValueError(f"{emb.source}: {count} of {n} rows have a direction (finite, non-zero); expected at "
                         "least 2")
    out = {"n": int(n), "dim": int(dim), "skipped_rows": int(skipped), "center_norm": float(np.linalg.norm(mean))}
    out |= _cosine_pass(emb.z, mean, count, chunk) | spectrum_readings(scatter, count)
    out["points"] = points(emb.z, seed)
    if emb.labels is not None:
        out |= knn_readings(emb.z, emb.labels, seed)
    if emb.views is not None:
        out |= view_readings(emb.z, emb.views, seed)
    return out


def chunks(z: Any, chunk: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """z: (N, D) -> float64 blocks of at most `chunk` rows and `CHUNK_VALUES` values, in order."""
    n, dim = z.shape
    step = max(1, min(chunk, CHUNK_VALUES // dim))
    for start in range(0, n, step):
        yield np.asarray(z[start:start + step], dtype=np.float64)


def sphere(block: np.ndarray) -> np.ndarray:
    """The rows of block (B, D) that have a direction, L2-normalised -> (B', D), B' <= B."""
    return _normalised(block)[0]


def _normalised(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """block: (B, D) -> (the rows that have a direction, L2-normalised: (B', D); which rows they are: (B,) bool).
    Each row is divided by its largest |value| first, so that a row of 1e200s does not overflow its norm to inf,
    nor one of 1e-200s underflow it to 0."""
    block = np.asarray(block, dtype=np.float64)
    finite = np.isfinite(block).all(axis=1)
    scale = np.abs(np.where(finite[:, None], block, 0.0)).max(axis=1, initial=0.0)
    keep = finite & (scale > 0)
    rows = block[keep] / scale[keep, None]
    return rows / np.linalg.norm(rows, axis=1, keepdims=True), keep


def _scatter_pass(z: Any, chunk: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(rows with a direction, rows skipped, their mean s (D,), their scatter Σ (u_i − s)(u_i − s)ᵀ (D, D)).
    The sums are taken about a shift, the mean direction of the first `SHIFT_ROWS` rows (whatever the chunk), so
    that the scatter of rows near one point is not the small difference of two large sums."""
    dim = z.shape[1]
    first = sphere(np.asarray(z[:SHIFT_ROWS]))
    shift = first.mean(axis=0) if len(first) else np.zeros(dim)
    count, skipped, total, outer = 0, 0, np.zeros(dim), np.zeros((dim, dim))
    for block in chunks(z, chunk):
        d = sphere(block) - shift
        count, skipped = count + len(d), skipped + len(block) - len(d)
        total += d.sum(axis=0)
        outer += d.T @ d
    scatter = outer - np.outer(total, total) / max(count, 1)
    return count, skipped, shift + total / max(count, 1), (scatter + scatter.T) / 2


def spectrum_readings(scatter: np.ndarray, count: int) -> dict[str, Any]:
    """From the scatter (D, D) of `count` normalised rows: spectrum (σ_i = √λ_i, i.e. √(λ_i(covariance)·N), D
    values descending), effective_rank (exp(entropy of σ/Σσ), as `lab.core.metrics.effective_rank`),
    effective_rank_max (D), std_normalized (lightly's std_of_l2_normalized: the mean over dimensions of each
    dimension's population std; 1/√D spread evenly, 0 at one point) and std_healthy (1/√D)."""
    dim = len(scatter)
    lam = np.clip(np.linalg.eigvalsh(scatter)[::-1], 0.0, None)
    lam[lam < dim * np.finfo(np.float64).eps * lam[0]] = 0.0  # the sums' round-off (module note)
    sigma = np.sqrt(lam)
    p = sigma / max(float(sigma.sum()), EPS)
    rank = math.exp(-float((p * np.log(np.maximum(p, EPS))).sum()))
    std = np.sqrt(np.clip(np.diag(scatter), 0.0, None) / count)
    return {"effective_rank": rank, "effective_rank_max": int(dim), "std_normalized": float(std.mean()),
            "std_healthy": 1 / math.sqrt(dim), "spectrum": [float(s) for s in sigma]}


def _cosine_pass(z: Any, mean: np.ndarray, count: int, chunk: int) -> dict[str, float]:
    """center_share: the share of rows whose cosine to s/‖s‖ is at least `COLLAPSE_THRESHOLD` (all cosines 0
    where s = 0, as `lab.core.geometry.center_cosines`). median_cosine: from a histogram of `HISTOGRAM_BINS` bins
    of width 1e-3 over [-1, 1], linear inside its bin: within 1e-3 of the exact median, in memory that does not
    grow with N (and no sample)."""
    direction = mean / max(float(np.linalg.norm(mean)), EPS)
    near, hist = 0, np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    for block in chunks(z, chunk):
        cos = sphere(block) @ direction
        near += int((cos >= COLLAPSE_THRESHOLD).sum())
        bins = np.clip(((cos + 1.0) * (HISTOGRAM_BINS / 2)).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        hist += np.bincount(bins, minlength=HISTOGRAM_BINS)
    return {"center_share": near / count, "median_cosine": _median(hist)}


def _median(hist: np.ndarray) -> float:
    """The median of the values counted in `hist` (bins of equal width over [-1, 1]), linear inside its bin."""
    half, before = hist.sum() / 2, np.cumsum(hist) - hist
    b = int(np.searchsorted(np.cumsum(hist), half))
    width = 2.0 / len(hist)
    return float(-1.0 + width * (b + (half - before[b]) / max(int(hist[b]), 1)))


def sample_rows(x: Any, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows `index` of x, normalised, and which of them have a direction. The index is sorted, so that a
    memmap is read front to back. x: (N, D), index: (M,) -> ((M, D) with zero rows where there is none, (M,))."""
    rows = np.asarray(x[index], dtype=np.float64)
    out = np.zeros_like(rows)
    u, ok = _normalised(rows)
    out[ok] = u
    return out, ok


def _sample_index(n: int, size: int, seed: int) -> np.ndarray:
    """`size` of range(n) without repeats, sorted (all of them, in order, where size >= n)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size, replace=False)) if size < n else np.arange(n)


def points(z: Any, seed: int = 0) -> int | None:
    """The fewest points the rows sit on: how many caps of angular radius arccos(`POINT_COSINE`) ≈ 2.6°, each
    centered on a sampled row, hold `COLLAPSE_THRESHOLD` (90 %) of a seeded sample of at most `POINT_SAMPLE`
    rows, chosen greedily (the cap holding most of the rows still uncovered first, so k tight clusters read k).
    None where that takes more than `POINTS_READ_MAX` caps, or a cap would hold one row only (rows spread, not
    sitting on points). z: (N, D) -> int or None."""
    u, ok = sample_rows(z, _sample_index(len(z), min(len(z), POINT_SAMPLE), seed))
    u = u[ok]
    if len(u) < 2:  # the sample fell on rows without a direction: no pair to read
        return None
    near = (u @ u.T) >= POINT_COSINE
    free = np.ones(len(u), dtype=bool)
    need, covered = math.ceil(COLLAPSE_THRESHOLD * len(u)), 0
    for k in range(1, POINTS_READ_MAX + 1):
        counts = near[:, free].sum(axis=1)
        best = int(counts.argmax())
        if counts[best] < 2:
            return None
        covered += int(counts[best])
        free &= ~near[best]
        if covered >= need:
            return k
    return None


def knn_readings(z: Any, labels: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """kNN accuracy (`lab.core.metrics.knn_accuracy`, its one protocol) on a seeded sample of at most
    `KNN_SAMPLE` rows by `KNN_FOLDS`-fold cross-validation: each fold the query, the other folds the bank; the
    share of all sampled rows told right. n_classes: the distinct labels of all N rows.
    z: (N, D), labels: (N,) -> {"n_classes", "knn_acc", "knn_sample"}."""
    names, codes = np.unique(labels, return_inverse=True)
    index = _sample_index(len(z), min(len(z), KNN_SAMPLE), seed)
    u, ok = sample_rows(z, index)
    u, y = torch.from_numpy(u[ok]).float(), torch.from_numpy(codes.reshape(-1)[index][ok])
    out: dict[str, Any] = {"n_classes": int(len(names))}
    if len(u) < KNN_FOLDS:
        return out
    folds = np.array_split(np.random.default_rng(seed).permutation(len(u)), KNN_FOLDS)
    hits = 0.0
    for i, fold in enumerate(folds):
        bank = torch.from_numpy(np.concatenate([f for j, f in enumerate(folds) if j != i]))
        query = torch.from_numpy(fold)
        acc = metrics.knn_accuracy(u[bank][None], y[bank], u[query][None], y[query], n_classes=len(names),
                                   chunk=1024)
        hits += float(acc[0]) * len(fold)
    return out | {"knn_acc": hits / len(u), "knn_sample": int(len(u))}


def view_readings(z: Any, views: Any, seed: int = 0) -> dict[str, Any]:
    """Alignment and uniformity (Wang & Isola, 2020; `lab.core.metrics`) on a seeded sample of at most
    `PAIR_SAMPLE` pairs of normalised rows (pairs where either view has no direction left out). uniformity:
    the mean of the two views' (their loss's convention). z, views: (N, D) -> {"alignment", "uniformity",
    "pair_sample"}."""
    index = _sample_index(len(z), min(len(z), PAIR_SAMPLE), seed)
    (u1, ok1), (u2, ok2) = sample_rows(z, index), sample_rows(views, index)
    ok = ok1 & ok2
    if ok.sum() < 2:
        return {}
    a, b = torch.from_numpy(u1[ok]).float()[None], torch.from_numpy(u2[ok]).float()[None]
    uniformity = (float(metrics.uniformity(a)[0]) + float(metrics.uniformity(b)[0])) / 2
    return {"alignment": float(metrics.alignment(a, b)[0]), "uniformity": uniformity, "pair_sample": int(ok.sum())}
