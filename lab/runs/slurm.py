"""SLURM backend: a run as one batch job made with plain `sbatch`, watched with `squeue` / `sacct -c`.

Why plain sbatch and not submitit (the well-kept library for this):
- Our unit of work is a command (an argv list) that already checkpoints, resumes when rerun with
  the same --out, and writes its own status files. submitit's model is a pickled Python callable
  with its own checkpoint protocol and result pickles; it would wrap our command without adding to it.
- Status must come from files and the scheduler after the launching app is gone. submitit polls job
  states with `sacct`, which reads UNKNOWN on clusters without accounting (our test cluster, and
  many small ones); `squeue --states=all` and `sacct -c` (the jobcomp file) work on both.
- Requeue on preemption or time limit is ~20 lines here (`#SBATCH --requeue`, `--signal=B:USR1@90`,
  and `lab.runs.wrap`), the same thing submitit does with its signal handlers.
- One dependency less, and the job is a readable file, RUN/slurm.sbatch, that a user can inspect.

The batch script is a file handed to sbatch, not a command line: every value in it is validated
first (SlurmSpec, run names, the partition) and every path is `shlex.quote`d; the options that carry
paths (--output, --chdir) go to sbatch as separate argv items, not into the script.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

PARTITION_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
LIMITS = {"nodes": (1, 1024), "gpus_per_node": (0, 64), "cpus_per_task": (1, 1024), "mem_gb": (1, 100_000),
          "time_min": (1, 525_600)}
QUEUED_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "STOPPED"}
SIGNAL_BEFORE_END_S = 90  # SIGUSR1 this long before the time limit: checkpoint, then requeue


class SlurmError(RuntimeError):
    """A SLURM command failed (its stderr, one line)."""


@dataclass(frozen=True)
class SlurmSpec:
    """Resources of one batch job. gpus_per_node = 0: a CPU job. One task per node runs torchrun
    with one worker per GPU (or plain python for one process)."""

    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: int = 4
    time_min: int = 60
    partition: str | None = None

    def __post_init__(self):
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"slurm {name} must be an integer in [{low}, {high}], got {value!r}")
        if self.partition is not None and not PARTITION_RE.fullmatch(str(self.partition)):
            raise ValueError(f"slurm partition must be 1-64 letters, digits, '.', '_' or '-', got {self.partition!r}")

    @property
    def nproc_per_node(self) -> int:
        return max(1, self.gpus_per_node)

    def to_json(self) -> dict:
        return asdict(self)


# Where the Runs page's SLURM fields start: an ImageNet run's job on one node with one GPU.
ONE_GPU_JOB = SlurmSpec(gpus_per_node=1, cpus_per_task=8, mem_gb=32, time_min=120)


def available() -> bool:
    return all(shutil.which(b) for b in ("sbatch", "squeue", "scancel"))


def _run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"{argv[0]} not found: SLURM's client commands are not installed here") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{argv[0]} did not answer in {timeout:.0f} s") from None


def batch_script(spec: SlurmSpec, name: str, run: Path, python: str, project_root: Path) -> str:
    """The text of RUN/slurm.sbatch. name must already be valid (lab.runs.core.validate_name)."""
    lines = ["#!/bin/bash",
             f"# lab.runs: SLURM batch job of run {name}. Generated file; values validated, paths shlex-quoted.",
             f"#SBATCH --job-name=lab-{name}",
             f"#SBATCH --nodes={spec.nodes}",
             "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --cpus-per-task={spec.cpus_per_task}",
             f"#SBATCH --mem={spec.mem_gb}G",
             f"#SBATCH --time={spec.time_min}",
             "#SBATCH --requeue",
             f"#SBATCH --signal=B:USR1@{SIGNAL_BEFORE_END_S}",
             "#SBATCH --open-mode=append"]
    if spec.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={spec.gpus_per_node}")
    if spec.partition:
        lines.append(f"#SBATCH --partition={spec.partition}")
    lines += ["", f"export PYTHONPATH={shlex.quote(str(project_root))}${{PYTHONPATH:+:$PYTHONPATH}}",
              # exec: the wrapper is the batch step's process, so --signal=B:USR1 reaches it
              f"exec {shlex.quote(python)} -m lab.runs.wrap --slurm {shlex.quote(str(run))}", ""]
    return "\n".join(lines)


def submit(script: Path, run: Path) -> str:
    """sbatch the script (argv list; output appended to RUN/stdout.log). -> job id."""
    out = _run(["sbatch", "--parsable", f"--output={run / 'stdout.log'}", f"--chdir={run}", str(script)])
    if out.returncode != 0:
        raise SlurmError(f"sbatch failed: {' '.join(out.stderr.split())}")
    job = out.stdout.strip().split(";")[0]
    if not job.isdigit():
        raise SlurmError(f"sbatch printed no job id: {out.stdout.strip()!r}")
    return job


def job_state(job_id: str) -> tuple[str | None, str]:
    """(SLURM state like RUNNING / PENDING / COMPLETED / CANCELLED, where it came from); (None, why) if unknown.

    squeue --states=all knows running jobs and finished ones for MinJobAge; after that, `sacct -c`
    reads the job completion file (works without accounting) and plain sacct the accounting database.
    """
    if not available():
        return None, "SLURM commands not installed here"
    out = _run(["squeue", "-h", "--states=all", "-j", str(job_id), "-o", "%T"])
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.split()[0], "squeue"
    for argv, source in ((["sacct", "-c", "-j", str(job_id), "-n", "-P", "-o", "State"], "sacct -c"),
                         (["sacct", "-j", str(job_id), "-X", "-n", "-P", "-o", "State"], "sacct")):
        out = _run(argv)
        states = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
        if out.returncode == 0 and states:
            return states[-1], source  # a requeued job has one completion line per attempt: the last counts
    return None, "squeue and sacct do not know the job"


def cancel(job_id: str, signal_name: str | None = None) -> None:
    argv = ["scancel", *([f"--signal={signal_name}", "--full"] if signal_name else []), str(job_id)]
    out = _run(argv)
    if out.returncode != 0:
        raise SlurmError(f"scancel {job_id} failed: {' '.join(out.stderr.split())}")
