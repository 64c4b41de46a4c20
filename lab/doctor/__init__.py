"""The collapse doctor: read any embedding (a file or an array of rows, one per sample) and name its collapse,
if any, with the numbers that decided it (issue 22, "Check your own model"; `python -m lab doctor FILE`).

    report = check("embeddings.npy", labels="labels.txt")
    report.signature  # "healthy", "complete collapse", "dimensional collapse" or "prototype collapse"
    report.why        # one sentence naming the deciding numbers
    report.readings   # JSON-able dict (`lab.doctor.readings.readings`)

The readings are the lab's own (`lab.core.collapse.EMBEDDING`: ‖s‖, the share near s, the effective rank, each on
the unit sphere), streamed so that a memory-mapped file of a million rows needs bounded memory.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lab.core import collapse as C
from lab.core.vocab import COLLAPSE_THRESHOLD, label
from lab.doctor.embed import Progress, embed, is_checkpoint
from lab.doctor.load import Embeddings, embeddings, load_embeddings, read_labels
from lab.doctor.readings import CHUNK_ROWS, POINT_COSINE, readings
from lab.doctor.project import SPHERE_SAMPLE, Projection, project

HEALTHY, COMPLETE, DIMENSIONAL, PROTOTYPE = ("healthy", "complete collapse", "dimensional collapse",
                                             "prototype collapse")
SIGNATURES = (HEALTHY, COMPLETE, DIMENSIONAL, PROTOTYPE)
# Without labels, fewer than 3 directions is dimensional collapse: an effective rank below 3 leaves the rows a
# circle's worth of directions (a 2-D subspace reads 2), in which a linear read-out separates at most 3 classes
# that sit evenly apart (C − 1 = 2 directions); an embedding of D ≥ 5 dimensions meant to tell more things
# apart has lost its directions. With C classes the bound is max(2, C − 1), `lab.core.collapse.RANK`'s mechanism.
RANK_FLOOR = 3.0
RANK_BOUND = "effective_rank_bound"
RANK = C.Sign(C.DIMENSIONAL, "effective_rank", "<", RANK_BOUND)
# Rows that a few caps 5.1° wide (`POINT_COSINE`) hold sit on points, not along a curve or over a surface: a
# uniform arc passes the complete test (‖s‖ < 0.9) only if it spans more than 90° (sin(a/2)/(a/2) = 0.9), and any
# such caps need 15.8, i.e. 16, to hold 90 % of it; 2-D spreads need far more. 12, three quarters of that, leaves
# room for the chance of a 2,000-row sample.
PROTOTYPE_POINTS_MAX = 12
# Rows with no negative value (features after a ReLU, as a ResNet's pooled features are) all sit in one orthant,
# so their mean direction is long even when they are healthy: rows uniform on the positive orthant read
# ‖s‖ = E|g| / √E[g²] = √(2/π) ≈ 0.798 for any D (g normal). For them the complete-collapse bar is the lab's
# 0.9 of the way from that floor to 1, ‖s‖ ≥ 0.980, and the share near s (its cap of 26° holds most healthy
# non-negative rows) is not used. The lab's FMNIST SimSiam backbone reads 0.767 healthy and 0.985 without its
# predictor (assets/doctor/references.json); one with a 10× predictor lr, healthy by kNN (0.742), reads 0.93.
ORTHANT_CENTER = math.sqrt(2 / math.pi)
NONNEGATIVE_CENTER = 1 - (1 - COLLAPSE_THRESHOLD) * (1 - ORTHANT_CENTER)
ANGLE = math.degrees(math.acos(POINT_COSINE))


@dataclass(frozen=True)
class DoctorReport:
    """readings: the JSON-able readings (`lab.doctor.readings.readings`, plus `effective_rank_bound`);
    signature: one of `SIGNATURES`; why: one sentence naming the numbers that decided it."""

    readings: dict
    signature: str
    why: str


def check(path_or_array: Any, labels: Any = None, views: Any = None, *, chunk: int = CHUNK_ROWS,
          seed: int = 0, data: Any = None, arch: str | None = None, features: str | None = None,
          limit: int | None = None, split: str | None = None, progress: Progress | None = None) -> DoctorReport:
    """Diagnose an embedding (whatever `read` reads, with the same arguments). Bad input: one-line ValueError."""
    emb = read(path_or_array, labels, views, seed=seed, data=data, arch=arch, features=features, limit=limit,
               split=split, progress=progress)
    found = readings(emb, chunk=chunk, seed=seed)
    found[RANK_BOUND] = rank_bound(found)
    signature, why = diagnose(found)
    return DoctorReport(found, signature, why)


def check_and_project(path_or_array: Any, labels: Any = None, views: Any = None, *, sample: int = SPHERE_SAMPLE,
                      seed: int = 0, **options) -> tuple[DoctorReport, Projection, Embeddings]:
    """`check` and the rows to draw on the sphere (`lab.doctor.project`), reading the embeddings (or embedding
    the checkpoint) once: (report, projection, embeddings). options: `read`'s."""
    emb = read(path_or_array, labels, views, seed=seed, **options)
    return check(emb, seed=seed), project(emb, sample, seed), emb


