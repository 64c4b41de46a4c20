"""lab.runs with real processes: runs launched by the CLI on tiny fake data (32 px, 2 steps per epoch),
watched through `runs list --json`, stopped, resumed, killed with SIGKILL; names and folders checked.

The slow runs start together once per module (they share the two cores) and each test follows one.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.runs import (RunInfo, SlurmSpec, UnknownRunError, demo_data, demo_train_args, get_run, launch,
                      launch_preset, list_runs, log_tail, read_metrics, resume, run_path, runs_root, stop,
                      validate_name)
from lab.runs.proc import alive, descendants, read_json, start_time
from waits import HANG_S

ROOT = Path(__file__).resolve().parents[1]
BAD_NAMES = ["../x", "a/b", "", "a b", ".", "..", ".hidden", "x" * 65, "a\nb", "é"]


def train_args(data: Path, epochs: int) -> list[str]:
    return ["--data", str(data), "--method", "simsiam", "--epochs", str(epochs), "--batch-size", "16",
            "--image-size", "32", "--workers", "0", "--max-steps-per-epoch", "2", "--knn-every", "0",
            "--no-progress"]


def wait_for(what, timeout: float = HANG_S, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what.__doc__ or what}")


class Lab:
    def __init__(self, root: Path, data: Path, env: dict):
        self.root, self.data, self.env = root, data, env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "lab", "runs", *args], env=self.env, cwd=ROOT,
                             capture_output=True, text=True, timeout=HANG_S)
        if check:
            assert out.returncode == 0, out.stderr
        return out

    def listed(self) -> dict[str, dict]:
        return {r["name"]: r for r in json.loads(self.cli("list", "--json").stdout)}

    def info(self, name: str) -> RunInfo:
        return get_run(name, self.root)

    def epochs_logged(self, name: str) -> list[int]:
        """The trained epochs logged (the untrained reading, epoch 0, checked to appear at most once)."""
        epochs = [r["epoch"] for r in read_metrics(self.root / name) if r.get("kind") == "epoch"]
        assert epochs.count(0) <= 1, epochs
        return [e for e in epochs if e > 0]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from lab.data.fake import write_fake_imagefolder

    base = tmp_path_factory.mktemp("runs")
    data = write_fake_imagefolder(base / "data", classes=4, per_class=16, size=40)
    root = base / "root"
    # one thread per run: several runs share two cores
    env = dict(os.environ, LAB_RUNS_DIR=str(root), OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    lab = Lab(root, data, env)
    # epochs chosen so that each run is still going when the (sequential) tests reach it; the short runs
    # last, since each launch takes a second or two (it parses and checks the train args with the engine)
    lab.cli("launch", "killme", "--device", "cpu", "--", *train_args(data, 50))
    lab.cli("launch", "ddp", "--gpus", "2", "--device", "cpu", "--", *train_args(data, 50))
    lab.cli("launch", "sweep", "--device", "cpu", "--preset", "b6-simsiam-predictor-lr", "--",
            *[a for a in train_args(data, 1) if a not in ("--method", "simsiam")])
    lab.stopped_queued = stop("sweep-simsiam-predlr100", root, wait=0)  # third in the queue: skipped
    for name, epochs in (("stopme", 8), ("finish", 3)):
        lab.cli("launch", name, "--device", "cpu", "--", *train_args(data, epochs))
    # seen running by `runs list --json` after the CLI that launched it has exited (the run outlives it)
    lab.seen = wait_for(lambda: lab.listed()["finish"]["status"] == "running" and "running", HANG_S)
    pidf = read_json(root / "finish" / "pid.json")
    own = all(os.getsid(pidf[k]["pid"]) == pidf[k]["pid"] != os.getsid(0) for k in ("wrapper", "child"))
    lab.sessions = "own sessions" if own else f"sessions: {[os.getsid(pidf[k]['pid']) for k in ('wrapper', 'child')]}"
    yield lab
    for info in list_runs(root):  # leave no process behind, whatever failed
        pidf = read_json(info.path / "pid.json") or {}
        queue = (read_json(info.path / "queue.json") or {}).get("wrapper")
        for ident in (pidf.get("child"), pidf.get("wrapper"), queue):
            if alive(ident):  # the whole group: torchrun's workers do not die with torchrun on SIGKILL
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    group = os.getpgid(ident["pid"])
                    if group != os.getpgrp():
                        os.killpg(group, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(ident["pid"], signal.SIGKILL)


# ----------------------------------------------------------------------------------------- no processes

@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_rejected(name, tmp_path):
    with pytest.raises(ValueError, match="bad run name"):
        validate_name(name)
    with pytest.raises(ValueError, match="bad run name"):
        launch(name, ["--data", "x", "--method", "simsiam"], root=tmp_path / "root")
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").iterdir())


def test_bad_name_on_the_command_line_is_one_line(tmp_path):
    env = dict(os.environ, LAB_RUNS_DIR=str(tmp_path / "root"))
    for argv in (["launch", "../x", "--", "--data", "d"], ["show", "a/b"], ["launch", "ok", "--gpus", "0"],
                 ["show", "nosuch"], ["launch", "ok", "--", "--out", "/tmp/elsewhere"]):
        out = subprocess.run([sys.executable, "-m", "lab", "runs", *argv], env=env, cwd=ROOT, capture_output=True,
                             text=True)
        assert out.returncode == 2, argv
        assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("error: "), out.stderr
    assert not (tmp_path / "elsewhere").exists() and not Path("/tmp/elsewhere/launch.json").exists()


def test_symlinked_run_folder_outside_the_root_is_rejected(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "launch.json").write_text(json.dumps({"name": "evil", "started": "2026-01-01T00:00:00+00:00"}))
    root.mkdir()
    (root / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="symlink"):
        run_path("evil", root)
    with pytest.raises(ValueError, match="symlink"):
        get_run("evil", root)
    with pytest.raises(ValueError):
        launch("evil", ["--data", "x", "--method", "simsiam"], root=root)
    assert [r.name for r in list_runs(root)] == []
    assert sorted(p.name for p in outside.iterdir()) == ["launch.json"]


def test_half_written_last_metrics_line_is_ignored(tmp_path):
    rows = [{"kind": "epoch", "epoch": 1, "step": 2, "loss": 0.5}, {"kind": "epoch", "epoch": 2, "step": 4}]
    whole = "".join(json.dumps(r) + "\n" for r in rows)
    torn = json.dumps({"kind": "epoch", "epoch": 3, "step": 6})
    (tmp_path / "metrics.jsonl").write_text(whole + torn[:20])
    assert read_metrics(tmp_path) == rows
    (tmp_path / "metrics.jsonl").write_text(whole + torn)  # complete JSON but no newline yet: still being written
    assert read_metrics(tmp_path) == rows
    (tmp_path / "metrics.jsonl").write_text(whole + torn + "\n")
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    assert read_metrics(tmp_path / "missing") == []


def test_one_metrics_reader_skips_bad_complete_lines_and_the_unfinished_last_one(tmp_path):
    """lab.core.runlog.read_jsonl is the engine's reader (resume, trim) and the launcher's (status, charts)."""
    from lab.engine.train import read_metrics as engine_read
    from lab.core.runlog import read_jsonl

    good = [{"kind": "step", "step": 1}, {"kind": "epoch", "epoch": 1, "step": 2}]
    bad = [b"", b"not json", b"[1, 2]", b'{"kind": "st{"kind": "step"}', b"\xff\xfe{}"]  # blank, torn, not an object
    lines = [json.dumps(good[0]).encode(), *bad, json.dumps(good[1]).encode()]
    (tmp_path / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n" + b'{"kind": "end"}')
    assert read_jsonl(tmp_path / "metrics.jsonl") == good
    assert engine_read(tmp_path / "metrics.jsonl") == good and read_metrics(tmp_path) == good
    assert read_jsonl(tmp_path / "missing.jsonl") == [] and read_jsonl(tmp_path) == []  # a folder: unreadable


# ----------------------------------------------------------------------------------------- real runs

def test_kill_9_shows_failed_with_the_last_log_lines(lab):
    path = lab.root / "killme"
    wait_for(lambda: (path / "train.log").exists() and (path / "pid.json").exists(), HANG_S)
    child = read_json(path / "pid.json")["child"]
    os.kill(child["pid"], signal.SIGKILL)
    info = wait_for(lambda: (i := lab.info("killme")).status == "failed" and i, HANG_S)
    assert info.exit_code == -9 and "SIGKILL" in info.message
    assert re.search(r"epoch \d+/50|training simsiam", info.message)  # the last log lines come with it
    assert any("training simsiam" in line for line in log_tail(path, 50))

    # resumed, then wrapper and training process killed together: no exit record at all
    resume("killme", lab.root)
    wait_for(lambda: (read_json(path / "pid.json") or {}).get("child"), HANG_S)
    pidf = read_json(path / "pid.json")
    for ident in (pidf["wrapper"], pidf["child"]):
        os.kill(ident["pid"], signal.SIGKILL)
    info = wait_for(lambda: (i := lab.info("killme")).status == "failed" and i, HANG_S)
    assert info.exit_code is None and "without an exit record" in info.message, info.message


def test_stopping_a_torchrun_run_leaves_no_worker_behind(lab):
    path = lab.root / "ddp"
    child = wait_for(lambda: (read_json(path / "pid.json") or {}).get("child"), HANG_S)
    assert read_json(path / "launch.json")["argv"][1:5] == ["-m", "torch.distributed.run", "--standalone",
                                                             "--nproc_per_node=2"]
    workers = wait_for(lambda: len(descendants(child["pid"])) >= 2 and descendants(child["pid"]), HANG_S)
    workers = [{"pid": p, "start_time": start_time(p), "boot_id": child["boot_id"]} for p in workers]
    info = stop("ddp", lab.root, wait=HANG_S)
    assert info.status == "stopped", info
    assert not alive(child) and not any(alive(w) for w in workers)  # torchrun passed SIGTERM on


def test_stop_checkpoints_and_resume_finishes_without_duplicate_epochs(lab):
    wait_for(lambda: lab.epochs_logged("stopme"), HANG_S)
    out = lab.cli("stop", "stopme")
    assert "stopped" in out.stdout
    info = lab.info("stopme")
    assert info.status == "stopped" and info.exit_code == 0, info
    assert (info.path / "checkpoint.pt").exists()
    assert not alive(read_json(info.path / "pid.json")["child"])
    assert lab.cli("stop", "stopme", check=False).returncode == 2  # not running any more: one-line error
    done = len(lab.epochs_logged("stopme"))
    assert done < 8
    lab.cli("resume", "stopme")
    assert lab.info("stopme").status in ("queued", "running")
    info = wait_for(lambda: (i := lab.info("stopme")).status not in ("queued", "running") and i, HANG_S)
    assert info.status == "finished", info.message
    assert lab.epochs_logged("stopme") == list(range(1, 9))
    assert "resuming" in (info.path / "train.log").read_text()
    assert lab.cli("resume", "stopme", check=False).returncode == 2  # finished: nothing to resume


def test_runs_have_their_own_session_and_files(lab):
    infos = {n: lab.info(n) for n in ("finish", "stopme", "killme")}
    for name, info in infos.items():
        launch_json = read_json(info.path / "launch.json")
        # the engine runs the config the launcher wrote into the folder, with --out that folder
        assert launch_json["train_argv"] == ["--config", str(info.path / "train_config.json")]
        assert read_json(info.path / "train_config.json")["out"] == str(info.path)
        config = wait_for(lambda: read_json(info.path / "config.json"), HANG_S)
        assert config["config"]["out"] == str(info.path)
        others = [str(lab.root / o) for o in infos if o != name]
        assert not any(o + "\n" in (info.path / "stdout.log").read_text() for o in others)
    pids = [read_json(i.path / "pid.json")["child"]["pid"] for i in infos.values()]
    assert len(set(pids)) == 3
    # the wrapper and the training process each lead a session of their own (no terminal or parent takes
    # them down; a stop signals the run's group alone), seen while 'finish' ran
    assert lab.sessions == "own sessions"


def test_launched_run_lists_running_then_finished_after_the_launcher_exited(lab):
    seen = [lab.seen]

    def finished():
        """run 'finish' finished"""
        row = lab.listed()["finish"]
        seen.append(row["status"])
        return row if row["status"] not in ("queued", "running") else None

    row = wait_for(finished, 90, poll=0.5)
    assert "running" in seen, seen  # the CLI that launched it had exited by then
    assert row["status"] == "finished", row
    assert (row["epoch"], row["epochs"], row["method"]) == (3, 3, "simsiam")
    assert row["started"] and row["exit_code"] == 0 and row["backend"] == "local"
    assert lab.epochs_logged("finish") == [1, 2, 3]
    shown = lab.cli("show", "finish").stdout
    assert "finished" in shown and "epoch 3/3" in shown and "center_norm" in shown and "finished: epoch 3" in shown


def test_preset_runs_queue_one_after_another(lab):
    names = ["sweep-simsiam-predlr1", "sweep-simsiam-predlr10"]
    infos = [lab.info(n) for n in names]
    assert [i.preset for i in infos] == ["b6-simsiam-predictor-lr"] * 2
    first = read_json(infos[0].path / "train_config.json")
    assert (first["method"], first["set"], first["epochs"]) == ("simsiam", {"predictor_lr_scale": 0.01}, 1)
    assert (lab.stopped_queued.status, lab.stopped_queued.message) == ("queued", "stop requested: it will be skipped")
    statuses = set()

    def done():
        """the preset's runs ended"""
        now = [lab.info(n).status for n in names]
        statuses.add(tuple(now))
        return all(s not in ("queued", "running") for s in now) and now

    assert wait_for(done, 120, poll=0.3) == ["finished", "finished"]
    assert ("running", "running") not in statuses, statuses  # never both at once
    assert read_json(infos[1].path / "pid.json")["started"] >= read_json(infos[0].path / "exit.json")["ended"]
    assert all(lab.epochs_logged(n) == [1] for n in names)
    skipped = wait_for(lambda: (i := lab.info("sweep-simsiam-predlr100")).status != "queued" and i, HANG_S)
    assert skipped.status == "stopped" and not (skipped.path / "pid.json").exists()  # never started
    assert "not started" in (skipped.path / "stdout.log").read_text()


