"""The ImageNet trainer on a tiny fake ImageFolder of real JPEGs (4 classes, 8 per class, 40 px), on CPU.

Every method trains an epoch through `train()`; the command line is run as a real subprocess for bad
input, kill -9 + resume, and SIGTERM. kill -9 + resume and SIGTERM also run on a small Fashion-MNIST
folder (7 train and 3 test images per class, written from Debian's files), the engine's other data source.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lab.data import fmnist
from lab.data.fake import write_fake_imagefolder
from lab.engine.loop import _Stop
from lab.engine.train import EPOCH_KEYS, TrainConfig, read_metrics, train, trim_metrics
from lab.methods import METHOD_NAMES
from lab.methods.dino import DINO
from waits import HANG_S

TINY = dict(batch_size=8, image_size=32, load_size=40, device="cpu", workers=0, max_steps_per_epoch=2, epochs=1,
            knn_every=1, log_every_steps=1, progress=False)
CLI_TINY = ["--batch-size", "8", "--image-size", "32", "--load-size", "40", "--device", "cpu", "--workers", "0",
            "--log-every", "1", "--knn-every", "0", "--no-progress"]


# Fashion-MNIST's images are 28 px and the loader takes them as they are: load size = image size = 28.
TINY_FMNIST = {**TINY, "image_size": 28, "load_size": 28}
CLI_TINY_FMNIST = ["--batch-size", "8", "--image-size", "28", "--load-size", "28", *CLI_TINY[6:]]
assert CLI_TINY[:6] == ["--batch-size", "8", "--image-size", "32", "--load-size", "40"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_fake_imagefolder(tmp_path_factory.mktemp("fake"), classes=4, per_class=8, size=40, val_per_class=2)


@pytest.fixture(scope="module")
def fmnist_data(tmp_path_factory) -> Path:
    """70 training and 30 test images (7 and 3 per class) of the real Fashion-MNIST, as gzipped idx files."""
    if not fmnist.is_fashion_mnist(fmnist.DEBIAN_DIR) or not fmnist.has_split(fmnist.DEBIAN_DIR, "val"):
        pytest.skip(f"needs Debian's dataset-fashion-mnist at {fmnist.DEBIAN_DIR} (scripts/test.sh installs it)")
    return fmnist.write_subset(fmnist.DEBIAN_DIR, tmp_path_factory.mktemp("fmnist"), {"train": 7, "val": 3})


@pytest.fixture(params=["jpeg", "fmnist"])
def source(request) -> tuple[Path, list[str], dict]:
    """(data folder, tiny command-line flags, tiny TrainConfig fields) of each data source the engine reads."""
    if request.param == "jpeg":
        return request.getfixturevalue("data"), CLI_TINY, TINY
    return request.getfixturevalue("fmnist_data"), CLI_TINY_FMNIST, TINY_FMNIST


def epochs_of(run: Path) -> list[dict]:
    return [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "epoch"]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lab.engine.train", *args]


@pytest.fixture(scope="module")
def env(subprocess_env) -> dict:
    return {**subprocess_env, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_trains_an_epoch(data, tmp_path, method):
    result = train(TrainConfig(data=str(data), method=method, out=str(tmp_path), **TINY))
    assert result["status"] == "finished" and result["step"] == 2
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["kind"] for r in rows] == ["epoch", "step", "step", "epoch", "end"]
    assert rows[0]["epoch"] == 0 and rows[0]["step"] == 0  # the untrained model
    epoch = rows[3]
    assert set(EPOCH_KEYS) <= set(epoch), set(EPOCH_KEYS) - set(epoch)
    assert math.isfinite(epoch["loss"]) and 0.0 <= epoch["center_norm"] <= 1.0
    # Mean ‖z − s‖ over a sample of the views (exactness: test_view_recorder_residual_norm_...).
    assert 0.0 < epoch["residual_norm"] <= 1.0 + epoch["center_norm"]
    assert 0.0 < epoch["z_std"] <= epoch["z_std_healthy"] * 1.0001
    assert 0.0 <= epoch["knn_acc"] <= 1.0 and epoch["knn_acc"] in {i / 8 for i in range(9)}
    assert epoch["lr"] > 0 and epoch["images_per_s"] > 0 and epoch["n_corrupt"] == 0
    assert epoch["collapsed"] is False
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["world_size"] == 1 and config["knn_protocol"]["k"] == 20
    assert isinstance(config["method_params"], dict) and config["recipe"]["source"]
    d = config["recipe"]["proj_dims"][-1]
    assert epoch["z_std_healthy"] == pytest.approx(1 / math.sqrt(d))
    # BYOL at its recipe's loss scale 4 (the originals' Σ (2 − 2 cos), up to a constant): −4 when cos = 1
    expected_collapse = {"simsiam": -1.0, "byol": -4.0, "dino": math.log(4096), "swav": math.log(3000),
                         "simclr": math.log(15), "invariance": 0.0, "triplet": 0.0, "simplified": 0.5}
    if method in expected_collapse:
        assert epoch["collapse_loss"] == pytest.approx(expected_collapse[method])
    if method == "dino":
        assert 0 < epoch["teacher_entropy"] <= epoch["teacher_entropy_max"] + 1e-6
    if method == "barlow":
        assert epoch["center_norm_post_bn"] < epoch["center_norm_pre_bn"]
    assert (tmp_path / "checkpoint.pt").exists() and "finished" in (tmp_path / "train.log").read_text()


def test_collapse_guard_stops_the_run(data, tmp_path):
    result = train(TrainConfig(data=str(data), method="simsiam", out=str(tmp_path),
                               **{**TINY, "epochs": 3, "knn_every": 0}, collapse_threshold=0.0, collapse_patience=1))
    assert result["status"] == "collapsed" and result["epoch"] == 1
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["kind"] for r in rows if r["kind"] != "step"] == ["epoch", "epoch", "end"]  # epochs 0 and 1
    assert rows[-2]["collapsed"] is True and rows[-1]["status"] == "collapsed"
    assert rows[-2]["knn_acc"] is None  # knn only at the end, which a collapsed run does not reach
    # The guard names the kind its method's signature found: threshold 0 makes any ‖s‖ a complete collapse.
    assert rows[-2]["collapse_kind"] == "complete" and rows[-2]["collapse_signs"][0]["metric"] == "center_norm"
    assert "collapse guard: complete collapse [complete: ‖s‖ center norm" in (tmp_path / "train.log").read_text()
    # the same call again: the run is over, nothing trains
    again = train(TrainConfig(data=str(data), method="simsiam", out=str(tmp_path),
                              **{**TINY, "epochs": 3, "knn_every": 0}, collapse_threshold=0.0, collapse_patience=1))
    assert again["status"] == "collapsed" and len(epochs_of(tmp_path)) == 2


def test_a_resumed_dino_run_goes_on_at_its_progress(data, tmp_path, monkeypatch):
    """DINO's teacher temperature follows the training progress, which the weights do not hold: a run stopped
    after its first step resumes with the temperature of step 2, not the warmup's start (issue 21)."""
    seen = []
    resume_at = DINO.resume_at
    monkeypatch.setattr(DINO, "resume_at", lambda self, p: (seen.append(p), resume_at(self, p))[1])
    cfg = TrainConfig(data=str(data), method="dino", out=str(tmp_path), **{**TINY, "epochs": 2, "knn_every": 0})
    with monkeypatch.context() as m:
        m.setattr(_Stop, "agreed", lambda self, run, step, force=False: step == 1)
        assert train(cfg)["status"] == "stopped"
    result = train(cfg)
    assert result["status"] == "finished" and result["step"] == 4
    assert seen == [0.0, 1 / 4], seen  # 2 epochs × 2 steps: the second call goes on after step 1 of 4


