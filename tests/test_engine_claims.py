"""The engine claims: per-seed rules of `lab.core.experiments`, their verdict counts, the judge that reads preset
run folders (`lab.claims.judge_engine_runs`), the CLI that writes results and figures, and the Real images
page on shipped results. Run folders are written here as the engine writes them (metrics.jsonl lines)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.core import experiments as X
from lab.claims import engine_curves, engine_table, judge_engine_runs, run_numbers
from lab.engine.presets import ALL, preset_runs
from waits import HANG_S


def numbers(center=0.3, post=0.02, rank=40.0, rank_post=40.0, knn=0.8, n_classes=10) -> X.RunNumbers:
    return X.RunNumbers(center, post, rank, rank_post, 128.0, knn, n_classes, 3, 0.55, 0.75)


HEALTHY, COLLAPSED = numbers(), numbers(center=0.99, rank=1.2, rank_post=1.2, knn=0.3)


def rule(key: str):
    return next(c for _, c in X.engine_claims() if c.key == key)


# ----------------------------------------------------------------------------------------- rules

@pytest.mark.parametrize("key, collapsing, healthy", [
    ("dino_centering", "no centering", "dino"),
    ("simsiam_predictor", "no predictor", "simsiam"),
    ("simsiam_predictor_nobn", "no predictor, no output BN", "simsiam, no output BN"),
    ("simsiam_predictor_lr", "predictor lr 1 %", "simsiam"),
])
def test_a_collapse_claim_holds_only_when_the_ablation_collapses_and_the_standard_run_does_not(
        key, collapsing, healthy):
    claim = rule(key)
    assert claim.rule({collapsing: COLLAPSED, healthy: HEALTHY})
    assert not claim.rule({collapsing: HEALTHY, healthy: HEALTHY})
    assert not claim.rule({collapsing: COLLAPSED, healthy: COLLAPSED})
    # exactly at the threshold is not above it
    assert not claim.rule({collapsing: numbers(center=X.COLLAPSE_THRESHOLD), healthy: HEALTHY})


def test_barlow_lambda_0_is_judged_by_what_its_loss_can_lose():
    claim = rule("barlow_lam0")
    assert claim.rule({"lam 0": HEALTHY, "barlow": HEALTHY})
    # ‖s‖ small but the standardised embedding in fewer than C − 1 = 9 dimensions: dimensional collapse
    assert not claim.rule({"lam 0": numbers(rank_post=8.9), "barlow": HEALTHY})
    assert claim.rule({"lam 0": numbers(rank_post=9.0), "barlow": HEALTHY})
    assert not claim.rule({"lam 0": numbers(knn=0.49), "barlow": HEALTHY})  # under 5 × chance (0.5)
    assert not claim.rule({"lam 0": numbers(center=0.95), "barlow": HEALTHY})


def test_swav_fixed_prototypes_rule():
    claim = rule("swav_fixed")
    assert claim.rule({"fixed prototypes": HEALTHY, "swav": COLLAPSED})
    assert not claim.rule({"fixed prototypes": COLLAPSED, "swav": HEALTHY})
    assert not claim.rule({"fixed prototypes": numbers(knn=None), "swav": HEALTHY})


def test_byol_momentum_order_allows_one_neighbouring_swap_and_no_more():
    claim = rule("byol_momentum")

    def runs(*centers):
        return {f"momentum {m:g}": numbers(center=c) for m, c in zip((0.5, 0.9, 0.99, 0.996), centers)}

    assert claim.rule(runs(0.9, 0.7, 0.5, 0.3))
    assert claim.rule(runs(0.9, 0.7, 0.3, 0.5))  # one swap: rho = -0.8
    assert not claim.rule(runs(0.7, 0.9, 0.3, 0.5))  # two swaps: rho = -0.6
    assert not claim.rule(runs(0.3, 0.5, 0.7, 0.9))


def test_rank_correlation_matches_the_textbook_formula():
    assert X._rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert X._rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert X._rank_correlation([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)


def test_the_verdict_counts_seeds_and_skips_incomplete_ones():
    claim = rule("simsiam_predictor")
    seeds = {0: {"no predictor": COLLAPSED, "simsiam": HEALTHY}, 1: {"no predictor": HEALTHY, "simsiam": HEALTHY},
             2: {"no predictor": COLLAPSED, "simsiam": HEALTHY}, 3: {"no predictor": COLLAPSED}}
    v = X.engine_verdict(claim, seeds, ("simsiam", "no predictor"))
    assert (v["held"], v["n"], v["verdict"]) == (2, 3, "mixed")
    assert v["per_seed"] == {0: True, 1: False, 2: True}
    assert X.engine_verdict(claim, {0: seeds[0]}, ("simsiam", "no predictor"))["verdict"] == "held"
    assert X.engine_verdict(claim, {1: seeds[1]}, ("simsiam", "no predictor"))["verdict"] == "did not hold"
    assert X.engine_verdict(claim, {}, ("simsiam", "no predictor"))["verdict"] == "no runs"


def test_every_engine_claim_reads_variants_its_experiment_runs():
    for experiment, claim in X.engine_claims():
        labels = {v.label for v in experiment.variants_at("imagenet")}
        assert set(claim.reads) <= labels, claim.key
        runs = {label: HEALTHY for label in (claim.reads or labels)}
        claim.rule(runs)  # no KeyError: the rule reads only the variants a seed is required to have
        assert experiment.preset, experiment.key


# ----------------------------------------------------------------------------------------- judging run folders

def epoch_line(epoch: int, center: float, knn: float | None, rank: float = 40.0) -> dict:
    return {"kind": "epoch", "epoch": epoch, "step": epoch * 10, "loss": -0.5, "center_norm": center,
            "center_norm_pre_bn": center, "center_norm_post_bn": 0.01, "effective_rank": rank,
            "effective_rank_post_bn": rank, "effective_rank_max": 128.0, "knn_acc": knn, "epoch_seconds": 1.0,
            "knn_seconds": 0.5}


def write_run(folder: Path, method: str, centers: list[float], finished: bool = True) -> None:
    folder.mkdir(parents=True)
    lines = [epoch_line(e, c, 0.75 if e in (0, len(centers) - 1) else None) for e, c in enumerate(centers)]
    if finished:
        lines.append({"kind": "end", "status": "finished", "epoch": len(centers) - 1, "step": 10 * (len(centers) - 1)})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (folder / "config.json").write_text(json.dumps({"config": {"method": method}, "n_classes": 10}))


@pytest.fixture()
def b5_root(tmp_path) -> Path:
    """b5 runs at Fashion-MNIST scale: no predictor collapses in seeds 0 and 1, not in seed 2; seed 2's
    no-BN pair is unfinished."""
    root = tmp_path / "runs"
    final = {"simsiam": 0.4, "simsiam-nobn": 0.5, "simsiam-nopred": 0.97, "simsiam-nopred-nobn": 0.95}
    for run in preset_runs("b5-simsiam-predictor", "fmnist"):
        base = run["name"].rsplit("-s", 1)[0]
        center = 0.5 if (base == "simsiam-nopred" and run["seed"] == 2) else final[base]
        finished = not (run["seed"] == 2 and base.endswith("nobn"))
        write_run(root / "b5-simsiam-predictor" / run["name"], run["method"], [0.55, 0.6, center], finished)
    return root


def test_judge_reads_finished_preset_runs_seed_by_seed(b5_root):
    results = judge_engine_runs(b5_root)
    by_key = {c["key"]: c for c in results["claims"]}
    pred = by_key["simsiam_predictor"]
    assert (pred["held"], pred["n"], pred["verdict"]) == (2, 3, "mixed")
    assert pred["per_seed"] == {"0": True, "1": True, "2": False}
    assert pred["numbers"]["0"]["no predictor"]["center_norm"] == 0.97
    assert pred["numbers"]["0"]["no predictor"]["start_center_norm"] == 0.55
    nobn = by_key["simsiam_predictor_nobn"]
    assert (nobn["held"], nobn["n"], nobn["verdict"]) == (2, 2, "held")
    assert sorted(results["unfinished"]) == ["simsiam-nobn-s2", "simsiam-nopred-nobn-s2"]
    assert by_key["dino_centering"]["verdict"] == "no runs"
    assert pred["toy"] == "fig4" and nobn["toy"] is None
    for key in ("made", "machine", "commit", "budget", "threshold", "runs"):
        assert key in results
    curves = results["runs"]["simsiam-s0"]["curves"]
    assert curves["epoch"] == [0, 1, 2] and curves["knn_acc"] == [0.75, None, 0.75]
    panels, by_variant = engine_curves(results, "b5")
    assert "center_norm" in panels and set(by_variant["no predictor"]) == {0, 1, 2}
    assert set(by_variant["simsiam, no output BN"]) == {0, 1}
    text = engine_table(results)
    assert "[mixed: 2 of 3 seeds]" in text and "not judged (unfinished)" in text


def test_a_folder_of_another_method_under_a_preset_name_is_not_judged(tmp_path):
    write_run(tmp_path / "simsiam-s0", "byol", [0.5, 0.99])
    assert judge_engine_runs(tmp_path)["runs"] == {}


def test_run_numbers_reads_the_pre_bn_center_and_the_last_knn():
    rows = [epoch_line(0, 0.5, 0.7), epoch_line(1, 0.8, None), {**epoch_line(2, 0.95, None), "center_norm": 0.95}]
    n = run_numbers(rows, 10)
    assert (n.center_norm, n.knn_acc, n.start_center_norm, n.start_knn_acc, n.epoch) == (0.95, 0.7, 0.5, 0.7, 2)
    assert n.collapsed and not n.rank_collapsed
    assert run_numbers([epoch_line(0, 0.5, 0.7)], 10) is None  # only the untrained model


def test_cli_writes_results_and_a_figure_per_experiment(b5_root, tmp_path):
    out = tmp_path / "assets" / "claims.json"
    done = subprocess.run([sys.executable, "-m", "lab", "claims", "--runs", str(b5_root), "--out", str(out)],
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    assert "[mixed: 2 of 3 seeds] SimSiam without the predictor collapses" in done.stdout
    data = json.loads(out.read_text())
    assert {c["key"] for c in data["claims"]} == {c.key for _, c in X.engine_claims()}
    png = out.parent / "b5-simsiam-predictor.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out.parent / "fig7-byol-momentum.png").exists()  # no runs, no figure


@pytest.mark.parametrize("args, message", [(["--runs", "/nonexistent/x"], "is not a folder"),
                                           (["--runs", "."], "holds no finished preset run")])
def test_cli_bad_runs_folder_is_one_line_exit_2(args, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "lab", "claims", *args], capture_output=True, text=True,
                          timeout=HANG_S, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_preset_all_is_every_preset_seed_by_seed():
    runs = preset_runs(ALL, "fmnist")
    assert [r["seed"] for r in runs] == sorted(r["seed"] for r in runs)
    assert {r["preset"] for r in runs} == set(X.BY_PRESET)
    assert len(runs) == 3 * sum(len(e.variants_at("imagenet")) for e in X.BY_PRESET.values())
    assert len({r["name"] for r in runs}) == len(runs)  # one folder name per run


# ----------------------------------------------------------------------------------------- the page

def test_real_images_page_shows_each_claim_with_its_counts(b5_root, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    results = tmp_path / "claims.json"
    results.write_text(json.dumps(judge_engine_runs(b5_root)))
    script = (f"import lab.claims, views.real\n"
              f"views.real.ENGINE_RESULTS = {str(results)!r}\n"
              f"views.real.page()\n")
    at = AppTest.from_string(script, default_timeout=HANG_S).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown) + " ".join(w.value for w in at.warning) + " ".join(
        w.value for w in at.success) + " ".join(w.value for w in at.info)
    assert "mixed** (2 of 3 seeds)" in text and "no finished seed yet" in text
    assert "a check of ours" in text
    assert "Control *simsiam*: healthy in 3 of 3 seeds." in text  # each claim's control beside its verdict
    assert any("disagrees with the paper" in c.value for c in at.caption)


def test_real_images_page_without_results_says_how_to_make_them(tmp_path):
    from streamlit.testing.v1 import AppTest

    script = (f"import views.real\nviews.real.ENGINE_RESULTS = {str(tmp_path / 'none.json')!r}\nviews.real.page()\n")
    at = AppTest.from_string(script, default_timeout=HANG_S).run()
    assert not at.exception and "--preset all --run" in at.info[0].value
