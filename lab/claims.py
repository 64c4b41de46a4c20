"""The paper's claims, checked on runs: each with its numbers and a verdict (rules: `lab.experiments`).

Toy claims: every setting is the method's defaults (and the toy trainer's) plus the knobs the
experiment's variant names: nothing here is tuned to make a claim pass. A claim is checked on each
dataset separately; the verdict is "held" when it holds on every dataset, "did not hold" when on none,
"mixed" otherwise. B.1 claims (`check_b1`, `survey_b1`): the four settings of one seed per verdict.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from lab import experiments as X
from lab.experiments import B1_SETTINGS, EXPERIMENTS
from lab.imagenet.presets import ALL, FMNIST_WHY, preset_runs
from lab.runlog import read_jsonl
from lab.train.b1 import DEFAULT_LR, DEFAULT_NOISE, DEFAULT_SHIFT, B1Config, B1Run, paper_config, train_b1
from lab.train.sweep import run_sweep
from lab.train.toy import ToyConfig, ToyCurves, ToyRun, curves_of, train_toys
from lab.vocab import COLLAPSE_THRESHOLD, first_epoch_above

COLLAPSED = COLLAPSE_THRESHOLD
DATASETS = ("blobs", "moons")

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
    """One seed's final values: what a toy rule reads (`lab.experiments`)."""

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

    def judge(self, seeds: Mapping[int, Mapping[str, SeedNumbers]]) -> dict:
        """Seed by seed (`lab.experiments.seed_verdict`): {"held", "n", "per_seed", "verdict"}."""
        return X.seed_verdict(self.rule, seeds, self.labels)


def _toy_claim(experiment: X.Experiment, claim: X.Claim) -> Claim:
    variants = tuple((v.label, v.method, tuple(v.knobs_at("toy").items())) for v in experiment.variants_at("toy"))
    return Claim(claim.key, claim.statement, experiment.source, variants, claim)


CLAIMS: tuple[Claim, ...] = tuple(_toy_claim(e, c) for e, c in X.claims_at("toy"))
CLAIM_KEYS = tuple(c.key for c in CLAIMS)


@dataclass(frozen=True)
class DatasetVerdict:
    verdict: str  # "held" (every seed) | "did not hold" (none) | "mixed"
    held: int  # seeds the claim held in
    n: int
    per_seed: dict[int, bool]
    test: str  # the rule in words

    @property
    def ok(self) -> bool:
        return self.verdict == "held"

    def count(self) -> str:
        return f"{self.held} of {self.n} seeds"


@dataclass(frozen=True)
class Result:
    claim: Claim
    verdict: str  # "held" | "did not hold" | "mixed" (`lab.experiments.combined_verdict`)
    per_dataset: dict[str, DatasetVerdict]
    numbers: dict[str, dict[str, Numbers]]  # dataset -> variant label -> mean, std, collapse count
    seeds: dict[str, dict[str, dict[int, SeedNumbers]]]  # dataset -> variant label -> seed -> final values
    curves: dict[tuple[str, str, tuple], ToyCurves] = field(default_factory=dict)  # the runs' metrics, by config


def summarize(run: ToyRun) -> Numbers:
    """Final-epoch mean and std over seeds of center_norm and knn_acc, and the seeds above the threshold."""
    c, k = run.metrics["center_norm"][-1], run.metrics["knn_acc"][-1]
    return Numbers(c.mean().item(), c.std(unbiased=False).item(), k.mean().item(), k.std(unbiased=False).item(),
                   run.diverged, int((c > COLLAPSED).sum()), len(c))


def seed_numbers(run: ToyRun) -> dict[int, SeedNumbers]:
    """Each seed's final values, by seed number. A run that diverged ends at its last finite epoch."""
    c, k = run.metrics["center_norm"][-1], run.metrics["knn_acc"][-1]
    return {seed: SeedNumbers(float(c[i]), float(k[i]), run.diverged is not None)
            for i, seed in enumerate(run.config.seed_list)}


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
            v = claim.judge(by_seed)
            per_dataset[ds] = DatasetVerdict(v["verdict"], v["held"], v["n"], v["per_seed"], claim.rule.rule_text)
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