def test_resume_refuses_another_run_in_the_same_folder(data, tmp_path):
    train(TrainConfig(data=str(data), method="simsiam", out=str(tmp_path), **{**TINY, "knn_every": 0}))
    with pytest.raises(ValueError, match="method='simsiam'.*byol"):
        train(TrainConfig(data=str(data), method="byol", out=str(tmp_path), **TINY))


def test_config_validation_names_value_and_range():
    with pytest.raises(ValueError, match=r"image_size must be in \[16, 1024\], got 8"):
        TrainConfig(data="x", method="simsiam", image_size=8)
    with pytest.raises(ValueError, match="unknown method 'nope'; valid: invariance"):
        TrainConfig(data="x", method="nope")
    with pytest.raises(ValueError, match="collapse_threshold must be in"):
        TrainConfig(data="x", method="simsiam", collapse_threshold=1.5)


# Every field away from its default (byol: its momentum knob exists), for the command-line round trip.
NON_DEFAULT = dict(data="/data/in 100", method="byol", set={"momentum": "0.9", "momentum_schedule": "false"},
                   epochs=7, batch_size=64, image_size=64, load_size=72, device="cpu", out="/runs/r 1", seed=5,
                   workers=1, cache="/cache/c", knn_every=2, knn_k=5, knn_temperature=0.1, log_every_steps=3,
                   collapse_threshold=0.9, collapse_patience=2, lr=0.3, max_steps_per_epoch=9, amp=False,
                   channels_last=False, aug_groups=2, progress=False)


