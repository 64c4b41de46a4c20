"""The process that owns a run: `python -m lab.runs.wrap [--slurm] RUN_DIR [RUN_DIR ...]`.

It starts each run's training command (an argv list from RUN/launch.json, never a shell string) in
a process group of its own, records the child's identity in RUN/pid.json, waits, and writes
RUN/exit.json with the exit code, so a run's status can be told from its files after every process
involved is gone. Several folders form a queue: they run one after another, each with its own files.

Stopping: `lab.runs.stop` writes RUN/stop.json; the wrapper sees it within half a second and sends
SIGTERM to the child's group once (the engine finishes its step, checkpoints and exits 0; a second
SIGTERM would kill it without a checkpoint, so exactly one party signals). If the child still runs
after `stop_grace_s`, the wrapper SIGKILLs the group and every descendant (torchrun's workers have
groups of their own) and says so in stdout.log and exit.json. Never SIGKILL first: SIGKILL to
torchrun orphans its workers (DESIGN §5).

Under SLURM (`--slurm`, the batch script's only command): SLURM itself sends SIGTERM to every
process of the job when it cancels, preempts or requeues it, so the wrapper does not forward
SIGTERM there; it forwards SIGUSR1 (`#SBATCH --signal=B:USR1@90`, shortly before the time limit)
as one SIGTERM to the child and then requeues the job, which reruns the same command into the same
folder: the engine resumes from its checkpoint.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab.runs.proc import identity, kill_tree, now_iso, read_json, signal_group, write_json

POLL_S = 0.5


class _Signals:
    """What the wrapper itself was sent: SIGTERM (stop the queue) and SIGUSR1 (SLURM: time is nearly up)."""

    def __init__(self):
        self.term = self.usr1 = False
        signal.signal(signal.SIGTERM, self._term)
        signal.signal(signal.SIGUSR1, self._usr1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # no terminal: a stray Ctrl-C must not orphan the child

    def _term(self, *_):
        self.term = True

    def _usr1(self, *_):
        self.usr1 = True


def note(run: Path, text: str) -> None:
    """A line of the wrapper's own in RUN/stdout.log, beside the training's output."""
    with open(run / "stdout.log", "a") as f:
        f.write(f"[lab.runs {now_iso()}] {text}\n")


def command(launch: dict) -> list[str]:
    """The argv of this attempt; a multi-node SLURM job needs the node list, known only inside the job."""
    from lab.runs.core import build_command

    nodes = int((launch.get("slurm") or {}).get("nodes", 1))
    head = None
    if nodes > 1:
        hosts = subprocess.run(["scontrol", "show", "hostnames", os.environ.get("SLURM_JOB_NODELIST", "")],
                               capture_output=True, text=True, check=True).stdout.split()
        head = hosts[0]
    return build_command(launch["python"], launch["train_argv"], launch["nproc_per_node"], nodes=nodes,
                         rdzv_host=head, job_id=os.environ.get("SLURM_JOB_ID"))


def run_one(run: Path, sigs: _Signals, slurm: bool) -> int:
    launch = read_json(run / "launch.json")
    if launch is None:
        print(f"lab.runs.wrap: {run}/launch.json missing or unreadable; skipped", file=sys.stderr)
        return 2
    if (run / "stop.json").exists():
        note(run, "stop requested before the run started; not started")
        return 0
    (run / "exit.json").unlink(missing_ok=True)  # a requeued SLURM job reruns into the same folder
    env = dict(os.environ, PYTHONUNBUFFERED="1", **launch.get("env", {}))
    log = open(run / "stdout.log", "ab")
    restart = os.environ.get("SLURM_RESTART_COUNT")
    try:
        argv = command(launch)
        note(run, f"starting{' (SLURM restart ' + restart + ')' if restart else ''}: {argv}")
        child = subprocess.Popen(argv, cwd=launch.get("cwd") or None, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    except (OSError, subprocess.SubprocessError, IndexError, KeyError) as e:
        # a missing working folder or interpreter, no node list: an exit record that says why
        note(run, f"could not start the training command: {e}")
        write_json(run / "exit.json", {"exit_code": 127, "ended": now_iso(), "stop_requested": False,
                                       "escalated_to_sigkill": False, "signal": None, "error": str(e)})
        return 127
    finally:
        log.close()
    child_id = identity(child.pid)
    write_json(run / "pid.json", {"child": child_id, "wrapper": identity(os.getpid()), "started": now_iso(),
                                  "job_id": os.environ.get("SLURM_JOB_ID"), "restart": restart})
    grace = float(launch.get("stop_grace_s", 120))
    termed_at, escalated, requeue = None, False, False
    while True:
        try:
            code = child.wait(POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        forward = (run / "stop.json").exists() or (sigs.term and not slurm)
        if sigs.usr1 and slurm:
            forward, requeue = True, True
        if forward and termed_at is None:
            termed_at = time.monotonic()
            signal_group(child.pid, signal.SIGTERM)
            note(run, "SIGTERM sent to the training process group")
        if termed_at is not None and not escalated and time.monotonic() - termed_at > grace:
            escalated = True
            pids = kill_tree(child_id)
            note(run, f"still running {grace:.0f} s after SIGTERM: SIGKILL sent to {pids}")
    stop = (run / "stop.json").exists()
    write_json(run / "exit.json", {"exit_code": code, "ended": now_iso(), "stop_requested": stop,
                                   "escalated_to_sigkill": escalated,
                                   "signal": signal.Signals(-code).name if code < 0 else None,
                                   "job_id": os.environ.get("SLURM_JOB_ID")})
    note(run, f"training process exited with code {code}")
    if requeue and not stop and os.environ.get("SLURM_JOB_ID"):
        note(run, f"requeueing SLURM job {os.environ['SLURM_JOB_ID']} (time limit near); "
                  "it resumes from the checkpoint")
        subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=False)
    return 0 if stop else code  # a requested stop is no failure (SLURM: the job ends COMPLETED)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    slurm = "--slurm" in args
    runs = [Path(a) for a in args if a != "--slurm"]
    sigs = _Signals()
    code = 0
    for i, run in enumerate(runs):
        if sigs.term and not slurm:
            for rest in runs[i:]:  # recorded as stopped, so their status says so and resume can start them
                write_json(rest / "stop.json", {"requested": now_iso(), "by": "SIGTERM to the queue's wrapper"})
                note(rest, "the queue was stopped (SIGTERM to its wrapper) before this run started")
            break
        code = run_one(run, sigs, slurm)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
