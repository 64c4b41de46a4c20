"""Launching, tracking and reading ImageNet runs: locally (a detached process group, torchrun for
several GPUs) or on SLURM. Everything a run is lives in its folder under the runs root; see
`lab.runs.core` for the layout and the status rules, `lab.runs.slurm` for the SLURM backend."""
from lab.runs.core import (STATUSES, RunInfo, UnknownRunError, demo_data, demo_train_args, get_run, launch,
                           launch_preset, list_runs, log_tail, read_metrics, resume, run_path, runs_root, stop,
                           validate_name)
from lab.runs.slurm import SlurmError, SlurmSpec

__all__ = ["STATUSES", "RunInfo", "SlurmError", "SlurmSpec", "UnknownRunError", "demo_data", "demo_train_args",
           "get_run", "launch", "launch_preset", "list_runs", "log_tail", "read_metrics", "resume", "run_path",
           "runs_root", "stop", "validate_name"]
