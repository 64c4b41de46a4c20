"""Launch, track, stop and resume ImageNet runs (`lab.engine.train`) on this machine or on SLURM.

A run is a folder ROOT/NAME. What the engine writes there: metrics.jsonl, config.json, train.log,
checkpoint.pt. What the launcher writes (every JSON file atomically: temp file, fsync, rename):

    train_config.json  the run's engine config (`lab.engine.TrainConfig`, recipe defaults filled in),
                  parsed once from the user's train args; the engine is started with --config this file
    launch.json   what to run: the engine's argv (train_argv: --config train_config.json), python, cwd,
                  backend, gpus, device, preset, started, stop_grace_s, resumed (times), slurm resources,
                  and the user's train args as given (train_args)
    queue.json    local: the wrapper process that will start this run (pid + start time)
    pid.json      the training process and its wrapper (pid, start time, boot id, host), written by
                  the wrapper when it starts the command; the command leads its own session, so its
                  pid is also its process-group id
    exit.json     exit code and end time, written by the wrapper when the command has ended
    stop.json     a stop request (the wrapper turns it into one SIGTERM)
    job.json      SLURM: the job id (and earlier ones after a resume); slurm.sbatch: the batch script
    stdout.log    everything the command and the wrapper printed

The status is derived from those files and process liveness alone, so nothing is lost when the app
or the launching process dies (the rules are in `_derive`):
    queued     launched, the command not started yet (local queue, or a pending SLURM job)
    running    the training process (or its wrapper) is alive / the SLURM job runs
    finished   exit code 0 and metrics.jsonl ends with {"kind": "end", "status": "finished"}
    collapsed  exit code 0 and the end line says collapsed (the engine's collapse guard)
    stopped    stopped on request (stop.json), or the end line says stopped
    failed     a non-zero exit without a stop request, or the processes are gone with no exit record
               (kill -9, out of memory, a reboot); `message` then holds the last log lines

A folder the engine wrote without the launcher (`torchrun ... -m lab.engine.train --out RUNS/NAME`: its
config.json and metrics.jsonl, no launch.json) is listed too, as backend "external", to watch: running
while its metrics keep coming (`EXTERNAL_FRESH_S`), then its end line's status, or `stalled` when the
lines stopped without one (killed, or stuck). The lab did not start its processes, so it neither stops
nor resumes it (ValueError naming how).

Local runs: `python -m lab.runs.wrap RUN...` started with start_new_session=True (a detached session
that survives the app, its terminal and its restarts); the wrapper starts the command in a process
group of its own. gpus > 1: `python -m torch.distributed.run --standalone --nproc_per_node=G` (torchrun).

Presets: `launch_preset` launches the preset's runs as PREFIX-<run name>. Locally they form one
queue (one wrapper runs them one after another): one machine's GPUs or cores are shared, and a
sweep run side by side would only make every run slower. Each run still has its own folder, files
and status; stopping one queued run skips it, stopping the running one moves the queue on. On
SLURM each run is its own job and the scheduler decides.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Sequence

from lab.core.runlog import read_jsonl
from lab.runs import proc, slurm as slurm_backend
from lab.runs.proc import now_iso, read_json, write_json
from lab.runs.slurm import SlurmSpec

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
STATUSES = ("queued", "running", "finished", "failed", "stopped", "collapsed", "stalled")
ACTIVE = ("queued", "running")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
RESERVED_ARGS = ("--out", "--preset", "--run")  # the launcher sets the run folder; presets go through launch_preset
CONFIG_FILE = "train_config.json"  # the engine's config of the run, written by the launcher
DEMO_DIR = ".demo-data"  # a leading dot: never a valid run name, so it cannot clash with one
STOP_GRACE_S = 120.0  # SIGTERM -> SIGKILL: the engine checkpoints at the next step; kNN may take a while
NEVER_STARTED_S = 60.0  # a launch.json alone for this long: the launcher died before starting the run
LOG_TAIL_BYTES = 64 * 1024
EXTERNAL = "external"  # the backend of a run folder the engine wrote without the launcher
# An external run counts as running while metrics.jsonl changed this recently. The engine writes a step line
# every --log-every-steps steps (default 50), and kNN at an epoch's end takes minutes at most.
EXTERNAL_FRESH_S = 900.0


class UnknownRunError(KeyError, ValueError):
    """No run of that name under the runs root (both a KeyError and a ValueError, one line)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown run"


