"""The metric vocabulary (base layer: imports nothing from lab): every metric's name, label and where it is
read, its reference values, and the one collapse threshold.

Trainers, the engine, claims, render functions and pages take a metric's words and its reference lines from
here, so every chart of a metric says the same thing and shows the same lines: 1 for ‖s‖ (complete
collapse), 1/√D for z_std (spread evenly; ‖s‖² + Σ_d Var(z_d) = 1), ln K for entropies (uniform), chance
for accuracies, D for the effective rank, and the loss's collapse value where the method has one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# ‖s‖ above this counts as collapsed: a seed's final value in a verdict, the epoch a collapse is under way,
# the page's warning. One value for the whole lab (DESIGN §2; the paper gives none).
COLLAPSE_THRESHOLD = 0.9


@dataclass(frozen=True)
class Metric:
    """label: an axis or legend title; short: a table column; reference: which reference line it has
    ("collapse", "healthy_std", "uniform_entropy", "chance", "dim", "collapse_loss", or None);
    unit_range: values lie in [0, 1], so charts use that range; where: on which features it is read."""

    name: str
    label: str
    short: str
    reference: str | None = None
    unit_range: bool = False
    where: str = ""


_Z = "the normalised projector output z"
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("center_norm", "‖s‖ center norm", "‖s‖ data", "collapse", True,
           _Z + " (real runs: before the projector's output BatchNorm, where it has one)"),
    Metric("center_share", f"share within {math.degrees(math.acos(COLLAPSE_THRESHOLD)):.0f}° of s", "near s",
           "collapse", True, _Z + " (where ‖s‖ is read): the share of views whose cosine to s/‖s‖ is at least the "
           "collapse threshold. ‖s‖ is the mean of those cosines; a few views on the far side lower it, not this"),
    Metric("center_norm_aug", "‖s‖ of the augmented points (paper's s)", "‖s‖ aug", "collapse", True, _Z),
    Metric("batch_center_norm", "‖s‖ estimated from one mini-batch", "‖s‖ batch", "collapse", True, _Z),
    Metric("center_norm_pre_bn", "‖s‖ before BatchNorm", "‖s‖ pre-BN", "collapse", True,
           "the projector output before its normalising BatchNorm (or the loss's standardisation)"),
    Metric("center_norm_post_bn", "‖s‖ after BatchNorm", "‖s‖ post-BN", "collapse", True,
           "the projector output after its BatchNorm or the loss's standardisation (zero mean per dimension by "
           "construction before the projection onto the sphere; ≈ 0 on it for a projector at one point, not for "
           "features a few samples hold apart)"),
    Metric("effective_rank_max", "D", "D"),
    Metric("residual_norm", "mean ‖r‖ = ‖z − s‖ residual norm", "‖r‖", None, False, _Z),
    Metric("z_std", "z_std (std per dimension)", "z_std", "healthy_std", False, _Z),
    Metric("knn_acc", "kNN accuracy (held-out)", "kNN", "chance", True, "backbone features h"),
    Metric("linear_acc", "linear accuracy (held-out)", "linear", "chance", True, _Z),
    Metric("alignment", "alignment (lower = views closer)", "alignment", None, False, _Z),
    Metric("uniformity", "uniformity (lower = more spread)", "uniformity", None, False, _Z),
    Metric("effective_rank", "effective rank", "eff. rank", "dim", False, "the centered features z − s"),
    Metric("effective_rank_post_bn", "effective rank after BatchNorm", "eff. rank post-BN", "dim", False,
           "the features the loss is given (Barlow Twins: standardised per dimension)"),
    Metric("teacher_entropy", "teacher entropy (mean output)", "H(teacher)", "uniform_entropy"),
    Metric("teacher_sample_entropy", "teacher entropy (per sample, mean)", "H(teacher | x)", "uniform_entropy"),
    Metric("teacher_entropy_max", "ln K", "ln K"),
    Metric("code_entropy", "prediction entropy (mean output)", "H(codes)", "uniform_entropy"),
    Metric("code_sample_entropy", "prediction entropy (per sample, mean)", "H(codes | x)", "uniform_entropy"),
    Metric("code_entropy_max", "ln P", "ln P"),
    Metric("loss", "loss", "loss", "collapse_loss"),
    Metric("lr", "learning rate", "lr"),
    Metric("images_per_s", "images / s", "img/s"),
)}


def label(name: str) -> str:
    """The metric's chart label (its name where the vocabulary has none)."""
    m = METRICS.get(name)
    return m.label if m else name


def short_label(name: str) -> str:
    m = METRICS.get(name)
    return m.short if m else name


def unit_range(name: str) -> bool:
    m = METRICS.get(name)
    return bool(m and m.unit_range)


def reference_lines(name: str, *, dim: int | None = None, n_classes: int | None = None,
                    collapse_loss: float | None = None, entropy_max: float | None = None,
                    threshold: float | None = None) -> list[tuple[float, str]]:
    """(y, label) of the metric's reference values, given what the caller knows of its run: the feature
    dimension D, the number of classes, the loss's collapse value, ln K. A reference whose input is unknown
    is left out; `threshold` adds the warning line to a center metric."""
    m = METRICS.get(name)
    kind = m.reference if m else None
    if kind == "collapse":
        lines = [(1.0, "collapse ‖s‖ = 1")]
        if threshold is not None and threshold != 1.0:
            lines.append((float(threshold), f"warning ‖s‖ = {threshold:g}"))
        return lines
    if kind == "healthy_std" and dim:
        return [(1.0 / math.sqrt(dim), f"healthy 1/√D (D={dim})")]
    if kind == "uniform_entropy" and entropy_max is not None:
        return [(float(entropy_max), "ln K (uniform)")]
    if kind == "chance" and n_classes:
        return [(1.0 / n_classes, "chance")]
    if kind == "dim" and dim:
        return [(float(dim), "D (every direction)")]
    if kind == "collapse_loss" and collapse_loss is not None:
        return [(float(collapse_loss), "collapse value")]
    return []


def first_epoch_above(values: Sequence[float], epochs: Sequence[int] | None = None,
                      threshold: float = COLLAPSE_THRESHOLD) -> int | None:
    """The first epoch whose value exceeds `threshold` (epochs: the epoch of each value; default 0, 1, …),
    or None if none does."""
    epochs = range(len(values)) if epochs is None else epochs
    return next((int(e) for e, v in zip(epochs, values) if v > threshold), None)
