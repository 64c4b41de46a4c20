"""A one-node SLURM cluster for the tests, from Debian's packages, under a temp folder (DESIGN §5).

munged with its own key, socket and logs; slurmctld and slurmd in the foreground as children of the
test process (no systemd); a slurm.conf with free ports, SlurmUser=root, no accounting (final job
states come from `squeue --states=all` and the jobcomp file that `sacct -c` reads). `start()` waits
until `sinfo` shows the node idle (~1.5 s); `stop()` cancels every job first (or the jobs' processes
are orphaned) and then ends the daemons it started, by their pids.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from waits import HANG_S

BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo", "munged")
INSTALL_HINT = "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge"


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _node_line() -> str:
    """`slurmd -C`'s NodeName line, with a little memory held back (slurmd rejects a node reporting less)."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("NodeName="))
    fields = dict(f.split("=", 1) for f in line.split())
    fields["RealMemory"] = str(int(int(fields.get("RealMemory", "2048")) * 0.9))
    return " ".join(f"{k}={v}" for k, v in fields.items()) + " State=UNKNOWN"


class SlurmCluster:
    """`with SlurmCluster(tmp) as c:` -> c.env (SLURM_CONF set), c.conf; daemons stopped on exit."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self.procs: list[subprocess.Popen] = []
        self.conf = self.base / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.jobcomp = self.base / "jobcomp.txt"

    def _munge(self) -> Path:
        mdir = self.base / "munge"
        mdir.mkdir(mode=0o755)
        key = mdir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = mdir / "munge.socket"
        self.procs.append(subprocess.Popen(
            [_which("munged"), "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
             f"--log-file={mdir / 'munged.log'}", f"--pid-file={mdir / 'munged.pid'}",
             f"--seed-file={mdir / 'munged.seed'}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(mdir / "munged.out", "wb")))
        deadline = time.monotonic() + HANG_S
        while not sock.exists():
            if self.procs[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"munged did not start: {(mdir / 'munged.out').read_text()[-500:]}")
            time.sleep(0.05)
        return sock

    def _write_conf(self, sock: Path) -> None:
        ctl_port, d_port = _free_ports(2)
        node = _node_line()
        node_name = node.split()[0].split("=", 1)[1]
        spool = self.base / "spool"
        state = self.base / "state"
        spool.mkdir()
        state.mkdir()
        lines = [
            "ClusterName=labtest", f"SlurmctldHost={node_name}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={ctl_port}", f"SlurmdPort={d_port}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock}",
            f"StateSaveLocation={state}", f"SlurmdSpoolDir={spool}",
            f"SlurmctldPidFile={self.base / 'slurmctld.pid'}", f"SlurmdPidFile={self.base / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.base / 'slurmctld.log'}", f"SlurmdLogFile={self.base / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory", "ReturnToService=2", "SchedulerType=sched/backfill",
            "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/filetxt", f"JobCompLoc={self.jobcomp}", "MpiDefault=none",
            "KillWait=3", "MinJobAge=300", "InactiveLimit=0", "SlurmctldTimeout=30", "SlurmdTimeout=30",
            "JobRequeue=1", "SchedulerParameters=bf_interval=1", "MailProg=/bin/true",
            node, f"PartitionName=debug Nodes={node_name} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = HANG_S) -> "SlurmCluster":
        self.base.mkdir(parents=True, exist_ok=True)
        self._write_conf(self._munge())
        for name, args in (("slurmctld", ["-D", "-i"]), ("slurmd", ["-D"])):
            self.procs.append(subprocess.Popen([_which(name), *args], env=self.env, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL,
                                               stderr=open(self.base / f"{name}.out", "wb")))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            if out.returncode == 0 and "idle" in out.stdout:
                return self
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                break
            time.sleep(0.1)
        logs = {n: (self.base / f"{n}.log").read_text()[-800:] if (self.base / f"{n}.log").exists() else ""
                for n in ("slurmctld", "slurmd")}
        self.stop()
        raise RuntimeError(f"the test SLURM cluster did not become idle: {logs}")

    def stop(self) -> None:
        subprocess.run(["scancel", "--user", "root"], env=self.env, capture_output=True, timeout=HANG_S)
        deadline = time.monotonic() + 15  # let the jobs' processes end before slurmd goes
        while time.monotonic() < deadline:
            out = subprocess.run(["squeue", "-h", "-o", "%i"], env=self.env, capture_output=True, text=True)
            if out.returncode != 0 or not out.stdout.strip():
                break
            time.sleep(0.2)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(HANG_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
