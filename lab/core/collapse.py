"""Collapse signatures (base layer: reads only the vocabulary): which readings of an epoch, at which values,
mean which kind of collapse. Each method declares its own `signature` (a tuple of `Sign`) in its module; the
engine judges every epoch line with it (`collapse_signs`), and the runs table, the banner and the guard name
the kind it finds.

The kinds:
- complete: every sample is one point. ‖s‖ → 1 (the paper's collapse), and a loss whose collapsed value is
  one number (SimSiam/BYOL −1, the cosine of a point with itself) reaches it.
- dimensional: the features span a few directions. Behind an output BatchNorm this can happen while ‖s‖ on
  either side of the BN and the per-dimension std look healthy; the effective rank of the pre-BN features
  shows it.
- uniform: DINO/SwAV spread every sample's assignment evenly over the K prototypes, so no sample is told
  apart: the mean per-sample entropy reaches ln K. (The entropy of the batch-mean assignment reads ln K for a
  healthy model too, so it cannot tell this kind.)

The bounds, chosen from the mechanism before any run was judged by them:
- ‖s‖ ≥ the lab's one collapse threshold (`vocab.COLLAPSE_THRESHOLD`, 0.9; the guard's own where it has one).
- the share of samples within arccos 0.9 ≈ 25.8° of the mean direction (cosine ≥ the threshold) ≥ the same
  threshold: 90 % of them that close. ‖s‖ is the mean of those cosines, so a share f of samples on the far
  side lowers it by up to 2f: 92 % at one point and 8 % opposite read ‖s‖ 0.84, healthy by ‖s‖ alone; the
  share reads 0.92. Not the median cosine: a healthy Fashion-MNIST SimSiam seed read a median of 0.90 at an
  epoch where ‖s‖ was 0.71 (half its views within 26°, the rest spread). Both readings sit on the sphere,
  where no sample weighs more than another: a far sample of the raw output (one view with 99 % of the squared
  norm) counts as one.
- a constant collapse loss within 0.1 % (|loss − value| ≤ 0.001·max(1, |value|)): a mean cosine of 0.999
  between predictions and targets leaves no spread a batch could be told apart by.
- effective rank below C − 1 for C classes: fewer directions than a linear read-out needs to separate the
  classes (the rule `lab.core.experiments` judges dimensional collapse by). Not judged where C is unknown, nor
  where the features have at most C dimensions (the toy: 2-D or 3-D features, 3 classes). The effective rank
  is a soft count (exp of the spectrum's entropy): C clusters spanning C − 1 directions read C − 1 only if
  they are spread exactly evenly, so with no dimensions to spare a healthy embedding reads just below the
  bound (toy DINO and SwAV, clusters apart, ‖s‖ 0.85: 1.6–1.9). With D ≫ C (the engine: 64–2048 dimensions,
  10 or 100 classes) a healthy embedding spreads well above C − 1 and a reading below it has lost directions.
- per-sample entropy ≥ 0.95 ln K: each sample spread over about K^0.95 of the K prototypes, i.e. all of them.
- batch-mean entropy ≤ 0.05 ln K (DINO's one-prototype collapse): the whole batch on K^0.05 ≈ 1–2 prototypes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from lab.core.vocab import COLLAPSE_THRESHOLD, label

COMPLETE, DIMENSIONAL, UNIFORM = "complete", "dimensional", "uniform"
KINDS = {COMPLETE: "every sample one point", DIMENSIONAL: "the features span a few directions",
         UNIFORM: "every sample spread evenly over the prototypes"}
# Context names a bound can refer to besides the epoch line's own keys.
THRESHOLD, N_CLASSES = "threshold", "n_classes"
RANK_MAX = "effective_rank_max"  # the features' dimension, where an epoch line gives it
NEAR_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Sign:
    """`metric` `op` fraction × `ref` + offset means collapse of `kind`. ref: a key of the same epoch line
    (`collapse_loss`, `teacher_entropy_max`, ...), `THRESHOLD` (the collapse threshold) or `N_CLASSES`.
    op: "≥", "≤", "<" or "≈" (within `NEAR_TOLERANCE`·max(1, |bound|))."""

    kind: str
    metric: str
    op: str
    ref: str
    fraction: float = 1.0
    offset: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown collapse kind {self.kind!r}; valid: {', '.join(KINDS)}")
        if self.op not in ("≥", "≤", "<", "≈"):
            raise ValueError(f"unknown comparison {self.op!r}; valid: ≥, ≤, <, ≈")

    def bound(self, readings: Mapping[str, object]) -> float | None:
        ref = _number(readings.get(self.ref))
        return None if ref is None else self.fraction * ref + self.offset

    def holds(self, readings: Mapping[str, object]) -> bool | None:
        """True/False, or None where the metric or its reference is not in `readings`."""
        value, bound = _number(readings.get(self.metric)), self.bound(readings)
        if value is None or bound is None:
            return None
        most, classes = _number(readings.get(RANK_MAX)), _number(readings.get(N_CLASSES))
        if self.ref == N_CLASSES and most is not None and classes is not None and most <= classes:
            return None  # no room above the bound (the toy: 3-D features, 3 classes): see the module's note
        if self.op == "≥":
            return value >= bound
        if self.op == "≤":
            return value <= bound
        if self.op == "<":
            return value < bound
        return abs(value - bound) <= NEAR_TOLERANCE * max(1.0, abs(bound))

    def rule(self) -> str:
        """The rule in words: 'complete: ‖s‖ center norm ≥ the collapse threshold'."""
        ref = {THRESHOLD: "the collapse threshold", N_CLASSES: "C"}.get(self.ref, label(self.ref))
        scaled = ref if self.fraction == 1.0 else f"{self.fraction:g}·{ref}"
        shift = f" − {-self.offset:g}" if self.offset < 0 else (f" + {self.offset:g}" if self.offset else "")
        return f"{self.kind}: {label(self.metric)} {self.op} {scaled}{shift}"


# What every method shows when all its samples meet: ‖s‖ → 1.
CENTER = Sign(COMPLETE, "center_norm", "≥", THRESHOLD)
# Nearly all samples near one direction, whatever the few others do.
CONCENTRATED = Sign(COMPLETE, "center_share", "≥", THRESHOLD)
# The pre-BN features in fewer directions than the classes need.
RANK = Sign(DIMENSIONAL, "effective_rank", "<", N_CLASSES, offset=-1.0)
# A loss whose collapsed value is one number, met.
LOSS_AT_COLLAPSE = Sign(COMPLETE, "loss", "≈", "collapse_loss")
# What any embedding can be read by, whatever trained it (`lab.core.metrics.embedding_readings`).
EMBEDDING = (CENTER, CONCENTRATED, RANK)


def collapse_signs(signature: Sequence[Sign], row: Mapping[str, object], threshold: float | None = None,
                   n_classes: int | None = None) -> list[dict]:
    """The signs of `signature` that hold on epoch line `row`, in the signature's order, each as
    {"kind", "metric", "op", "value", "bound"} (JSON, for the epoch line; `phrase` words one)."""
    readings = {**row, THRESHOLD: COLLAPSE_THRESHOLD if threshold is None else threshold, N_CLASSES: n_classes}
    return [{"kind": sign.kind, "metric": sign.metric, "op": sign.op, "value": _number(readings[sign.metric]),
             "bound": sign.bound(readings)} for sign in signature if sign.holds(readings)]


def phrase(sign: Mapping[str, object]) -> str:
    """One held sign in words: 'complete: ‖s‖ center norm 0.986 ≥ 0.9'."""
    return f"{sign['kind']}: {label(str(sign['metric']))} {sign['value']:.4g} {sign['op']} {sign['bound']:.4g}"


def collapse_kind(signs: Sequence[Mapping[str, object]]) -> str | None:
    """The kind the held signs name (complete before dimensional before uniform when several hold)."""
    kinds = {s.get("kind") for s in signs}
    return next((k for k in KINDS if k in kinds), None)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