# ----------------------------------------------------------------------------------------- names, root

def runs_root(root: str | Path | None = None) -> Path:
    """The runs root: root, else $LAB_RUNS_DIR, else ./runs; absolute and created."""
    path = Path(root or os.environ.get("LAB_RUNS_DIR") or "runs").expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def validate_name(name: str) -> str:
    """A run name: 1-64 letters, digits, '.', '_', '-', not starting with '.' (so not '.' or '..')."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name.startswith("."):
        raise ValueError(f"bad run name {name!r}: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'")
    return name


def run_path(name: str, root: str | Path | None = None) -> Path:
    """ROOT/name, checked to be a real folder inside the root when it exists (no symlink escapes)."""
    validate_name(name)  # before runs_root creates anything
    base = runs_root(root)
    path = base / name
    if path.is_symlink() or (path.exists() and path.resolve() != base / name):
        raise ValueError(f"run folder {path} is a symlink; run folders must be real folders inside {base}")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is not a folder")
    return path


# ----------------------------------------------------------------------------------------- reading files

def read_metrics(run_path: str | Path) -> list[dict]:
    """The JSON objects of RUN/metrics.jsonl by the one rule of `lab.core.runlog.read_jsonl`: a half-written
    last line (the engine mid-write, or killed) is left out until it is complete; a bad line is skipped."""
    return read_jsonl(Path(run_path) / "metrics.jsonl")


def _tail_lines(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    out = text.splitlines()
    if size > LOG_TAIL_BYTES:
        out = out[1:]  # the first line is probably cut
    return out[-lines:] if lines > 0 else []


def log_tail(run_path: str | Path, lines: int = 20) -> list[str]:
    """The last lines of RUN/stdout.log (the engine's log lines, tracebacks and the launcher's notes),
    or of RUN/train.log when there is no stdout.log (a run made without the launcher)."""
    run_path = Path(run_path)
    for name in ("stdout.log", "train.log"):
        if (run_path / name).exists():
            return _tail_lines(run_path / name, lines)
    return []


# ----------------------------------------------------------------------------------------- run info

@dataclass
class RunInfo:
    """One run as its files describe it right now."""

    name: str
    status: str
    epoch: int
    epochs: int | None
    method: str | None
    started: str
    path: Path
    backend: str = "local"
    pid: int | None = None
    job_id: str | None = None
    exit_code: int | None = None
    message: str = ""
    preset: str | None = None
    last_epoch_metrics: dict = field(default_factory=dict)
    step: int = 0
    gpus: int = 1
    updated: float | None = None  # mtime of metrics.jsonl (seconds since the epoch): for an ETA

    def to_json(self) -> dict:
        """A JSON-safe dict (path as text; NaN and infinities, e.g. a diverged loss, as null)."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["last_epoch_metrics"] = {k: None if isinstance(v, float) and not math.isfinite(v) else v
                                      for k, v in self.last_epoch_metrics.items()}
        return data


def _epochs_method(path: Path) -> tuple[int | None, str | None]:
    """From the config the launcher wrote (resolved: epochs is a number), else from the engine's config.json
    (a folder an older launcher made, once its run started)."""
    cfg = read_json(path / CONFIG_FILE) or (read_json(path / "config.json") or {}).get("config") or {}
    return cfg.get("epochs"), cfg.get("method")


def _failure(reason: str, path: Path) -> str:
    tail = log_tail(path, 8)
    return reason + ("; last log lines:\n" + "\n".join(tail) if tail else "; no log output")