def read(path_or_array: Any, labels: Any = None, views: Any = None, *, seed: int = 0, data: Any = None,
         arch: str | None = None, features: str | None = None, limit: int | None = None, split: str | None = None,
         progress: Progress | None = None) -> Embeddings:
    """The embeddings to diagnose. path_or_array: a path (.npy, .npz, .pt/.pth, .safetensors; `lab.doctor.load`),
    an (N, D) numpy array or torch tensor, or `Embeddings`; labels: (N,) array or a .npy/.pt/.txt path; views:
    (N, D) the paired second view of each row, an array or an embeddings path. Bad input: one-line ValueError.

    Or a checkpoint (`lab.doctor.embed.is_checkpoint`: a lab run folder or checkpoint.pt, a ResNet state dict),
    embedded first on `data` (a Fashion-MNIST or ImageFolder folder; a run's own by default) with `arch`,
    `features`, `limit`, `split` and `progress` as `lab.doctor.embed.embed` takes them; labels then default to
    the dataset's, and the images embedded come with them. Those options for anything else: ValueError."""
    options = {"data": data, "arch": arch, "features": features, "limit": limit, "split": split}
    if isinstance(path_or_array, (str, Path)) and is_checkpoint(path_or_array):
        path_or_array = embed(path_or_array, labels=labels, progress=progress, seed=seed, **options)
    elif any(v is not None for v in options.values()):
        given = [k for k, v in options.items() if v is not None]
        raise ValueError(f"{path_or_array if isinstance(path_or_array, (str, Path)) else 'an array'}: "
                         f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for a checkpoint to embed (a run "
                         "folder, checkpoint.pt or a ResNet state dict), not for embeddings")
    if isinstance(path_or_array, Embeddings):
        emb = path_or_array
    elif isinstance(path_or_array, (str, Path)):
        emb = load_embeddings(path_or_array, labels)
    else:
        emb = embeddings(path_or_array, labels)
    if views is not None:
        views = load_embeddings(views).z if isinstance(views, (str, Path)) else views
        emb = dataclasses.replace(emb, views=embeddings(views).z)
    return emb


def rank_bound(r: Mapping[str, Any]) -> float | None:
    """The effective rank below which the rows count as dimensionally collapsed: max(2, C − 1) with C classes,
    else `RANK_FLOOR`; None where D leaves no room above it (D ≤ bound + 1: a healthy embedding of D = C reads
    just under C − 1, as `lab.core.collapse` notes for the toy)."""
    classes = r.get("n_classes")
    bound = max(2.0, classes - 1.0) if classes else RANK_FLOOR
    return None if r["dim"] <= bound + 1 else bound


def diagnose(r: Mapping[str, Any]) -> tuple[str, str]:
    """(signature, why) from readings r (`check`'s, with `effective_rank_bound`). The rule, in this order:

    - complete collapse: ‖s‖ ≥ 0.9 or the share within 26° of s ≥ 0.9 (`lab.core.collapse.CENTER`,
      `CONCENTRATED`, at the lab's one threshold); for rows with no negative value (r["nonnegative"]),
      ‖s‖ ≥ `NONNEGATIVE_CENTER` or all on 1 point (module note).
    - prototype collapse: 90 % of the sampled rows sit on at most `PROTOTYPE_POINTS_MAX` points (`points`).
    - dimensional collapse: effective rank < `rank_bound` (`RANK`).
    - healthy otherwise.
    """
    # Complete first: one point is also a few points and a low rank, and it is the worst; ‖s‖ alone misses one
    # point with a few samples far off (92 % at one point, 8 % opposite read ‖s‖ 0.84), the share does not, as
    # it counts each sample once. Prototype before dimensional: k points span k − 1 directions, so a few points
    # also read a low rank, but within those directions the rows do not spread either: naming that "dimensional"
    # would hide it. Dimensional last: the rows spread, within too few directions.
    signs = C.collapse_signs((C.CENTER, C.CONCENTRATED, RANK), r)
    rank = f"effective rank {r['effective_rank']:.4g} of D = {r['dim']}"
    complete, center = _complete(r, signs)
    if complete:
        return COMPLETE, f"{complete}: the rows sit at one point ({rank})."
    k = r.get("points")
    if k is not None and k <= PROTOTYPE_POINTS_MAX:
        return PROTOTYPE, (f"{COLLAPSE_THRESHOLD:.0%} of the sampled rows sit on {k} points (caps of {ANGLE:.1f}°; "
                           f"at most {PROTOTYPE_POINTS_MAX} is a few points) while {center}: a few points apart, "
                           f"not one ({rank}).")
    dimensional = [s for s in signs if s["kind"] == C.DIMENSIONAL]
    if dimensional:
        return DIMENSIONAL, (f"{_words(dimensional[0])} ({_bound_reason(r)}) of D = {r['dim']}, while {center} "
                             f"and the rows sit on no few points: they spread within too few directions.")
    judged = (f"{rank} ≥ {r[RANK_BOUND]:g} ({_bound_reason(r)})" if r.get(RANK_BOUND) is not None
              else f"{rank} (not judged: D leaves no room above the bound)")
    return HEALTHY, f"no sign of collapse: {center}, {judged}, and the rows sit on no few points."


def _complete(r: Mapping[str, Any], signs: list) -> tuple[str, str]:
    """(the words of complete collapse, "" where there is none; the words of why not) for readings r."""
    k = r.get("points")
    if r.get("nonnegative"):
        floor = (f"every value ≥ 0 (rows uniform on the positive orthant read ‖s‖ {ORTHANT_CENTER:.3f}, so the bar "
                 f"is {NONNEGATIVE_CENTER:.3f}, {COLLAPSE_THRESHOLD:g} of the way from there to 1)")
        if r["center_norm"] >= NONNEGATIVE_CENTER:
            return f"{label('center_norm')} {r['center_norm']:.4g} ≥ {NONNEGATIVE_CENTER:.3f} with {floor}", ""
        if k == 1:
            return f"{COLLAPSE_THRESHOLD:.0%} of the sampled rows sit on 1 point with {floor}", ""
        return "", f"{label('center_norm')} {r['center_norm']:.4g} < {NONNEGATIVE_CENTER:.3f} with {floor}"
    held = [s for s in signs if s["kind"] == C.COMPLETE]
    if held:
        return " and ".join(_words(s) for s in held), ""
    return "", (f"{label('center_norm')} {r['center_norm']:.4g} < {COLLAPSE_THRESHOLD:g} and "
                f"{label('center_share')} {r['center_share']:.4g} < {COLLAPSE_THRESHOLD:g}")


def _words(sign: Mapping[str, Any]) -> str:
    """A held sign without its kind: '‖s‖ center norm 0.986 ≥ 0.9'."""
    return C.phrase(sign).partition(": ")[2]


def _bound_reason(r: Mapping[str, Any]) -> str:
    classes = r.get("n_classes")
    return f"the bound max(2, C − 1) for C = {classes} classes" if classes else "the bound without labels"


def report_table(report: DoctorReport, source: str = "") -> str:
    """The readings as a short table and the signature line, for the command line."""
    r = report.readings
    rows = [(label("center_norm"), f"{r['center_norm']:.4f}", f"collapse ≥ {COLLAPSE_THRESHOLD:g}"),
            (label("center_share"), f"{r['center_share']:.4f}", f"collapse ≥ {COLLAPSE_THRESHOLD:g}"),
            ("median cosine to s", f"{r['median_cosine']:.3f}", "from a histogram, within 1e-3"),
            (label("effective_rank"), f"{r['effective_rank']:.4g}", f"of D = {r['dim']}" + (
                f", collapse < {r[RANK_BOUND]:g}" if r.get(RANK_BOUND) is not None else "")),
            ("std of normalised rows", f"{r['std_normalized']:.4f}", f"healthy 1/√D = {r['std_healthy']:.4f}"),
            (f"points holding {COLLAPSE_THRESHOLD:.0%}", str(r["points"]) if r["points"] is not None else "many",
             f"collapse ≤ {PROTOTYPE_POINTS_MAX} (caps of {ANGLE:.1f}°)")]
    if "knn_acc" in r:
        rows.append(("kNN accuracy (5-fold)", f"{r['knn_acc']:.4f}", f"{r['n_classes']} classes, "
                                                                      f"{r['knn_sample']} rows"))
    if "class_centroid_cosine" in r:
        rows.append(("class centroids", f"{r['class_center_norm']:.3f} / {r['class_centroid_cosine']:.3f}",
                     "median ‖m_c‖ / mean cosine between classes (1: all classes at one place)"))
    if "alignment" in r:
        rows.append(("alignment / uniformity", f"{r['alignment']:.4f} / {r['uniformity']:.4f}",
                     f"{r['pair_sample']} pairs"))
    head = f"{source or 'embeddings'}: {r['n']} rows × {r['dim']} dimensions, {r['skipped_rows']} skipped " \
           "(NaN, inf or zero norm)"
    width, value_width = (max(len(row[i]) for row in rows) for i in (0, 1))
    lines = [head] + [f"  {name:<{width}}  {value:>{value_width}}   {note}" for name, value, note in rows]
    return "\n".join(lines + [f"signature: {report.signature}: {report.why}"])


__all__ = ["ANGLE", "COMPLETE", "NONNEGATIVE_CENTER", "ORTHANT_CENTER", "DIMENSIONAL", "DoctorReport", "Embeddings", "HEALTHY", "PROTOTYPE",
           "PROTOTYPE_POINTS_MAX", "RANK_FLOOR", "SIGNATURES", "check", "check_and_project", "diagnose", "embed", "embeddings",
           "is_checkpoint", "load_embeddings", "rank_bound", "read", "read_labels", "readings", "report_table"]
