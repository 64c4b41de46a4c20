"""The sweep (phase diagram): axis parsing and its checks, the JSON contract, a stacked cell against a plain
`train_toy` of its setting, the one-program-per-value path of a knob that does not stack, a diverging cell,
the CLI, the bench's grid, and the Sweep page."""
import json
import math
import subprocess

import numpy as np
import pytest
import torch

from lab.train.sweep import Axis, make_axis, parse_axis, plan_sweep, programs_needed, run_sweep, stacks
from lab.train.toy import toy_config, train_toy, train_toys
from waits import HANG_S

QUICK = {"epochs": 5}


# ---------------------------------------------------------------- axes


def test_parse_axis_linear_log_and_lists():
    a = parse_axis("simsiam", "lr=0.01:0.2:6", log=True)
    assert a.knob == "lr" and len(a.values) == 6 and a.values[0] == 0.01 and a.values[-1] == 0.2
    assert np.allclose(np.diff(np.log(a.values)), np.log(20) / 5, rtol=1e-4)
    assert parse_axis("simsiam", "sgd_momentum=0:0.9:4").values == (0.0, 0.3, 0.6, 0.9)
    assert parse_axis("simsiam", "predictor=false,true").values == (False, True)
    assert parse_axis("byol", "momentum=0.9,0.99").values == (0.9, 0.99)
    assert parse_axis("simsiam", "lr=0.05:0.05:1").values == (0.05,)
    assert stacks("simsiam", "predictor_lr_scale") and stacks("byol", "momentum") and stacks("barlow", "lr")
    assert not stacks("barlow", "lam") and not stacks("dino", "temperature") and not stacks("simsiam", "predictor")


@pytest.mark.parametrize("method, text, log, needle", [
    ("simsiam", "lr=0:1:3", False, "lr must be in (0.0, 100.0], got 0.0"),
    ("simsiam", "predictor_lr_scale=0.1:200:3", False, "predictor_lr_scale must be in (0.0, 100.0], got 200.0"),
    ("byol", "momentum=0.5:1.5:3", False, "momentum must be in [0.0, 1.0], got 1.5"),
    ("simsiam", "lr=0.1:1:9", False, "must be in [1, 8], got 9"),
    ("simsiam", "lr=0.1:1:x", False, "got 'x'"),
    ("simsiam", "lr=1:0.1:3", False, "LO must be below HI"),
    ("simplified", "lam=-1:1:3", True, "log spacing needs LO > 0, got -1"),
    ("simsiam", "foo=1:2:3", False, "cannot sweep 'foo' for simsiam; valid: lr"),
    ("simsiam", "predictor_hidden=2:8:3", False, "cannot sweep 'predictor_hidden'"),
    ("simsiam", "predictor=0:1:2", False, "predictor is a switch"),
    ("simsiam", "lr", False, "KNOB=LO:HI:N"),
    ("simsiam", "lr=0.1:nan:3", False, "got nan"),
])
def test_bad_axis_names_the_value_and_the_range(method, text, log, needle):
    with pytest.raises(ValueError) as err:
        parse_axis(method, text, log)
    assert needle in str(err.value)


def test_plan_checks_before_training():
    with pytest.raises(ValueError, match="both sweep lr"):
        plan_sweep("simsiam", "lr=0.1:1:2", "lr=0.1:1:2")
    with pytest.raises(ValueError, match=r"seeds \(per cell\) must be in \[1, 16\], got 0"):
        plan_sweep("simsiam", "lr=0.1:1:2", seeds=0)
    with pytest.raises(ValueError, match="lr is swept"):
        plan_sweep("simsiam", "lr=0.1:1:2", settings={"lr": 0.1})
    with pytest.raises(ValueError, match="unknown parameter 'lam'"):
        plan_sweep("simsiam", "lr=0.1:1:2", settings={"lam": 1})
    sweep, configs, cells = plan_sweep("simsiam", "lr=0.01:0.2:3", "predictor_lr_scale=0.1:1:2", seeds=2)
    assert sweep.shape == (2, 3) and len(configs) == 6 and cells[1] == (0, 1)
    assert configs[4].lr == sweep.x.values[1] and configs[4].method_config.predictor_lr_scale == 1.0
    assert programs_needed("simsiam", sweep.x, sweep.y) == 1
    assert programs_needed("barlow", Axis("lam", (0.1, 1.0)), Axis("lr", (0.1, 0.2, 0.3))) == 2


