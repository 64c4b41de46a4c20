"""The paper's toy claims (Figs. 3 and 4), checked on the toy trainer's runs, each with its numbers and a
verdict (rules: `lab.core.experiments`).

Every setting is the method's defaults (and the toy trainer's) plus the knobs the experiment's variant names:
nothing here is tuned to make a claim pass. A claim is checked on each dataset separately; the verdict is
"held" when it holds on every dataset, "did not hold" when on none, "mixed" otherwise.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from lab.claims.shipped import SWEEPS, TOY_RESULTS, provenance
from lab.core import experiments as X
from lab.core.vocab import COLLAPSE_THRESHOLD
from lab.data.toy import N_CLASSES
from lab.methods import method_class
from lab.train.sweep import run_sweep
from lab.train.toy import ToyConfig, ToyCurves, ToyRun, curves_of, train_toys

COLLAPSED = COLLAPSE_THRESHOLD
DATASETS = X.TOY_DATASETS

Variant = tuple[str, str, tuple[tuple[str, object], ...]]  # (label, method, params)


@dataclass(frozen=True)
class Numbers:
    """Final-epoch mean and std over seeds of the metrics a verdict reads, and how many seeds collapsed."""

    center_norm: float
    center_norm_std: float
    knn_acc: float
    knn_acc_std: float
    diverged: str | None = None
    above: int = 0  # seeds with final ‖s‖ above the collapse threshold
    seeds: int = 0

    def text(self) -> str:
        count = f" ({self.above} of {self.seeds} above {COLLAPSED})" if self.seeds else ""
        return (f"‖s‖ {self.center_norm:.2f} ± {self.center_norm_std:.2f}{count}, "
                f"kNN {self.knn_acc:.2f} ± {self.knn_acc_std:.2f}" + (" (diverged)" if self.diverged else ""))


@dataclass(frozen=True)
class SeedNumbers:
    """One seed's final values: what a toy rule reads (`lab.core.experiments`)."""

    center_norm: float
    knn_acc: float
    diverged: bool = False


@dataclass(frozen=True)
class Claim:
    """A toy claim of the registry with its experiment's source and toy variants."""

    key: str
    statement: str
    source: str
    variants: tuple[Variant, ...]
    rule: X.Claim

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, _, _ in self.variants)

    def check(self, numbers: Mapping[str, SeedNumbers]) -> tuple[bool, str]:
        """The rule on one seed's numbers, {variant label: SeedNumbers}."""
        return bool(self.rule.rule(numbers)), self.rule.rule_text

    def judge(self, seeds: Mapping[int, Mapping[str, SeedNumbers]],
              health: Mapping[int, X.Health] | None = None) -> dict:
        """Seed by seed (`lab.core.experiments.seed_verdict`), untestable where the control collapsed:
        {"held", "n", "per_seed", "untestable", "health", "verdict"}."""
        return X.seed_verdict(self.rule, seeds, self.labels, health)


def _toy_claim(experiment: X.Experiment, claim: X.Claim) -> Claim:
    variants = tuple((v.label, v.method, tuple(v.knobs_at("toy").items())) for v in experiment.variants_at("toy"))
    return Claim(claim.key, claim.statement, experiment.source, variants, claim)


CLAIMS: tuple[Claim, ...] = tuple(_toy_claim(e, c) for e, c in X.claims_at("toy"))
CLAIM_KEYS = tuple(c.key for c in CLAIMS)
CONTROLS = {c.key: c.rule.control for c in CLAIMS}  # claim -> its control arm's label (None: no control)


@dataclass(frozen=True)
class DatasetVerdict:
    verdict: str  # "held" (every testable seed) | "did not hold" (none) | "mixed" | "untestable"
    held: int  # seeds the claim held in
    n: int  # testable seeds: complete, with a healthy control
    per_seed: dict[int, bool]
    test: str  # the rule in words
    untestable: dict[int, str] = field(default_factory=dict)  # seed -> why its control is unhealthy
    health: dict[int, dict] = field(default_factory=dict)  # seed -> the control's health (`X.Health.to_json`)

    @property
    def ok(self) -> bool:
        return self.verdict == "held"

    def count(self) -> str:
        skipped = f", {len(self.untestable)} untestable" if self.untestable else ""
        return f"{self.held} of {self.n} seeds{skipped}"