def _derive(path: Path, launch: dict, rows: list[dict]) -> tuple[str, str, int | None, str | None, int | None]:
    """(status, message, pid, job id, exit code) from the run's files, process liveness and SLURM."""
    ended = read_json(path / "exit.json")
    pidf = read_json(path / "pid.json") or {}
    stop = (path / "stop.json").exists()
    child = pidf.get("child")
    pid = child.get("pid") if child else None
    job_id = None
    code = ended.get("exit_code") if ended else None
    if launch.get("backend") == "slurm":
        job_id = str((read_json(path / "job.json") or {}).get("job_id") or "") or None
        state, source = slurm_backend.job_state(job_id) if job_id else (None, "no job id recorded")
        if state in slurm_backend.QUEUED_STATES:
            return "queued", f"SLURM job {job_id} {state}", pid, job_id, None
        if state in slurm_backend.RUNNING_STATES:
            return "running", f"SLURM job {job_id} {state}", pid, job_id, None
        if ended is None:
            if state is None:  # no scheduler to ask (another machine, or SLURM gone): the files alone
                status = "running" if child else "queued"
                return status, f"SLURM job {job_id}: {source}; status from the run's files", pid, job_id, None
            if stop:
                return "stopped", f"stopped; SLURM job {job_id} ended {state}", pid, job_id, None
            return ("failed", _failure(f"SLURM job {job_id} ended {state} without an exit record", path),
                    pid, job_id, None)
    elif ended is None:
        return (*_derive_local_running(path, launch, pidf, stop, rows), pid, None, None)
    return (*_from_exit(path, ended, rows, stop), pid, job_id, code)


def _derive_local_running(path: Path, launch: dict, pidf: dict, stop: bool, rows: list[dict]) -> tuple[str, str]:
    """Status of a local run without an exit record."""
    child, wrapper = pidf.get("child"), pidf.get("wrapper")
    queue = (read_json(path / "queue.json") or {}).get("wrapper")
    if child and not proc.same_host(child):
        return "running", f"started on host {child.get('host')}; its process cannot be checked from here"
    if child and (proc.alive(child) or proc.alive(wrapper)):
        return "running", "stop requested" if stop else ""
    if not child and queue and proc.alive(queue):
        return "queued", "stop requested: it will be skipped" if stop else "waiting for the runs before it"
    if stop:
        return "stopped", "stopped before it started" if not child else "stopped; its processes ended"
    if not child:
        if not queue and _age(launch) < NEVER_STARTED_S:
            return "queued", "starting"
        return "failed", "the launcher's process ended before this run started (resume starts it)"
    end = _end_status(rows)
    if end in ("finished", "collapsed"):  # the engine ended cleanly; only its wrapper was killed
        return end, "no exit record (its wrapper process was killed), but the engine wrote its end line"
    return "failed", _failure("the run's processes are gone without an exit record (killed with SIGKILL, "
                              "out of memory, or the machine restarted)", path)


def _from_exit(path: Path, ended: dict, rows: list[dict], stop: bool) -> tuple[str, str]:
    code = ended.get("exit_code")
    end = _end_status(rows)
    # torchrun exits 1 after passing SIGTERM on, though its workers checkpointed: with a stop request
    # the end line decides; a stop that came as the run exited after its last epoch keeps its status
    if end == "stopped" and (code == 0 or stop):
        why = "stopped on request" if stop else "stopped by a signal from outside the lab"
        return "stopped", f"{why}; checkpoint written, resume continues it"
    if end in ("finished", "collapsed") and (code == 0 or stop):
        return end, "" if end == "finished" else "the collapse guard ended the run (center_norm stayed high)"
    if stop:
        how = "after the stop grace time, killed with SIGKILL" if ended.get("escalated_to_sigkill") else \
            f"exit code {code}"
        return "stopped", f"stopped on request ({how})"
    if code == 0:
        return "failed", _failure("exit code 0 but metrics.jsonl has no end line", path)
    sig = f" ({ended['signal']})" if ended.get("signal") else ""
    return "failed", _failure(f"exit code {code}{sig}", path)


