"""The live Real images page's stop-gradient lesson, seed by seed: SimSiam on Fashion-MNIST with stop-gradient
turned off after CHANGE_AT steps, against the same seed left on (the control), as the page trains it
(`lab.train.real_live`, one core per run). Writes assets/fmnist/live_stopgrad.json, which the page shows beside
a live run so that one run is never read as the verdict.

The rule, per seed, fixed before the runs from the mechanism (without stop-gradient nothing cancels the center
term, so ‖s‖ of the pre-BN features grows along s; paper §3.2, Fig. 4): the held-out ‖s‖ rose when its mean over
the last TAIL steps is at least RISE above its mean over the TAIL // 5 steps up to the change AND at least RISE
above the control's over the same last TAIL steps; the control must be healthy (its tail mean below the collapse
threshold) for the seed to count.

    python tools/real_live_survey.py [--seeds 0 1 2] [--steps 200] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.core.vocab import COLLAPSE_THRESHOLD  # noqa: E402
from lab.engine.runfiles import atomic_write_bytes  # noqa: E402
from lab.train.real_live import RealLiveConfig, train_real  # noqa: E402

CHANGE_AT, TAIL, RISE = 50, 50, 0.1
OUT = Path(__file__).resolve().parents[1] / "assets" / "fmnist" / "live_stopgrad.json"


def _arm(args: tuple[int, int, bool]) -> dict:
    seed, steps, off = args
    torch.set_num_threads(1)  # as the page trains: one core
    at = f"{CHANGE_AT}:stop_grad=false" if off else ""
    run = train_real(RealLiveConfig(method="simsiam", seed=seed, steps=steps, changes=at))
    return {"seed": seed, "off": off, "steps": run.steps, "center_norm": run.metrics["center_norm"].round(4).tolist(),
            "knn_acc": run.metrics["knn_acc"].round(4).tolist(), "seconds": round(run.seconds, 1),
            "diverged": run.diverged}


def judge(off: dict, on: dict) -> dict:
    s, c = np.asarray(off["center_norm"]), np.asarray(on["center_norm"])
    before = float(s[CHANGE_AT - TAIL // 5 + 1: CHANGE_AT + 1].mean()) if TAIL // 5 else float(s[CHANGE_AT])
    tail, control = float(s[-TAIL:].mean()), float(c[-TAIL:].mean())
    healthy = control < COLLAPSE_THRESHOLD
    return {"seed": off["seed"], "before_change": round(before, 3), "tail_off": round(tail, 3),
            "tail_control": round(control, 3), "control_healthy": healthy,
            "rose": bool(healthy and tail - before >= RISE and tail - control >= RISE),
            "knn_tail_off": round(float(np.mean(off["knn_acc"][-TAIL:])), 3),
            "knn_tail_control": round(float(np.mean(on["knn_acc"][-TAIL:])), 3),
            "seconds": off["seconds"]}


def dumps(out: dict) -> str:
    """JSON with one line per seed and per curve: readable in a diff, not one number a line."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in out.items() if k not in ("seeds", "curves")]
    for key in ("seeds", "curves"):
        lines.append(f" {json.dumps(key)}: [\n" + ",\n".join(f"  {json.dumps(r)}" for r in out[key]) + "\n ]")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args(argv)
    jobs = [(s, a.steps, off) for s in a.seeds for off in (True, False)]
    with ProcessPoolExecutor(a.workers) as pool:
        arms = list(pool.map(_arm, jobs))
    by = {(r["seed"], r["off"]): r for r in arms}
    seeds = [judge(by[(s, True)], by[(s, False)]) for s in a.seeds]
    counted = [r for r in seeds if r["control_healthy"]]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = {"made": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {torch.get_num_threads()} threads "
           "(each run on 1)", "commit": commit, "method": "simsiam", "steps": a.steps, "change_at": CHANGE_AT,
           "change": f"{CHANGE_AT}:stop_grad=false", "tail": TAIL, "rise": RISE,
           "rule": (f"rose: the held-out ‖s‖ (pre-BN) averaged over the last {TAIL} steps is ≥ {RISE} above its mean "
                    f"over the {TAIL // 5} steps before the change and ≥ {RISE} above the control's (stop-gradient "
                    f"kept on, same seed) last {TAIL} steps; a seed counts only where the control's is below "
                    f"{COLLAPSE_THRESHOLD}"),
           "held": sum(r["rose"] for r in counted), "n": len(counted), "seeds": seeds,
           "curves": [{k: r[k] for k in ("seed", "off", "steps", "center_norm")} for r in arms]}
    atomic_write_bytes(Path(a.out), lambda f: f.write(dumps(out).encode()))
    for r in seeds:
        print(r)
    print(f"rose in {out['held']} of {out['n']} seeds -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
