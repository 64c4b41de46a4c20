"""What the doctor's numbers stand beside, so that a user knows what "‖s‖ 0.42" means:

- `uniform_reference(dim, n)`: rows drawn uniformly on the sphere at the user's own D and N (capped): the
  healthiest an embedding of that shape can read (‖s‖ ≈ 1/√N, rank near min(N, D)). Drawn, not stored, so it is
  always at the same D.
- `lab_references()`: the lab's own Fashion-MNIST SimSiam, trained by its engine (`python -m lab.engine.train`,
  the Fig. B.5 preset's seed 0: 3 epochs of 78 steps, ResNet-18 at width 16), with the predictor (healthy) and
  without it (collapsed: the paper's Fig. B.5), each embedded on the 10,000 test images by `lab.doctor.embed` and
  read by `lab.doctor.check`. Stored in `REFERENCES` (assets/doctor/references.json; `python -m
  lab.doctor.references --runs DIR` writes it), at the D of their features, which each column says.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from lab.doctor import check
from lab.engine.runfiles import atomic_write_bytes

REFERENCES = Path(__file__).resolve().parents[2] / "assets" / "doctor" / "references.json"
UNIFORM_ROWS_MAX = 10_000  # enough for a spectrum of D = 2048 (N ≥ D keeps every direction), ~2 s to read


def uniform_reference(dim: int, n: int, seed: int = 0) -> dict[str, Any]:
    """The readings of min(n, `UNIFORM_ROWS_MAX`) rows uniform on the unit sphere in `dim` dimensions (normal
    rows: their directions are uniform), as `lab.doctor.check` reads them."""
    rows = np.random.default_rng(seed).standard_normal((min(n, UNIFORM_ROWS_MAX), dim)).astype(np.float32)
    return check(rows, seed=seed).readings


def references_for(readings: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """What a model's readings stand beside, as (name, readings): rows uniform on the sphere at its D and N, then
    the lab's stored Fashion-MNIST references (each at its own D, which its name says)."""
    uniform = ("reference: uniform on the sphere at this D", uniform_reference(readings["dim"], readings["n"]))
    return [uniform] + [(f"reference: {r['name']}", r["readings"]) for r in lab_references()]


def lab_references(path: str | Path = REFERENCES) -> list[dict[str, Any]]:
    """The stored references: each {"name", "signature", "why", "features", "run", "readings"}; [] where the
    file is missing or unreadable (the page then shows the uniform reference only)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return [r for r in data["references"] if isinstance(r.get("readings"), dict)]
    except (OSError, ValueError, KeyError, TypeError):
        return []


# (run folder under --runs, what it is, the features read): the Fig. B.5 preset's seed 0 with and without its
# predictor (`python -m lab.engine.train --preset b5-simsiam-predictor`), each where its loss acts (the projector
# before its output BatchNorm) and where kNN reads (the backbone, whose values are all ≥ 0).
RUNS = (("simsiam-s0", "the lab's Fashion-MNIST SimSiam", "projector"),
        ("simsiam-nopred-s0", "the lab's Fashion-MNIST SimSiam without predictor", "projector"),
        ("simsiam-s0", "the lab's Fashion-MNIST SimSiam", "backbone"),
        ("simsiam-nopred-s0", "the lab's Fashion-MNIST SimSiam without predictor", "backbone"))
FEATURE_WORDS = {"projector": "projector, before its BN", "backbone": "backbone"}


def write_references(runs: str | Path, data: str | Path | None = None, out: str | Path = REFERENCES) -> list[dict]:
    """Read each of `RUNS` under `runs` (embedded on its own data, or `data`) and write them to `out`."""
    found = []
    for folder, what, features in RUNS:
        report = check(Path(runs) / folder, data=data, features=features)
        readings = dict(report.readings)
        found.append({"name": f"{what} ({FEATURE_WORDS[features]}, D = {readings['dim']})", "run": folder,
                      "features": features, "signature": report.signature, "why": report.why,
                      "readings": readings})
        print(f"{found[-1]['name']}: {report.signature}")
    doc = {"made": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {platform.system()}",
           "commit": _commit(), "how": "python -m lab.engine.train --preset b5-simsiam-predictor (seed 0 of each "
                                       "variant), then python -m lab.doctor.references --runs DIR",
           "references": found}
    text = json.dumps(doc, indent=1) + "\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(out), lambda f: f.write(text.encode()))
    return found


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.doctor.references", description=write_references.__doc__)
    parser.add_argument("--runs", type=Path, required=True, help="the folder holding the runs of RUNS")
    parser.add_argument("--data", type=Path, help="the images to embed on (default: each run's own)")
    parser.add_argument("--out", type=Path, default=REFERENCES)
    args = parser.parse_args(argv)
    try:
        write_references(args.runs, args.data, args.out)
    except ValueError as e:
        print(f"error: {e}")
        return 2
    return 0


__all__ = ["REFERENCES", "UNIFORM_ROWS_MAX", "lab_references", "references_for", "uniform_reference", "write_references"]


if __name__ == "__main__":
    raise SystemExit(main())
