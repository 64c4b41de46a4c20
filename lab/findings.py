"""The paper's B.1 findings, checked on runs: each claim with its numbers and a verdict.

The center used is the paper's B.1 definition s = E_x E_ω[z(ω(x))], the center of the
augmented features (`center_norm_aug`), since those are the samples the loss sees; the
center of the un-augmented dataset points (`center_norm`) is reported beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from lab import geometry as geo
from lab.train.b1 import PAPER_SETTINGS, B1Run, paper_config, train_b1

COLLAPSED = 0.95  # final ‖s‖ above this counts as collapsed (issue #2)
NEAR = 0.9  # "reaches ‖s‖ > 0.9": the epoch the collapse is well under way
TURNED_DEG = 30.0  # a center that moved by more than this has visibly turned


@dataclass(frozen=True)
class Finding:
    claim: str
    held: bool
    numbers: str
    from_paper: bool = True  # False: a check of ours that puts a paper claim in context


def first_epoch_above(values: Sequence[float], threshold: float = NEAR) -> int | None:
    """First epoch whose value exceeds threshold, or None if it never does."""
    return next((i for i, v in enumerate(values) if v > threshold), None)


def _fmt_epoch(e: int | None) -> str:
    return "never" if e is None else str(e)


def check_b1(runs: dict[str, B1Run]) -> list[Finding]:
    """The three B.1 claims on one seed's four runs (keys: the paper's setting names)."""
    m = {n: r.metrics() for n, r in runs.items()}
    finals = {n: (v["center_norm_aug"][-1], v["center_norm"][-1]) for n, v in m.items()}
    out = [Finding(
        "all four settings collapse (final ‖s‖ > 0.95)",
        all(a > COLLAPSED for a, _ in finals.values()),
        "; ".join(f"{n}: {a:.3f} (dataset points {d:.3f})" for n, (a, d) in finals.items()),
    )]
    parts, held = [], True
    for kind in ("centered", "shifted"):
        mb = first_epoch_above(m[f"mini_batch_sgd_{kind}_augmentation"]["center_norm_aug"])
        b = first_epoch_above(m[f"batch_sgd_{kind}_augmentation"]["center_norm_aug"])
        held &= mb is not None and (b is None or mb < b)
        parts.append(f"{kind}: mini-batch epoch {_fmt_epoch(mb)} vs batch epoch {_fmt_epoch(b)}")
    out.append(Finding("mini-batch SGD reaches ‖s‖ > 0.9 in fewer epochs than batch SGD", held, "; ".join(parts)))
    parts, held = [], True
    for kind in ("centered", "shifted"):
        steps = []
        for mode in ("mini_batch_sgd", "batch_sgd"):
            run = runs[f"{mode}_{kind}_augmentation"]
            e = first_epoch_above(m[f"{mode}_{kind}_augmentation"]["center_norm_aug"])
            steps.append(None if e is None else e * run.config.steps_per_epoch)
        held &= steps[0] is not None and (steps[1] is None or steps[0] < steps[1])
        parts.append(f"{kind}: mini-batch step {_fmt_epoch(steps[0])} vs batch step {_fmt_epoch(steps[1])}")
    out.append(Finding("... and in fewer optimizer steps (mini-batch: 20 an epoch, batch: 1; read at epoch ends)", held,
                       "; ".join(parts), from_paper=False))
    parts, held = [], True
    for mode in ("mini_batch_sgd", "batch_sgd"):
        angle = geo.angle_between_deg(runs[f"{mode}_centered_augmentation"].s_aug[-1],
                                      runs[f"{mode}_shifted_augmentation"].s_aug[-1]).item()
        held &= angle > TURNED_DEG
        parts.append(f"{mode}: {angle:.0f}°")
    out.append(Finding(f"shifted augmentation turns the center (> {TURNED_DEG:.0f}° from the centered run's)",
                       held, "; ".join(parts)))
    return out


def survey_b1(seeds: Sequence[int], **overrides) -> dict[str, list[bool]]:
    """For each claim, whether it held for each seed (the paper's four settings per seed)."""
    configs = [paper_config(n, seed=s, **overrides) for s in seeds for n in PAPER_SETTINGS]
    runs = train_b1(configs)
    table: dict[str, list[bool]] = {}
    for i, _ in enumerate(seeds):
        chunk = dict(zip(PAPER_SETTINGS, runs[4 * i: 4 * i + 4]))
        for f in check_b1(chunk):
            table.setdefault(f.claim, []).append(f.held)
    return table