def test_launch_refuses_what_the_launcher_owns(tmp_path):
    root = tmp_path / "root"
    for args, match in ((["--data", "d", "--out", "x"], "--out"), (["--data", "d", "--out=x"], "--out"),
                        (["--data", "d", "--preset", "fig5-barlow"], "--preset"), ("--data d", "argv list"),
                        (["--device", "cpu"], "disagree")):
        with pytest.raises(ValueError, match=match):
            launch("ok", args, root=root, device="cuda")
    with pytest.raises(ValueError, match="gpus"):
        launch("ok", ["--data", "d"], root=root, gpus=0)
    assert not (root / "ok").exists()
    (root / "taken").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        launch("taken", ["--data", "d"], root=root)
    with pytest.raises(ValueError, match="--method"):
        launch_preset("b5-simsiam-predictor", ["--method", "byol"], root=root)
    with pytest.raises(ValueError, match="unknown preset"):
        launch_preset("nope", [], root=root)
    with pytest.raises(UnknownRunError) as err:
        get_run("nosuch", root)
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    assert str(err.value).startswith("no run named 'nosuch'")


def test_launch_parses_the_train_args_once_into_the_config_it_writes(tmp_path):
    """Bad train args fail in launch() with the engine's one-line message, before any folder is made; good
    ones become RUN/train_config.json, the config the engine runs (recipe defaults filled in)."""
    from lab.engine import parse_train_args

    root = tmp_path / "root"
    for args, match in ((["--data", "d", "--method", "simsiam", "--set", "lam=0"], "unknown parameter 'lam'"),
                        (["--data", "d", "--method", "byol", "--set", "momentum=2"], "momentum must be in"),
                        (["--data", "d", "--method", "simsiam", "--epochs", "0"], r"epochs must be in \[1, 100000\]"),
                        (["--data", "d", "--method", "simsiam", "--epochz", "3"], "unrecognized arguments: --epochz"),
                        (["--data", "d"], "missing --method")):
        with pytest.raises(ValueError, match=match):
            launch("bad", args, root=root)
        assert not (root / "bad").exists()
    with pytest.raises(ValueError, match="must not contain --method"):
        launch_preset("b5-simsiam-predictor", ["--data", "d", "--method", "byol"], root=root)
    # no data folder 'd': the run itself fails at once; the files it was given are what this test reads
    info = launch("ok", ["--data", "d", "--method", "byol", "--set", "momentum=0.9", "--log-every", "2"], root=root,
                  device="cpu")
    written = read_json(info.path / "train_config.json")
    cfg = parse_train_args(read_json(info.path / "launch.json")["train_argv"])
    assert cfg.to_json() == written and (cfg.out, cfg.device, cfg.log_every_steps) == (str(info.path), "cpu", 2)
    assert (cfg.epochs, cfg.batch_size) != (None, None) and info.epochs == cfg.epochs and info.method == "byol"
    wait_for(lambda: get_run("ok", root).status not in ("queued", "running"), HANG_S)


