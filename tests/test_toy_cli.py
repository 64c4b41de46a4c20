"""`python -m lab toy ...` as a real subprocess: the JSON contract and the one-line errors (exit status 2).

The real subprocesses start together in one module fixture (each spends most of its time importing torch);
the other cases go through `lab.cli.main` in this process, which is the same code minus the interpreter.
"""
import json
import math
import subprocess

import pytest

from lab.data.toy import DATASETS
from lab.methods import METHOD_NAMES
from waits import HANG_S

EPOCHS, SEEDS = 5, 2
COMMON_METRICS = {"center_norm", "residual_norm", "z_std", "knn_acc", "linear_acc", "loss", "alignment",
                  "uniformity", "effective_rank"}
GOOD = {
    "simsiam": ["--method", "simsiam", "--dataset", "blobs", "--seeds", str(SEEDS), "--epochs", str(EPOCHS),
                "--set", "lr=0.03", "--set", "predictor=false"],
    "barlow": ["--method", "barlow", "--dataset", "moons", "--seeds", "1", "--epochs", "2"],
    "dino": ["--method", "dino", "--dataset", "blobs3d", "--seeds", "1", "--epochs", "2", "--set", "dim=3"],
}
BAD = {  # args -> words the one error line must contain
    "unknown method": (["--method", "mocov3", "--dataset", "blobs"], ["mocov3", *METHOD_NAMES]),
    "unknown dataset": (["--method", "simsiam", "--dataset", "spirals"], ["spirals", *DATASETS]),
    "unknown key": (["--method", "simsiam", "--dataset", "blobs", "--set", "foo=1"],
                    ["foo", "predictor", "stop_grad", "predictor_lr_scale", "lr", "batch_size", "epochs"]),
    "lr nan": (["--method", "simsiam", "--dataset", "blobs", "--set", "lr=nan"], ["lr", "(0.0, 100.0]"]),
    "bool maybe": (["--method", "simsiam", "--dataset", "blobs", "--set", "predictor=maybe"],
                   ["predictor", "true or false"]),
    "zero seeds": (["--method", "simsiam", "--dataset", "blobs", "--seeds", "0"], ["seeds", "[1, 64]"]),
    "missing =": (["--method", "simsiam", "--dataset", "blobs", "--set", "lr"], ["KEY=VALUE", "'lr'"]),
    "bad knob value": (["--method", "dino", "--dataset", "blobs", "--set", "temperature=0"],
                       ["temperature", "(0.0, 10.0]"]),
    "int knob": (["--method", "swav", "--dataset", "blobs", "--set", "n_prototypes=many"],
                 ["n_prototypes", "int"]),
    "zero test points": (["--method", "simsiam", "--dataset", "blobs", "--set", "n_test=0"], ["n_test", "[1, "]),
}
KNOWN_BUGS: dict[str, str] = {}  # case -> what is wrong; strict xfail: fails loudly once fixed


def cases(names):
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[n])) if n in KNOWN_BUGS else n
            for n in names]


SUBPROCESS_BAD = ("unknown method", "missing =", "zero test points")  # the rest run in-process through lab.cli.main


