"""DDP on CPU: `torchrun --standalone --nproc_per_node=2` (gloo) against one process on the same global batch.

Same seed, same data order (the loader strides one permutation over ranks, so the two ranks' batches at
step i together are the one-process batch i), and the same views: the one-process run splits its batch
into aug_groups = 2 groups, each augmented from the random stream rank g uses. BatchNorm uses the global
batch (SyncBatchNorm's CPU twin) and the losses gather what they need, so both runs compute the same
numbers up to float32 rounding.

Tolerances, from measurements on this machine (27 train / 9 val images, 2 steps of batch 8):
- step 1, before any update (batch_center_norm): only rounding (BatchNorm sums over ranks vs. one
  pass): features differ by ~3e-6 relative, the centers by 1e-9 to 2e-8. STEP1_TOL = 1e-5.
- the epoch (center_norm over both steps): byol 1.2e-7, barlow 5.6e-8, simclr 4.7e-6. After one update
  the rounding can flip a ReLU whose input is ~1e-5 from 0, which changes that unit's gradient outright
  (simclr here: 1 of 32,768 projector units, 1 % of that layer's gradient); the loss then moves by up to
  2e-4 relative. TOLERANCE = 1e-4 on center_norm, rel 1e-3 on the loss.
A real mismatch is larger: the same images with other random views (one process without the matching
augmentation groups) move the step-1 center by 1e-4 (barlow) to 6e-3 and the epoch center by 2.5e-3 to
1e-2, which the last test checks is caught.
"""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from lab.data.fake import write_fake_imagefolder
from lab.engine.train import TrainConfig, read_metrics, train
from waits import HANG_S

STEP1_TOL = 1e-5
TOLERANCE = 1e-4
TINY = dict(batch_size=8, image_size=32, load_size=40, device="cpu", workers=0, max_steps_per_epoch=2, epochs=1,
            knn_every=0, log_every_steps=1, progress=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # Odd split sizes (27 train, 9 val): the kNN loaders pad the last rank, and the trainer drops the copies.
    return write_fake_imagefolder(tmp_path_factory.mktemp("fake"), classes=3, per_class=9, size=40, val_per_class=3)


@pytest.fixture(scope="module")
def torchrun(python) -> list[str]:
    return [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


@pytest.fixture(scope="module")
def env(subprocess_env) -> dict:
    return {**subprocess_env, "OMP_NUM_THREADS": "1"}


def epoch_row(run: Path) -> dict:
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["epoch"] for r in rows] == [0, 1]
    return rows[1]


def one_process(data: Path, out: Path, method: str, aug_groups: int) -> dict:
    return train(TrainConfig(data=str(data), method=method, out=str(out), aug_groups=aug_groups, **TINY))["last"]


def step1_center(run: Path) -> float:
    return next(r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "step")["batch_center_norm"]


def test_cli_under_torchrun_matches_one_process(data, tmp_path, torchrun, env):
    """The real entry point under torchrun: byol (predictor BatchNorm, EMA teacher)."""
    argv = ["-m", "lab.engine.train", "--data", str(data), "--method", "byol", "--batch-size", "8",
            "--image-size", "32", "--load-size", "40", "--device", "cpu", "--workers", "0",
            "--max-steps-per-epoch", "2", "--epochs", "1", "--knn-every", "0", "--log-every", "1", "--no-progress",
            "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(torchrun + argv, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = epoch_row(tmp_path / "ddp")
    single = one_process(data, tmp_path / "single", "byol", aug_groups=2)
    assert abs(step1_center(tmp_path / "ddp") - step1_center(tmp_path / "single")) < STEP1_TOL
    assert abs(ddp["center_norm"] - single["center_norm"]) < TOLERANCE, (ddp["center_norm"], single["center_norm"])
    assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-3)
    assert ddp["z_std"] == pytest.approx(single["z_std"], rel=1e-3)
    assert ddp["knn_acc"] == single["knn_acc"]  # each of the 9 val images once, against each of the 27
    config = (tmp_path / "ddp" / "config.json").read_text()
    assert '"world_size": 2' in config and '"per_rank_batch": 4' in config
    assert not (tmp_path / "ddp" / "metrics.jsonl.tmp").exists()
    steps = [r for r in read_metrics(tmp_path / "ddp" / "metrics.jsonl") if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2]  # rank 0 writes, once


SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from lab.engine import dist
    from lab.engine.train import TrainConfig, train
    torch.set_num_threads(1)
    dist.setup("cpu")  # the caller owns the process group: train() leaves it up between runs
    data, out, methods = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    tiny = json.loads(sys.argv[4])
    for m in methods:
        train(TrainConfig(data=data, method=m, out=f"{out}/{m}", **tiny))
    dist.cleanup()
""")


def test_train_function_under_torchrun_matches_one_process(data, tmp_path, torchrun, env):
    """train() called from a script under torchrun, several runs in one process group: simclr (negatives
    gathered over ranks) and barlow (cross-correlation over the global batch)."""
    import json

    methods = ["simclr", "barlow"]
    script = tmp_path / "runs.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(torchrun + [str(script), str(data), str(tmp_path / "ddp"), ",".join(methods),
                                      json.dumps(TINY)], env=env, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for method in methods:
        ddp = epoch_row(tmp_path / "ddp" / method)
        single = one_process(data, tmp_path / "single" / method, method, aug_groups=2)
        assert abs(step1_center(tmp_path / "ddp" / method) - step1_center(tmp_path / "single" / method)) < STEP1_TOL
        assert abs(ddp["center_norm"] - single["center_norm"]) < TOLERANCE, (method, ddp, single)
        assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-3), method
        assert ddp["knn_acc"] == single["knn_acc"], method
    # Without the matching augmentation groups the same images get other views: a difference the
    # tolerances above catch (so the test can fail).
    one_process(data, tmp_path / "other", "simclr", aug_groups=1)
    assert abs(step1_center(tmp_path / "other") - step1_center(tmp_path / "ddp" / "simclr")) > 10 * STEP1_TOL
