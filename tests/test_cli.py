import json
import subprocess

import pytest
from PIL import Image

from lab.train.b1 import PAPER_SETTINGS
from waits import HANG_S

KEYS = ["epoch", "center_norm", "center_norm_aug", "batch_center_norm", "residual_norm", "center_angle_deg"]


def run_cli(python, env, root, *args):
    return subprocess.run([python, "-m", "lab", *args], cwd=root, env=env, capture_output=True, text=True, timeout=HANG_S)


def test_b1_writes_metrics_and_gifs(python, subprocess_env, root, tmp_path):
    out = tmp_path / "out"
    settings = "mini_batch_sgd_centered_augmentation,batch_sgd_shifted_augmentation"
    r = run_cli(python, subprocess_env, root, "b1", "--out", str(out), "--settings", settings, "--epochs", "6",
                "--size", "120", "--fps", "5")
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "metrics.json").read_text())
    assert isinstance(data["train_seconds"], float) and data["train_seconds"] > 0
    assert list(data["runs"]) == settings.split(",")
    for m in data["runs"].values():
        for k in KEYS:
            assert len(m[k]) == 7
        assert m["epoch"] == list(range(7))
    for name in settings.split(","):
        im = Image.open(out / f"{name}.gif")
        assert im.n_frames == 7 and im.size == (120, 120)
    assert (out / "fig_b1.png").exists()


def test_b1_defaults_run_all_four_at_the_paper_epochs(python, subprocess_env, root, tmp_path):
    r = run_cli(python, subprocess_env, root, "b1", "--out", str(tmp_path), "--no-gif")
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert list(data["runs"]) == list(PAPER_SETTINGS)
    epochs = {n: m["epoch"][-1] for n, m in data["runs"].items()}
    assert epochs == {n: s["epochs"] for n, s in PAPER_SETTINGS.items()}
    assert not list(tmp_path.glob("*.gif"))


@pytest.mark.parametrize("args, needle", [
    (["--epochs", "-5"], "epochs"),
    (["--lr", "nan"], "lr"),
    (["--settings", "mini_batch,foo"], "valid: mini_batch_sgd_centered_augmentation"),
    (["--shift", "1,2"], "shift"),
    (["--fps", "0"], "fps"),
    (["--size", "5"], "size"),
    (["--epochs", "many"], "epochs"),
])
def test_b1_bad_input_is_one_line_and_exit_2(python, subprocess_env, root, tmp_path, args, needle):
    r = run_cli(python, subprocess_env, root, "b1", "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_missing_out_is_one_line(python, subprocess_env, root):
    r = run_cli(python, subprocess_env, root, "b1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--out" in r.stderr


@pytest.mark.parametrize("old, new", [("lab.imagenet.train", "lab.engine.train"), ("lab.imagenet.cache", "lab.data.cache"),
                                      ("lab.imagenet.fake", "lab.data.fake"), ("lab.imagenet.subset", "lab.data.subset")])
def test_the_engines_old_entry_points_still_run(python, subprocess_env, root, old, new):
    """Run folders, SLURM scripts and notebooks name `python -m lab.imagenet.train` (and the data tools): they
    keep working as aliases of the moved modules, with the same command line."""
    via_alias, direct = (subprocess.run([python, "-m", name, "--help"], cwd=root, env=subprocess_env,
                                        capture_output=True, text=True, timeout=HANG_S) for name in (old, new))
    assert via_alias.returncode == direct.returncode == 0, via_alias.stderr
    assert via_alias.stdout == direct.stdout and "usage:" in direct.stdout


def test_the_engines_old_import_path_is_the_engine(python, subprocess_env, root):
    code = ("import lab.engine.train, lab.imagenet.train, lab.imagenet; "
            "assert lab.imagenet.train is lab.engine.train; print(lab.imagenet.TrainConfig.__module__)")
    done = subprocess.run([python, "-c", code], cwd=root, env=subprocess_env, capture_output=True, text=True,
                          timeout=HANG_S)
    assert done.returncode == 0 and done.stdout.strip() == "lab.engine.config", done.stderr