# ---------------------------------------------------------------- stacking = plain train_toy per cell


def _same(run, ref):
    assert run.epochs == ref.epochs
    assert torch.allclose(run.z, ref.z, atol=1e-5), (run.z - ref.z).abs().max()
    for key, value in ref.metrics.items():
        assert torch.allclose(run.metrics[key], value, atol=1e-5, equal_nan=True), key


def test_stacked_cells_equal_plain_train_toy():
    """SimSiam lr × predictor_lr_scale as one program: every cell is `train_toy` of its own setting."""
    seen = []
    sweep = run_sweep("simsiam", make_axis("simsiam", "lr", 0.01, 0.2, 3, log=True),
                      make_axis("simsiam", "predictor_lr_scale", 0.01, 1.0, 2, log=True), seeds=2,
                      settings=QUICK, on_cells=lambda s, cells: seen.append(list(cells)))
    assert sweep.programs == 1 and len(seen) == 1 and len(seen[0]) == 6
    for iy, ix in [(0, 0), (1, 2), (0, 1)]:
        config = toy_config("simsiam", "blobs", {**QUICK, "seeds": 2, "lr": sweep.x.values[ix],
                                                 "predictor_lr_scale": sweep.y.values[iy]})
        assert sweep.runs[iy][ix].config == config
        _same(sweep.runs[iy][ix], train_toy(config))


def test_byol_momentum_and_optimizer_fields_stack():
    configs = [toy_config("byol", "moons", {**QUICK, "seeds": 2, "momentum": m, "sgd_momentum": sm,
                                            "weight_decay": wd})
               for m, sm, wd in ((0.5, 0.9, 0.0), (0.99, 0.0, 1e-3))]
    programs = []
    runs = train_toys(configs, stack_knobs=True, on_runs=lambda idx, r: programs.append(idx))
    assert programs == [[0, 1]]
    for c, run in zip(configs, runs):
        _same(run, train_toy(c))


def test_a_knob_that_does_not_stack_trains_one_program_per_value():
    seen = []
    sweep = run_sweep("barlow", "lam=0.001,0.01", "lr=0.02:0.1:2", settings={**QUICK, "dim": 2},
                      on_cells=lambda s, cells: seen.append(sorted(cells)))
    assert sweep.programs == 2 == programs_needed("barlow", sweep.x, sweep.y)
    assert seen == [[(0, 0), (1, 0)], [(0, 1), (1, 1)]]  # each lam value: both lr rows in one program
    config = toy_config("barlow", "blobs", {**QUICK, "dim": 2, "seeds": 1, "lam": 0.01, "lr": 0.1})
    _same(sweep.runs[1][1], train_toy(config))


def test_a_diverging_cell_does_not_stop_the_others():
    sweep = run_sweep("simsiam", "lr=0.05,100", seeds=2, settings={**QUICK, "weight_decay": 1.0})
    bad, good = sweep.runs[0][1], sweep.runs[0][0]
    assert bad.diverged and "epoch 1" in bad.diverged and good.diverged is None
    assert torch.isnan(bad.metrics["center_norm"][-1]).all() and torch.isfinite(good.metrics["center_norm"]).all()
    _same(good, train_toy(good.config))
    out = sweep.to_json()
    assert out["metrics"]["center_norm"][0][1] == [None, None] and out["diverged"][0][1] == bad.diverged
    json.dumps(out, allow_nan=False)


# ---------------------------------------------------------------- the JSON contract


def test_json_contract():
    sweep = run_sweep("simsiam", "lr=0.02:0.1:3", "predictor_lr_scale=0.1,1", seeds=2, settings=QUICK)
    out = json.loads(json.dumps(sweep.to_json(), allow_nan=False))
    assert {"method", "x", "y", "metrics", "train_seconds", "dataset", "seeds", "settings", "counts"} <= set(out)
    assert out["method"] == "simsiam" and out["dataset"] == "blobs" and out["seeds"] == 2
    assert out["x"] == {"knob": "lr", "values": [0.02, 0.06, 0.1]}
    assert out["y"] == {"knob": "predictor_lr_scale", "values": [0.1, 1.0]}
    cn = out["metrics"]["center_norm"]
    assert len(cn) == 2 and all(len(row) == 3 for row in cn) and all(len(c) == 2 for row in cn for c in row)
    assert {"knn_acc", "linear_acc", "z_std", "loss"} <= set(out["metrics"])
    assert cn[1][2] == pytest.approx(sweep.runs[1][2].metrics["center_norm"][-1].tolist())
    counts = out["counts"]["center_norm_above"]
    assert counts == [[sum(v > 0.9 for v in cell) for cell in row] for row in cn]
    assert out["settings"]["epochs"] == 5 and "lr" not in out["settings"]
    assert isinstance(out["train_seconds"], float) and out["train_seconds"] > 0


