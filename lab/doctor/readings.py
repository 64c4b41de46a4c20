"""The doctor's readings of an embedding, streamed over chunks of rows so that a 1 M × 2048 memory-mapped .npy
needs bounded memory: a chunk holds at most `CHUNK_ROWS` rows and `CHUNK_VALUES` values (64 MiB as float64),
every accumulator is float64 of size D or (D + k)², and a .npy is read through its file, not its mapping
(`_blocks`), so that the file's pages do not count as the process's memory.

Each row is put on the unit sphere first (the sphere the SSL losses see, where no sample weighs more than
another: a row with 1,000× the norm of the others counts once); rows with a NaN or an inf, or of norm zero, have
no direction: they are counted (`skipped_rows`) and left out. A seeded sample of `SHIFT_ROWS` rows gives the
shift c (its mean direction) and the k = `PROJECTED` directions Q it spreads most along. Two passes over the rows:
1. the count, the sum and the sum of outer products of d = u − c, each split as d = Q·a + r (a = Qᵀd, r = d − Q·a,
   in float64): the mean s, ‖s‖ (`center_norm`), and the scatter Σ (u_i − s)(u_i − s)ᵀ (N × their covariance),
   whose eigenvalues λ_i give the singular values σ_i = √λ_i of the (N, D) matrix of centered rows: the
   spectrum, the effective rank, the per-dimension std;
2. each row's cosine to s/‖s‖: `center_share` (exact), `median_cosine` (a histogram).

Speed, and what it costs in precision. The scatter is the work: N·D² multiply-adds, 4.3e12 for 1 M × 2048; in
float64 (BLAS syrk) that takes twice float32's time (4,096 × 2,080 rows: 0.43 s against 0.21 s on the lab's 2
busy cores). So its products are float32, summed over at most B = `PRODUCT_ROWS` = 4,096 rows, and those sums
accumulated in float64. A float32 sum of B products errs by at most B·2^-24 (2.4e-4) of the sum of their
magnitudes, about √B·2^-24 (4e-6) typically: entry (j, k) within that of √(Σ e_j² · Σ e_k²). Those errors scale
with the largest spread that shares the sums, so the rows are not multiplied as they come: c takes out the
common point (rows near one point would leave their scatter as the small difference of two large float32 sums),
and Q the few directions that dominate a collapsed spectrum (left in: 3 large directions over a tail of σ =
1e-4·σ_max, λ = 1e-8·λ_max, under float32's error of ~1e-7·λ_max, read the effective rank 5e-4 off, against 1e-9
with them out; 24 large directions need k ≥ 24, 1e-4 off with k = 16). The products of e = [a, r] then err
relative to their own blocks: Σ a·aᵀ to the large λ, Σ r·rᵀ to the spread left in r, and the cross block Σ a·rᵀ
moves a small eigenvalue only by its error squared over a large one (~(√B·2^-24)²·λ_r); rounding a and r to
float32 (2^-24 relative) enters squared. Any Q keeps this exact (r is what Q leaves, in float64), a good one
keeps the error small. Measured against float64: the spectrum within 6e-7·σ_max and the effective rank within
3e-7 relative (1e-9 typically) on rows of full rank, near one point (‖s‖ = 0.9996), with far outliers, on 5
and 100 points, in a subspace and with collapsed spectra (`tests/test_bench_doctor.py`). The std's diagonal,
Σ d and the mean are float64 (‖s‖ to ~1e-15). The cosines of pass 2 are float32 (within 4·D·2^-24, 5e-4 at
D = 2048, of float64's: `_cosines`), and the rows that close to the threshold are redone in float64: the share
is float64's.

The scatter squares the rows' spread, so it resolves no σ below about √(D·ε)·σ_max (3e-7·σ_max at D = 512)
where an SVD of the rows resolves ε·σ_max: eigenvalues under D·ε·λ_max are the round-off of the sums and read 0.
Such σ move the effective rank by ~1e-5 relative at most (rows exactly in a subspace, stored as float32).
Then samples (seeded): kNN accuracy with labels, alignment and uniformity with views, and the points the rows
sit on (`points`, for prototype collapse).
"""
from __future__ import annotations

import math
import mmap
import os
from typing import Any, Iterator

import numpy as np
import torch