def test_engine_api_is_reexported_and_listing_runs_needs_no_torch():
    """The page reads the engine's public names through lab.runs; `runs list` and each run's wrapper import
    lab.runs and must start without torch (it is imported when a run is launched or a name is used)."""
    import lab.engine
    import lab.runs

    for name in lab.engine.__all__:
        assert getattr(lab.engine, name) is not None, name
    for name in lab.runs.ENGINE_NAMES:
        assert getattr(lab.runs, name) is getattr(lab.engine, name) and name in lab.runs.__all__, name
    code = "import sys, lab.runs, lab.runs.wrap, lab.runs.cli; assert 'torch' not in sys.modules, 'torch imported'"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert out.returncode == 0, out.stderr


def test_runs_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "env-root"))
    assert runs_root() == tmp_path / "env-root" and (tmp_path / "env-root").is_dir()
    assert runs_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("LAB_RUNS_DIR")
    monkeypatch.chdir(tmp_path)
    assert runs_root() == tmp_path / "runs"


def test_demo_data_is_built_once_and_its_args_parse(tmp_path):
    from lab.engine import parse_train_args

    data = demo_data(tmp_path, real=False)
    assert data.parent == tmp_path and sorted(p.name for p in data.iterdir()) == ["train", "val"]
    stamp = next((data / "train").rglob("*.jpg")).stat().st_mtime_ns
    assert demo_data(tmp_path, real=False) == data and next((data / "train").rglob("*.jpg")).stat().st_mtime_ns == stamp
    assert list_runs(tmp_path) == []  # the demo folder is not a run
    cfg = parse_train_args([*demo_train_args(data), "--out", str(tmp_path / "r")])
    assert (cfg.method, cfg.epochs, cfg.image_size, cfg.device) == ("simsiam", 12, 32, "auto")


