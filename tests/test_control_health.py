"""Controls first (`lab.core.experiments.control_health`, `seed_verdict`): a claim's control arm, the standard
method, is judged by its method's collapse signature before the claim's verdict is read, and a seed whose
control collapsed is untestable. Synthetic readings, each case named by its mechanism; the toy and engine
judges are checked on real (toy) and written (engine) runs in tests/test_claims.py and below."""
from __future__ import annotations

import json
import math

import pytest

from lab.claims.engine import judge_engine_runs, run_health
from lab.core import experiments as X
from lab.core.vocab import COLLAPSE_THRESHOLD
from lab.engine.presets import preset_runs
from lab.methods import METHOD_NAMES, method_class
from test_engine_claims import epoch_line, write_run

SIMSIAM = method_class("simsiam").signature
DINO = method_class("dino").signature
HEALTHY = {"center_norm": 0.4, "center_share": 0.1, "effective_rank": 60.0, "effective_rank_max": 512.0,
           "knn_acc": 0.8}


@pytest.mark.parametrize("change, start, healthy, named", [
    ({}, 0.8, True, "healthy"),
    ({"center_norm": 0.97, "center_share": 0.95}, 0.8, False, "center norm"),  # trained into one point
    # An untrained head that starts above the threshold and was pulled down by training: ‖s‖ alone says nothing.
    ({"center_norm": 0.92}, 0.95, True, "untrained 0.950"),
    ({"center_norm": 0.92}, None, False, "center norm"),  # no epoch 0 to read it against: ‖s‖ alone
    # 92 % of views at one point and 8 % opposite: ‖s‖ 0.84 hides it, the share near s does not.
    ({"center_norm": 0.84, "center_share": 0.92}, 0.8, False, "share within"),
    ({"effective_rank": 3.0}, 0.8, False, "effective rank"),  # 512-D features in 3 directions, 10 classes
    ({"effective_rank": 3.0, "effective_rank_max": 3.0}, 0.8, True, "healthy"),  # no room above C − 1: not read
    ({"knn_acc": 0.3}, 0.8, False, "kNN 0.300 < 0.500"),  # 3 × chance on 10 classes: learned next to nothing
])
def test_a_control_is_named_by_its_signature_and_its_start(change, start, healthy, named):
    health = X.control_health(SIMSIAM, {**HEALTHY, **change}, 10, start)
    assert health.healthy is healthy and named in health.why, health


def test_dino_uniform_teachers_make_an_unhealthy_control_whatever_the_center_says():
    k = 1024
    readings = {**HEALTHY, "teacher_entropy": math.log(k), "teacher_sample_entropy": 0.97 * math.log(k),
                "teacher_entropy_max": math.log(k)}
    health = X.control_health(DINO, readings, 10, 0.8)
    assert not health.healthy and "uniform" in health.why
    sharp = X.control_health(DINO, {**readings, "teacher_sample_entropy": 0.5 * math.log(k)}, 10, 0.8)
    assert sharp.healthy, sharp


@pytest.mark.parametrize("n_classes, floor", [(10, 0.5), (100, 0.05), (3, 2 / 3)])
def test_the_knn_floor_is_five_times_chance_at_most_halfway_to_one(n_classes, floor):
    assert X.knn_floor(n_classes) == pytest.approx(floor)


def claim() -> X.Claim:
    return X.Claim("t", "ablation collapses", "ablation above T, control not",
                   lambda r: r["ablation"] > COLLAPSE_THRESHOLD >= r["control"], control="control")


def test_a_seed_whose_control_collapsed_is_untestable_not_a_failure():
    seeds = {0: {"ablation": 0.99, "control": 0.4}, 1: {"ablation": 0.99, "control": 0.95},
             2: {"ablation": 0.5, "control": 0.4}}
    sick = X.Health(False, "collapsed: ‖s‖ 0.95")
    well = X.Health(True, "healthy")
    v = X.seed_verdict(claim(), seeds, ("ablation", "control"), {0: well, 1: sick, 2: well})
    assert (v["verdict"], v["held"], v["n"], v["per_seed"]) == ("mixed", 1, 2, {0: True, 2: False})
    assert v["untestable"] == {1: sick.why} and v["health"][1] == {"healthy": False, "why": sick.why}
    all_sick = X.seed_verdict(claim(), seeds, ("ablation", "control"), {0: sick, 1: sick, 2: sick})
    assert (all_sick["verdict"], all_sick["n"]) == ("untestable", 0)
    assert X.seed_verdict(claim(), seeds, ("ablation", "control"))["n"] == 3  # no health known: judged as before
    assert X.combined_verdict(["untestable", "held"]) == "held"
    assert X.combined_verdict(["untestable", "untestable"]) == "untestable"
    assert X.combined_verdict(["untestable", "held", "did not hold"]) == "mixed"


