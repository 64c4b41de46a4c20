"""The paper's real-image claims (Figs. 5-7, B.4-B.6) on the engine's preset runs (Fashion-MNIST or
ImageNet-100), judged seed by seed by the rules in `lab.core.experiments`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from lab.claims.shipped import ENGINE_RESULTS, provenance
from lab.core import experiments as X
from lab.core.experiments import EXPERIMENTS
from lab.core.runlog import read_jsonl
from lab.core.vocab import COLLAPSE_THRESHOLD
from lab.engine.presets import ALL, FMNIST_WHY, preset_runs
from lab.methods import method_class



# The paper's ImageNet claims on the engine's preset runs (Fashion-MNIST or ImageNet-100), judged seed by
# seed by the rules in `lab.core.experiments` (`engine_claims`, `engine_verdict`). Only finished runs count.

# Every engine experiment's panels, and the readings a verdict is read from.
CURVES = tuple(dict.fromkeys(("center_norm", "center_norm_post_bn", "effective_rank", "effective_rank_post_bn",
                              "knn_acc", "loss") + tuple(m for e in EXPERIMENTS if e.preset for m in e.panels)))
N_CLASSES = {"fmnist": 10, "imagenet": 100}  # when a run's config.json does not say


def _trained_epochs(rows: Sequence[Mapping]) -> tuple[list[Mapping], float | None] | None:
    """(a run's epoch lines, its last kNN read), or None without a trained epoch."""
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    if not epochs or epochs[-1].get("epoch", 0) < 1:
        return None
    return epochs, next((r["knn_acc"] for r in reversed(epochs) if r.get("knn_acc") is not None), None)


def run_numbers(rows: Sequence[Mapping], n_classes: int) -> X.RunNumbers | None:
    """The numbers a verdict reads from one run's metrics.jsonl rows; None without a trained epoch."""
    trained = _trained_epochs(rows)
    if trained is None:
        return None
    epochs, knn = trained
    last, first = epochs[-1], epochs[0]
    pre = last.get("center_norm_pre_bn", last["center_norm"])
    rank = last.get("effective_rank", float("nan"))
    untrained = first.get("epoch") == 0
    return X.RunNumbers(
        center_norm=pre, center_norm_post_bn=last.get("center_norm_post_bn", pre), effective_rank=rank,
        effective_rank_post_bn=last.get("effective_rank_post_bn", rank),
        effective_rank_max=last.get("effective_rank_max", float("nan")), knn_acc=knn, n_classes=n_classes,
        epoch=last["epoch"], start_center_norm=first["center_norm"] if untrained else None,
        start_knn_acc=first.get("knn_acc") if untrained else None)


def run_health(rows: Sequence[Mapping], method: str, n_classes: int) -> X.Health | None:
    """A run's health as a claim's control (`lab.core.experiments.control_health`): its last epoch line (with
    the last kNN read) by its method's collapse signature, ‖s‖ against epoch 0's. None without a trained epoch."""
    trained = _trained_epochs(rows)
    if trained is None:
        return None
    epochs, knn = trained
    start = epochs[0]["center_norm"] if epochs[0].get("epoch") == 0 else None
    return X.control_health(method_class(method).signature, {**epochs[-1], "knn_acc": knn}, n_classes, start)


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


def judge_engine_runs(root: str | Path) -> dict:
    """The engine claims on the finished preset runs under `root`: the contract of `assets/fmnist/claims.json`
    ({"made", "machine", "commit", "root", "budget", "claims": [...], "runs": {...}, "unfinished": [...]}).
    Each claim: its experiment, statement, rule, verdict, seed counts, and per seed each variant's numbers."""
    runs, unfinished = {}, []
    by_variant: dict[tuple[str, str], dict[int, X.RunNumbers]] = {}
    health: dict[tuple[str, str], dict[int, X.Health]] = {}
    for run in find_preset_runs(root):
        entry, rows = run["entry"], run["rows"]
        name = entry["name"]
        if not _finished(rows):
            unfinished.append(name)
            continue
        n_classes = run["config"].get("n_classes", N_CLASSES[run["scale"]])
        numbers, health_ = run_numbers(rows, n_classes), run_health(rows, entry["method"], n_classes)
        if numbers is None:
            unfinished.append(name)
            continue
        runs[name] = {"preset": entry["preset"], "variant": entry["variant"], "seed": entry["seed"],
                      "method": entry["method"], "set": entry["set"], "scale": run["scale"],
                      "final": _asdict(numbers), "curves": _curves(rows),
                      "health": health_.to_json(),
                      "seconds": sum(r.get("epoch_seconds", 0) + r.get("knn_seconds", 0)
                                     for r in rows if r.get("kind") == "epoch")}
        by_variant.setdefault((entry["preset"], entry["variant"]), {})[entry["seed"]] = numbers
        health.setdefault((entry["preset"], entry["variant"]), {})[entry["seed"]] = health_
    claims = []
    for experiment, claim in X.engine_claims():
        labels = tuple(v.label for v in experiment.variants_at("imagenet"))
        seeds: dict[int, dict[str, X.RunNumbers]] = {}
        for label in labels:
            for seed, numbers in by_variant.get((experiment.preset, label), {}).items():
                seeds.setdefault(seed, {})[label] = numbers
        control = health.get((experiment.preset, claim.control), {}) if claim.control else None
        verdict = X.engine_verdict(claim, seeds, claim.reads or labels, control)
        claims.append({"key": claim.key, "experiment": experiment.key, "figure": experiment.figure,
                       "title": experiment.title, "preset": experiment.preset, "statement": claim.statement,
                       "paper": experiment.statement, "source": experiment.source, "rule": claim.rule_text,
                       "from_paper": claim.from_paper, "toy": X.toy_twin(claim), **verdict,
                       "control": claim.control, "per_seed": {str(k): v for k, v in verdict["per_seed"].items()},
                       "untestable": {str(k): v for k, v in verdict["untestable"].items()},
                       "health": {str(k): v for k, v in verdict["health"].items()},
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
        skipped = f", {len(c['untestable'])} untestable" if c.get("untestable") else ""
        count = (f"{c['held']} of {c['n']} seeds" if c["n"] else "no testable seed") + skipped
        ours = "" if c["from_paper"] else " [a check of ours]"
        lines.append(f"[{c['verdict']}: {count}] {c['statement']} ({c['figure']}){ours}")
        lines.append(f"    rule, per seed: {c['rule']}")
        for seed, variants in c["numbers"].items():
            held = c["per_seed"].get(seed)
            state = ("held" if held else "did not hold" if held is not None else
                     "untestable" if seed in c.get("untestable", {}) else "incomplete")
            control = c.get("health", {}).get(seed)
            why = f"; control {c['control']}: {control['why']}" if control else ""
            lines.append(f"    seed {seed}: {state}{why}")
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


def read_engine_results(path: str | Path = ENGINE_RESULTS) -> dict | None:
    """Shipped engine results (`python -m lab claims --runs DIR --out PATH`), or None where there are none or
    they cannot be read."""
    try:
        data = json.loads(Path(path).read_text())
        return judge_controls(data) if isinstance(data.get("claims"), list) else None
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None


def judge_controls(results: dict) -> dict:
    """Results made before the control rule, judged by it on what they recorded: each claim without control
    health gets its control's health per seed (from the control run's final numbers and the last point of its
    curves; readings the runs lack, such as the share near s, are not read) and its verdict again by
    `seed_verdict`, with `health_from` saying so. Results that have it are returned as they are."""
    fields = set(X.RunNumbers.__dataclass_fields__)
    by_key = {c.key: (e, c) for e, c in X.engine_claims()}
    for claim in results["claims"]:
        if "health" in claim or claim["key"] not in by_key:
            continue
        experiment, rule = by_key[claim["key"]]
        health = {}
        for run in results.get("runs", {}).values():
            if rule.control and run["preset"] == experiment.preset and run["variant"] == rule.control:
                final = run["final"]
                last = {k: v[-1] for k, v in run["curves"].items() if v and v[-1] is not None}
                health[run["seed"]] = X.control_health(method_class(run["method"]).signature, {**last, **final},
                                                       final["n_classes"], final.get("start_center_norm"))
        seeds = {int(seed): {label: X.RunNumbers(**{k: v for k, v in n.items() if k in fields})
                             for label, n in variants.items()} for seed, variants in claim["numbers"].items()}
        labels = rule.reads or tuple(v.label for v in experiment.variants_at("imagenet"))
        verdict = X.engine_verdict(rule, seeds, labels, health if rule.control else None)
        claim.update(verdict, control=rule.control, health_from="the readings these runs recorded",
                     per_seed={str(k): v for k, v in verdict["per_seed"].items()},
                     untestable={str(k): v for k, v in verdict["untestable"].items()},
                     health={str(k): v for k, v in verdict["health"].items()})
    return results


def engine_curves(results: Mapping, experiment_key: str) -> tuple[tuple[str, ...], dict[str, dict[int, dict]]]:
    """(the experiment's panels, {variant label: {seed: curves}}) from `judge_engine_runs` results, variants in
    the registry's order; curves: {"epoch": [...], metric: [value or None per epoch]}."""
    experiment = X.experiment(experiment_key)
    out: dict[str, dict[int, dict]] = {v.label: {} for v in experiment.variants_at("imagenet")}
    for run in results.get("runs", {}).values():
        if run["preset"] == experiment.preset and run["variant"] in out:
            out[run["variant"]][run["seed"]] = run["curves"]
    return experiment.panels, {label: dict(sorted(seeds.items())) for label, seeds in out.items() if seeds}