def _age(launch: dict) -> float:
    try:
        stamp = (launch.get("resumed") or [launch["started"]])[-1]
        return time.time() - datetime.fromisoformat(stamp).timestamp()
    except (KeyError, ValueError, TypeError):
        return float("inf")


def _end_status(rows: list[dict]) -> str | None:
    """The status of the engine's end line, when the metrics end with one."""
    return rows[-1].get("status") if rows and rows[-1].get("kind") == "end" else None


def _derive_external(rows: list[dict], updated: float | None) -> tuple[str, str]:
    """(status, message) of a folder the engine wrote without the launcher: from its metrics alone."""
    where = "started outside the lab (no launch.json): watched from its files; stop or resume it where it was started"
    end = _end_status(rows)
    if end in ("finished", "collapsed", "stopped"):
        return end, where
    idle = time.time() - (updated or 0.0)
    if idle < EXTERNAL_FRESH_S:
        return "running", where
    return "stalled", f"no metrics for {idle / 60:.0f} min and no end line: killed or stuck; " + where


def _info(path: Path) -> RunInfo | None:
    launch = read_json(path / "launch.json")
    external = launch is None
    if external and not (isinstance(read_json(path / "config.json"), dict) and (path / "metrics.jsonl").is_file()):
        return None  # neither the launcher's folder nor the engine's
    rows = read_metrics(path)
    try:
        updated = (path / "metrics.jsonl").stat().st_mtime
    except OSError:
        updated = None
    if external:
        status, message = _derive_external(rows, updated)
        pid = job_id = code = None
        made = datetime.fromtimestamp((path / "config.json").stat().st_mtime).astimezone()
        launch = {"started": made.isoformat(timespec="seconds"), "backend": EXTERNAL}
    else:
        status, message, pid, job_id, code = _derive(path, launch, rows)
    epochs_rows = [r for r in rows if r.get("kind") == "epoch"]
    last = epochs_rows[-1] if epochs_rows else {}
    epochs, method = _epochs_method(path)
    steps = [int(r["step"]) for r in rows if isinstance(r.get("step"), (int, float))]
    return RunInfo(name=path.name, status=status, epoch=int(last.get("epoch", 0)), epochs=epochs, method=method,
                   started=launch.get("started", ""), path=path, backend=launch.get("backend", "local"), pid=pid,
                   job_id=job_id, exit_code=code, message=message, preset=launch.get("preset"),
                   last_epoch_metrics=dict(last), step=max(steps, default=0), gpus=int(launch.get("gpus", 1)),
                   updated=updated)


def get_run(name: str, root: str | Path | None = None) -> RunInfo:
    """The run NAME. Unknown -> UnknownRunError (a KeyError and a ValueError); a bad name -> ValueError."""
    path = run_path(name, root)
    info = _info(path) if path.is_dir() else None
    if info is None:
        known = ", ".join(r.name for r in list_runs(root)[:10]) or "none yet"
        raise UnknownRunError(f"no run named {name!r} under {runs_root(root)}; runs: {known}")
    return info


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    """Every run under the root, newest first: the launcher's, and folders the engine wrote alone (backend
    "external"). Other folders, hidden ones and symlinks are skipped."""
    base = runs_root(root)
    out = []
    for path in base.iterdir():
        if path.name.startswith(".") or path.is_symlink() or not path.is_dir() or not NAME_RE.fullmatch(path.name):
            continue
        info = _info(path)
        if info is not None:
            out.append(info)
    return sorted(out, key=lambda r: (r.started, r.name), reverse=True)


# ----------------------------------------------------------------------------------------- launching

