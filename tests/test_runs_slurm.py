"""lab.runs on a real one-node SLURM cluster that the tests start and stop (tests/slurm_cluster.py):
a tiny CPU run submitted as a batch job, followed to the end through squeue and its own files;
a run requeued as SLURM does on preemption (`scontrol requeue`) and near its time limit (the
`--signal=B:USR1` warning) resumes from its checkpoint without training an epoch twice; stop and resume.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

import test_runs
from test_runs import train_args

from slurm_cluster import INSTALL_HINT, SlurmCluster, missing_binaries
from waits import HANG_S

pytestmark = [
    pytest.mark.skipif(bool(missing_binaries()), reason=f"SLURM binaries missing ({', '.join(missing_binaries())}); "
                                                        f"install with: {INSTALL_HINT}"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the test cluster's slurmd must run as root (it starts jobs as "
                                                 "their user); run the tests as root"),
]

SPEC = dict(nodes=1, gpus_per_node=0, cpus_per_task=1, mem_gb=1, time_min=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm")
    c = SlurmCluster(base / "c").start()
    mp = pytest.MonkeyPatch()
    mp.setenv("SLURM_CONF", str(c.conf))  # launch()'s sbatch/squeue calls and the jobs' environment
    mp.setenv("OMP_NUM_THREADS", "1")
    try:
        yield c
    finally:
        c.stop()
        mp.undo()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from lab.data.fake import write_fake_imagefolder

    return write_fake_imagefolder(tmp_path_factory.mktemp("data") / "d", classes=4, per_class=16, size=40)


def wait_for(what, timeout: float = HANG_S, poll: float = 0.3):
    return test_runs.wait_for(what, timeout, poll)  # SLURM polls and starts jobs more slowly


def epochs_logged(path: Path) -> list[int]:
    from lab.runs import read_metrics

    epochs = [r["epoch"] for r in read_metrics(path) if r.get("kind") == "epoch"]
    assert epochs.count(0) <= 1, epochs  # the untrained reading, once, even across requeues
    return [e for e in epochs if e > 0]


def scontrol(cluster, *args: str) -> None:
    subprocess.run(["scontrol", *args], env=cluster.env, check=True, capture_output=True, timeout=HANG_S)


def test_a_slurm_run_is_followed_to_the_end(cluster, data, tmp_path):
    from lab.runs import SlurmSpec, get_run, launch

    root = tmp_path / "root"
    info = launch("tiny", train_args(data, 2), root=root, slurm=SlurmSpec(**SPEC), device="cpu")
    assert info.backend == "slurm" and info.job_id and info.status in ("queued", "running")
    script = (info.path / "slurm.sbatch").read_text()
    assert "#SBATCH --requeue" in script and "#SBATCH --signal=B:USR1@90" in script
    assert "#SBATCH --cpus-per-task=1" in script and "#SBATCH --mem=1G" in script and "#SBATCH --time=10" in script
    assert f"-m lab.runs.wrap --slurm {shlex.quote(str(info.path))}" in script
    seen = set()

    def ended():
        """the SLURM run ended"""
        i = get_run("tiny", root)
        seen.add(i.status)
        return i.status not in ("queued", "running") and i

    info = wait_for(ended, HANG_S)
    assert info.status == "finished", info.message
    assert "running" in seen, seen
    assert (info.epoch, info.epochs, info.exit_code) == (2, 2, 0)
    assert epochs_logged(info.path) == [1, 2] and (info.path / "checkpoint.pt").exists()


def test_requeued_run_resumes_from_its_checkpoint(cluster, data, tmp_path):
    """Preemption (scontrol requeue: SIGTERM to every process of the job, then back to the queue) and the
    time-limit warning (SIGUSR1 to the batch step: the wrapper stops the run and requeues the job)."""
    from lab.runs import SlurmSpec, get_run, launch
    from lab.runs.slurm import job_state

    root = tmp_path / "root"
    info = launch("requeued", train_args(data, 6), root=root, slurm=SlurmSpec(**SPEC), device="cpu")
    job, path = info.job_id, info.path

    def requeue_and_release(action, done: int):
        wait_for(lambda: len(epochs_logged(path)) >= done, HANG_S)
        action()
        # a requeued job waits ~2 minutes (BeginTime) before it may start again; start it sooner, but not
        # within the second its old credential was revoked (slurmd would refuse it as revoked: FAILED)
        wait_for(lambda: job_state(job)[0] == "PENDING", HANG_S)
        assert get_run("requeued", root).status == "queued"
        time.sleep(2)
        scontrol(cluster, "update", f"JobId={job}", "StartTime=now")
        wait_for(lambda: job_state(job)[0] == "RUNNING", HANG_S)

    requeue_and_release(lambda: scontrol(cluster, "requeue", job), 1)
    requeue_and_release(lambda: subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=cluster.env,
                                               check=True, timeout=HANG_S), 3)
    info = wait_for(lambda: (i := get_run("requeued", root)).status not in ("queued", "running") and i, HANG_S)
    assert info.status == "finished", info.message
    assert epochs_logged(path) == list(range(1, 7))  # no epoch trained (or logged) twice
    log = (path / "stdout.log").read_text()
    assert "SLURM restart 1" in log and "SLURM restart 2" in log and "requeueing SLURM job" in log
    assert (path / "train.log").read_text().count("resuming simsiam") == 2


def test_stop_and_resume_a_slurm_run(cluster, data, tmp_path):
    from lab.runs import SlurmSpec, get_run, launch, resume, stop
    from lab.runs.slurm import job_state

    root = tmp_path / "root"
    info = launch("stopped", train_args(data, 8), root=root, slurm=SlurmSpec(**SPEC), device="cpu")
    first_job = info.job_id
    wait_for(lambda: epochs_logged(info.path), HANG_S)
    info = stop("stopped", root, wait=HANG_S)
    assert info.status == "stopped", (info, epochs_logged(info.path))
    assert job_state(first_job)[0] == "COMPLETED" and (info.path / "checkpoint.pt").exists()
    info = resume("stopped", root)
    assert info.job_id != first_job and info.status in ("queued", "running"), info
    info = wait_for(lambda: (i := get_run("stopped", root)).status not in ("queued", "running") and i, HANG_S)
    assert info.status == "finished", info.message
    assert epochs_logged(info.path) == list(range(1, 9))


def test_a_preset_is_one_job_per_run_and_pending_jobs_stop(cluster, data, tmp_path):
    from lab.runs import SlurmSpec, get_run, launch_preset, stop
    from lab.runs.slurm import job_state

    root = tmp_path / "root"
    args = [a for a in train_args(data, 50) if a not in ("--method", "simsiam")]
    # each job takes both CPUs of the node: one runs, the others wait in the queue
    infos = launch_preset("b6-simsiam-predictor-lr", args, root=root, prefix="sw",
                          slurm=SlurmSpec(**{**SPEC, "cpus_per_task": 2}), device="cpu")
    assert [i.name for i in infos] == ["sw-simsiam-predlr1", "sw-simsiam-predlr10", "sw-simsiam-predlr100"]
    assert len({i.job_id for i in infos}) == 3
    wait_for(lambda: [get_run(i.name, root).status for i in infos].count("queued") == 2, HANG_S)
    for info in infos:
        assert stop(info.name, root, wait=HANG_S).status == "stopped"
    states = [job_state(i.job_id)[0] for i in infos]
    assert all(s in ("CANCELLED", "COMPLETED") for s in states), states