VERDICT_RULE = ("each claim is judged seed by seed; on a data set it held when it holds in every seed, did not "
                "hold when in none, and is mixed otherwise; over the data sets it held when it held on both, did "
                "not hold when on neither, and is mixed otherwise")


README_BEGIN = "<!-- toy-claims: generated by python -m lab claims --markdown from assets/toy_claims.json -->"
README_END = "<!-- /toy-claims -->"


def claims_markdown(data: Mapping) -> str:
    """The README's claims table from results (`toy_results_json`): per claim and data set the verdict with its
    seed count, and per variant the mean final ‖s‖ with how many seeds were above the threshold; the kNN
    mean where the rule reads it."""
    datasets = list(next(iter(data["results"]))["datasets"]) if data["results"] else []
    lines = [README_BEGIN,
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
            cells.append(f"**{d['verdict']}** ({d['held']}/{d['n']}): " + "; ".join(parts))
        ours = " *(ours)*" if not r.get("from_paper", True) else ""
        lines.append(f"| {r['statement']} ({r['source'].removeprefix('paper ')}){ours} | " + " | ".join(cells)
                     + f" | {r['verdict']} |")
    return "\n".join(lines + ["", README_END])


def claim_sweeps(keys: Sequence[str] | None = None, seeds: int = 5, datasets: Sequence[str] = DATASETS,
                 progress: Callable[[int, int], None] | None = None, epochs: int | None = None) -> dict[str, dict]:
    """The declared sweep of every chosen claim that has one (`lab.experiments.Claim.sweep`), on each data set:
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


def b1_null_configs(runs: Mapping[str, B1Run]) -> dict[str, B1Config]:
    """The null of the turn claim for each optimizer: its centered run's config with another noise draw."""
    out = {}
    for mode in X.B1_MODES:
        c = runs[f"{mode}_centered_augmentation"].config
        out[X.b1_null_name(mode)] = replace(c, noise_seed=B1_NULL_NOISE_OFFSET + c.seed)
    return out


def with_b1_nulls(runs: Mapping[str, B1Run]) -> dict[str, B1Run]:
    """runs plus the null runs `b1_null_configs` names, trained here where runs lacks them."""
    missing = {k: c for k, c in b1_null_configs(runs).items() if k not in runs}
    return {**runs, **dict(zip(missing, train_b1(list(missing.values()))))} if missing else dict(runs)


def check_b1(runs: Mapping[str, B1Run]) -> list[Finding]:
    """The B.1 claims (`lab.experiments`, experiment "b1") on one seed's four runs, keyed by setting name
    (the turn claim's null runs are trained when runs lacks them)."""
    runs = with_b1_nulls(runs)
    return [Finding(c.statement, bool(c.rule(runs)), _b1_numbers(c.key, runs), c.from_paper, c.key)
            for c in X.experiment("b1").claims]


def b1_configs_with_nulls(seed: int, **overrides) -> dict[str, B1Config]:
    """The paper's four settings of one seed and the two null runs, by name."""
    four = {n: paper_config(n, seed=seed, **overrides) for n in B1_SETTINGS}
    nulls = {X.b1_null_name(mode): replace(four[f"{mode}_centered_augmentation"],
                                          noise_seed=B1_NULL_NOISE_OFFSET + seed) for mode in X.B1_MODES}
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



# ----------------------------------------------------------------------------------------- engine runs
# The paper's ImageNet claims on the engine's preset runs (Fashion-MNIST or ImageNet-100), judged seed by
# seed by the rules in `lab.experiments` (`engine_claims`, `engine_verdict`). Only finished runs count.

# Every engine experiment's panels, and the readings a verdict is read from.
CURVES = tuple(dict.fromkeys(("center_norm", "center_norm_post_bn", "effective_rank", "effective_rank_post_bn",
                              "knn_acc", "loss") + tuple(m for e in EXPERIMENTS if e.preset for m in e.panels)))
ASSETS = Path(__file__).resolve().parent.parent / "assets"
ENGINE_RESULTS = ASSETS / "fmnist" / "claims.json"
TOY_RESULTS = ASSETS / "toy_claims.json"  # python -m lab claims --out assets/toy_claims.json
SWEEPS = ASSETS / "sweeps"  # python -m lab claims --sweeps assets/sweeps
N_CLASSES = {"fmnist": 10, "imagenet": 100}  # when a run's config.json does not say


def run_numbers(rows: Sequence[Mapping], n_classes: int) -> X.RunNumbers | None:
    """The numbers a verdict reads from one run's metrics.jsonl rows; None without a trained epoch."""
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    if not epochs or epochs[-1].get("epoch", 0) < 1:
        return None
    last, first = epochs[-1], epochs[0]
    knn = next((r["knn_acc"] for r in reversed(epochs) if r.get("knn_acc") is not None), None)
    pre = last.get("center_norm_pre_bn", last["center_norm"])
    rank = last.get("effective_rank", float("nan"))
    untrained = first.get("epoch") == 0
    return X.RunNumbers(
        center_norm=pre, center_norm_post_bn=last.get("center_norm_post_bn", pre), effective_rank=rank,
        effective_rank_post_bn=last.get("effective_rank_post_bn", rank),
        effective_rank_max=last.get("effective_rank_max", float("nan")), knn_acc=knn, n_classes=n_classes,
        epoch=last["epoch"], start_center_norm=first["center_norm"] if untrained else None,
        start_knn_acc=first.get("knn_acc") if untrained else None)


def _finished(rows: Sequence[Mapping]) -> bool:
    return bool(rows) and rows[-1].get("kind") == "end" and rows[-1].get("status") == "finished"


def _curves(rows: Sequence[Mapping]) -> dict[str, list]:
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    return {"epoch": [r["epoch"] for r in epochs], **{m: [r.get(m) for r in epochs] for m in CURVES}}


def find_preset_runs(root: str | Path) -> list[dict]:
    """Every run folder under `root` (depth 1 or 2: OUT/<run> or OUT/<preset>/<run>) named like a preset run,
    with its scale, entry, rows and config."""
    root = Path(root)
    index = {e["name"]: (scale, e) for scale in N_CLASSES for e in preset_runs(ALL, scale)}
    found = []
    for metrics in sorted([*root.glob("*/metrics.jsonl"), *root.glob("*/*/metrics.jsonl")]):
        folder = metrics.parent
        if folder.name not in index:
            continue
        scale, entry = index[folder.name]
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        if config.get("config", {}).get("method", entry["method"]) != entry["method"]:
            continue  # a folder of the same name holding another method's run
        found.append({"path": folder, "scale": scale, "entry": entry, "rows": read_jsonl(metrics), "config": config})
    return found


def _machine() -> str:
    return f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cores"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def judge_engine_runs(root: str | Path) -> dict:
    """The engine claims on the finished preset runs under `root`: the contract of `assets/fmnist/claims.json`
    ({"made", "machine", "commit", "root", "budget", "claims": [...], "runs": {...}, "unfinished": [...]}).
    Each claim: its experiment, statement, rule, verdict, seed counts, and per seed each variant's numbers."""
    runs, unfinished = {}, []
    by_variant: dict[tuple[str, str], dict[int, X.RunNumbers]] = {}
    for run in find_preset_runs(root):
        entry, rows = run["entry"], run["rows"]
        name = entry["name"]
        if not _finished(rows):
            unfinished.append(name)
            continue
        numbers = run_numbers(rows, run["config"].get("n_classes", N_CLASSES[run["scale"]]))
        if numbers is None:
            unfinished.append(name)
            continue
        runs[name] = {"preset": entry["preset"], "variant": entry["variant"], "seed": entry["seed"],
                      "method": entry["method"], "set": entry["set"], "scale": run["scale"],
                      "final": _asdict(numbers), "curves": _curves(rows),
                      "seconds": sum(r.get("epoch_seconds", 0) + r.get("knn_seconds", 0)
                                     for r in rows if r.get("kind") == "epoch")}
        by_variant.setdefault((entry["preset"], entry["variant"]), {})[entry["seed"]] = numbers
    claims = []
    for experiment, claim in X.engine_claims():
        labels = tuple(v.label for v in experiment.variants_at("imagenet"))
        seeds: dict[int, dict[str, X.RunNumbers]] = {}
        for label in labels:
            for seed, numbers in by_variant.get((experiment.preset, label), {}).items():
                seeds.setdefault(seed, {})[label] = numbers
        verdict = X.engine_verdict(claim, seeds, claim.reads or labels)
        claims.append({"key": claim.key, "experiment": experiment.key, "figure": experiment.figure,
                       "title": experiment.title, "preset": experiment.preset, "statement": claim.statement,
                       "paper": experiment.statement, "source": experiment.source, "rule": claim.rule_text,
                       "from_paper": claim.from_paper, "toy": X.toy_twin(claim), **verdict,
                       "per_seed": {str(k): v for k, v in verdict["per_seed"].items()},
                       "numbers": {str(seed): {label: _asdict(n) for label, n in runs_.items()
                                               if label in (claim.reads or labels)}
                                   for seed, runs_ in sorted(seeds.items())}})
    return {**provenance(), "root": str(root), "budget": FMNIST_WHY, "threshold": COLLAPSE_THRESHOLD, "claims": claims,
            "runs": runs, "unfinished": sorted(unfinished)}


def _asdict(numbers: X.RunNumbers) -> dict:
    return {k: getattr(numbers, k) for k in X.RunNumbers.__dataclass_fields__} | {
        "collapsed": numbers.collapsed, "rank_collapsed": numbers.rank_collapsed, "knn_failed": numbers.knn_failed}


def engine_table(results: Mapping) -> str:
    """Plain-text report of `judge_engine_runs`: per claim the verdict with its seed count, the rule, and each
    seed's final ‖s‖ (from the untrained model's), effective rank and kNN per variant."""
    lines = [f"engine claims on {results['root']} ({results['made']}, {results['machine']}, commit "
             f"{results['commit']})"]
    for c in results["claims"]:
        count = f"{c['held']} of {c['n']} seeds" if c["n"] else "no complete seed"
        ours = "" if c["from_paper"] else " [a check of ours]"
        lines.append(f"[{c['verdict']}: {count}] {c['statement']} ({c['figure']}){ours}")
        lines.append(f"    rule, per seed: {c['rule']}")
        for seed, variants in c["numbers"].items():
            held = c["per_seed"].get(seed)
            lines.append(f"    seed {seed}: {'held' if held else 'did not hold' if held is not None else 'incomplete'}")
            for label, n in variants.items():
                start = n["start_center_norm"]
                lines.append(f"        {label:28s} ‖s‖ {n['center_norm']:.3f}"
                             + (f" (untrained {start:.3f})" if start is not None else "")
                             + f", after BN {n['center_norm_post_bn']:.3f}, rank {n['effective_rank']:.1f}"
                             + f" / post {n['effective_rank_post_bn']:.1f} of {n['effective_rank_max']:.0f}"
                             + (f", kNN {n['knn_acc']:.3f}" if n["knn_acc"] is not None else ""))
    if results["unfinished"]:
        lines.append(f"not judged (unfinished): {', '.join(results['unfinished'])}")
    return "\n".join(lines)


def provenance() -> dict[str, str]:
    """When, where and at which commit results were made: every shipped results file says it."""
    return {"made": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": _machine(), "commit": _git_commit()}


def read_engine_results(path: str | Path = ENGINE_RESULTS) -> dict | None:
    """Shipped engine results (`python -m lab claims --runs DIR --out PATH`), or None where there are none or
    they cannot be read."""
    try:
        data = json.loads(Path(path).read_text())
        return data if isinstance(data.get("claims"), list) else None
    except (OSError, ValueError, AttributeError):
        return None


def engine_curves(results: Mapping, experiment_key: str) -> tuple[tuple[str, ...], dict[str, dict[int, dict]]]:
    """(the experiment's panels, {variant label: {seed: curves}}) from `judge_engine_runs` results, variants in
    the registry's order; curves: {"epoch": [...], metric: [value or None per epoch]}."""
    experiment = X.experiment(experiment_key)
    out: dict[str, dict[int, dict]] = {v.label: {} for v in experiment.variants_at("imagenet")}
    for run in results.get("runs", {}).values():
        if run["preset"] == experiment.preset and run["variant"] in out:
            out[run["variant"]][run["seed"]] = run["curves"]
    return experiment.panels, {label: dict(sorted(seeds.items())) for label, seeds in out.items() if seeds}