from lab.core import metrics
from lab.core.vocab import COLLAPSE_THRESHOLD
from lab.doctor.load import Embeddings

CHUNK_ROWS = 65_536
CHUNK_VALUES = 1 << 23  # 64 MiB of float64 per chunk whatever D: 4,096 rows at D = 2048
CACHE_VALUES = 1 << 19  # 4 MiB of float64: the slices of a chunk worked on in cache (`_split_into`)
PRODUCT_ROWS = 4_096  # rows per float32 sum of products (module note): a chunk of more is summed in parts
HISTOGRAM_BINS = 2_000  # cosines in [-1, 1] in bins of width 1e-3
KNN_SAMPLE, KNN_FOLDS = 10_000, 5
PAIR_SAMPLE = 5_000
POINT_SAMPLE = 2_000
# Two rows within arccos(0.999) ≈ 2.6° of each other are one point: a healthy embedding of 2,000 rows in D ≥ 8
# puts almost no two rows that close, a point with noise puts all of its rows within it.
POINT_COSINE = 0.999
POINTS_READ_MAX = 64  # more points than this read as None: too many to be a few
SHIFT_ROWS = 4_096  # the sample that gives the shift and the projected directions (see `shift_and_basis`)
# Directions taken out of the float32 products: more than a collapsed spectrum has large ones (a few points, a
# few directions), and they widen the products by 2k/D only (3 % at D = 2048).
PROJECTED = 32
POWER_STEPS = 2  # subspace iterations for Q: any Q keeps the scatter exact, a good one keeps its error small
EPS = 1e-12  # the norm below which a direction is undefined (`lab.core.geometry.normalize`'s clamp)
ROUND32 = 2.0 ** -24  # float32's unit round-off
# A float32 row norm within these bounds is accurate to D·2^-24: no square under- or overflows float32's range.
NORM32_RANGE = (1e-15, 1e15)


def readings(emb: Embeddings, chunk: int = CHUNK_ROWS, seed: int = 0) -> dict[str, Any]:
    """The readings of `emb` (z: (N, D), optional labels (N,) and views (N, D)) as a JSON-able dict:
    n (rows in the file), dim, skipped_rows, center_norm, center_share, median_cosine, nonnegative, effective_rank,
    effective_rank_max (= D), std_normalized, std_healthy (1/√D), spectrum (D singular values, descending),
    points; with labels: n_classes, knn_acc, knn_sample, class_center_norm, class_centroid_cosine; with views: alignment, uniformity, pair_sample.
    chunk: rows per chunk (the results do not depend on it beyond rounding); seed: of every sample."""
    n, dim = emb.z.shape
    shift, basis = shift_and_basis(emb.z, seed)
    count, skipped, mean, scatter, diagonal = _scatter_pass(emb.z, chunk, shift, basis)
    if count < 2:
        raise ValueError(f"{emb.source}: {count} of {n} rows have a direction (finite, non-zero); expected at "
                         "least 2")
    out = {"n": int(n), "dim": int(dim), "skipped_rows": int(skipped), "center_norm": float(np.linalg.norm(mean))}
    out |= _cosine_pass(emb.z, mean, count, chunk) | spectrum_readings(scatter, count, diagonal)
    out["points"] = points(emb.z, seed)
    if emb.labels is not None:
        out |= knn_readings(emb.z, emb.labels, seed)
    if emb.views is not None:
        out |= view_readings(emb.z, emb.views, seed)
    return out


