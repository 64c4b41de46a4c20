"""A run started without the launcher (the engine's own command line with --out under the runs root, as a
torchrun or SLURM user does by hand) is listed and watched, not controlled: one real engine run on tiny fake
data, then copies of its folder with the end line cut (running while its metrics are fresh, stalled after),
read by `list_runs`, `runs list`, stop/resume and the Runs page."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lab import runs as labruns
from lab.data.fake import write_fake_imagefolder
from lab.runs.core import EXTERNAL_FRESH_S
from waits import HANG_S

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs root holding `ext` (finished by the engine alone), `ext-live` (its end line cut: running) and
    `ext-dead` (the same, its metrics untouched for longer than EXTERNAL_FRESH_S: stalled)."""
    base = tmp_path_factory.mktemp("external")
    data = write_fake_imagefolder(base / "data", classes=4, per_class=16, size=40)
    root = base / "runs"
    cmd = [sys.executable, "-m", "lab.engine.train", "--data", str(data), "--method", "byol", "--epochs", "2",
           "--batch-size", "16", "--image-size", "32", "--workers", "0", "--max-steps-per-epoch", "2",
           "--knn-every", "0", "--no-progress", "--device", "cpu", "--out", str(root / "ext")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (root / "ext" / "launch.json").exists(), "the engine alone writes no launcher files"
    for name, age in (("ext-live", 0.0), ("ext-dead", EXTERNAL_FRESH_S + 60)):
        shutil.copytree(root / "ext", root / name)
        metrics = root / name / "metrics.jsonl"
        lines = metrics.read_text().splitlines()
        assert json.loads(lines[-1])["kind"] == "end"
        metrics.write_text("\n".join(lines[:-1]) + "\n")
        then = time.time() - age
        os.utime(metrics, (then, then))
    (root / "scratch").mkdir()  # neither the launcher's nor the engine's: not a run
    (root / "scratch" / "notes.txt").write_text("x")
    return root


def test_the_engines_own_runs_are_listed_with_their_status(runs):
    infos = {r.name: r for r in labruns.list_runs(runs)}
    assert set(infos) == {"ext", "ext-live", "ext-dead"}, "a folder without config.json + metrics.jsonl is no run"
    ext = infos["ext"]
    assert (ext.backend, ext.status, ext.method, ext.epochs, ext.epoch) == ("external", "finished", "byol", 2, 2)
    assert "outside the lab" in ext.message and ext.step > 0 and ext.last_epoch_metrics["epoch"] == 2
    assert infos["ext-live"].status == "running", "fresh metrics and no end line"
    dead = infos["ext-dead"]
    assert dead.status == "stalled" and "no metrics for 16 min and no end line" in dead.message


def test_the_lab_refuses_to_stop_or_resume_what_it_did_not_start(runs):
    with pytest.raises(ValueError, match="'ext-live' was started outside the lab.*kill -TERM"):
        labruns.stop("ext-live", runs, wait=0)
    with pytest.raises(ValueError, match="'ext-dead' was started outside the lab.*same --out"):
        labruns.resume("ext-dead", runs)
    assert not (runs / "ext-live" / "stop.json").exists(), "nothing written into a run the lab does not own"
    env = dict(os.environ, LAB_RUNS_DIR=str(runs))
    listed = subprocess.run([sys.executable, "-m", "lab", "runs", "list"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=HANG_S)
    assert listed.returncode == 0 and "started outside the lab" in listed.stdout
    refused = subprocess.run([sys.executable, "-m", "lab", "runs", "stop", "ext-live"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=HANG_S)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "outside the lab" in refused.stderr


def test_the_runs_page_watches_them_with_stop_and_resume_off(runs, monkeypatch):
    monkeypatch.setenv("LAB_RUNS_DIR", str(runs))
    at = AppTest.from_file(str(ROOT / "views" / "runs.py"), default_timeout=HANG_S)
    at.session_state["runs_shown"] = ["ext-live", "ext-dead"]
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    table = at.dataframe[0].value
    assert dict(zip(table["name"], table["status"])) == {"ext": "finished", "ext-live": "running",
                                                         "ext-dead": "stalled"}
    for name in ("ext-live", "ext-dead"):
        assert at.button(key=f"runs_stop_{name}").disabled and at.button(key=f"runs_resume_{name}").disabled
    captions = " ".join(c.value for c in at.caption)
    assert "started outside the lab" in captions and "killed or stuck" in captions
    assert any(k.startswith("runs_chart_center_norm") for k in
               (c.proto.id.split("-", 2)[-1] for c in at.get("plotly_chart"))), "its ‖s‖ is charted"
