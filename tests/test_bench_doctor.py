"""`python -m lab.bench doctor` end to end at a tiny size, and the precision of the doctor's fast passes
(`lab.doctor.readings`: float32 products for the scatter, float32 cosines) against float64 on the hard cases.

Only the shape of the bench's report is checked, never a timing: speed targets live in the benchmark itself.
"""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab.bench import doctor as bench
from lab.doctor.load import Embeddings
from lab.doctor.readings import PRODUCT_ROWS, readings
from waits import HANG_S

ROUND32 = 2.0 ** -24


def run_bench(python, env, root, *args):
    return subprocess.run([python, "-m", "lab.bench", "doctor", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=HANG_S)


def test_the_bench_runs_end_to_end_and_prints_the_agreement_and_the_ratios(python, subprocess_env, root):
    r = run_bench(python, subprocess_env, root, "--rows", "20000", "--dim", "64")
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert re.search(r"^machine: .+, \d+ cores, load average [\d.]+ [\d.]+ [\d.]+ at start$", out, re.M), out
    assert "20,000 × 64 float32" in out and "written in" in out, out
    sides = re.findall(r"^  (lab  |plain):\s+([\d.]+) s, peak resident ([\d.]+) GB \(VmHWM\), peak anonymous "
                       r"([\d.]+) GB", out, re.M)
    assert [s[0] for s in sides] == ["lab  ", "plain"] and all(float(v) > 0 for s in sides for v in s[1:]), out
    assert re.search(r"^agreement: ‖s‖ .+ share near s .+ effective rank .+: agree$", out, re.M), out
    ratios = re.search(r"^ratios plain / lab: time ([\d.]+)x, peak resident ([\d.]+)x, peak anonymous ([\d.]+)x",
                       out, re.M)
    assert ratios and all(float(x) > 0 for x in ratios.groups()), out
    written = Path(re.search(r"^file: (\S+),", out, re.M).group(1))
    assert not written.exists() and not written.parent.exists()  # a temp file, deleted without --keep


def test_the_bench_says_in_one_line_when_the_disk_is_short(python, subprocess_env, root):
    r = run_bench(python, subprocess_env, root, "--rows", str(10 ** 12), "--dim", "2048")  # 8 PB
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [line for line in r.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "GB free in" in errors[0] and "needs" in errors[0], r.stdout


def test_the_plain_side_runs_on_a_slice_where_all_rows_would_not_fit(monkeypatch, capsys):
    monkeypatch.setattr(bench, "mem_available", lambda: 10 * 10 ** 9)
    assert bench.plain_rows(100_000, 2048) is None  # 1.6 GB: fits in 80 % of 10 GB
    rows = bench.plain_rows(1_000_000, 2048)  # 16 GB: does not; the most rows that do, in thousands
    room = 0.8 * 10 ** 10 - 4 * 2048 ** 2 * 8  # less the covariance's few D × D
    assert rows % 1000 == 0 and 2 * 4 * 2048 * rows <= room < 2 * 4 * 2048 * (rows + 1000)
    side = {"seconds": 10.0, "resident": 2e9, "anon": 1.9e9, "before": 0.1e9, "center_norm": 0.5,
            "center_share": 0.25, "effective_rank": 100.0, "band": 1e-3, "rows": 500_000}
    assert bench._report(dict(side, resident=0.5e9, anon=0.5e9), side, side, 1_000_000, 500_000) == 0
    out = capsys.readouterr().out
    assert "the first 500,000 rows: all 1,000,000 would not fit" in out and "×2 for all rows: 20.0 s" in out
    # plain's time and its memory beyond Python's doubled: 20 s; 0.1 + 2 × 1.9 = 3.9 GB and 0.1 + 2 × 1.8 = 3.7 GB
    assert "ratios plain / lab: time 2.00x, peak resident 7.8x, peak anonymous 7.4x" in out, out


# ---- the fast passes against float64 ----

def float64_readings(z: np.ndarray) -> dict:
    """The readings in float64 throughout, in memory: the scatter as one product of the centered rows."""
    u = np.asarray(z, dtype=np.float64)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    mean = u.mean(axis=0)
    centered = u - mean
    lam = np.clip(np.linalg.eigvalsh(centered.T @ centered)[::-1], 0.0, None)
    sigma = np.sqrt(lam)
    p = sigma / sigma.sum()
    return {"center_norm": float(np.linalg.norm(mean)), "lam": lam,
            "effective_rank": math.exp(-float((p * np.log(np.maximum(p, 1e-12))).sum())),
            "center_share": float(((u @ (mean / np.linalg.norm(mean))) >= 0.9).mean()),
            "std_normalized": float(centered.std(axis=0).mean())}


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near_one_point(n=20_000, d=256, seed=11) -> np.ndarray:
    """Rows within ~2.6° of one point, spread unevenly over the directions: ‖s‖ ≈ 0.999, where the scatter is
    a 1e-3 part of the rows' second moment, the small difference the shift keeps out of the float32 sums."""
    rng = np.random.default_rng(seed)
    spread = 0.045 * np.linspace(1.5, 0.05, d) / np.sqrt(d)
    return (unit_rows(rng.standard_normal((1, d))) + spread * rng.standard_normal((n, d))).astype(np.float32)


def collapsed_with_tail(n=20_000, d=256, large=3, tail=1e-4, seed=12) -> np.ndarray:
    """A few large directions and every other one at `tail` of them, rotated at random: a collapsed spectrum
    whose tail the effective rank reads (σ = 1e-4·σ_max is λ = 1e-8·λ_max, under float32's ~1e-7·λ_max)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    scale = np.full(d, tail)
    scale[:large] = np.linspace(1.0, 0.3, large)
    return ((rng.standard_normal((n, d)) * scale) @ basis.T + 0.5 * basis[:, -1]).astype(np.float32)


# Each entry of a chunk's float32 sum of products errs by about √B·2^-24 (B = 4,096 rows a sum: 3.8e-6) of
# the sum of its terms' magnitudes, at most B·2^-24. The shift and the projected directions make those
# magnitudes the spread's own (lab.doctor.readings), so an eigenvalue moves by about that much of λ_max, and the
# effective rank, a smooth function of the σ, by about that much relative. ‖s‖, the share and the std are float64.
TYPICAL = math.sqrt(PRODUCT_ROWS) * ROUND32


@pytest.mark.parametrize("make", [near_one_point, collapsed_with_tail], ids=["near one point", "tail"])
def test_the_float32_products_read_as_float64_does(make):
    z = make()
    fast, exact = readings(Embeddings(z)), float64_readings(z)
    assert fast["effective_rank"] == pytest.approx(exact["effective_rank"], rel=TYPICAL)
    lam = np.asarray(fast["spectrum"]) ** 2
    assert np.abs(lam - exact["lam"]).max() <= TYPICAL * exact["lam"][0]
    assert fast["center_norm"] == pytest.approx(exact["center_norm"], rel=1e-12)
    assert fast["center_share"] == exact["center_share"]
    assert fast["std_normalized"] == pytest.approx(exact["std_normalized"], rel=1e-9)
    if make is near_one_point:
        assert fast["center_norm"] > 0.998


def test_without_the_projected_directions_the_tail_would_be_lost(monkeypatch):
    """The same collapsed spectrum with no direction taken out of the float32 sums: its tail sinks under their
    error, and the effective rank moves 100× more than the tolerance above (why `PROJECTED` exists)."""
    z = collapsed_with_tail()
    exact = float64_readings(z)["effective_rank"]
    monkeypatch.setattr(sys.modules["lab.doctor.readings"], "PROJECTED", 0)  # the name `readings` is the function
    assert abs(readings(Embeddings(z))["effective_rank"] / exact - 1) > 100 * TYPICAL


def test_the_share_counts_rows_at_the_threshold_as_float64_does():
    """Rows at cosines 0.9 ± 2e-7 to the mean direction, within float32's error of the threshold: the float32
    cosines alone put some on the wrong side, the rows that close are redone in float64 (`_cosines`)."""
    rng = np.random.default_rng(13)
    n, d = 4_000, 64
    cos = 0.9 + rng.uniform(-2e-7, 2e-7, n // 2).repeat(2)
    side = unit_rows(rng.standard_normal((n // 2, d - 1)))
    side = np.stack([side, -side], axis=1).reshape(n, d - 1)  # ± pairs: the mean lies along the first axis
    z = np.concatenate([cos[:, None], np.sqrt(1 - cos ** 2)[:, None] * side], axis=1).astype(np.float32)
    exact = float64_readings(z)
    u32 = z / np.linalg.norm(z, axis=1, keepdims=True)
    direction32 = (u32.mean(axis=0, dtype=np.float64) / exact["center_norm"]).astype(np.float32)
    assert ((u32 @ direction32 >= 0.9).mean()) != exact["center_share"]  # the case is hard for float32
    assert readings(Embeddings(z))["center_share"] == exact["center_share"]