def test_the_demo_is_a_real_fashion_mnist_run_where_debian_has_it(tmp_path):
    from lab.data.fmnist import DEBIAN_DIR, is_fashion_mnist
    from lab.engine import parse_train_args

    if not is_fashion_mnist(DEBIAN_DIR):
        pytest.skip("needs Debian's dataset-fashion-mnist (scripts/test.sh installs it)")
    data = demo_data(tmp_path)
    assert data == DEBIAN_DIR and not (tmp_path / ".demo-data").exists()
    cfg = parse_train_args([*demo_train_args(data), "--out", str(tmp_path / "r")]).resolved()
    assert (cfg.scale, cfg.image_size, cfg.batch_size, cfg.max_steps_per_epoch) == ("fmnist", 28, 256, 20)


def test_slurm_spec_and_batch_script_are_validated_and_quoted(tmp_path):
    from lab.runs.slurm import batch_script

    for bad in (dict(nodes=0), dict(gpus_per_node=-1), dict(mem_gb=1.5), dict(time_min=True),
                dict(partition="gpu; rm -rf /"), dict(partition="")):
        with pytest.raises(ValueError, match="slurm"):
            SlurmSpec(**bad)
    run = tmp_path / "it's a $(folder)" / "r1"
    text = batch_script(SlurmSpec(gpus_per_node=4, partition="gpu"), "r1", run, "/usr/bin/python3", tmp_path)
    assert "#SBATCH --gpus-per-node=4" in text and "#SBATCH --partition=gpu" in text
    last = text.strip().splitlines()[-1]
    assert shlex.split(last) == ["exec", "/usr/bin/python3", "-m", "lab.runs.wrap", "--slurm", str(run)]
    with pytest.raises(ValueError, match="gpus_per_node"):
        launch("x", ["--data", "d"], root=tmp_path / "root", gpus=2, slurm=SlurmSpec(gpus_per_node=4))