@dataclass(frozen=True)
class Result:
    claim: Claim
    verdict: str  # "held" | "did not hold" | "mixed" (`lab.core.experiments.combined_verdict`)
    per_dataset: dict[str, DatasetVerdict]
    numbers: dict[str, dict[str, Numbers]]  # dataset -> variant label -> mean, std, collapse count
    seeds: dict[str, dict[str, dict[int, SeedNumbers]]]  # dataset -> variant label -> seed -> final values
    curves: dict[tuple[str, str, tuple], ToyCurves] = field(default_factory=dict)  # the runs' metrics, by config


def summarize(run: ToyRun) -> Numbers:
    """Final-epoch mean and std over seeds of center_norm and knn_acc, and the seeds above the threshold."""
    c, k = run.metrics["center_norm"][-1], run.metrics["knn_acc"][-1]
    return Numbers(c.mean().item(), c.std(unbiased=False).item(), k.mean().item(), k.std(unbiased=False).item(),
                   run.diverged, int((c > COLLAPSED).sum()), len(c))


def control_health(run: ToyRun) -> dict[int, X.Health]:
    """Each seed's health as a claim's control (`lab.core.experiments.control_health`): its final readings by
    its method's collapse signature, ‖s‖ against the untrained model's (the first evaluated epoch, 0)."""
    signature = method_class(run.config.method).signature
    start = run.metrics["center_norm"][0] if run.epochs and run.epochs[0] == 0 else None
    out = {}
    for i, seed in enumerate(run.config.seed_list):
        readings = {name: float(values[-1][i].detach()) for name, values in run.metrics.items()
                    if values.dim() == 2 and values.shape[1] > i} | {"effective_rank_max": run.z.shape[-1]}
        out[seed] = X.control_health(signature, readings, N_CLASSES, None if start is None else float(start[i]))
    return out


def seed_numbers(run: ToyRun) -> dict[int, SeedNumbers]:
    """Each seed's final values, by seed number. A run that diverged ends at its last finite epoch."""
    c, k = run.metrics["center_norm"][-1], run.metrics["knn_acc"][-1]
    return {seed: SeedNumbers(float(c[i]), float(k[i]), run.diverged is not None)
            for i, seed in enumerate(run.config.seed_list)}


