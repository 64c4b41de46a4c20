"""lab.runs.LaunchRequest, what the Runs page's launch form collects: its train args, its checks in the
form's order (name, train args, SLURM), and the SLURM fields' starting point. Nothing here starts a run;
tests/test_app_runs.py launches one from the form."""
from __future__ import annotations

import pytest

from lab.runs import ONE_GPU_JOB, LaunchRequest, SlurmSpec


def test_the_form_becomes_train_args(tmp_path):
    request = LaunchRequest(name="r1", method="byol", knobs="momentum=0.9, predictor=true\n lr=0.1", data=f" {tmp_path} ",
                            epochs=3, batch_size=16, image_size=32, extra="--workers 0 --cache '/a b'")
    assert request.train_argv() == ["--data", str(tmp_path), "--method", "byol", "--set", "momentum=0.9",
                                    "--set", "predictor=true", "--set", "lr=0.1", "--epochs", "3", "--batch-size", "16",
                                    "--image-size", "32", "--workers", "0", "--cache", "/a b"]
    assert request.run_name() == "r1"


def test_a_preset_takes_its_own_methods_and_its_name_as_the_prefix(tmp_path):
    request = LaunchRequest(preset="b5-simsiam-predictor", method="byol", knobs="momentum=0.9", data=str(tmp_path))
    assert request.train_argv() == ["--data", str(tmp_path), "--epochs", "200", "--batch-size", "256",
                                    "--image-size", "224"]
    assert request.run_name() is None
    assert LaunchRequest(name=" sweep1 ", preset="b5-simsiam-predictor").run_name() == "sweep1"


@pytest.mark.parametrize("fields, message", [
    (dict(data=""), "data folder is empty"),
    (dict(data="/no/such/folder"), "does not exist"),
    (dict(extra="--workers 'unclosed"), "extra arguments:"),
])
def test_bad_train_args_are_one_line(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message) as err:
        LaunchRequest(**{"data": str(tmp_path), **fields}).train_argv()
    assert "\n" not in str(err.value)


def test_launch_checks_in_the_forms_order_before_anything_starts(tmp_path):
    """Several bad fields: the topmost one's error, as the form reads (name, train args, then SLURM)."""
    bad_slurm = {**ONE_GPU_JOB.to_json(), "partition": "no spaces"}
    root = tmp_path / "runs"
    for fields, message in ((dict(name="../escape", data="", slurm=bad_slurm), "run name"),
                            (dict(name="ok", data="/no/such/folder", slurm=bad_slurm), "does not exist"),
                            (dict(name="ok", data=str(tmp_path), slurm=bad_slurm), "slurm partition must be")):
        with pytest.raises(ValueError, match=message):
            LaunchRequest(**fields).launch(root)
    assert not root.exists() or not any(root.iterdir())


def test_slurm_fields_as_a_form_collects_them_or_as_a_spec():
    assert LaunchRequest().slurm_spec() is None
    assert LaunchRequest(slurm=ONE_GPU_JOB).slurm_spec() is ONE_GPU_JOB
    assert LaunchRequest(slurm={**ONE_GPU_JOB.to_json(), "nodes": 2}).slurm_spec() == SlurmSpec(
        nodes=2, gpus_per_node=1, cpus_per_task=8, mem_gb=32, time_min=120)
    assert ONE_GPU_JOB.gpus_per_node == 1 and ONE_GPU_JOB.nodes == 1 and ONE_GPU_JOB.partition is None
