"""`python -m lab.bench doctor`: the collapse doctor on a memory-mapped .npy of 1 M embeddings of D = 2048
(issue 22: under a minute on the lab's 2-core machine, in bounded memory), against the same readings computed
the plain way, in the same run.

The file (float32, seeded, written in blocks: never whole in memory) holds rows μ + g ⊙ σ, g standard normal,
σ_j = j^-1/2 (a spectrum that decays, as trained embeddings' do) and ‖μ‖ twice the spread ‖σ‖: ‖s‖ ≈ 0.9, about
half the rows within 26° of s, an effective rank of ~1,600 of 2,048. Each side runs in a fresh process, so that
its peak memory is its own:
- the lab: `lab.doctor.check(path)`, streamed (`lab.doctor.readings`);
- plain: the whole file read into memory (np.load), normalised, its mean, the cosines to it, the centered rows'
  float32 covariance on every core (torch), its eigenvalues in float64, the effective rank. Where that would not
  fit in memory, it runs on the first rows that do, its time scaled by N / rows (both of its costs grow as N),
  and the lab runs on the same rows for the agreement.
Memory, from /proc/self/status: the peak resident set (VmHWM: everything the process held, pages of a file it
mapped included, so that reading a file through its mapping would count the whole file) and the peak of its
anonymous part (RssAnon, sampled every 10 ms: the memory the process itself allocated).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from lab.core.vocab import COLLAPSE_THRESHOLD as THRESHOLD  # the cosine the share near s counts from

WRITE_ROWS = 8_192  # rows generated and written at once: 64 MiB at D = 2048, seeded per block
GB = 1e9
PLAIN_MEMORY_SHARE = 0.8  # of MemAvailable the plain path may take before it runs on a slice
DISK_MARGIN = 1 << 30  # bytes to leave free beside the file
ROUND32 = 2.0 ** -24


def write_embeddings(path: Path, rows: int, dim: int, seed: int = 0) -> None:
    """The bench's rows (module note) as a float32 .npy at `path`, written block by block: memory of one block."""
    from numpy.lib import format as npy

    sigma = (np.arange(1, dim + 1, dtype=np.float64) ** -0.5).astype(np.float32)
    mu = np.random.default_rng([seed, 0]).standard_normal(dim)
    mu = (mu * 2 * np.linalg.norm(sigma) / np.linalg.norm(mu)).astype(np.float32)
    with open(path, "wb") as f:
        npy.write_array_header_1_0(f, {"descr": npy.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                                       "shape": (rows, dim)})
        for i, start in enumerate(range(0, rows, WRITE_ROWS)):
            block = np.random.default_rng([seed, 1, i]).standard_normal((min(WRITE_ROWS, rows - start), dim),
                                                                        dtype=np.float32)
            block *= sigma
            block += mu
            f.write(block.tobytes())


class PeakMemory:
    """The peak of this process's RssAnon, sampled every 10 ms while inside `with`, and VmHWM at the end."""

    def __init__(self):
        self.anon, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self.before = status_bytes("RssAnon")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.anon = max(self.anon, status_bytes("RssAnon"))
        self.resident = status_bytes("VmHWM")

    def _watch(self):
        while not self._stop.wait(0.01):
            self.anon = max(self.anon, status_bytes("RssAnon"))


def status_bytes(field: str) -> int:
    """A memory field of /proc/self/status in bytes (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_lab(path: str, rows: int | None) -> dict:
    """The lab's readings of the file (or of its first `rows`), timed, with this process's peak memory."""
    from lab.doctor import check

    z = path if rows is None else np.load(path, mmap_mode="r")[:rows]
    with PeakMemory() as memory:
        start = time.perf_counter()
        report = check(z)
        seconds = time.perf_counter() - start
    r = report.readings
    return {"seconds": seconds, "resident": memory.resident, "anon": memory.anon, "before": memory.before,
            "center_norm": r["center_norm"], "center_share": r["center_share"],
            "effective_rank": r["effective_rank"], "signature": report.signature}


def run_plain(path: str, rows: int | None) -> dict:
    """The readings the obvious way (module note), timed, with this process's peak memory."""
    import torch

    with PeakMemory() as memory:
        start = time.perf_counter()
        x = np.load(path) if rows is None else np.array(np.load(path, mmap_mode="r")[:rows])
        u = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
        del x
        s = u.mean(dim=0).double()  # mean(dtype=float64) would copy all rows to float64 first: 2× the file
        cos = u @ (s / s.norm()).float()
        u -= s.float()
        lam = torch.linalg.eigvalsh((u.T @ u).double()).clamp(min=0)
        sigma = lam.sqrt() / lam.sqrt().sum()
        rank = math.exp(-float((sigma * sigma.clamp(min=1e-12).log()).sum()))
        seconds = time.perf_counter() - start
    # the rows whose float32 cosine is as close to the threshold as float32 can err (lab.doctor.readings._cosines)
    band = float(((cos - THRESHOLD).abs() <= 4 * u.shape[1] * ROUND32).double().mean())
    return {"seconds": seconds, "resident": memory.resident, "anon": memory.anon, "before": memory.before,
            "center_norm": float(s.norm()), "center_share": float((cos >= THRESHOLD).double().mean()),
            "effective_rank": rank, "band": band, "rows": len(u)}


