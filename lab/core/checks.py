"""Checks and text parsing at the edges (base layer: imports nothing from lab).

- `check_range`: the one range check; its message names the value and the valid range.
- `parse_text`: the one string → value parser for the CLI, URLs and forms (bool words, int, float, str).
- `knob` / `check_knobs`: a config field that carries its label, help, slider stops and valid range in
  its metadata, so a knob is declared once, in its method's module, and the UI, the CLI and the checks
  read it from there.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def check_range(name: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    """ValueError unless low ≤ value ≤ high (low < value when low_open), finite where a float."""
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")


def field_kind(f: dataclasses.Field) -> type:
    """A dataclass field's type as a class, also under `from __future__ import annotations` (a string)."""
    if isinstance(f.type, type):
        return f.type
    text = str(f.type).replace(" ", "")
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if text == name or text in (f"{name}|None", f"None|{name}", f"Optional[{name}]"):
            return kind
    return str


def parse_text(name: str, kind: type, text: str) -> Any:
    """Text from a command line, a URL or a form -> a value of `kind`; ValueError naming `name` and what it takes.

    Floats accept inf and ∞ (the triplet margin's limit); NaN passes on to the range check, which names
    the valid range."""
    text = text.strip()
    if kind is bool:
        low = text.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(f"{name} takes true or false, got {text!r}")
    if kind is str:
        return text
    try:
        return int(text) if kind is int else kind(text.replace("∞", "inf"))
    except ValueError:
        what = "an integer" if kind is int else "a number" if kind is float else f"a {kind.__name__}"
        raise ValueError(f"{name} takes {what}, got {text!r}") from None


def knob(default: Any, label: str | None = None, help: str | None = None, stops: tuple | None = None,
         range: tuple[float, float] | None = None, low_open: bool = False, scale: str | None = None,
         sweep: tuple[float, float, bool] | None = None, head_size: bool = False) -> Any:
    """A config field with its metadata: `label` and `help` for widgets and `--help`, `stops` for a
    slider (the default is always one), `range` checked by `check_knobs` (`low_open`: the low end is
    excluded), `scale` = "imagenet" for a knob with no meaning at toy scale (a schedule of the recipes),
    `sweep` = (lo, hi, log) where a sweep axis should start elsewhere than over the slider's stops,
    `head_size` for a size of a head (a hidden width, a prototype count, a queue length), which a recipe
    carried to a smaller backbone scales with its width (`lab.engine.recipes`)."""
    meta = {k: v for k, v in dict(label=label, help=help, stops=stops, range=range, low_open=low_open or None,
                                   scale=scale, sweep=sweep, head_size=head_size or None).items() if v is not None}
    return dataclasses.field(default=default, metadata=meta)


def check_knobs(config: Any) -> None:
    """Range-check every field of a config dataclass that declares a `range` (the first bad one raises)."""
    for f in dataclasses.fields(config):
        bounds = f.metadata.get("range")
        value = getattr(config, f.name)
        if bounds is None or value is None:
            continue
        if field_kind(f) is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{f.name} must be an integer in [{bounds[0]}, {bounds[1]}], got {value!r}")
        check_range(f.name, value, bounds[0], bounds[1], low_open=bool(f.metadata.get("low_open")))