def build_command(python: str, train_argv: Sequence[str], nproc_per_node: int, *, nodes: int = 1,
                  rdzv_host: str | None = None, job_id: str | None = None) -> list[str]:
    """The argv that runs the engine: plain python for one process, torchrun for several per node,
    and under SLURM with several nodes one torchrun per node (srun) meeting at the first node."""
    engine = ["-m", "lab.engine.train", *train_argv]
    if nodes > 1:
        return ["srun", "--ntasks-per-node=1", "--kill-on-bad-exit=1", python, "-m", "torch.distributed.run",
                f"--nnodes={nodes}", f"--nproc_per_node={nproc_per_node}", "--rdzv_backend=c10d",
                f"--rdzv_endpoint={rdzv_host}:29500", f"--rdzv_id={job_id or 'lab'}", *engine]
    if nproc_per_node > 1:
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}", *engine]
    return [python, *engine]


def _train_fields(train_args: Sequence[str], device: str) -> dict:
    """The user's train args as the config fields they set (the engine's own parser, one-line ValueError),
    with the launcher's device unless they name the same one; what the launcher owns -> ValueError."""
    from lab.engine import parse_overrides  # here, not at the top: `runs list` and the wrapper need no torch

    if isinstance(train_args, (str, bytes)) or not all(isinstance(a, str) for a in train_args):
        raise ValueError("train_args must be a list of strings (an argv list, not a command line)")
    for a in train_args:
        for flag in RESERVED_ARGS:
            if a == flag or a.startswith(flag + "="):
                raise ValueError(f"train args must not contain {flag}: the launcher sets the run folder "
                                 f"(--out) itself, and presets go through launch_preset / --preset")
    fields = parse_overrides(train_args)
    theirs = fields.get("device")
    if theirs is None:
        return {**fields, "device": device}
    if device != "auto" and theirs != device:
        raise ValueError(f"device {device!r} and --device {theirs!r} in the train args disagree; give one")
    return fields


def _run_config(cfg, path: Path):
    """cfg into run folder `path`, checked (its knobs, its recipe) and with the recipe's defaults written
    out, so that a resume runs exactly this even if a recipe changes."""
    from lab.engine import check_config

    return check_config(dataclasses.replace(cfg, out=str(path))).resolved()


def _check_gpus(gpus: int) -> int:
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 1 <= gpus <= 64:
        raise ValueError(f"gpus must be an integer in [1, 64] (processes per node), got {gpus!r}")
    return gpus


def _free_path(name: str, *, gpus: int, root, slurm: SlurmSpec | None, stop_grace_s: float) -> tuple[Path, int]:
    """(ROOT/NAME, processes per node): every launch setting but the train args checked, the name free."""
    path = run_path(name, root)
    gpus = _check_gpus(gpus)
    if slurm is not None:
        if not isinstance(slurm, SlurmSpec):
            raise ValueError(f"slurm must be a SlurmSpec, got {type(slurm).__name__}")
        if gpus != 1 and slurm.gpus_per_node and gpus != slurm.gpus_per_node:
            raise ValueError(f"gpus={gpus} disagrees with slurm gpus_per_node={slurm.gpus_per_node}; give one")
        nproc = slurm.nproc_per_node if slurm.gpus_per_node else gpus
    else:
        nproc = gpus
    if not (isinstance(stop_grace_s, (int, float)) and 0 < stop_grace_s <= 3600):
        raise ValueError(f"stop_grace_s must be in (0, 3600] seconds, got {stop_grace_s!r}")
    if path.exists():
        raise ValueError(f"run {name!r} already exists in {path.parent}; pick another name or resume it")
    return path, nproc


def _create(path: Path, cfg, train_args: Sequence[str], *, gpus: int, nproc: int, slurm: SlurmSpec | None,
            preset: str | None, stop_grace_s: float) -> Path:
    """Claim the run folder (mkdir fails if it exists), write the engine's config and launch.json."""
    try:
        path.mkdir()
    except FileExistsError:
        raise ValueError(f"run {path.name!r} already exists in {path.parent}; pick another name or resume it") from None
    write_json(path / CONFIG_FILE, cfg.to_json())
    train_argv = ["--config", str(path / CONFIG_FILE)]
    python = sys.executable
    launch = {"name": path.name, "backend": "slurm" if slurm else "local", "gpus": gpus, "nproc_per_node": nproc,
              "device": cfg.device, "preset": preset, "started": now_iso(), "train_args": list(train_args),
              "train_argv": train_argv, "python": python, "cwd": os.getcwd(),
              "argv": build_command(python, train_argv, nproc, nodes=slurm.nodes if slurm else 1,
                                    rdzv_host="HEAD_NODE", job_id="JOB_ID"),
              "slurm": slurm.to_json() if slurm else None, "stop_grace_s": float(stop_grace_s),
              "env": {"PYTHONPATH": _pythonpath()}, "resumed": []}
    write_json(path / "launch.json", launch)
    return path