def _popen(python, env, root, args, out):
    return subprocess.Popen([python, "-m", "lab", "toy", *args, "--out", str(out)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def results(python, subprocess_env, root, tmp_path_factory):
    """name -> (exit status, stdout, stderr, out path): real subprocesses, started together."""
    tmp = tmp_path_factory.mktemp("toy_cli")
    procs = {"simsiam": (tmp / "simsiam.json", GOOD["simsiam"])}
    procs.update({name: (tmp / "bad" / f"{name.replace(' ', '_')}.json", BAD[name][0] + ["--epochs", "1"])
                  for name in SUBPROCESS_BAD})
    running = {name: (out, _popen(python, subprocess_env, root, args, out)) for name, (out, args) in procs.items()}
    done = {}
    for name, (out, p) in running.items():
        stdout, stderr = p.communicate(timeout=HANG_S)
        done[name] = (p.returncode, stdout, stderr, out)
    return done


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The same command line through `lab.cli.main` in this process (no torch import per case)."""
    import contextlib
    import io

    from lab.cli import main

    tmp = tmp_path_factory.mktemp("toy_cli_inproc")

    def run(name, args):
        out = tmp / f"{name.replace(' ', '_')}.json"
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = main(["toy", *args, "--out", str(out)])
        return rc, stdout.getvalue(), stderr.getvalue(), out

    return run


def load(results, name):
    rc, stdout, stderr, out = results[name]
    assert rc == 0, stderr
    return json.loads(out.read_text())


def check_metrics(data, seeds, epochs):
    n = len(data["epoch"])
    assert data["epoch"][0] == 0 and data["epoch"][-1] == epochs and data["epoch"] == sorted(data["epoch"])
    for key, per_seed in data["metrics"].items():
        assert len(per_seed) == seeds, key
        for values in per_seed:
            assert len(values) == n, key
            assert all(isinstance(v, float) and math.isfinite(v) for v in values), key
    assert COMMON_METRICS <= set(data["metrics"])


def test_simsiam_json_contract(results):
    data = load(results, "simsiam")
    assert data["method"] == "simsiam" and data["dataset"] == "blobs"
    p = data["params"]
    assert p["lr"] == 0.03 and p["predictor"] is False and p["epochs"] == EPOCHS and p["seeds"] == SEEDS
    for key in ("batch_size", "stop_grad", "predictor_lr_scale", "predictor_hidden", "sgd_momentum", "weight_decay",
                "dim", "hidden"):
        assert key in p, key
    assert p["stop_grad"] is True  # defaults are resolved too
    steps_per_epoch = (3 * 200) // p["batch_size"]  # 200 training points per class
    assert data["steps"] == EPOCHS * steps_per_epoch
    assert isinstance(data["train_seconds"], float) and data["train_seconds"] > 0
    assert data["epoch"] == list(range(EPOCHS + 1))
    check_metrics(data, SEEDS, EPOCHS)
    assert all(0 <= v <= 1 + 1e-6 for seed in data["metrics"]["center_norm"] for v in seed)


def test_simsiam_prints_a_summary(results):
    rc, stdout, stderr, out = results["simsiam"]
    assert rc == 0 and "simsiam" in stdout and str(out) in stdout and "center_norm" in stdout


def test_barlow_json_has_the_bn_centers(in_process):
    data = load({"barlow": in_process("barlow", GOOD["barlow"])}, "barlow")
    assert data["dataset"] == "moons" and data["params"]["lam"] == pytest.approx(0.0051)
    check_metrics(data, 1, 2)
    assert {"center_norm_pre_bn", "center_norm_post_bn"} <= set(data["metrics"])


def test_dino_json_has_the_teacher_entropy(in_process):
    data = load({"dino": in_process("dino", GOOD["dino"])}, "dino")
    assert data["params"]["dim"] == 3
    check_metrics(data, 1, 2)
    assert "teacher_entropy" in data["metrics"]
    ln_k = math.log(data["params"]["n_prototypes"])
    assert all(0 <= v <= ln_k + 1e-5 for v in data["metrics"]["teacher_entropy"][0])


def check_one_line_exit_2(result, case):
    rc, stdout, stderr, out = result
    assert rc == 2, (case, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for word in BAD[case][1]:
        assert word in lines[0], (word, lines[0])
    assert not out.exists()


@pytest.mark.parametrize("case", cases(SUBPROCESS_BAD))
def test_bad_input_is_one_line_and_exit_2_in_a_real_process(results, case):
    check_one_line_exit_2(results[case], case)


@pytest.mark.parametrize("case", cases(BAD))
def test_bad_input_is_one_line_and_exit_2(in_process, case):
    check_one_line_exit_2(in_process(case, BAD[case][0] + ["--epochs", "1"]), case)


def test_byol_momentum_is_the_ema_knob_not_the_optimizer():
    from lab.train.toy import toy_config

    c = toy_config("byol", "blobs", {"momentum": "0.9", "sgd_momentum": "0.5"})
    assert c.method_config.momentum == 0.9 and c.sgd_momentum == 0.5
