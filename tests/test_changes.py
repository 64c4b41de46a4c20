"""Knob changes in the middle of a toy run (`lab.train.changes`): parsed and checked at the edge, applied from
the next step, marked on the curves, named in the animation and the GIF, carried by the link and the CLI."""
import json
import subprocess
import sys

import pytest
import torch
from streamlit.testing.v1 import AppTest

from lab.render.toy import events_so_far, metric_band_figure, toy_animation
from lab.train.changes import Change, change_caption, changes_text
from lab.train.toy import ToyConfig, toy_config, train_toys
from waits import HANG_S

TINY = {"seeds": 2, "epochs": 6}


@pytest.mark.parametrize("text, message", [
    ("300:stop_grad=false", r"epoch must be in \[0, 5\]"),
    ("x:stop_grad=false", "epoch must be a whole number"),
    ("3stop_grad", "EPOCH:KNOB=VALUE"),
    ("3:predictor_hidden=4", "cannot change mid-run for simsiam; knobs that can: lr"),
    ("3:nope=1", "'nope' cannot change mid-run"),
    ("3:lr=-1", r"lr must be in \(0.0, 100.0\]"),
    ("3:stop_grad=maybe", "stop_grad"),
])
def test_a_bad_change_is_one_line_naming_it(text, message):
    with pytest.raises(ValueError, match=message) as err:
        toy_config("simsiam", "blobs", {**TINY, "changes": text})
    assert "\n" not in str(err.value)


def test_changes_are_parsed_sorted_and_written_back():
    c = toy_config("simsiam", "blobs", {**TINY, "changes": "4:lr=0.01; 2:stop_grad=false"})
    assert c.changes == (Change(2, "stop_grad", False), Change(4, "lr", 0.01))
    assert changes_text(c.changes) == "2:stop_grad=false;4:lr=0.01"
    assert toy_config("simsiam", "blobs", {**TINY, "changes": changes_text(c.changes)}) == c
    assert ToyConfig(method="simsiam", **TINY, changes=[(2, "stop_grad", False), (4, "lr", 0.01)]) == c  # from JSON
    assert change_caption(c.changes[0], "simsiam") == "Stop-gradient off at epoch 2"


def test_a_change_at_epoch_0_is_the_setting_itself_and_a_no_op_change_changes_nothing():
    runs = train_toys([toy_config("barlow", "moons", {**TINY, "changes": "0:lam=0.5"}),
                       toy_config("barlow", "moons", {**TINY, "lam": 0.5}),
                       toy_config("simsiam", "moons", {**TINY, "changes": "3:lr=0.05;3:sgd_momentum=0.9"}),
                       toy_config("simsiam", "moons", TINY)])
    assert torch.equal(runs[0].metrics["center_norm"], runs[1].metrics["center_norm"])
    assert torch.equal(runs[2].metrics["center_norm"][-1], runs[3].metrics["center_norm"][-1])
    assert 3 in runs[2].epochs  # a change's epoch is read


def test_a_change_acts_from_the_next_epoch_only():
    a, b = train_toys([toy_config("simsiam", "blobs", {**TINY, "changes": "3:lr=0.5"}),
                       toy_config("simsiam", "blobs", {**TINY, "max_evals": 7})])
    upto = a.epochs.index(3)
    assert a.epochs[: upto + 1] == b.epochs[: upto + 1]
    assert torch.equal(a.metrics["center_norm"][: upto + 1], b.metrics["center_norm"][: upto + 1])
    assert not torch.equal(a.metrics["center_norm"][-1], b.metrics["center_norm"][-1])


def test_stop_gradient_off_mid_run_is_drawn_on_the_curves_and_named_in_the_animation():
    run = train_toys([toy_config("simsiam", "moons", {"seeds": 2, "epochs": 20, "changes": "10:stop_grad=false"})])[0]
    fig = metric_band_figure({"simsiam": run}, "center_norm")
    marks = [a.text for a in fig.layout.annotations]
    assert "Stop-gradient off at epoch 10" in marks and any(s.x0 == 10 for s in fig.layout.shapes)
    anim = toy_animation(run)
    titles = {f.name: (f.layout.title.text or "") for f in anim.frames}
    assert "Stop-gradient" not in titles["0"] and "Stop-gradient off at epoch 10" in titles["20"]
    assert events_so_far(run, len(run.epochs) - 1, ascii_only=True) == "Stop-gradient off at epoch 10"
    assert events_so_far(run, 0) == ""


def test_the_cli_takes_a_schedule_of_changes(tmp_path):
    out = tmp_path / "run.json"
    done = subprocess.run([sys.executable, "-m", "lab", "toy", "--method", "simsiam", "--dataset", "moons",
                           "--seeds", "2", "--epochs", "8", "--at", "4:stop_grad=false", "--out", str(out)],
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    assert "Stop-gradient off at epoch 4" in done.stdout and "seeds above 0.9" in done.stdout
    assert json.loads(out.read_text())["params"]["changes"] == "4:stop_grad=false"
    bad = subprocess.run([sys.executable, "-m", "lab", "toy", "--method", "simsiam", "--dataset", "moons",
                          "--epochs", "8", "--at", "9:stop_grad=false", "--out", str(out)],
                         capture_output=True, text=True, timeout=HANG_S)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "epoch must be in [0, 7]" in bad.stderr


def test_a_switch_given_as_text_can_be_turned_on_mid_run(tmp_path):
    """`--set predictor=false` reaches the trainer as the text "false" (as a link's does): the run must still be
    built with the predictor switched off, not without it, so that `--at 3:predictor=true` can turn it on."""
    out = tmp_path / "run.json"
    done = subprocess.run([sys.executable, "-m", "lab", "toy", "--method", "simsiam", "--dataset", "blobs",
                           "--set", "predictor=false", "--at", "3:predictor=true", "--seeds", "1", "--epochs", "6",
                           "--out", str(out)], capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "Predictor on at epoch 3" in done.stdout


def test_the_playground_link_holds_the_changes(root):
    at = AppTest.from_file(str(root / "views/playground.py"), default_timeout=HANG_S)
    at.query_params.update({"live": "false", "method": "simsiam", "dataset": "moons", "epochs": "20", "seeds": "2",
                            "at": "10:stop_grad=false"})
    at.run()
    assert not at.exception and not at.error
    assert at.query_params["at"] == "10:stop_grad=false"
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith("pg_chart_center_norm"))
    assert any(a.get("text") == "Stop-gradient off at epoch 10" for a in spec["layout"]["annotations"])
    at.query_params["at"] = "50:stop_grad=false"
    at = AppTest.from_file(str(root / "views/playground.py"), default_timeout=HANG_S)
    at.query_params.update({"live": "false", "method": "simsiam", "epochs": "20", "seeds": "2", "at": "50:stop_grad=false"})
    at.run()
    assert not at.exception and len(at.error) == 1 and "epoch must be in [0, 19]" in at.error[0].value