def claim_configs(claims: Sequence[Claim], seeds: int = X.TOY_SEEDS, epochs: int | None = None,
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


def run_claims(keys: Sequence[str] | None = None, seeds: int = X.TOY_SEEDS, epochs: int | None = None,
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
    """Verdicts for claims on runs already trained, keyed like `claim_configs` ((method, dataset, params)):
    seed by seed on each data set, then over the data sets."""
    results = []
    for claim in claims:
        numbers, seeds, per_dataset, curves = {}, {}, {}, {}
        for ds in datasets:
            these = {label: runs[(m, ds, p)] for label, m, p in claim.variants}
            curves.update({(m, ds, p): curves_of(runs[(m, ds, p)], CURVE_METRICS) for _, m, p in claim.variants})
            numbers[ds] = {label: summarize(run) for label, run in these.items()}
            seeds[ds] = {label: seed_numbers(run) for label, run in these.items()}
            by_seed: dict[int, dict[str, SeedNumbers]] = {}
            for label, per in seeds[ds].items():
                for seed, n in per.items():
                    by_seed.setdefault(seed, {})[label] = n
            control = claim.rule.control
            v = claim.judge(by_seed, control_health(these[control]) if control else None)
            per_dataset[ds] = DatasetVerdict(v["verdict"], v["held"], v["n"], v["per_seed"], claim.rule.rule_text,
                                             v["untestable"], v["health"])
        verdict = X.combined_verdict([d.verdict for d in per_dataset.values()])
        results.append(Result(claim, verdict, per_dataset, numbers, seeds, curves))
    return results


def results_table(results: Sequence[Result]) -> str:
    """Plain-text report: one block per claim with the verdict, the test, the seed count and the numbers
    (mean ± std and collapse count per variant, then each seed's final ‖s‖) per dataset."""
    lines = []
    for r in results:
        lines.append(f"[{r.verdict}] {r.claim.statement} ({r.claim.source})")
        for ds, d in r.per_dataset.items():
            lines.append(f"    {ds}: {d.verdict}, in {d.count()} — test: {d.test}")
            for seed, why in d.untestable.items():
                lines.append(f"        seed {seed} untestable, its control {r.claim.rule.control}: {why}")
            for label, n in r.numbers[ds].items():
                per = ", ".join(f"{v.center_norm:.2f}" for v in r.seeds[ds][label].values())
                lines.append(f"        {label:18s} {n.text()}; per seed ‖s‖ {per}")
    return "\n".join(lines)


def toy_results_json(results: Sequence[Result], seeds: int, epochs: int | None) -> dict:
    """The contract of `assets/toy_claims.json`: provenance, and per claim its verdict, and per data set the
    verdict, the seed count (`held` of `n`), which seeds held, each variant's mean, std and collapse count
    (`numbers`) and every seed's final values (`per_seed`)."""
    out = []
    for r in results:
        datasets = {}
        for ds, d in r.per_dataset.items():
            datasets[ds] = {
                "verdict": d.verdict, "held": d.held, "n": d.n, "test": d.test,
                "per_seed_held": {str(k): v for k, v in d.per_seed.items()},
                "control": r.claim.rule.control, "untestable": {str(k): v for k, v in d.untestable.items()},
                "control_health": {str(k): v for k, v in d.health.items()},
                "numbers": {label: asdict(n) for label, n in r.numbers[ds].items()},
                "per_seed": {label: {str(seed): asdict(v) for seed, v in per.items()}
                             for label, per in r.seeds[ds].items()}}
        out.append({"claim": r.claim.key, "statement": r.claim.statement, "source": r.claim.source,
                    "rule": r.claim.rule.rule_text, "from_paper": r.claim.rule.from_paper,
                    "metrics": list(r.claim.rule.metrics),
                    "verdict": r.verdict, "datasets": datasets})
    curves = {config_key(*key): c.to_json() for r in results for key, c in r.curves.items()}
    return {**provenance(), "seeds": seeds, "epochs": epochs, "threshold": COLLAPSED,
            "verdict_rule": VERDICT_RULE, "results": out, "curves": curves}


# What the shipped results keep of each run's curves: the Compare page's figure suites read them.
CURVE_METRICS = ("center_norm", "knn_acc", "linear_acc", "z_std")


def config_key(method: str, dataset: str, params: tuple) -> str:
    """A claim setting's key in the results' `curves`: method|dataset|knobs as JSON."""
    return f"{method}|{dataset}|{json.dumps(dict(params), sort_keys=True)}"


def shipped_curves(data: Mapping, method: str, dataset: str, params: tuple, epochs: int) -> ToyCurves | None:
    """The shipped curves of one setting at the trainer's defaults and `epochs`, or None where the results
    were made at other settings (seeds are whatever they were made with) or lack that setting."""
    curves = data.get("curves", {}).get(config_key(method, dataset, tuple(sorted(params))))
    config = ToyConfig(method=method, dataset=dataset, params=params, seeds=data["seeds"],
                       **({"epochs": data["epochs"]} if data.get("epochs") else {}))
    if curves is None or config.epochs != epochs:
        return None
    return ToyCurves.from_json(config, curves)


VERDICT_RULE = ("each claim is judged seed by seed, in the seeds where its control arm (the standard method) is "
                "healthy (a seed whose control collapsed is untestable: lab.core.experiments.control_health); on a "
                "data set it held when it holds in every testable seed, did not hold when in none, and is mixed "
                "otherwise, untestable when no seed is testable; over the data sets it held when it held on every "
                "testable one, did not hold when on none, and is mixed otherwise")


# The generated table sits between these markers in docs/claims.md: a reader sees which text is generated, and
# by what command, and a regenerated table is pasted over exactly that span.
DOC_BEGIN = "<!-- toy-claims: generated by python -m lab claims --markdown from assets/toy_claims.json -->"
DOC_END = "<!-- /toy-claims -->"


def claims_markdown(data: Mapping) -> str:
    """The claims table of docs/claims.md from results (`toy_results_json`): per claim and data set the verdict with
    its seed count, and per variant the mean final ‖s‖ with how many seeds were above the threshold; the kNN
    mean where the rule reads it."""
    datasets = list(next(iter(data["results"]))["datasets"]) if data["results"] else []
    lines = [DOC_BEGIN,
             f"Made {data['made']} on {data['machine']}, commit {data['commit']}; {data['seeds']} seeds, "
             f"{data.get('epochs') or 'default'} epochs. Cell: verdict (seeds it held in); per variant the mean "
             f"final ‖s‖ (seeds above {data['threshold']}).", "",
             "| claim (source) | " + " | ".join(datasets) + " | verdict |", "|---" * (len(datasets) + 2) + "|"]
    for r in data["results"]:
        cells = []
        for ds in datasets:
            d = r["datasets"][ds]
            parts = []
            for label, n in d["numbers"].items():
                knn = f", kNN {n['knn_acc']:.2f}" if "knn_acc" in r.get("metrics", ()) else ""
                parts.append(f"{label} {n['center_norm']:.2f} ({n['above']}/{n['seeds']}){knn}")
            skipped = f", {len(d['untestable'])} untestable" if d.get("untestable") else ""
            cells.append(f"**{d['verdict']}** ({d['held']}/{d['n']}{skipped}): " + "; ".join(parts))
        ours = " *(ours)*" if not r.get("from_paper", True) else ""
        lines.append(f"| {r['statement']} ({r['source'].removeprefix('paper ')}){ours} | " + " | ".join(cells)
                     + f" | {r['verdict']} |")
    return "\n".join(lines + ["", DOC_END])


def claim_sweeps(keys: Sequence[str] | None = None, seeds: int = X.TOY_SEEDS, datasets: Sequence[str] = DATASETS,
                 progress: Callable[[int, int], None] | None = None, epochs: int | None = None) -> dict[str, dict]:
    """The declared sweep of every chosen claim that has one (`lab.core.experiments.Claim.sweep`), on each data set:
    {"<claim>-<dataset>": the sweep's JSON (`lab.train.sweep.Sweep.to_json`) with provenance and the claim}."""
    out = {}
    for c in CLAIMS:
        if c.rule.sweep is None or (keys is not None and c.key not in keys):
            continue
        axis, log = c.rule.sweep
        method = c.variants[0][1]
        for ds in datasets:
            sweep = run_sweep(method, axis, None, seeds=seeds, dataset=ds, log_x=log, progress=progress,
                              settings={"epochs": epochs} if epochs else None)
            out[f"{c.key}-{ds}"] = {**provenance(), "claim": c.key, "statement": c.statement, **sweep.to_json()}
    return out


def read_claim_sweep(key: str, dataset: str, folder: str | Path | None = None) -> dict | None:
    """A shipped claim sweep (`python -m lab claims --sweeps assets/sweeps`), or None where there is none."""
    try:
        data = json.loads((Path(folder or SWEEPS) / f"{key}-{dataset}.json").read_text())
        return data if data.get("claim") == key and "metrics" in data else None
    except (OSError, ValueError, AttributeError):
        return None


def read_toy_results(path: str | Path | None = None) -> dict | None:
    """Shipped toy claims (`python -m lab claims --out assets/toy_claims.json`), or None where there are none,
    they cannot be read, or they predate the seed counts (no `per_seed`)."""
    try:
        data = json.loads(Path(path or TOY_RESULTS).read_text())
        results = data["results"]
        if not all("per_seed" in d for r in results for d in r["datasets"].values()):
            return None
        return data
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


