"""Where the shipped results live (`assets/`) and what every shipped results file says of its making."""
from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "assets"
ENGINE_RESULTS = ASSETS / "fmnist" / "claims.json"
TOY_RESULTS = ASSETS / "toy_claims.json"  # python -m lab claims --out assets/toy_claims.json
SWEEPS = ASSETS / "sweeps"  # python -m lab claims --sweeps assets/sweeps


def provenance() -> dict[str, str]:
    """When, where and at which commit results were made: every shipped results file says it."""
    return {"made": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": _machine(), "commit": _git_commit()}


def _machine() -> str:
    return f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cores"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