def _step(z: Any, chunk: int) -> int:
    return max(1, min(chunk, CHUNK_VALUES // z.shape[1]))


def _blocks(z: Any, step: int) -> Iterator[np.ndarray]:
    """z's rows in blocks of `step`, in order and in z's dtype, each in one buffer that the next block overwrites.
    A memory-mapped .npy is read with pread: through the mapping, every page read would stay in the process's
    resident memory (the whole file, 8 GB for 1 M × 2048, by the end) and cost a page fault per 4 KiB; and the
    kernel is asked for the next block while this one is computed (POSIX_FADV_WILLNEED)."""
    n, dim = z.shape
    buffer = np.empty((min(step, n), dim), dtype=z.dtype)
    path = _file_of(z)
    if path is None:
        for start in range(0, n, step):
            out = buffer[:min(step, n - start)]
            out[...] = z[start:start + step]
            yield out
        return
    row_bytes, ahead = dim * z.dtype.itemsize, getattr(os, "posix_fadvise", None)
    with open(path, "rb", buffering=0) as f:
        for start in range(0, n, step):
            out = buffer[:min(step, n - start)]
            if ahead is not None:
                ahead(f.fileno(), z.offset + (start + step) * row_bytes, step * row_bytes, os.POSIX_FADV_WILLNEED)
            _read_into(f.fileno(), memoryview(out).cast("B"), z.offset + start * row_bytes)
            yield out


def _file_of(z: Any) -> str | None:
    """The file under z where z is a whole memory-mapped .npy as `np.load(mmap_mode=...)` gives it (its own
    mapping, C order, so that row i sits at offset + i·D·itemsize), else None."""
    whole = isinstance(z, np.memmap) and isinstance(z.base, mmap.mmap) and z.flags.c_contiguous
    return z.filename if whole and z.filename else None


def _read_into(fd: int, out: memoryview, position: int) -> None:
    done = 0
    while done < len(out):  # pread may return fewer bytes than asked
        got = os.preadv(fd, [out[done:]], position + done)
        if got <= 0:
            raise ValueError(f"file ended {len(out) - done} bytes early at offset {position + done}")
        done += got


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


def _is_float32(block: np.ndarray) -> bool:
    return block.dtype == np.float32 and block.dtype.isnative


def shift_and_basis(z: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """From a seeded sample of at most `SHIFT_ROWS` normalised rows (spread over the file: a file sorted by class
    has no single class first): their mean c (D,) and k = min(`PROJECTED`, D // 2) orthonormal directions Q
    (D, k) they spread most along (subspace iteration, `POWER_STEPS`), float64."""
    dim = z.shape[1]
    u, ok = sample_rows(z, sample_index(len(z), min(len(z), SHIFT_ROWS), seed))
    u = u[ok]
    k = min(PROJECTED, dim // 2, max(len(u) - 1, 0))
    if k == 0:
        return (u.mean(axis=0) if len(u) else np.zeros(dim)), np.zeros((dim, 0))
    shift = u.mean(axis=0)
    rows = u - shift
    y = rows.T @ (rows @ np.random.default_rng(seed).standard_normal((dim, k)))
    for _ in range(POWER_STEPS):
        y = rows.T @ (rows @ np.linalg.qr(y)[0])
    return shift, np.linalg.qr(y)[0]


def _scatter_pass(z: Any, chunk: int, shift: np.ndarray, basis: np.ndarray
                  ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """(rows with a direction, rows skipped, their mean s (D,), their scatter Σ (u_i − s)(u_i − s)ᵀ (D, D), its
    diagonal in float64 (D,)). The scatter's own diagonal is not replaced by it: the float32 errors of the
    projected block stay in Q's directions, a float64 diagonal would carry them to every direction.
    The sums are of e = [a, r] (module note), each chunk's sum of products float32 (BLAS syrk), then float64."""
    step, (dim, k) = min(_step(z, chunk), PRODUCT_ROWS), basis.shape
    e = np.empty((min(step, len(z)), k + dim), dtype=np.float32)
    work = np.empty((2, max(1, min(CACHE_VALUES // dim, step)), dim))
    count, skipped, sums, outer = 0, 0, np.zeros((2, dim)), np.zeros((k + dim, k + dim))
    products = np.empty_like(outer, dtype=np.float32)
    for block in _blocks(z, step):
        rows = _split_into(block, shift, basis, e, work, sums)
        count, skipped = count + rows, skipped + len(block) - rows
        np.add(outer, np.matmul(e[:rows].T, e[:rows], out=products), out=outer)  # AᵀA: BLAS syrk, half the work
    n = max(count, 1)
    diagonal = sums[1] - sums[0] ** 2 / n  # float64 throughout: std_normalized exact
    return count, skipped, shift + sums[0] / n, _assemble(outer, sums, count, basis), diagonal


def _split_into(block: np.ndarray, shift: np.ndarray, q: np.ndarray, e: np.ndarray, work: np.ndarray,
                sums: np.ndarray) -> int:
    """Fill e with [a, r] of the rows of block that have a direction (d = u − shift = q·a + r, float64, rounded
    to float32 in e), add Σ d and Σ d² (each (D,), float64) to sums (2, D) -> how many rows. In slices of
    work's rows, which stay in cache through the few steps: a whole chunk per step would stream 64 MiB through
    memory each time (33 ms a chunk of 4,096 × 2048 in slices of 256 rows, 58 ms whole). Numpy's, not torch's,
    operations: on 2 cores torch's thread pool and the BLAS's spin against each other (a 0.07 ms copy took 7)."""
    k, kept = q.shape[1], 0
    fast = _is_float32(block)
    rows = block if fast else sphere(block)
    for start in range(0, len(rows), len(work[0])):
        d = _centered(rows[start:start + len(work[0])], shift, work[0], fast)
        sums[0] += d.sum(axis=0)
        sums[1] += np.einsum("ij,ij->j", d, d)
        a = d @ q
        d -= np.matmul(a, q.T, out=work[1, :len(d)])
        e[kept:kept + len(d), :k] = a
        e[kept:kept + len(d), k:] = d
        kept += len(d)
    return kept


def _centered(x: np.ndarray, shift: np.ndarray, out: np.ndarray, fast: bool) -> np.ndarray:
    """The rows x that have a direction, normalised, minus the shift: float64, in `out` where all have one.
    fast: x is float32, whose squares cannot leave float64's range (3.4e38² = 1.2e77), so that its norms need no
    scaling (`_normalised`'s); else x is normalised already."""
    d = out[:len(x)]
    np.copyto(d, x)
    if fast:
        with np.errstate(all="ignore"):  # inf and NaN rows: left out just below
            norm = np.sqrt(np.einsum("ij,ij->i", d, d))
        keep = np.isfinite(norm) & (norm > 0)
        if not keep.all():
            d, norm = d[keep], norm[keep]
        d *= (1.0 / norm)[:, None]  # a multiply is faster than a divide (0.18 ms against 0.25), 2^-53 apart
    d -= shift
    return d


def _assemble(outer: np.ndarray, sums: np.ndarray, count: int, q: np.ndarray) -> np.ndarray:
    """The scatter about the mean (D, D) from Σ e·eᵀ in [a, r] coordinates ((k + D)², about the shift), Σ d and
    Σ d² (2, D): centered there, carried back by M = [Q I] (d = M·e): M·S_e·Mᵀ."""
    k, n = q.shape[1], max(count, 1)
    a = q.T @ sums[0]
    t = np.concatenate([a, sums[0] - q @ a])  # Σ e: a and r are linear in d
    s = outer - np.outer(t, t) / n
    cross = q @ s[:k, k:]
    scatter = s[k:, k:] + cross + cross.T + q @ s[:k, :k] @ q.T
    return (scatter + scatter.T) / 2


def spectrum_readings(scatter: np.ndarray, count: int, diagonal: np.ndarray | None = None) -> dict[str, Any]:
    """From the scatter (D, D) of `count` normalised rows (and its diagonal, where more exact than its own):
    spectrum (σ_i = √λ_i, i.e. √(λ_i(covariance)·N), D values descending), effective_rank (exp(entropy of
    σ/Σσ), as `lab.core.metrics.effective_rank`), effective_rank_max (D), std_normalized (lightly's
    std_of_l2_normalized: the mean over dimensions of each dimension's population std; 1/√D spread evenly, 0 at
    one point) and std_healthy (1/√D)."""
    dim = len(scatter)
    lam = np.clip(np.linalg.eigvalsh(scatter)[::-1], 0.0, None)
    lam[lam < dim * np.finfo(np.float64).eps * lam[0]] = 0.0  # the sums' round-off (module note)
    sigma = np.sqrt(lam)
    p = sigma / max(float(sigma.sum()), EPS)
    rank = math.exp(-float((p * np.log(np.maximum(p, EPS))).sum()))
    std = np.sqrt(np.clip(np.diag(scatter) if diagonal is None else diagonal, 0.0, None) / count)
    return {"effective_rank": rank, "effective_rank_max": int(dim), "std_normalized": float(std.mean()),
            "std_healthy": 1 / math.sqrt(dim), "spectrum": [float(s) for s in sigma]}


def _cosine_pass(z: Any, mean: np.ndarray, count: int, chunk: int) -> dict[str, float]:
    """center_share: the share of rows whose cosine to s/‖s‖ is at least `COLLAPSE_THRESHOLD` (all cosines 0
    where s = 0, as `lab.core.geometry.center_cosines`), exact. median_cosine: from a histogram of
    `HISTOGRAM_BINS` bins of width 1e-3 over [-1, 1], linear inside its bin: within 1e-3 of the exact median
    (plus the float32 cosines' error, `_cosines`), in memory that does not grow with N (and no sample).
    nonnegative: no value below 0 (features after a ReLU; `lab.doctor.diagnose` judges them apart)."""
    direction = mean / max(float(np.linalg.norm(mean)), EPS)
    near, hist, negative = 0, np.zeros(HISTOGRAM_BINS, dtype=np.int64), False
    for block in _blocks(z, _step(z, chunk)):
        negative = negative or bool((block < 0).any())  # a NaN compares False: it does not count
        cos = _cosines(block, direction)
        near += int((cos >= COLLAPSE_THRESHOLD).sum())
        bins = np.clip(((cos + 1.0) * (HISTOGRAM_BINS / 2)).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        hist += np.bincount(bins, minlength=HISTOGRAM_BINS)
    return {"center_share": near / count, "median_cosine": _median(hist), "nonnegative": not negative}


def _cosines(block: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The cosines to `direction` (D,), a unit vector, of the rows of block that have a direction: (B',) float64.
    Float32 rows in float32 (a matrix-vector product: pass 2 is as fast as the file is read), each within
    4·D·2^-24 of its float64 value: x·m and ‖x‖² sum D terms, each sum within D·2^-24 of the sum of the terms'
    magnitudes, ≤ ‖x‖ and ‖x‖² (Cauchy-Schwarz, |m| = 1); m's own rounding and the division add a few 2^-24.
    Rows that close to `COLLAPSE_THRESHOLD`, or whose float32 norm may have under- or overflowed, are redone in
    float64: the share near s counts each row as float64 does."""
    if not _is_float32(block):
        return sphere(block) @ direction
    with np.errstate(all="ignore"):  # rows with inf, NaN or zeros: not sure below, and redone
        norm = np.sqrt(np.einsum("ij,ij->i", block, block))
        cos = (block @ direction.astype(np.float32)) / norm
    guard = 4 * block.shape[1] * ROUND32
    sure = (norm > NORM32_RANGE[0]) & (norm < NORM32_RANGE[1]) & (np.abs(cos - COLLAPSE_THRESHOLD) > guard)
    out = cos.astype(np.float64)
    if sure.all():
        return out
    redo = ~sure
    u, keep = _normalised(block[redo])
    exact = np.full(int(redo.sum()), np.nan)
    exact[keep] = u @ direction
    out[redo] = exact
    return out[~np.isnan(out)]  # rows without a direction: NaN in `exact`


def _median(hist: np.ndarray) -> float:
    """The median of the values counted in `hist` (bins of equal width over [-1, 1]), linear inside its bin."""
    half, before = hist.sum() / 2, np.cumsum(hist) - hist
    b = int(np.searchsorted(np.cumsum(hist), half))
    width = 2.0 / len(hist)
    return float(-1.0 + width * (b + (half - before[b]) / max(int(hist[b]), 1)))


def sample_rows(x: Any, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows `index` of x, normalised, and which of them have a direction. The index is sorted, so that a
    memmap is read front to back. x: (N, D), index: (M,) -> ((M, D) with zero rows where there is none, (M,))."""
    raw = _read_rows(x, index)
    if _is_float32(raw):  # no scaling needed (`_centered`), and no sample-sized temporaries
        out = raw.astype(np.float64)
        with np.errstate(all="ignore"):  # rows with inf or NaN: not ok, zeroed
            norm = np.sqrt(np.einsum("ij,ij->i", out, out))
            ok = np.isfinite(norm) & (norm > 0)
            out *= np.where(ok, 1.0 / np.where(ok, norm, 1.0), 0.0)[:, None]
        out[~ok] = 0.0  # NaN · 0 is NaN
        return out, ok
    rows = np.asarray(raw, dtype=np.float64)
    out = np.zeros_like(rows)
    u, ok = _normalised(rows)
    out[ok] = u
    return out, ok


def _read_rows(x: Any, index: np.ndarray) -> np.ndarray:
    """x[index], a memory-mapped .npy's rows read with pread, one each (`_blocks`' reasons: through the mapping,
    the kernel maps the pages around each row read too, 250 MB of them for 4,096 rows of a 0.8 GB file)."""
    path = _file_of(x)
    if path is None:
        return np.asarray(x[index])
    out = np.empty((len(index), x.shape[1]), dtype=x.dtype)
    row_bytes, view = out.strides[0], memoryview(out).cast("B")
    with open(path, "rb", buffering=0) as f:
        for j, i in enumerate(np.asarray(index).tolist()):
            _read_into(f.fileno(), view[j * row_bytes:(j + 1) * row_bytes], x.offset + i * row_bytes)
    return out


def sample_index(n: int, size: int, seed: int) -> np.ndarray:
    """`size` of range(n) without repeats, sorted, so that a memmap is read front to back (all of them, in order,
    where size >= n)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size, replace=False)) if size < n else np.arange(n)


def points(z: Any, seed: int = 0) -> int | None:
    """The fewest points the rows sit on: how many caps of angular radius arccos(`POINT_COSINE`) ≈ 2.6°, each
    centered on a sampled row, hold `COLLAPSE_THRESHOLD` (90 %) of a seeded sample of at most `POINT_SAMPLE`
    rows, chosen greedily (the cap holding most of the rows still uncovered first, so k tight clusters read k).
    None where that takes more than `POINTS_READ_MAX` caps, or a cap would hold one row only (rows spread, not
    sitting on points). z: (N, D) -> int or None."""
    u, ok = sample_rows(z, sample_index(len(z), min(len(z), POINT_SAMPLE), seed))
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
    index = sample_index(len(z), min(len(z), KNN_SAMPLE), seed)
    u, ok = sample_rows(z, index)
    u, y = torch.from_numpy(u[ok]).float(), torch.from_numpy(codes.reshape(-1)[index][ok])
    out: dict[str, Any] = {"n_classes": int(len(names))} | class_centroids(u.double().numpy(), y.numpy())
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


def class_centroids(u: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Each class's centroid of its normalised rows: how tight a class is (‖m_c‖: 1 where its rows sit at one
    point, ~0 where they spread evenly) and how far apart the classes are (the mean cosine between two classes'
    centroid directions: 1 where every class sits at the same place, as in complete collapse).
    u: (M, D) unit rows, y: (M,) class codes -> {"class_center_norm" (median over classes),
    "class_centroid_cosine" (mean over pairs of classes), with at least 2 classes}."""
    classes = np.unique(y)
    if len(classes) < 2:
        return {}
    means = np.stack([u[y == c].mean(axis=0) for c in classes])
    norms = np.linalg.norm(means, axis=1)
    directions = means / np.maximum(norms, EPS)[:, None]
    cos = directions @ directions.T
    pairs = np.triu_indices(len(classes), 1)
    return {"class_center_norm": float(np.median(norms)), "class_centroid_cosine": float(cos[pairs].mean())}


def view_readings(z: Any, views: Any, seed: int = 0) -> dict[str, Any]:
    """Alignment and uniformity (Wang & Isola, 2020; `lab.core.metrics`) on a seeded sample of at most
    `PAIR_SAMPLE` pairs of normalised rows (pairs where either view has no direction left out). uniformity:
    the mean of the two views' (their loss's convention). z, views: (N, D) -> {"alignment", "uniformity",
    "pair_sample"}."""
    index = sample_index(len(z), min(len(z), PAIR_SAMPLE), seed)
    (u1, ok1), (u2, ok2) = sample_rows(z, index), sample_rows(views, index)
    ok = ok1 & ok2
    if ok.sum() < 2:
        return {}
    a, b = torch.from_numpy(u1[ok]).float()[None], torch.from_numpy(u2[ok]).float()[None]
    uniformity = (float(metrics.uniformity(a)[0]) + float(metrics.uniformity(b)[0])) / 2
    return {"alignment": float(metrics.alignment(a, b)[0]), "uniformity": uniformity, "pair_sample": int(ok.sum())}