def test_every_ablation_claim_names_its_control_among_its_variants():
    for experiment in X.EXPERIMENTS:
        for scale, claims in (("toy", experiment.claims), ("imagenet", experiment.engine_claims)):
            labels = {v.label for v in experiment.variants_at(scale)}
            for c in claims:
                if len(labels) > 1 and experiment.key != "b1":
                    assert c.control in labels, (experiment.key, scale, c.key, c.control)
                if c.control:
                    variant = next(v for v in experiment.variants_at(scale) if v.label == c.control)
                    assert variant.method in METHOD_NAMES


def test_the_engine_judge_reads_each_seeds_control_from_its_last_epoch(tmp_path):
    """b5 at Fashion-MNIST scale: simsiam (the control) collapses in seed 1 (‖s‖ 0.55 → 0.97), so seed 1 is
    untestable; seeds 0 and 2 are judged."""
    root = tmp_path / "runs"
    for run in preset_runs("b5-simsiam-predictor", "fmnist"):
        base = run["name"].rsplit("-s", 1)[0]
        center = 0.97 if base.startswith("simsiam-nopred") else (0.97 if run["seed"] == 1 else 0.4)
        write_run(root / "b5-simsiam-predictor" / run["name"], run["method"], [0.55, 0.6, center])
    pred = next(c for c in judge_engine_runs(root)["claims"] if c["key"] == "simsiam_predictor")
    assert (pred["verdict"], pred["held"], pred["n"]) == ("held", 2, 2)
    assert set(pred["untestable"]) == {"1"} and "center norm 0.97" in pred["untestable"]["1"]
    assert pred["control"] == "simsiam" and pred["health"]["0"]["healthy"]


def test_run_health_reads_the_last_knn_and_needs_a_trained_epoch():
    rows = [epoch_line(0, 0.5, 0.7), epoch_line(1, 0.6, 0.2), epoch_line(2, 0.6, None)]
    health = run_health(rows, "simsiam", 10)
    assert not health.healthy and "kNN 0.200" in health.why
    assert run_health(rows[:1], "simsiam", 10) is None


def test_the_pages_line_on_a_control_names_its_health_per_seed():
    from lab.render.claims import control_text

    health = {"0": {"healthy": True, "why": "healthy: ‖s‖ 0.4"}, "1": {"healthy": False, "why": "collapsed: ‖s‖ 0.97"}}
    line = control_text("simsiam", health)
    assert line.startswith("Control *simsiam*: healthy in 1 of 2 seeds") and "seed 1: collapsed: ‖s‖ 0.97" in line
    assert control_text("simsiam", {"0": health["0"]}) == "Control *simsiam*: healthy in 1 of 1 seeds."
    assert "not recorded" in control_text("simsiam", None)  # results made before the rule
    assert "No control arm" in control_text(None, None)


def test_results_made_before_the_rule_are_judged_by_it_on_what_they_recorded(tmp_path):
    """The engine judge's own results with the control fields taken out (as the shipped results made before
    the rule): `judge_controls` gives back the same verdicts, untestable seeds and health."""
    from lab.claims.engine import judge_controls

    root = tmp_path / "runs"
    for run in preset_runs("b5-simsiam-predictor", "fmnist"):
        base = run["name"].rsplit("-s", 1)[0]
        center = 0.97 if base.startswith("simsiam-nopred") else (0.97 if run["seed"] == 1 else 0.4)
        write_run(root / "b5-simsiam-predictor" / run["name"], run["method"], [0.55, 0.6, center])
    made = judge_engine_runs(root)
    old = json.loads(json.dumps(made))
    for claim in old["claims"]:
        for key in ("health", "untestable", "control"):
            claim.pop(key)
    again = judge_controls(old)
    for before, after in zip(made["claims"], again["claims"]):
        for key in ("verdict", "held", "n", "per_seed", "untestable", "health", "control"):
            assert after[key] == before[key], (before["key"], key)
    assert judge_controls(json.loads(json.dumps(made))) == made  # results with control health are left as they are
