"""`python -m lab.bench toy` as a real subprocess on a short suite, and the work its floor line counts.

Only the shape of the report is checked, never a timing: speed targets live in the benchmark itself.
"""
import re
import subprocess
import sys

from lab.bench.cli import FIG4_VARIANTS, FloorWork, floor_work
from lab.train.toy import ToyConfig
from waits import HANG_S


def test_toy_bench_reports_lab_plain_ratio_and_floor():
    out = subprocess.run([sys.executable, "-m", "lab.bench", "toy", "--epochs", "2", "--repeats", "1"],
                         capture_output=True, text=True, timeout=HANG_S, check=True).stdout
    seconds = {name: float(re.search(pattern, out).group(1)) for name, pattern in {
        "lab": r"3 programs\):\s+([\d.]+) s", "plain": r"K = 1\):\s+([\d.]+) s",
        "speed-up": r"speed-up:\s+([\d.]+)x", "floor": r"alone [\d.]+ s: ([\d.]+) s"}.items()}
    assert all(v > 0 for v in seconds.values()), out
    assert abs(seconds["speed-up"] - seconds["plain"] / seconds["lab"]) < 0.06, out
    # 6 settings x 5 seeds x 2 epochs x 6 steps; evaluations at epochs 0, 1 and 2
    assert "2 epochs, 3 evaluations (360 optimizer steps in all)" in out, out


def test_floor_counts_each_stacked_program_once():
    configs = [ToyConfig(method="simsiam", dataset=d, params=p) for p in FIG4_VARIANTS for d in ("blobs", "moons")]
    # train_toys stacks blobs and moons of each variant: 3 programs of 10 seeds, 1,500 steps, 51 evaluations
    assert floor_work(configs) == [FloorWork(seeds=10, rows=200, hidden=64, steps=1500, evals=51, bank=600,
                                             queries=300, dim=3)] * 3
    wider = [ToyConfig(method="simsiam", dataset="blobs", seeds=3, hidden=32, batch_size=50, epochs=10, max_evals=4)]
    assert floor_work(wider) == [FloorWork(3, 100, 32, 120, 4, 600, 300, 3)]