def test_status_rules_from_files_alone(tmp_path):
    """Each status from hand-made run folders; our own process stands in for a live run, and the same pid
    with another start time for a dead one whose pid was reused."""
    from lab.runs.proc import identity, now_iso, write_json

    me = identity(os.getpid())
    reused = {**me, "start_time": me["start_time"] - 1}
    end = {"kind": "end", "epoch": 2, "step": 4}
    epoch = {"kind": "epoch", "epoch": 2, "step": 4, "loss": float("nan"), "center_norm": 0.97}
    cases = {  # name: (files, expected status, text in the message)
        "collapsed": ({"exit.json": {"exit_code": 0}, "end": "collapsed"}, "collapsed", "collapse guard"),
        "sigterm": ({"exit.json": {"exit_code": 0}, "end": "stopped"}, "stopped", "from outside"),
        "badargs": ({"exit.json": {"exit_code": 2}, "log": "error: unknown method 'x'"}, "failed", "unknown method"),
        "noend": ({"exit.json": {"exit_code": 0}}, "failed", "no end line"),
        "escalated": ({"exit.json": {"exit_code": -9, "escalated_to_sigkill": True}, "stop.json": {}}, "stopped",
                      "SIGKILL"),
        "running": ({"pid.json": {"child": me, "wrapper": reused}}, "running", ""),
        "queued": ({"queue.json": {"wrapper": me}}, "queued", "waiting"),
        "reused": ({"pid.json": {"child": reused, "wrapper": reused}, "log": "epoch 2/9"}, "failed", "epoch 2/9"),
        "orphaned": ({"queue.json": {"wrapper": reused}}, "failed", "before this run started"),
        "wrapperkilled": ({"pid.json": {"child": reused, "wrapper": reused}, "end": "finished"}, "finished",
                          "wrapper process was killed"),
    }
    for name, (files, status, text) in cases.items():
        path = tmp_path / name
        path.mkdir()
        write_json(path / "launch.json", {"name": name, "started": now_iso(), "backend": "local",
                                          "train_argv": ["--config", str(path / "train_config.json")]})
        write_json(path / "train_config.json", {"data": "d", "method": "simsiam", "epochs": 9, "out": str(path)})
        for fname, content in files.items():
            if fname.endswith(".json"):
                write_json(path / fname, content)
        rows = [epoch] + ([{**end, "status": files["end"]}] if "end" in files else [])
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (path / "stdout.log").write_text(files.get("log", "") + "\n")
        info = get_run(name, tmp_path)
        assert (info.status, info.epoch, info.epochs, info.method) == (status, 2, 9, "simsiam"), (name, info)
        assert text in info.message, (name, info.message)
        assert json.loads(json.dumps(info.to_json(), allow_nan=False))["last_epoch_metrics"]["loss"] is None
    assert {r.name for r in list_runs(tmp_path)} == set(cases)