def child(side: str, path: str, rows: int | None) -> dict:
    """`side` ("lab" or "plain") in a fresh process: its JSON answer, or {"error": ...}."""
    argv = [sys.executable, "-m", "lab.bench.doctor", side, path] + ([] if rows is None else [str(rows)])
    done = subprocess.run(argv, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        why = "killed (out of memory?)" if done.returncode == -9 else (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {done.returncode}: {why}"}
    return json.loads(lines[-1])


def machine() -> str:
    """'AMD EPYC, 2 cores, load average 1.44 2.11 2.44'."""
    model = "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def mem_available() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def plain_rows(rows: int, dim: int) -> int | None:
    """None where the plain path fits in `PLAIN_MEMORY_SHARE` of the available memory (the rows twice in
    float32: read and normalised), else the most rows that do."""
    room = PLAIN_MEMORY_SHARE * mem_available() - 4 * dim * dim * 8
    need = 2 * 4 * dim
    return None if rows * need <= room else max(2, int(room // need) // 1000 * 1000)


def agreement(lab: dict, plain: dict) -> tuple[bool, str]:
    """Whether the lab's and the plain readings of the same rows agree, and the line that says so. Tolerances:
    ‖s‖ within (log2 N + 4)·2^-24 (plain's normalised rows and their mean are float32: each value within a few
    2^-24, torch's cascaded sum of N of them within ~log2 N·2^-24; 1.4e-6 at 1 M, the lab's float64 ~1e-15); the
    share within the share of rows whose plain float32 cosine lies within its error of 0.9 (4·D·2^-24,
    `lab.doctor.readings._cosines`; the lab's is float64's); the effective rank within 10·√N·2^-24 relative
    (plain's covariance sums N float32 products an entry, ~√N·2^-24 relative each; the lab's, 4,096 at a time
    about a shift, ~1e-7)."""
    d_norm = abs(lab["center_norm"] - plain["center_norm"])
    d_share = abs(lab["center_share"] - plain["center_share"])
    d_rank = abs(lab["effective_rank"] / plain["effective_rank"] - 1)
    norm_tol, rank_tol = (math.log2(plain["rows"]) + 4) * ROUND32, 10 * math.sqrt(plain["rows"]) * ROUND32
    ok = d_norm <= norm_tol and d_share <= plain["band"] and d_rank <= rank_tol
    return ok, (f"agreement: ‖s‖ {lab['center_norm']:.6f} vs {plain['center_norm']:.6f} (|Δ| {d_norm:.1e} ≤ "
                f"{norm_tol:.1e}), "
                f"share near s {lab['center_share']:.6f} vs {plain['center_share']:.6f} (|Δ| {d_share:.1e} ≤ "
                f"{plain['band']:.1e}, the rows plain's float32 cosines put within their error of 0.9), effective "
                f"rank {lab['effective_rank']:.6g} vs {plain['effective_rank']:.6g} (relative {d_rank:.1e} ≤ "
                f"{rank_tol:.1e}): {'agree' if ok else 'DO NOT AGREE'}")


def _side_line(name: str, r: dict, scale: float = 1.0) -> str:
    scaled = f", ×{scale:.3g} for all rows: {r['seconds'] * scale:.1f} s" if scale != 1.0 else ""
    return (f"  {name}: {r['seconds']:7.2f} s{scaled}, peak resident {r['resident'] / GB:.2f} GB (VmHWM), "
            f"peak anonymous {r['anon'] / GB:.2f} GB (RssAnon; {r['before'] / GB:.2f} GB of it before: Python, "
            "numpy, torch)")


def _prepare(rows: int, dim: int, file: str | None, keep: bool) -> tuple[Path | None, bool, str]:
    """(the .npy to read, whether to delete it after, a line on it); path None and the line an error where the
    disk is short."""
    path = Path(file) if file else Path(tempfile.mkdtemp(prefix="lab-bench-doctor-")) / "embeddings.npy"
    if path.exists():
        z = np.load(path, mmap_mode="r")
        return path, False, f"file: {path}, {z.shape[0]:,} × {z.shape[1]} {z.dtype} ({z.nbytes / GB:.2f} GB), as given"
    size, free = rows * dim * 4, shutil.disk_usage(path.parent).free
    if size + DISK_MARGIN > free:
        if not file:
            path.parent.rmdir()
        return None, False, (f"error: {free / GB:.1f} GB free in {path.parent}, the {rows:,} × {dim} float32 file "
                             f"needs {size / GB:.1f} GB and 1 GB beside it: pass --rows, --dim or --file")
    start = time.perf_counter()
    write_embeddings(path, rows, dim)
    line = (f"file: {path}, {rows:,} × {dim} float32 ({size / GB:.2f} GB), written in "
            f"{time.perf_counter() - start:.1f} s (seeded){', kept' if keep else ''}")
    return path, not keep, line


def bench_doctor(rows: int = 1_000_000, dim: int = 2048, file: str | None = None, keep: bool = False) -> int:
    """The bench (module note): prints the machine, the file, each side's time and memory as it ends, their
    agreement and the ratios. 0 where they agree, 1 where not or a side failed, 2 where the disk is short."""
    print(f"machine: {machine()} at start")
    path, delete, line = _prepare(rows, dim, file, keep)
    print(line, flush=True)
    if path is None:
        return 2
    try:
        n, dim = np.load(path, mmap_mode="r").shape
        lab = child("lab", str(path), None)
        if "error" in lab:
            print(f"lab: {lab['error']}")
            return 1
        print(f"lab (lab.doctor.check, streamed), {n:,} rows: signature {lab['signature']}")
        print(_side_line("lab  ", lab), flush=True)
        sliced = plain_rows(n, dim)
        plain = child("plain", str(path), sliced)
        same = lab if sliced is None or "error" in plain else child("lab", str(path), sliced)
    finally:
        if delete:
            path.unlink()
            path.parent.rmdir()
    return _report(lab, plain, same, n, sliced)


def _report(lab: dict, plain: dict, same: dict, n: int, sliced: int | None) -> int:
    """The plain side's lines, the agreement and the ratios (the lab's are printed as it ends)."""
    failed = [f"{name}: {r['error']}" for name, r in (("plain", plain), ("lab on the slice", same)) if "error" in r]
    if failed:
        print("\n".join(failed + [f"machine: {machine()} at end"]))
        return 1
    scale = 1.0 if sliced is None else n / sliced
    rows = "all rows" if sliced is None else (f"the first {sliced:,} rows: all {n:,} would not fit in "
                                              f"{PLAIN_MEMORY_SHARE:.0%} of the available memory")
    print(f"plain (np.load, normalise, torch float32 covariance, eigvalsh), {rows}")
    print(_side_line("plain", plain, scale))
    ok, line = agreement(same, plain)
    print(line + ("" if sliced is None else f" (the lab on the same {sliced:,} rows)"))
    grown = lambda key: (plain["before"] + (plain[key] - plain["before"]) * scale) / max(lab[key], 1)  # noqa: E731
    print(f"ratios plain / lab: time {plain['seconds'] * scale / lab['seconds']:.2f}x, peak resident "
          f"{grown('resident'):.1f}x, peak anonymous {grown('anon'):.1f}x"
          + ("" if sliced is None else " (plain's time and its memory beyond Python's scaled to all rows)"))
    print(f"machine: {machine()} at end")
    return 0 if ok else 1


if __name__ == "__main__":  # a side, in its own process: `python -m lab.bench.doctor lab|plain PATH [ROWS]`
    side, where = sys.argv[1], sys.argv[2]
    print(json.dumps((run_lab if side == "lab" else run_plain)(where, int(sys.argv[3]) if len(sys.argv) > 3
                                                                else None)))
