"""The paper's claims, checked on runs: each with its numbers and a verdict (rules: `lab.experiments`).

Toy claims: every setting is the method's defaults (and the toy trainer's) plus the knobs the
experiment's variant names: nothing here is tuned to make a claim pass. A claim is checked on each
dataset separately; the verdict is "held" when it holds on every dataset, "did not hold" when on none,
"mixed" otherwise. B.1 claims (`check_b1`, `survey_b1`): the four settings of one seed per verdict.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from lab import experiments as X
from lab.experiments import B1_SETTINGS
from lab.train.b1 import DEFAULT_LR, DEFAULT_NOISE, DEFAULT_SHIFT, B1Run, paper_config, train_b1
from lab.train.toy import ToyConfig, ToyRun, train_toys
from lab.vocab import COLLAPSE_THRESHOLD, first_epoch_above

COLLAPSED = COLLAPSE_THRESHOLD
DATASETS = ("blobs", "moons")

Variant = tuple[str, str, tuple[tuple[str, object], ...]]  # (label, method, params)


@dataclass(frozen=True)
class Numbers:
    """Final-epoch mean and std over seeds of the metrics a verdict reads."""

    center_norm: float
    center_norm_std: float
    knn_acc: float
    knn_acc_std: float
    diverged: str | None = None

    def text(self) -> str:
        return (f"‖s‖ {self.center_norm:.2f} ± {self.center_norm_std:.2f}, "
                f"kNN {self.knn_acc:.2f} ± {self.knn_acc_std:.2f}" + (" (diverged)" if self.diverged else ""))


@dataclass(frozen=True)
class Claim:
    """A toy claim of the registry with its experiment's source and toy variants."""

    key: str
    statement: str
    source: str
    variants: tuple[Variant, ...]
    rule: X.Claim

    def check(self, numbers: Mapping[str, Numbers]) -> tuple[bool, str]:
        return bool(self.rule.rule(numbers)), self.rule.rule_text


def _toy_claim(experiment: X.Experiment, claim: X.Claim) -> Claim:
    variants = tuple((v.label, v.method, tuple(v.knobs_at("toy").items())) for v in experiment.variants_at("toy"))
    return Claim(claim.key, claim.statement, experiment.source, variants, claim)


CLAIMS: tuple[Claim, ...] = tuple(_toy_claim(e, c) for e, c in X.claims_at("toy"))
CLAIM_KEYS = tuple(c.key for c in CLAIMS)


@dataclass(frozen=True)
class Result:
    claim: Claim
    verdict: str  # "held" | "did not hold" | "mixed"
    per_dataset: dict[str, tuple[bool, str]]
    numbers: dict[str, dict[str, Numbers]]  # dataset -> variant label -> numbers


def summarize(run: ToyRun) -> Numbers:
    """Final-epoch mean and std over seeds of center_norm and knn_acc."""
    c, k = run.metrics["center_norm"][-1], run.metrics["knn_acc"][-1]
    return Numbers(c.mean().item(), c.std(unbiased=False).item(), k.mean().item(), k.std(unbiased=False).item(),
                   run.diverged)


def claim_configs(claims: Sequence[Claim], seeds: int = 5, epochs: int | None = None,
                  datasets: Sequence[str] = DATASETS) -> dict[tuple[str, str, tuple], ToyConfig]:
    """Every distinct (method, params, dataset) the claims need, once each."""
    extra = {} if epochs is None else {"epochs": epochs}
    out = {}
    for claim in claims:
        for _, method, params in claim.variants:
            for ds in datasets:
                out.setdefault((method, ds, params), ToyConfig(method=method, dataset=ds, params=params,
                                                               seeds=seeds, **extra))
    return out


def run_claims(keys: Sequence[str] | None = None, seeds: int = 5, epochs: int | None = None,
               datasets: Sequence[str] = DATASETS,
               progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """Train what the chosen claims need (shared settings once) and judge each claim."""
    unknown = [k for k in (keys or []) if k not in CLAIM_KEYS]
    if unknown:
        raise ValueError(f"unknown claim {', '.join(unknown)}; valid: {', '.join(CLAIM_KEYS)}")
    claims = [c for c in CLAIMS if keys is None or c.key in keys]
    configs = claim_configs(claims, seeds, epochs, datasets)
    runs = dict(zip(configs, train_toys(list(configs.values()), progress)))
    return judge(claims, runs, datasets)


def judge(claims: Sequence[Claim], runs: Mapping[tuple[str, str, tuple], ToyRun],
          datasets: Sequence[str] = DATASETS) -> list[Result]:
    """Verdicts for claims on runs already trained, keyed like `claim_configs` ((method, dataset, params))."""
    results = []
    for claim in claims:
        numbers = {ds: {label: summarize(runs[(m, ds, p)]) for label, m, p in claim.variants} for ds in datasets}
        per_dataset = {ds: claim.check(numbers[ds]) for ds in datasets}
        held = [ok for ok, _ in per_dataset.values()]
        verdict = "held" if all(held) else "did not hold" if not any(held) else "mixed"
        results.append(Result(claim, verdict, per_dataset, numbers))
    return results


def results_table(results: Sequence[Result]) -> str:
    """Plain-text report: one block per claim with the verdict, the test and the numbers per dataset."""
    lines = []
    for r in results:
        lines.append(f"[{r.verdict}] {r.claim.statement} ({r.claim.source})")
        for ds, (ok, test) in r.per_dataset.items():
            lines.append(f"    {ds}: {'held' if ok else 'did not hold'} — test: {test}")
            for label, n in r.numbers[ds].items():
                lines.append(f"        {label:18s} {n.text()}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- B.1


@dataclass(frozen=True)
class Finding:
    claim: str
    held: bool
    numbers: str
    from_paper: bool = True  # False: a check of ours that puts a paper claim in context
    key: str = ""  # the claim's key in `lab.experiments`


def _fmt_epoch(e: int | None) -> str:
    return "never" if e is None else str(e)


def _b1_numbers(key: str, runs: Mapping[str, B1Run]) -> str:
    """The numbers behind a B.1 verdict, in words."""
    m = {n: r.metrics() for n, r in runs.items()}
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
    return "; ".join(f"{mode}: {X.b1_turn_deg(runs, mode):.0f}°" for mode in ("mini_batch_sgd", "batch_sgd"))


def check_b1(runs: Mapping[str, B1Run]) -> list[Finding]:
    """The B.1 claims (`lab.experiments`, experiment "b1") on one seed's four runs, keyed by setting name."""
    return [Finding(c.statement, bool(c.rule(runs)), _b1_numbers(c.key, runs), c.from_paper, c.key)
            for c in X.experiment("b1").claims]


def survey_b1(seeds: Sequence[int], **overrides) -> dict[str, list[bool]]:
    """For each B.1 claim (by statement), whether it held for each seed (the paper's four settings per seed)."""
    configs = [paper_config(n, seed=s, **overrides) for s in seeds for n in B1_SETTINGS]
    runs = train_b1(configs)
    table: dict[str, list[bool]] = {}
    for i, _ in enumerate(seeds):
        chunk = dict(zip(B1_SETTINGS, runs[4 * i: 4 * i + 4]))
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