def _pythonpath() -> str:
    """The project first, so `python -m lab...` works from any working directory."""
    rest = os.environ.get("PYTHONPATH", "")
    return str(PROJECT_ROOT) + (os.pathsep + rest if rest else "")


def _start_local(paths: Sequence[Path]) -> None:
    """One detached wrapper (new session: survives the app and its terminal) that runs paths in order."""
    env = dict(os.environ, PYTHONPATH=_pythonpath(), PYTHONUNBUFFERED="1")
    with open(paths[0] / "stdout.log", "ab") as log:
        wrapper = subprocess.Popen([sys.executable, "-m", "lab.runs.wrap", *map(str, paths)], cwd=str(PROJECT_ROOT),
                                   env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
    ident = proc.identity(wrapper.pid)
    names = [p.name for p in paths]
    for i, p in enumerate(paths):
        write_json(p / "queue.json", {"wrapper": ident, "position": i, "queue": names})


def _submit(path: Path) -> str:
    launch = read_json(path / "launch.json")
    spec = SlurmSpec(**launch["slurm"])
    script = path / "slurm.sbatch"
    if not script.exists():
        script.write_text(slurm_backend.batch_script(spec, path.name, path, launch["python"], PROJECT_ROOT))
    job = slurm_backend.submit(script, path)
    old = read_json(path / "job.json") or {}
    earlier = [*old.get("earlier", []), *([old["job_id"]] if old.get("job_id") else [])]
    write_json(path / "job.json", {"job_id": job, "submitted": now_iso(), "earlier": earlier})
    return job


def launch(name: str, train_args: Sequence[str], *, gpus: int = 1, root: str | Path | None = None,
           slurm: SlurmSpec | None = None, device: str = "auto", preset: str | None = None,
           stop_grace_s: float = STOP_GRACE_S) -> RunInfo:
    """Start run NAME: its train args parsed once into the engine's config (ROOT/NAME/train_config.json, with
    the device and --out ROOT/NAME), then `python -m lab.engine.train --config that file`, detached
    (torchrun when gpus > 1), or as a SLURM batch job when slurm is given. Bad args or an existing name ->
    ValueError, before anything is made."""
    from lab.engine import make_config

    path, nproc = _free_path(name, gpus=gpus, root=root, slurm=slurm, stop_grace_s=stop_grace_s)
    cfg = _run_config(make_config({**_train_fields(train_args, device), "out": str(path)}), path)
    _create(path, cfg, train_args, gpus=gpus, nproc=nproc, slurm=slurm, preset=preset, stop_grace_s=stop_grace_s)
    _start_or_remove([path], slurm is not None)
    return get_run(name, root)


def _start_or_remove(paths: Sequence[Path], on_slurm: bool) -> None:
    """Start the runs; if that fails, remove the folders just made, so the names stay free."""
    try:
        if on_slurm:
            for p in paths:
                _submit(p)
        else:
            _start_local(paths)
    except Exception:
        for p in paths:
            if not (p / "job.json").exists():
                shutil.rmtree(p, ignore_errors=True)
        raise


def launch_preset(preset: str, train_args: Sequence[str], *, gpus: int = 1, root: str | Path | None = None,
                  slurm: SlurmSpec | None = None, prefix: str | None = None, device: str = "auto",
                  stop_grace_s: float = STOP_GRACE_S) -> list[RunInfo]:
    """Launch every run of a paper preset as PREFIX-<run name> (prefix defaults to the preset's name), each
    with the engine's config of that run (`lab.engine.preset_configs`: the user's args may change its
    epochs and add knobs, not its method). Locally one queue runs them one after another; on SLURM each
    is its own job. All names and configs are checked before any run starts."""
    from lab.engine import preset_configs

    configs = preset_configs(preset, _train_fields(train_args, device))
    prefix = validate_name(prefix or preset)
    names = preset_run_names([run for run, _ in configs], prefix)
    taken = [n for n in names if run_path(n, root).exists()]
    if taken:
        raise ValueError(f"run {taken[0]!r} already exists; pick another prefix than {prefix!r}")
    kw = dict(gpus=gpus, root=root, slurm=slurm, stop_grace_s=stop_grace_s)
    planned = [(*_free_path(n, **kw), cfg) for n, (_, cfg) in zip(names, configs)]
    planned = [(path, nproc, _run_config(cfg, path)) for path, nproc, cfg in planned]
    run_presets = [run.get("preset", preset) for run, _ in configs]  # "all": each run's own preset
    paths = []
    try:
        for (path, nproc, cfg), run_preset in zip(planned, run_presets):
            paths.append(_create(path, cfg, train_args, gpus=gpus, nproc=nproc, slurm=slurm, preset=run_preset,
                                 stop_grace_s=stop_grace_s))
    except Exception:
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)
        raise
    _start_or_remove(paths, slurm is not None)
    return [get_run(n, root) for n in names]


