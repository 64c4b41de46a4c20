"""The doctor against the engine: every Fashion-MNIST preset run (`python -m lab.engine.train --preset all --run`)
read back from its checkpoint by `lab.doctor.check` (projector before its output BN, and backbone), beside what
the engine itself read at the run's last epoch (metrics.jsonl: ‖s‖ pre-BN, share, effective rank, kNN, its
collapse flag). Two independent paths to the same model: the doctor embeds the test images in eval mode, the
engine read the training views in train mode.

    python -m tools.doctor_survey --runs runs/fmnist --out assets/doctor/fmnist_survey.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lab.doctor import check
from lab.engine.runfiles import atomic_write_bytes

ENGINE_KEYS = ("center_norm", "center_share", "effective_rank", "knn_acc", "collapsed")
DOCTOR_KEYS = ("center_norm", "center_share", "effective_rank", "knn_acc", "nonnegative", "points")


def engine_last_epoch(run: Path) -> dict:
    """The run's last "epoch" line of metrics.jsonl, its `ENGINE_KEYS` only."""
    last = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("kind") == "epoch":
            last = row
    return {k: last.get(k) for k in ENGINE_KEYS} | {"epoch": last.get("epoch")}


def survey(runs: Path, limit: int) -> list[dict]:
    found = []
    folders = sorted(p.parent for p in runs.rglob("checkpoint.pt"))
    for i, run in enumerate(folders):
        row = {"run": str(run.relative_to(runs)), "engine": engine_last_epoch(run)}
        for features in ("projector", "backbone"):
            report = check(run, features=features, limit=limit)
            row[features] = {"signature": report.signature} | {k: report.readings.get(k) for k in DOCTOR_KEYS}
        found.append(row)
        print(f"[{i + 1}/{len(folders)}] {row['run']}: engine ‖s‖ {row['engine']['center_norm']:.3f} "
              f"collapsed={row['engine']['collapsed']}; doctor projector {row['projector']['signature']} "
              f"(‖s‖ {row['projector']['center_norm']:.3f}), backbone {row['backbone']['signature']} "
              f"(‖s‖ {row['backbone']['center_norm']:.3f})", flush=True)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.doctor_survey", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=2000, help="test images embedded per run (seeded sample)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = survey(args.runs, args.limit)
    doc = {"made": time.strftime("%Y-%m-%d"), "limit": args.limit, "runs": rows}
    text = json.dumps(doc, indent=1) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, lambda f: f.write(text.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