def test_one_knob_and_the_seed():
    out = run_sweep("simsiam", "lr=0.02,0.05", seeds=3, settings=QUICK).to_json()
    assert out["y"] == {"knob": None, "values": [None]}
    assert len(out["metrics"]["center_norm"]) == 1 and [len(c) for c in out["metrics"]["center_norm"][0]] == [3, 3]


# ---------------------------------------------------------------- CLI


def run_cli(python, env, root, *args):
    return subprocess.run([python, "-m", "lab", "sweep", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=HANG_S)


@pytest.mark.parametrize("args, needle", [
    (["--method", "simsiam", "--x", "lr=0:1:3"], "lr must be in (0.0, 100.0], got 0.0"),
    (["--method", "simsiam", "--x", "lr=0.1:1:12"], "must be in [1, 8], got 12"),
    (["--method", "nope", "--x", "lr=0.1:1:2"], "unknown method 'nope'"),
    (["--method", "simsiam", "--x", "lr=0.1:1:2", "--y", "predictor_lr_scale=0.1:300:2"], "got 300"),
    (["--method", "simsiam", "--x", "lr=0.1:1:2", "--seeds", "many"], "--seeds"),
    (["--method", "simsiam", "--x", "lr=0.1:1:2", "--set", "lr=0.1"], "lr is swept"),
    (["--method", "simsiam", "--x", "lr=-1:1:2", "--log-x"], "lr must be in"),
    (["--method", "simsiam"], "--x"),
])
def test_cli_bad_input_is_one_line_and_exit_2(python, subprocess_env, root, tmp_path, args, needle):
    out = tmp_path / "s.json"
    r = run_cli(python, subprocess_env, root, *args, "--out", str(out))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()


def test_cli_writes_the_contract(python, subprocess_env, root, tmp_path):
    out = tmp_path / "sub" / "s.json"
    r = run_cli(python, subprocess_env, root, "--method", "simsiam", "--x", "lr=0.01:0.1:2", "--log-x",
                "--y", "predictor_lr_scale=0.1:1:2", "--seeds", "2", "--epochs", "3", "--dataset", "moons",
                "--set", "dim=2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["method"] == "simsiam" and data["dataset"] == "moons" and data["settings"]["dim"] == 2
    assert data["x"] == {"knob": "lr", "values": [0.01, 0.1]} and data["y"]["values"] == [0.1, 1.0]
    assert np.array(data["metrics"]["center_norm"]).shape == (2, 2, 2)
    assert data["train_seconds"] > 0 and "1 stacked program" in r.stdout
    assert all(math.isfinite(v) for row in data["metrics"]["knn_acc"] for c in row for v in c)


# ---------------------------------------------------------------- the heatmap and the page


def test_heatmap_cells_counts_and_titles():
    from lab.render.sweep import sweep_heatmap

    sweep, _, _ = plan_sweep("simsiam", "lr=0.02:0.1:3", "predictor_lr_scale=0.1,1", seeds=2, settings=QUICK)
    pending = sweep_heatmap(sweep).to_dict()
    assert pending["data"][-1]["text"] == ["…"] * 6  # nothing trained yet: every cell grey
    sweep = run_sweep("simsiam", "lr=0.02:0.1:3", "predictor_lr_scale=0.1,1", seeds=2, settings=QUICK)
    fig = sweep_heatmap(sweep, selected=(1, 2)).to_dict()
    cells = fig["data"][0]
    assert len(cells["x"]) == 6 and all(t.endswith("/2") for t in cells["text"])
    assert [list(c) for c in cells["customdata"]][4] == [1, 1, -1]
    mean = np.nanmean(sweep.final("center_norm"), -1)
    assert np.allclose(cells["marker"]["color"], mean.ravel())
    assert "final ‖s‖ of the normalised projector output" in fig["layout"]["title"]["text"]
    assert fig["layout"]["xaxis"]["title"]["text"] == "lr" and fig["layout"]["xaxis"]["ticktext"][1] == "0.06"
    assert fig["data"][-1]["name"] == "selected"
    # One knob and the seed: a row per seed, each square that seed's own reading.
    by_seed = run_sweep("simsiam", "lr=0.02,0.05", seeds=3, settings=QUICK)
    fig = sweep_heatmap(by_seed).to_dict()
    cells = fig["data"][0]
    assert len(cells["x"]) == 6 and set(cells["text"]) <= {"0/1", "1/1"}
    assert np.allclose(cells["marker"]["color"], by_seed.final("center_norm")[0].T.ravel())
    assert fig["layout"]["yaxis"]["title"]["text"] == "seed" and fig["layout"]["yaxis"]["ticktext"] == ["0", "1", "2"]


def _page(root):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(root / "views" / "sweep.py"), default_timeout=HANG_S)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _charts(at) -> dict:
    return {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_page_runs_a_sweep_and_replays_a_cell(root):
    at = _page(root)
    assert not at.error and "sw_heatmap" not in _charts(at)
    at.select_slider(key="sw_epochs").set_value(10)
    at.slider(key="sw_x_simsiam_lr_n").set_value(3)
    at.slider(key="sw_y_simsiam_predictor_lr_scale_n").set_value(2)
    at.run()
    assert "6 cells × 1 seed(s) in 1 stacked program(s)." in [c.value for c in at.sidebar.caption]
    at.button(key="sw_run").click().run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    shown = _charts(at)
    texts = shown["sw_heatmap"]["data"][0]["text"]
    assert len(texts) == 6 and all(t in ("0/1", "1/1") for t in texts)
    assert "final ‖s‖ of the normalised projector output" in shown["sw_heatmap"]["layout"]["title"]["text"]
    assert len(at.selectbox(key="sw_cell").options) == 6
    at.selectbox(key="sw_cell").set_value((1, 2)).run()
    assert not at.exception
    animation = _charts(at)["sw_animation"]
    assert len(animation["frames"]) == 11 and "lr = 0.2, predictor_lr_scale = 1" in animation["layout"]["title"]["text"]
    at.selectbox(key="sw_metric").set_value("knn_acc").run()  # a rerun: the cached sweep, no training
    assert not at.exception and "kNN" in _charts(at)["sw_heatmap"]["layout"]["title"]["text"]


def test_page_sweeps_a_knob_that_does_not_stack_and_reports_bad_ranges(root):
    at = _page(root)
    at.selectbox(key="sw_method").set_value("barlow").run()
    at.selectbox(key="sw_x_barlow").set_value("batchnorm").run()  # a switch: off and on
    at.select_slider(key="sw_epochs").set_value(10)
    at.selectbox(key="sw_y_barlow_batchnorm").set_value("lr").run()
    at.slider(key="sw_y_barlow_lr_n").set_value(2).run()
    assert "4 cells × 1 seed(s) in 2 stacked program(s)." in [c.value for c in at.sidebar.caption]
    at.button(key="sw_run").click().run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    assert len(_charts(at)["sw_heatmap"]["data"][0]["x"]) == 4
    at.number_input(key="sw_y_barlow_lr_lo").set_value(-1.0).run()
    assert not at.exception and [e.value for e in at.error] == ["Invalid sweep: lr must be in (0.0, 100.0], got -1.0"]


def test_page_one_knob_and_the_seed(root):
    at = _page(root)
    at.selectbox(key="sw_y_simsiam_lr").set_value("seed").run()
    at.select_slider(key="sw_epochs").set_value(10)
    at.slider(key="sw_x_simsiam_lr_n").set_value(2).run()
    assert "2 cells × 3 seed(s) in 1 stacked program(s)." in [c.value for c in at.sidebar.caption]
    at.button(key="sw_run").click().run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    assert len(_charts(at)["sw_heatmap"]["data"][0]["x"]) == 6
    at.selectbox(key="sw_seed").set_value(2).run()
    assert not at.exception and "sw_animation" in _charts(at)
