"""Headless runs (AppTest) of the Runs page against temp runs roots ($LAB_RUNS_DIR): empty; with a real
finished run and a real failed run (tiny CPU trainings through `lab.runs.launch`, started together once
per module); the chart controls and the collapse banner; a launch and stop from the form; bad form input
(one-line errors, no exception, no run folder)."""
import json
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from lab import runs as labruns
from views import ui
from lab.data.fake import write_fake_imagefolder
from lab.render.runs import LIVE_METRICS
from waits import HANG_S

PAGE = "views/runs.py"
# A real simsiam run named as the b5 preset's first run, so the page also draws the paper's Fig. B.5 from it.
FINISHED = "b5-simsiam-predictor-simsiam"
TINY = ["--workers", "0", "--max-steps-per-epoch", "2", "--image-size", "32", "--epochs", "2", "--batch-size", "16",
        "--knn-every", "1", "--log-every", "1", "--no-progress"]


def wait_done(name: str, root, timeout: float = HANG_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = labruns.get_run(name, root=root)
        if info.status not in ("queued", "running"):
            return info
        time.sleep(0.5)
    raise TimeoutError(f"run {name} still {info.status} after {timeout:.0f} s")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_imagefolder(tmp_path_factory.mktemp("data") / "fake", classes=4, per_class=16, size=48)


@pytest.fixture(scope="module")
def launched(tmp_path_factory, data):
    """Two real runs started together (they overlap on the 2 cores): a finished one and one that fails
    (an empty data folder), each in its own runs root. -> {"finished": root, "failed": root}"""
    roots = {"finished": tmp_path_factory.mktemp("runs"), "failed": tmp_path_factory.mktemp("runs")}
    empty = tmp_path_factory.mktemp("empty")
    labruns.launch(FINISHED, ["--data", str(data), "--method", "simsiam", *TINY], root=roots["finished"],
                   device="cpu", preset="b5-simsiam-predictor")
    labruns.launch("broken", ["--data", str(empty), "--method", "simsiam", *TINY], root=roots["failed"], device="cpu")
    info = wait_done(FINISHED, roots["finished"])
    assert info.status == "finished", (info.status, info.message, labruns.log_tail(info.path))
    assert wait_done("broken", roots["failed"]).status == "failed"
    return roots


@pytest.fixture(scope="module")
def finished_root(launched):
    return launched["finished"]


def run_page(root, runs_root, monkeypatch, **state) -> AppTest:
    monkeypatch.setenv("LAB_RUNS_DIR", str(runs_root))
    at = AppTest.from_file(str(root / PAGE), default_timeout=HANG_S)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def charts(at: AppTest) -> dict:
    # Element ids read "$$ID-<hash>-<user key>"; the key itself may hold '-'.
    return {c.proto.id.split("-", 2)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_empty_root(root, tmp_path, monkeypatch):
    at = run_page(root, tmp_path / "runs", monkeypatch)
    assert [i.value for i in at.info][-1].startswith("No runs yet")
    assert not at.error and not at.get("plotly_chart")
    labels = [b.label for b in at.button]
    assert ("CPU demo run" in labels) == (not torch.cuda.is_available()), "the demo is for machines without a GPU"
    assert "Launch" in labels
    assert at.selectbox(key="runs_method").value == "simsiam"


def test_unusable_runs_root(root, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    at = run_page(root, tmp_path / "file" / "runs", monkeypatch)
    assert [e.value for e in at.error] == [f"Cannot use the runs folder: [Errno 20] Not a directory: "
                                           f"'{tmp_path / 'file' / 'runs'}'. Set LAB_RUNS_DIR to a writable folder."]


def test_finished_run(root, finished_root, monkeypatch):
    at = run_page(root, finished_root, monkeypatch)
    table = at.dataframe[0].value
    row = table[table["name"] == FINISHED].iloc[0]
    assert row["status"] == "finished" and row["epoch"] == "2/2" and row["progress"] == 1.0 and row["ETA"] == ""
    assert at.multiselect(key="runs_shown").value == [FINISHED], "the newest run is shown by default"
    shown = charts(at)
    # A SimSiam run: every live chart but the entropies of DINO and SwAV.
    assert {f"runs_chart_{m}" for m in LIVE_METRICS if "entropy" not in m} <= set(shown)
    assert not {k for k in shown if "entropy" in k}
    center = shown["runs_chart_center_norm"]
    line = [t for t in center["data"] if t["name"] == FINISHED][0]
    assert line["x"] == [0, 1, 2] and all(0.0 <= y <= 1.0 for y in line["y"])  # epoch 0: the untrained model
    assert len(center["layout"]["shapes"]) == 2  # collapse at 1 and the warning threshold
    loss = shown["runs_chart_loss"]
    assert [s["y0"] for s in loss["layout"]["shapes"]] == [-1.0], "SimSiam's collapse value"
    log = "\n".join(c.value for c in at.code)
    assert "finished: epoch 2" in log
    assert at.button(key=f"runs_stop_{FINISHED}").disabled and at.button(key=f"runs_resume_{FINISHED}").disabled
    assert at.get("download_button"), "the metrics CSV"
    assert "runs_paper_b5-simsiam-predictor" in shown, "a run of the b5 preset draws Fig. B.5"
    assert not at.warning, "‖s‖ of a 2-epoch run is far below 0.9"


def test_chart_controls_and_warning(root, finished_root, monkeypatch):
    at = run_page(root, finished_root, monkeypatch)
    at.radio(key="runs_x").set_value("optimizer step")
    at.toggle(key="runs_log").set_value(True)
    at.slider(key="runs_smooth").set_value(0.5)
    at.slider(key="runs_threshold").set_value(0.01).run()
    assert not at.exception
    shown = charts(at)
    loss = shown["runs_chart_loss"]
    assert loss["layout"]["yaxis"]["type"] == "log" and loss["layout"]["xaxis"]["title"]["text"] == "optimizer step"
    assert {t["name"] for t in loss["data"]} == {FINISHED, f"{FINISHED} (raw)"}
    assert len([t for t in loss["data"] if t["name"] == FINISHED][0]["x"]) == 4, "step lines: 2 epochs x 2 steps"
    assert [w.value for w in at.warning][0].startswith(f"{FINISHED}: ‖s‖ reached")


@pytest.mark.parametrize("form, message", [
    ({"runs_name": "../escape"}, "run name"),
    ({"runs_name": "ok", "runs_data": ""}, "data folder is empty"),
    ({"runs_name": "ok", "runs_data": "/no/such/folder"}, "does not exist"),
    ({"runs_name": "ok", "runs_knobs": "predictor=maybe"}, "predictor takes true or false, got 'maybe'"),
    ({"runs_name": "ok", "runs_knobs": "colour=red"}, "unknown parameter 'colour' for simsiam; valid:"),
    ({"runs_name": "ok", "runs_extra": "--epochz 3"}, "unrecognized arguments: --epochz"),
    ({"runs_name": "ok", "runs_extra": "--workers 'unclosed"}, "extra arguments:"),
    ({"runs_name": "ok", "runs_extra": "--out /elsewhere"}, "must not contain --out"),
    ({"runs_name": "ok", "runs_partition": "no spaces"}, "slurm partition must be"),
])
def test_bad_form_input_is_one_line_error(root, tmp_path, monkeypatch, data, form, message):
    runs = tmp_path / "runs"
    at = run_page(root, runs, monkeypatch)
    at.text_input(key="runs_data").set_value(str(data))
    if "runs_partition" in form:  # the SLURM fields appear once the toggle is on
        at.toggle(key="runs_slurm").set_value(True).run()
    for key, value in form.items():
        at.text_input(key=key).set_value(value)
    at.button(key="runs_launch").click().run()
    assert not at.exception, [e.message for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0], errors
    assert "Traceback" not in errors[0]
    assert labruns.list_runs(runs) == []


def test_launch_stop_resume_from_the_page(root, tmp_path, monkeypatch, data):
    runs = tmp_path / "runs"
    at = run_page(root, runs, monkeypatch)
    at.text_input(key="runs_name").set_value("form-run")
    at.text_input(key="runs_data").set_value(str(data))
    at.selectbox(key="runs_method").set_value("byol")
    at.text_input(key="runs_knobs").set_value("momentum=0.9")
    at.number_input(key="runs_epochs").set_value(50)
    at.number_input(key="runs_batch").set_value(16)
    at.number_input(key="runs_image_size").set_value(32)
    at.text_input(key="runs_extra").set_value("--workers 0 --max-steps-per-epoch 2 --device cpu")
    at.button(key="runs_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    try:
        info = labruns.get_run("form-run", root=runs)
        assert info.method == "byol" and info.epochs == 50
        assert at.multiselect(key="runs_shown").value == ["form-run"]
        assert [s.value for s in at.success][0] == "Started form-run"
        at.button(key="runs_stop_form-run").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert wait_done("form-run", runs, timeout=HANG_S).status == "stopped"
        at.run()
        at.button(key="runs_resume_form-run").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert labruns.get_run("form-run", root=runs).status in ("queued", "running")
        assert at.button(key="runs_stop_form-run").disabled is False
    finally:
        if labruns.get_run("form-run", root=runs).status in ("queued", "running"):
            labruns.stop("form-run", root=runs)  # a failed assertion must not leave a training behind


def test_failed_run_shows_why(root, launched, monkeypatch):
    at = run_page(root, launched["failed"], monkeypatch)
    assert at.dataframe[0].value.iloc[0]["status"] == "failed"
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("exit code 2"), errors
    log = "\n".join(c.value for c in at.code)
    assert "error:" in log, "the trainer's one-line reason is in the log tail"
    assert not at.button(key="runs_resume_broken").disabled and at.button(key="runs_stop_broken").disabled


def test_reached_from_another_machine_the_controls_stay_off_without_the_token(root, finished_root, monkeypatch):
    """A teacher serving the app on a network: students watch runs but cannot launch, stop or pick data."""
    monkeypatch.setattr(ui, "page_controls_allowed",
                        lambda: ui.controls_allowed("10.0.0.7", None, None))
    at = run_page(root, finished_root, monkeypatch)
    assert "controls are off" in at.warning[0].value and "10.0.0.7" in at.warning[0].value
    assert "LAB_CONTROL_TOKEN" in at.warning[0].value and "\n" not in at.warning[0].value
    labels = [b.label for b in at.button]
    assert "Launch" not in labels and "CPU demo run" not in labels
    assert not [t for t in at.text_input if t.key == "runs_data"]
    assert at.button(key=f"runs_stop_{FINISHED}").disabled and at.button(key=f"runs_resume_{FINISHED}").disabled
    assert charts(at), "watching works as usual"


def test_who_may_use_the_controls():
    assert ui.controls_allowed(None, None, None)[0]  # Streamlit: no address for a browser on this machine
    assert ui.controls_allowed("127.0.0.1", None, None)[0] and ui.controls_allowed("::1", None, None)[0]
    assert not ui.controls_allowed("192.168.1.20", None, None)[0]
    assert not ui.controls_allowed("192.168.1.20", "guess", None)[0]  # no token set: nothing unlocks it
    assert not ui.controls_allowed("192.168.1.20", "wrong", "s3cret")[0]
    assert not ui.controls_allowed("192.168.1.20", None, "s3cret")[0]
    assert ui.controls_allowed("192.168.1.20", "s3cret", "s3cret")[0]
    assert not ui.controls_allowed("not an address", None, None)[0]
    allowed, why = ui.controls_allowed("192.168.1.20", None, "s3cret")
    assert "?token=" in why and "s3cret" not in why