def test_every_config_field_is_a_flag_of_the_same_name_with_help():
    from lab.engine.config import build_parser

    flags = {a.dest: a.option_strings for a in build_parser()._actions}
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in flags[f.name], f.name
        assert f.metadata.get("help"), f.name
    assert "--collapse-guard" in flags["collapse_threshold"] and "--log-every" in flags["log_every_steps"]
    assert {"--no-amp", "--no-channels-last", "--no-progress"} <= {s for names in flags.values() for s in names}


def test_a_config_round_trips_through_the_command_line_and_a_config_file(tmp_path):
    from lab.engine import config_to_argv, parse_train_args

    assert set(NON_DEFAULT) == {f.name for f in dataclasses.fields(TrainConfig)}, "a new field: add it here"
    cfg = TrainConfig(**NON_DEFAULT)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert all(getattr(cfg, k) != defaults[k] for k in NON_DEFAULT)
    argv = config_to_argv(cfg)
    assert parse_train_args(argv) == cfg
    assert config_to_argv(TrainConfig(data="d", method="simsiam")) == ["--data", "d", "--method", "simsiam"]
    path = tmp_path / "train_config.json"
    path.write_text(json.dumps(cfg.to_json()))
    assert parse_train_args(["--config", str(path)]) == cfg
    # flags beside --config override it; --set knob by knob; the old spellings still work
    over = parse_train_args(["--config", str(path), "--epochs", "9", "--set", "momentum=0.5", "--collapse-guard",
                             "0.5", "--log-every", "4", "--amp"])
    assert over == dataclasses.replace(cfg, epochs=9, set={"momentum": "0.5", "momentum_schedule": "false"},
                                       collapse_threshold=0.5, log_every_steps=4, amp=True)


@pytest.mark.parametrize("content, message", [
    ('{"data": "d", "colour": 1}', "unknown field 'colour'"), ("[1]", "expected a JSON object"),
    ("{nope", "not JSON"), ('{"data": "d", "method": "simsiam", "out": "o", "amp": "no"}', "amp must be true or false"),
    ('{"data": "d", "method": "simsiam", "out": "o", "epochs": "3"}', "epochs must be an integer in [1, 100000]"),
    ('{"data": "d", "method": "simsiam"}', "missing --out"),
])
def test_a_bad_config_file_is_one_line(tmp_path, content, message):
    from lab.engine import parse_train_args

    (tmp_path / "c.json").write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        parse_train_args(["--config", str(tmp_path / "c.json")])
    assert "\n" not in str(err.value)