def preset_run_names(runs: Sequence[dict], prefix: str) -> list[str]:
    """PREFIX-<run name> for each of a preset's runs (`preset_runs`); runs from several presets (the queue
    "all": run names are only unique within a preset) are PREFIX-<preset>-<run name>. A
    duplicate -> ValueError naming it."""
    several = len({run.get("preset") for run in runs}) > 1
    names = [validate_name(f"{prefix}-{run['preset']}-{run['name']}" if several else f"{prefix}-{run['name']}")
             for run in runs]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise ValueError(f"preset run name {twice!r} appears twice")
    return names


# ----------------------------------------------------------------------------------------- stop, resume

def _wait_settled(name: str, root, wait: float) -> RunInfo:
    deadline = time.monotonic() + max(0.0, wait)
    info = get_run(name, root)
    while info.status in ACTIVE and time.monotonic() < deadline:
        time.sleep(0.2)
        info = get_run(name, root)
    return info


def stop(name: str, root: str | Path | None = None, *, wait: float = 30.0, kill: bool = False) -> RunInfo:
    """Ask run NAME to stop: stop.json, which its wrapper turns into one SIGTERM to the run's process
    group (the engine checkpoints and exits 0); the wrapper escalates to SIGKILL of the group and its
    descendants after the run's stop_grace_s. A queued run is skipped (local) or cancelled (SLURM).
    Waits up to `wait` seconds for the run to end. kill=True: SIGKILL now (after a SIGTERM that did
    not work; loses the progress since the last checkpoint). Not queued/running -> ValueError."""
    info = get_run(name, root)
    _refuse_external(info, "stop it where it was started (Ctrl-C, or kill -TERM its process: the engine checkpoints)")
    if info.status not in ACTIVE:
        raise ValueError(f"run {name!r} is {info.status}; only a queued or running run can be stopped")
    path = info.path
    if not (path / "stop.json").exists():
        write_json(path / "stop.json", {"requested": now_iso(), "by": "lab.runs.stop"})
    pidf = read_json(path / "pid.json") or {}
    child, wrapper = pidf.get("child"), pidf.get("wrapper")
    if info.backend == "slurm":
        if info.status == "queued" and info.job_id:
            slurm_backend.cancel(info.job_id)
        elif kill and info.job_id:
            slurm_backend.cancel(info.job_id)
    elif child and proc.same_host(child):
        if kill:
            proc.kill_tree(child)
        elif proc.alive(child) and not proc.alive(wrapper):
            # nobody left to forward the request: signal the group ourselves (once; the wrapper is gone)
            proc.signal_group(child["pid"], signal.SIGTERM)
    return _wait_settled(name, root, wait)