def test_bad_train_args_and_an_unstartable_command_fail_with_the_reason(tmp_path):
    from lab.runs.proc import write_json

    root = tmp_path / "root"
    launch("bad", ["--data", str(tmp_path / "nodata"), "--method", "simsiam"], root=root)
    assert read_json(root / "bad" / "launch.json")["cwd"] == os.getcwd()
    info = wait_for(lambda: (i := get_run("bad", root)).status not in ("queued", "running") and i, HANG_S)
    assert info.status == "failed" and info.exit_code == 2 and "data folder not found" in info.message, info
    launch_json = read_json(root / "bad" / "launch.json")
    write_json(root / "bad" / "launch.json", {**launch_json, "cwd": str(tmp_path / "removed")})
    resume("bad", root)
    info = wait_for(lambda: (i := get_run("bad", root)).status not in ("queued", "running") and i, HANG_S)
    assert info.status == "failed" and info.exit_code == 127 and "could not start" in info.message, info


def test_a_run_that_ignores_sigterm_is_killed_after_the_grace_time(tmp_path):
    """The wrapper's escalation, with a stand-in for python that ignores SIGTERM (and has a child)."""
    from lab.runs.core import _start_local
    from lab.runs.proc import identity, now_iso, write_json

    stubborn = tmp_path / "stubborn"
    stubborn.write_text("#!/bin/bash\ntrap '' TERM\nsleep 60 &\necho started\nwait\n")
    stubborn.chmod(0o755)
    path = tmp_path / "root" / "stubborn"
    path.mkdir(parents=True)
    write_json(path / "launch.json", {"name": "stubborn", "backend": "local", "started": now_iso(),
                                      "python": str(stubborn), "train_argv": [], "nproc_per_node": 1,
                                      "stop_grace_s": 1.0, "cwd": str(tmp_path)})
    _start_local([path])
    # the wrapper writes pid.json as it starts the child, which may print before that on a busy machine
    wait_for(lambda: "started" in (path / "stdout.log").read_text() and read_json(path / "pid.json"), HANG_S)
    child = read_json(path / "pid.json")["child"]
    sleeper = identity(descendants(child["pid"])[0])
    info = stop("stubborn", tmp_path / "root", wait=HANG_S)
    assert info.status == "stopped" and "SIGKILL" in info.message, info
    assert read_json(path / "exit.json")["escalated_to_sigkill"] is True
    assert not alive(child) and not alive(sleeper)
    assert "SIGKILL sent to" in (path / "stdout.log").read_text()


def test_preset_run_names_of_the_whole_queue_are_unique():
    from lab.runs import ALL, preset_run_names, preset_runs

    runs = preset_runs(ALL, "fmnist")
    names = preset_run_names(runs, "q")
    assert len(set(names)) == len(names) == 54
    assert "q-b5-simsiam-predictor-simsiam-s0" in names and "q-baseline-invariance-invariance-s2" in names
    one = preset_runs("fig5-barlow", "fmnist")
    assert preset_run_names(one, "p")[0] == "p-" + one[0]["name"]
    with pytest.raises(ValueError, match="appears twice"):
        preset_run_names(one + one[:1], "p")
