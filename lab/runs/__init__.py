"""Launching, tracking and reading ImageNet runs: locally (a detached process group, torchrun for
several GPUs) or on SLURM. Everything a run is lives in its folder under the runs root; see
`lab.runs.core` for the layout and the status rules, `lab.runs.slurm` for the SLURM backend,
`lab.runs.request` for what a launch form asks for.

The engine's public names that a page needs beside the runs (`PRESETS`, `NOTES`, `method_params`,
`cuda_available`, ...) are re-exported here, imported from `lab.engine` on first use: `python -m lab
runs list` and the wrapper of every run start without torch.
"""
from lab.runs.core import (EXTERNAL, STATUSES, RunInfo, UnknownRunError, demo_data, demo_is_real, demo_train_args, get_run,
                           launch, launch_preset, list_runs, log_tail, preset_run_names, read_metrics, real_demo_available,
                           real_demo_hint, resume, run_path, runs_root, stop, validate_name)
from lab.runs.request import LaunchRequest
from lab.runs.slurm import ONE_GPU_JOB, SlurmError, SlurmSpec

ENGINE_NAMES = ("ALL", "NOTES", "PRESETS", "TrainConfig", "check_config", "cuda_available", "method_params",
                "parse_train_args", "preset_configs", "preset_runs")

__all__ = ["EXTERNAL", "ONE_GPU_JOB", "STATUSES", "LaunchRequest", "RunInfo", "SlurmError", "SlurmSpec", "UnknownRunError",
           "demo_data", "demo_is_real",
           "demo_train_args", "get_run", "launch", "launch_preset", "list_runs", "log_tail", "preset_run_names",
           "read_metrics",
           "real_demo_available", "real_demo_hint", "resume", "run_path",
           "runs_root", "stop", "validate_name",
           "ALL", "NOTES", "PRESETS", "TrainConfig", "check_config", "cuda_available", "method_params", "parse_train_args",
           "preset_configs", "preset_runs"]


def __getattr__(name: str):
    if name in ENGINE_NAMES:
        import lab.engine

        return getattr(lab.engine, name)
    raise AttributeError(f"module 'lab.runs' has no attribute {name!r}")