def _refuse_external(info: RunInfo, how: str) -> None:
    if info.backend == EXTERNAL:
        raise ValueError(f"run {info.name!r} was started outside the lab, which does not control its processes: {how}")


def resume(name: str, root: str | Path | None = None) -> RunInfo:
    """Start a stopped or failed run again with its recorded command and folder; the engine resumes
    from its checkpoint (no epoch is trained twice). Running, queued, finished, collapsed -> ValueError."""
    info = get_run(name, root)
    _refuse_external(info, "resume it with the command that started it (the same --out continues from its checkpoint)")
    if info.status not in ("stopped", "failed"):
        raise ValueError(f"run {name!r} is {info.status}; only a stopped or failed run can be resumed")
    path = info.path
    for f in ("exit.json", "stop.json", "pid.json", "queue.json"):
        (path / f).unlink(missing_ok=True)
    launch = read_json(path / "launch.json")
    launch["resumed"] = [*launch.get("resumed", []), now_iso()]
    write_json(path / "launch.json", launch)
    if launch.get("backend") == "slurm":
        _submit(path)
    else:
        _start_local([path])
    return get_run(name, root)


# ----------------------------------------------------------------------------------------- demo

def demo_data(root: str | Path | None = None, real: bool = True) -> Path:
    """The CPU demo's data: Debian's Fashion-MNIST when it is installed (real=True), else a small generated
    ImageFolder (4 classes, 32 train + 8 val JPEGs each, 40 px) under the runs root, made once; concurrent
    callers are safe (each builds apart, the first rename wins)."""
    # Imported here, not at the top: `runs list` and the wrapper must start without importing torch.
    from lab.data.fmnist import DEBIAN_DIR, is_fashion_mnist
    from lab.engine import write_fake_imagefolder

    if real and is_fashion_mnist(DEBIAN_DIR):
        return DEBIAN_DIR
    base = runs_root(root)
    final = base / DEMO_DIR
    if (final / "val").is_dir():
        return final
    tmp = base / f"{DEMO_DIR}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_fake_imagefolder(tmp, classes=4, per_class=32, size=40, val_per_class=8)
    try:
        os.rename(tmp, final)
    except OSError:  # another caller finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def demo_is_real(data: str | Path) -> bool:
    """Whether demo data is a Fashion-MNIST folder (else generated images)."""
    from lab.data.fmnist import is_fashion_mnist

    return is_fashion_mnist(data)


def real_demo_available() -> bool:
    """Whether Debian's Fashion-MNIST is installed, so the demo trains on real images."""
    from lab.data.fmnist import DEBIAN_DIR

    return demo_is_real(DEBIAN_DIR)


def real_demo_hint() -> str:
    """How to install Fashion-MNIST, in one line."""
    from lab.data.fmnist import INSTALL_HINT

    return INSTALL_HINT


def demo_train_args(data: str | Path, *, method: str = "simsiam", epochs: int = 12) -> list[str]:
    """A CPU run of one to three minutes on demo_data (2 cores), a chart point every few seconds.

    Fashion-MNIST: 28-px images, 20 steps of 256 per epoch (5,120 images), kNN on the test split against all
    60,000 training images every 4 epochs and after the last. Generated images: 32 px, 4 steps of 16 per
    epoch, kNN every 3 epochs. Add knobs with ["--set", "predictor=false", ...]."""
    if demo_is_real(data):
        return ["--data", str(data), "--method", method, "--epochs", str(epochs), "--batch-size", "256",
                "--workers", "0", "--max-steps-per-epoch", "20", "--knn-every", "4", "--log-every-steps", "2",
                "--no-progress"]
    return ["--data", str(data), "--method", method, "--epochs", str(epochs), "--batch-size", "16",
            "--image-size", "32", "--workers", "0", "--max-steps-per-epoch", "4", "--knn-every", "3",
            "--log-every-steps", "1", "--no-progress"]
