"""Small OS helpers of the runs backend: atomic JSON files and process identity from /proc.

A pid alone names a process only while it lives: after it ends the kernel may hand the same number
to another process. So a run records (pid, start time), the start time being field 22 of
/proc/<pid>/stat (clock ticks since boot), with the boot id and host; a process is "the same one"
only when all of them match.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file in the same folder, fsync, rename): readers see old or new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """The JSON object in path, or None when it is missing or not (yet) a complete object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; the command name (field 2) may hold spaces and ')'."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text[text.rfind(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot; None if gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def identity(pid: int) -> dict:
    """What names this process for its whole life: pid, start time, boot id, host."""
    return {"pid": pid, "start_time": start_time(pid), "boot_id": boot_id(), "host": socket.gethostname()}


def same_host(ident: dict | None) -> bool:
    return bool(ident) and ident.get("host") == socket.gethostname()


HAVE_PROC = Path("/proc/self/stat").exists()


def alive(ident: dict | None) -> bool:
    """Whether the process recorded in ident still runs (not a zombie, not a new process with its pid).

    Only meaningful on the host that recorded it (see same_host). Without /proc (macOS) a pid that
    exists counts as alive: no start time to tell a reused pid apart."""
    if not ident or not isinstance(ident.get("pid"), int) or ident.get("boot_id") != boot_id():
        return False
    if not HAVE_PROC:
        try:
            os.kill(ident["pid"], 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    fields = _stat_fields(ident["pid"])
    if not fields or len(fields) <= 19 or fields[0] in ("Z", "X"):
        return False
    return int(fields[19]) == ident.get("start_time")


def children_map() -> dict[int, list[int]]:
    """{parent pid: [child pids]} of every process visible in /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if HAVE_PROC else []:
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and len(fields) > 1:
                kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below pid (children, grandchildren, ...). torchrun's workers live in process
    groups of their own, so a signal to torchrun's group alone does not reach them."""
    kids, out, todo = children_map(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def signal_group(pgid: int, sig: int) -> bool:
    """os.killpg that reports False when the group is gone instead of raising."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_tree(ident: dict) -> list[int]:
    """SIGKILL the process of ident, its process group and every descendant (found first, so the
    orphans of a killed parent are not missed). -> the pids signalled."""
    if not alive(ident):
        return []
    pid = ident["pid"]
    tree = descendants(pid)
    signal_group(pid, signal.SIGKILL)  # our children are session (and group) leaders: pgid == pid
    for p in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    return [pid, *tree]


def wait_gone(ident: dict, timeout: float, poll: float = 0.1) -> bool:
    """Wait until the process of ident has ended; True if it did within timeout."""
    deadline = time.monotonic() + timeout
    while alive(ident):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True
