"""The one reader of a run's JSON-lines log (`metrics.jsonl`), shared by the engine and the launcher
(base layer: standard library only).

The rule, for a file that one process appends to while others read it, or that a kill -9 cut short:
- only newline-terminated lines count: the text after the last newline is a line still being
  written (or torn by a kill mid-write) and is left out, even when it already parses, until its
  newline arrives;
- a complete line that is not a JSON object (blank, a torn line that later writes were appended to,
  a stray edit) is skipped: one bad line must not hide the rest of a run from a chart or a resume;
- a missing or unreadable file reads as no lines.
"""
from __future__ import annotations

import json
from pathlib import Path


def read_jsonl(path: str | Path) -> list[dict]:
    """The JSON objects of the complete lines of `path`, in order (the rule above)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    rows = []
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is not complete yet
        try:
            row = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