def test_preset_configs_put_the_users_flags_over_each_run():
    from lab.engine import preset_configs, preset_runs

    configs = preset_configs("b6-simsiam-predictor-lr", {"data": "d", "epochs": 3, "set": {"predictor": "true"},
                                                         "device": "cpu"})
    assert [run for run, _ in configs] == preset_runs("b6-simsiam-predictor-lr")
    for run, cfg in configs:
        assert (cfg.method, cfg.epochs, cfg.device, cfg.out) == ("simsiam", 3, "cpu", f"runs/b6-simsiam-predictor-lr/{run['name']}")
        assert cfg.set == {**run["set"], "predictor": "true"}
    assert preset_configs("b5-simsiam-predictor", {"data": "d", "out": "o"})[1][1].out == "o/simsiam-nopred"
    assert preset_configs("b5-simsiam-predictor", {"data": "d"})[0][1].epochs == preset_runs("b5-simsiam-predictor")[0]["epochs"]
    with pytest.raises(ValueError, match="must not contain --method"):
        preset_configs("b5-simsiam-predictor", {"data": "d", "method": "byol"})


def test_trim_metrics_drops_what_the_checkpoint_does_not_cover(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"kind": "step", "epoch": 1, "step": 1}, {"kind": "epoch", "epoch": 1, "step": 2},
            {"kind": "step", "epoch": 2, "step": 3}, {"kind": "epoch", "epoch": 2, "step": 4},
            {"kind": "end", "status": "stopped", "epoch": 2, "step": 4}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "step", "ep')  # torn last line
    assert trim_metrics(path, epoch=1, step=2) == 3
    assert read_metrics(path) == rows[:2] and path.read_text().endswith("}\n")


BAD_INPUTS = {
    "missing data folder": (["--data", "{tmp}/none", "--method", "simsiam"], "data folder not found"),
    "empty data folder": (["--data", "{tmp}/empty", "--method", "simsiam"], "no class folders"),
    "unknown method": (["--data", "{data}", "--method", "mocov3"], "unknown method 'mocov3'"),
    "knob of another method": (["--data", "{data}", "--method", "simsiam", "--set", "lam=0"],
                               "unknown parameter 'lam' for simsiam"),
    "bad knob value": (["--data", "{data}", "--method", "byol", "--set", "momentum=2"], "momentum must be in"),
    "bad epochs": (["--data", "{data}", "--method", "simsiam", "--epochs", "0"], "epochs must be in [1, 100000], got 0"),
    "batch over world": (["--data", "{data}", "--method", "simsiam", "--epochs", "1", "--batch-size", "64"],
                         "no full batch of 64"),
    "unknown preset": (["--preset", "fig99"], "unknown preset 'fig99'"),
    "unknown flag": (["--data", "{data}", "--method", "simsiam", "--bogus"], "unrecognized arguments: --bogus"),
    "run without preset": (["--data", "{data}", "--method", "simsiam", "--run"], "--run goes with --preset"),
    "preset with a method": (["--data", "{data}", "--preset", "b5-simsiam-predictor", "--method", "byol"],
                             "must not contain --method"),
}
SUBPROCESS_CASES = ("missing data folder", "unknown method", "knob of another method", "unknown preset")


def _bad_argv(name: str, tmp: Path, data: Path) -> list[str]:
    # the case's flags last: argparse keeps the last value of a repeated flag
    return [*CLI_TINY, "--out", str(tmp / "run"), *[a.format(tmp=tmp, data=data) for a in BAD_INPUTS[name][0]]]


@pytest.fixture
def bad_tmp(tmp_path) -> Path:
    (tmp_path / "empty" / "train").mkdir(parents=True)
    return tmp_path


