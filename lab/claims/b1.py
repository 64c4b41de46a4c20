"""The paper's Appendix B.1 claims (`check_b1`, `survey_b1`): the four settings of one seed per verdict, each
beside a null (the same comparison between two runs that differ only in their random draw)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

from lab.core import experiments as X
from lab.core.experiments import B1_SETTINGS
from lab.core.seeds import OFFSET, seed_stream
from lab.core.vocab import first_epoch_above
from lab.train.b1 import DEFAULT_LR, DEFAULT_NOISE, DEFAULT_SHIFT, B1Config, B1Run, paper_config, train_b1





@dataclass(frozen=True)
class Finding:
    claim: str
    held: bool
    numbers: str
    from_paper: bool = True  # False: a check of ours that puts a paper claim in context
    key: str = ""  # the claim's key in `lab.core.experiments`


def _fmt_epoch(e: int | None) -> str:
    return "never" if e is None else str(e)


def _b1_numbers(key: str, runs: Mapping[str, B1Run]) -> str:
    """The numbers behind a B.1 verdict, in words."""
    m = {n: runs[n].metrics() for n in B1_SETTINGS}
    if key == "b1_collapse":
        return "; ".join(f"{n}: {v['center_norm_aug'][-1]:.3f} (dataset points {v['center_norm'][-1]:.3f})"
                         for n, v in m.items())
    if key in ("b1_faster", "b1_faster_steps"):
        unit, parts = ("step" if key == "b1_faster_steps" else "epoch"), []
        for kind in ("centered", "shifted"):
            at = []
            for mode in ("mini_batch_sgd", "batch_sgd"):
                name = f"{mode}_{kind}_augmentation"
                e = first_epoch_above(m[name]["center_norm_aug"])
                at.append(None if e is None else e * (runs[name].config.steps_per_epoch if unit == "step" else 1))
            parts.append(f"{kind}: mini-batch {unit} {_fmt_epoch(at[0])} vs batch {unit} {_fmt_epoch(at[1])}")
        return "; ".join(parts)
    return "; ".join(f"{mode}: {X.b1_turn_deg(runs, mode):.0f}° (null: {X.b1_null_turn_deg(runs, mode):.0f}°)"
                     for mode in X.B1_MODES)


# The null runs' noise draw: far from any seed a survey uses, so a null never equals another seed's run.
B1_NULL_NOISE_OFFSET = 1_000_000


def null_noise_seed(seed: int) -> int:
    """The noise draw of seed `seed`'s null runs: `B1_NULL_NOISE_OFFSET` past the seed."""
    return seed_stream(seed, B1_NULL_NOISE_OFFSET, strides=(OFFSET,))


def b1_null_configs(runs: Mapping[str, B1Run]) -> dict[str, B1Config]:
    """The null of the turn claim for each optimizer: its centered run's config with another noise draw."""
    out = {}
    for mode in X.B1_MODES:
        c = runs[f"{mode}_centered_augmentation"].config
        out[X.b1_null_name(mode)] = replace(c, noise_seed=null_noise_seed(c.seed))
    return out


def with_b1_nulls(runs: Mapping[str, B1Run]) -> dict[str, B1Run]:
    """runs plus the null runs `b1_null_configs` names, trained here where runs lacks them."""
    missing = {k: c for k, c in b1_null_configs(runs).items() if k not in runs}
    return {**runs, **dict(zip(missing, train_b1(list(missing.values()))))} if missing else dict(runs)


def check_b1(runs: Mapping[str, B1Run]) -> list[Finding]:
    """The B.1 claims (`lab.core.experiments`, experiment "b1") on one seed's four runs, keyed by setting name
    (the turn claim's null runs are trained when runs lacks them)."""
    runs = with_b1_nulls(runs)
    return [Finding(c.statement, bool(c.rule(runs)), _b1_numbers(c.key, runs), c.from_paper, c.key)
            for c in X.experiment("b1").claims]


def b1_configs_with_nulls(seed: int, **overrides) -> dict[str, B1Config]:
    """The paper's four settings of one seed and the two null runs, by name."""
    four = {n: paper_config(n, seed=seed, **overrides) for n in B1_SETTINGS}
    nulls = {X.b1_null_name(mode): replace(four[f"{mode}_centered_augmentation"],
                                          noise_seed=null_noise_seed(seed)) for mode in X.B1_MODES}
    return {**four, **nulls}


def survey_b1(seeds: Sequence[int], **overrides) -> dict[str, list[bool]]:
    """For each B.1 claim (by statement), whether it held for each seed (the paper's four settings per seed,
    and the two null runs of the turn claim)."""
    per_seed = [b1_configs_with_nulls(s, **overrides) for s in seeds]
    runs = iter(train_b1([c for configs in per_seed for c in configs.values()]))
    table: dict[str, list[bool]] = {}
    for configs in per_seed:
        chunk = {name: next(runs) for name in configs}
        for f in check_b1(chunk):
            table.setdefault(f.claim, []).append(f.held)
    return table


def read_b1_survey(path: str | Path) -> dict | None:
    """A survey written by `python -m lab b1-survey --out PATH` at the B.1 defaults, or None where there is
    none, it cannot be read, or it was made at other settings (then its counts would not be this page's)."""
    try:
        data = json.loads(Path(path).read_text())
        settings = (data["lr"], data["noise"], tuple(data["shift"]))
        if settings != (DEFAULT_LR, DEFAULT_NOISE, tuple(DEFAULT_SHIFT)) or not data["claims"]:
            return None
        return data
    except (OSError, ValueError, KeyError, TypeError):
        return None



