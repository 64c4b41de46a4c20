import re
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lab import claims as C
from lab.render.claims import claim_seeds_figure, sweep_strip_figure
from waits import HANG_S

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "claims.py")


def _no_training(*args, **kwargs):
    raise AssertionError("the page trained although shipped results were there")


def test_claims_page_shows_the_shipped_results_at_once_with_seed_counts(monkeypatch):
    shipped = C.read_toy_results()
    assert shipped is not None, "assets/toy_claims.json lacks seed counts: python -m lab claims --out assets/toy_claims.json"
    monkeypatch.setattr(C, "run_claims", _no_training)
    at = AppTest.from_file(PAGE, default_timeout=HANG_S).run()
    assert not at.exception
    verdicts = [m.value for m in (*at.success, *at.error, *at.warning, *at.info) if m.value.startswith("**")]
    assert len(verdicts) == len(shipped["results"]) == len(C.CLAIMS)
    for r in shipped["results"]:
        (text,) = [v for v in verdicts if f"— {r['statement']} *(" in v]
        assert text.startswith(f"**{r['verdict']}**")
        for ds, d in r["datasets"].items():
            assert f"{ds} {d['held']} of {d['n']} seeds" in text
    # Each claim's control arm beside its verdict, per data set, with its health in every seed.
    controls = [m.value for m in at.markdown if "Control *" in m.value]
    with_control = [(r, ds) for r in shipped["results"] for ds in r["datasets"] if C.CONTROLS[r["claim"]]]
    assert len(controls) == len(with_control)
    for r, ds in with_control:
        health = r["datasets"][ds]["control_health"]
        sick = sum(not h["healthy"] for h in health.values())
        assert any(c.startswith(f"**{ds}** — Control *{C.CONTROLS[r['claim']]}*: healthy in "
                                f"{len(health) - sick} of {len(health)} seeds") for c in controls), (r["claim"], ds)
    assert f"commit {shipped['commit']}" in at.caption[0].value
    swept = [(c.key, ds) for c in C.CLAIMS if c.rule.sweep for ds in C.DATASETS]
    assert swept and all(C.read_claim_sweep(key, ds) for key, ds in swept), "python -m lab claims --sweeps assets/sweeps"
    charts = [c.proto.id for c in at.get("plotly_chart")]
    assert len(charts) == len(shipped["results"]) + len(swept)
    assert all(any(f"claims_sweep_{key}_{ds}" in c for c in charts) for key, ds in swept)


def test_claim_sweeps_cover_each_declared_knob_over_its_range():
    (key,) = [c.key for c in C.CLAIMS if c.rule.sweep and c.variants[0][1] == "simsiam"]
    out = C.claim_sweeps([key], seeds=2, datasets=("blobs",), epochs=3)
    data = out[f"{key}-blobs"]
    axis, log = next(c.rule.sweep for c in C.CLAIMS if c.key == key)
    assert data["claim"] == key and data["x"]["knob"] == axis.split("=")[0] and log
    assert len(data["x"]["values"]) == 8 and data["x"]["values"][0] < 0.01 < 1 == data["x"]["values"][-1]
    per = data["metrics"]["center_norm"][0]
    assert [len(p) for p in per] == [2] * 8
    assert data["counts"]["center_norm_above"][0] == [sum(v > C.COLLAPSED for v in p) for p in per]
    fig = sweep_strip_figure(data, log=log)
    assert fig.layout.xaxis.type == "log" and len([t for t in fig.data if t.mode == "markers"]) == 8


def test_claims_page_reruns_on_request_then_goes_back_to_the_shipped_results():
    at = AppTest.from_file(PAGE, default_timeout=HANG_S).run()
    at.multiselect(key="claims_keys").set_value(["fig3", "swav_fixed"])
    at.slider(key="claims_seeds").set_value(2)
    at.toggle(key="claims_quick").set_value(True)
    at.button(key="claims_run").click().run()
    assert not at.exception
    assert "this session's run: 2 seeds, 50 epochs" in at.info[0].value
    verdicts = [m.value for m in (*at.success, *at.error, *at.warning, *at.info) if m.value.startswith("**")]
    assert len(verdicts) == 2
    assert all(v.split("**")[1] in ("held", "did not hold", "mixed", "untestable") for v in verdicts)
    for v in verdicts:  # each data set's seeds: judged, or untestable where the control collapsed
        counts = re.findall(r"(\d+) of (\d+) seeds(?: \((\d+) untestable\))?", v)
        assert len(counts) == 2 and all(int(n) + int(u or 0) == 2 for _, n, u in counts), v
    assert len(at.table) == 4  # two claims × two datasets, in the expanders
    assert any("simplified" in str(t.value) for t in at.table)
    at.button(key="claims_clear").click().run()
    assert not at.exception and not any("this session's run" in i.value for i in at.info)


def test_claims_page_without_shipped_results_says_how_to_make_them(monkeypatch, tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"results": [{"claim": "fig3", "datasets": {"blobs": {}}}]}))
    monkeypatch.setattr(C, "TOY_RESULTS", tmp_path / "old.json")
    at = AppTest.from_file(PAGE, default_timeout=HANG_S).run()
    assert not at.exception and "python -m lab claims --out assets/toy_claims.json" in at.warning[0].value


def test_claims_page_with_nothing_chosen_says_so():
    at = AppTest.from_file(PAGE, default_timeout=HANG_S).run()
    at.multiselect(key="claims_keys").set_value([]).run()
    assert not at.exception and "Pick at least one claim" in at.info[0].value


@pytest.mark.parametrize("key", [c.key for c in C.CLAIMS])
def test_every_claim_draws_its_seeds(key):
    """The render reads the contract: a dot per seed per variant per metric the rule reads."""
    (result,) = [r for r in C.toy_results_json(C.run_claims([key], seeds=2, epochs=2), 2, 2)["results"]]
    fig = claim_seeds_figure(result)
    dots = [t for t in fig.data if t.type == "scatter"]
    n_variants = len(next(iter(result["datasets"].values()))["per_seed"])
    assert len(dots) == 2 * n_variants * 2 * len(result["metrics"])  # seeds × variants × datasets × metrics