def test_bad_input_is_one_line_and_exit_2_in_a_real_process(data, bad_tmp, env):
    procs = {name: subprocess.Popen(cli(*_bad_argv(name, bad_tmp, data)), env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for name in SUBPROCESS_CASES}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == 2, (name, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, (name, err)
        assert BAD_INPUTS[name][1] in err, (name, err)
    assert not (bad_tmp / "run").exists()


@pytest.mark.parametrize("name", [n for n in BAD_INPUTS if n not in SUBPROCESS_CASES])
def test_bad_input_main_returns_2_with_one_line(data, bad_tmp, name, capsys):
    from lab.engine.train import main

    assert main(_bad_argv(name, bad_tmp, data)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and BAD_INPUTS[name][1] in err, err
    assert not (bad_tmp / "run").exists()


def test_preset_prints_its_runs(data, tmp_path, env):
    proc = subprocess.run(cli("--preset", "b5-simsiam-predictor", "--data", str(data), "--out", str(tmp_path)),
                          env=env, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) >= 2 and all(line.startswith("python -m lab.engine.train --data ") for line in lines)
    assert any("predictor=false" in line for line in lines) and f"--out {tmp_path}/" in lines[0]


def _wait_for(path: Path, predicate, proc: subprocess.Popen, timeout: float = HANG_S) -> list[dict]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rows = read_metrics(path)
        if predicate(rows):
            return rows
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting on {path}")


def _start_until(data, run, env, method: str, epochs: int, steps: int, kind: str, flags=CLI_TINY):
    """Start the engine as a real process and wait for its first metrics line of `kind` -> (argv, process)."""
    argv = cli("--data", str(data), "--method", method, "--epochs", str(epochs), "--max-steps-per-epoch", str(steps),
               "--out", str(run), *flags)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # An epoch line past the untrained reading (epoch 0), or a step line.
    _wait_for(run / "metrics.jsonl", lambda rows: any(r["kind"] == kind and r.get("epoch", 1) > 0 for r in rows), proc)
    return argv, proc


def test_kill_9_then_the_same_command_resumes_without_duplicate_epochs(source, tmp_path, env):
    data, flags, tiny = source
    run = tmp_path / "run"
    # Kill right after epoch 1's metrics line: most likely before its checkpoint is on disk.
    argv, proc = _start_until(data, run, env, "simsiam", epochs=3, steps=3, kind="epoch", flags=flags)
    proc.kill()
    proc.wait()
    assert [r["epoch"] for r in epochs_of(run)] == [0, 1]
    ckpt = run / "checkpoint.pt"
    in_window = not ckpt.exists() or torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 0
    print("killed between epoch 1's metrics line and its checkpoint:", in_window)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [0, 1, 2, 3]
    steps = [r["step"] for r in rows if r["kind"] == "step"]
    assert steps == list(range(1, 10))  # no step twice, none missing
    assert rows[-1] == {"kind": "end", "status": "finished", "epoch": 3, "step": 9}
    assert "resuming" in (run / "train.log").read_text() or "training" in (run / "train.log").read_text()
    # Every step reseeds the augmentation from (seed, step): the resumed run equals an uninterrupted one.
    torch.set_num_threads(1)
    straight = train(TrainConfig(data=str(data), method="simsiam", out=str(tmp_path / "straight"),
                                 **{**tiny, "epochs": 3, "max_steps_per_epoch": 3, "knn_every": 0}))
    assert rows[-2]["center_norm"] == pytest.approx(straight["last"]["center_norm"], rel=1e-4, abs=1e-6)
    assert rows[-2]["loss"] == pytest.approx(straight["last"]["loss"], rel=1e-3, abs=1e-5)


def test_sigterm_finishes_the_step_checkpoints_and_exits_0(source, tmp_path, env):
    data, flags, tiny = source
    run = tmp_path / "run"
    argv, proc = _start_until(data, run, env, "byol", epochs=2, steps=4, kind="step", flags=flags)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # SLURM and torchrun both forward it: the second must not kill the save
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "SIGTERM: stopped after step" in (run / "train.log").read_text()
    rows = read_metrics(run / "metrics.jsonl")
    assert rows[-1]["kind"] == "end" and rows[-1]["status"] == "stopped"
    stopped_at = rows[-1]["step"]
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["step"] == stopped_at and 1 <= stopped_at < 8 and state["status"] is None
    assert state["step_in_epoch"] == stopped_at % 4  # mid-epoch unless the signal met an epoch's last step
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [0, 1, 2]
    assert [r["step"] for r in rows if r["kind"] == "step"] == list(range(1, 9))
    assert [r["kind"] for r in rows].count("end") == 1 and rows[-1]["status"] == "finished"
    assert "resuming byol" in (run / "train.log").read_text()
    # The resumed epoch skipped the trained batches and kept the partial sums: the same numbers as a
    # run never stopped (byol's EMA target and optimizer state came back too).
    torch.set_num_threads(1)
    train(TrainConfig(data=str(data), method="byol", out=str(tmp_path / "straight"),
                  **{**tiny, "epochs": 2, "max_steps_per_epoch": 4, "knn_every": 0}))
    resumed = epochs_of(run)
    straight_rows = epochs_of(tmp_path / "straight")
    assert len(resumed) == len(straight_rows) == 3
    for a, b in zip(resumed, straight_rows):
        assert a["center_norm"] == pytest.approx(b["center_norm"], rel=1e-4, abs=1e-6)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3, abs=1e-5)


def test_corrupt_jpegs_are_skipped_and_counted(tmp_path):
    data = write_fake_imagefolder(tmp_path / "data", classes=4, per_class=8, size=40, val_per_class=2)
    victims = sorted((data / "train" / "class001").glob("*.jpg"))[:6]
    for path in victims:  # a truncated file and garbage: Pillow cannot decode either
        path.write_bytes(path.read_bytes()[:40] if path.stat().st_size % 2 else b"not a jpeg at all")
    result = train(TrainConfig(data=str(data), method="simsiam", out=str(tmp_path / "run"), **TINY))
    assert result["status"] == "finished"
    epoch = epochs_of(tmp_path / "run")[-1]
    assert 1 <= epoch["n_corrupt"] <= len(victims) and math.isfinite(epoch["loss"])


def test_bench_training_throughput_runs_both_ways():
    from lab.bench.imagenet import training_throughput

    for augment in (True, False):
        r = training_throughput("cpu", image_size=32, batch_size=4, steps=1, warmup=1, augment=augment)
        assert r["images_per_s"] > 0 and r["augment"] is augment and r["amp"] == "fp32"


def test_view_recorder_residual_norm_is_the_mean_distance_to_the_epochs_center():
    from torch import nn

    from lab.core import geometry as geo
    from lab.engine.metrics import ViewRecorder

    class Encoder(nn.Module):
        def forward(self, y):
            return None, y

    enc = Encoder()
    recorder = ViewRecorder(enc, torch.device("cpu"))
    recorder.SAMPLE_EVERY = 1  # every view: the sample is the epoch
    recorder.active = True
    gen = torch.Generator().manual_seed(0)
    steps = [torch.randn(1, 16, 5, generator=gen) + torch.tensor([2.0, 0, 0, 0, 0]) for _ in range(3)]
    for y in steps:
        enc(y)
    values = recorder.epoch_values()
    z = geo.normalize(torch.cat(steps, 1)[0]).double()
    assert values["center_norm"] == pytest.approx(float(geo.center_norm(z)), rel=1e-6)
    assert values["residual_norm"] == pytest.approx(float(geo.residual_norm(z)), rel=1e-6)
    assert values["residual_norm"] < math.sqrt(1 - values["center_norm"] ** 2)  # not the RMS
    state = recorder.state()
    recorder.reset()
    recorder.load(state)
    assert recorder.epoch_values()["residual_norm"] == pytest.approx(values["residual_norm"], rel=1e-12)


def test_a_sigterm_repeated_after_the_stop_block_does_not_kill_the_process():
    """In-process: the repeat SLURM/torchrun forwards can land after the loop has stopped and left its block."""
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with _Stop() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            assert stop.requested and stop.signal_name == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)  # would end pytest with -15 under SIG_DFL
        with _Stop() as quiet:
            pass
        assert not quiet.requested and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # what it found
    finally:
        signal.signal(signal.SIGTERM, before)
