"""The sweep (phase diagram): one method over a grid of two knobs (or one knob and the seed), up to 8 × 8.

Every cell is a toy setting (`lab.train.toy.ToyConfig`) with K seeds seed, seed+1, …, so a cell is exactly
`train_toy` of its setting. The cells train as few stacked programs as the maths allows (`train_toys(...,
stack_knobs=True)`): cells that differ only in the optimizer's lr, SGD momentum or weight decay, or in a
method's `seed_knobs` (SimSiam's `predictor_lr_scale`, BYOL's EMA `momentum`), share one program with
per-seed values; any other knob (Barlow Twins' λ, a temperature, a switch) splits the grid into one
program per value. `on_cells` hears of each program's cells as it finishes.

Axis text: `KNOB=LO:HI:N` (N ≤ 8 values from LO to HI, linear or log spaced) or `KNOB=V1,V2,…` (a list,
also `predictor=false,true`). LO and HI are checked against the knob's own declared range.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from lab.core.checks import check_range, field_kind, parse_text
from lab.methods import method_class
from lab.train.toy import SEED_TRAIN_FIELDS, ToyConfig, ToyRun, toy_config, train_toys
from lab.core.vocab import COLLAPSE_THRESHOLD

MAX_VALUES = 8
MAX_SEEDS = 16  # per cell: a full 8 × 8 grid then stacks 1,024 seeds


def sweep_knobs(method: str) -> dict[str, dataclasses.Field]:
    """What a sweep axis may take for `method`: the continuous training fields (lr, sgd_momentum,
    weight_decay) and the method's float and bool knobs (not those of the ImageNet schedules)."""
    out = {name: ToyConfig.__dataclass_fields__[name] for name in SEED_TRAIN_FIELDS}
    out.update((f.name, f) for f in method_class(method).toy_knobs() if field_kind(f) in (float, bool))
    return out


def stacks(method: str, knob: str | None) -> bool:
    """Whether cells that differ in `knob` train in one stacked program (None: the seed axis)."""
    return knob is None or knob in SEED_TRAIN_FIELDS or knob in method_class(method).seed_knobs


def knob_range(f: dataclasses.Field) -> str:
    bounds = f.metadata.get("range")
    if bounds is None:
        return "any number"
    return f"{'(' if f.metadata.get('low_open') else '['}{bounds[0]:g}, {bounds[1]:g}]"


@dataclass(frozen=True)
class Axis:
    """One axis of the grid: a knob and its values; knob None is the seed axis (values (None,))."""

    knob: str | None
    values: tuple
    log: bool = False

    def to_json(self) -> dict:
        return {"knob": self.knob, "values": list(self.values)}


SEED_AXIS = Axis(None, (None,))


def _field(method: str, knob: str) -> dataclasses.Field:
    knobs = sweep_knobs(method)
    if knob not in knobs:
        raise ValueError(f"cannot sweep {knob!r} for {method}; valid: {', '.join(knobs)}")
    return knobs[knob]


def _checked(knob: str, f: dataclasses.Field, value: Any) -> Any:
    bounds = f.metadata.get("range")
    if bounds is not None:
        check_range(knob, value, bounds[0], bounds[1], low_open=bool(f.metadata.get("low_open")))
    elif isinstance(value, float) and math.isnan(value):
        raise ValueError(f"{knob} takes a number, got nan")
    return value


def make_axis(method: str, knob: str, lo: float, hi: float, n: int, log: bool = False) -> Axis:
    """n values from lo to hi (log: geometric), each rounded to 6 significant digits; lo and hi must lie
    in the knob's declared range."""
    f = _field(method, knob)
    if field_kind(f) is not float:
        raise ValueError(f"{knob} is a switch: give its values as a list, e.g. {knob}=false,true")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_VALUES:
        raise ValueError(f"N (values of {knob}) must be in [1, {MAX_VALUES}], got {n!r}")
    lo, hi = _checked(knob, f, float(lo)), _checked(knob, f, float(hi))
    if n > 1 and not lo < hi:
        raise ValueError(f"{knob}: LO must be below HI, got {lo:g}:{hi:g}")
    if log and lo <= 0:
        raise ValueError(f"{knob}: log spacing needs LO > 0, got {lo:g}")
    if n == 1:
        values = [lo]
    elif log:
        values = np.geomspace(lo, hi, n).tolist()
    else:
        values = np.linspace(lo, hi, n).tolist()
    values = [float(f"{v:.6g}") for v in values]
    values[0], values[-1] = lo, hi  # the ends exactly as given
    return Axis(knob, tuple(values), log)


def default_axis(method: str, knob: str, n: int = 6) -> Axis:
    """A starting axis for a picker: the knob's own sweep range where it declares one (`lab.core.checks.knob`:
    the lr and SimSiam's predictor lr scale), else its slider stops from the smallest to the largest inside
    its range (log-spaced when they span ≥ 20×); both values of a switch."""
    f = _field(method, knob)
    if field_kind(f) is bool:
        return Axis(knob, (False, True))
    if f.metadata.get("sweep"):
        lo, hi, log = f.metadata["sweep"]
        return make_axis(method, knob, lo, hi, n, log)
    stops = sorted(set(f.metadata.get("stops") or ()) | {f.default})
    inside = []
    for v in stops:
        try:
            inside.append(_checked(knob, f, float(v)))
        except ValueError:
            continue
    inside = [v for v in inside if math.isfinite(v)]
    if len(inside) < 2:
        v = float(f.default) if math.isfinite(f.default) else 1.0
        return make_axis(method, knob, v, v, 1)
    lo, hi = inside[0], inside[-1]
    log = lo > 0 and hi / lo >= 20
    return make_axis(method, knob, lo, hi, n, log)


def parse_axis(method: str, text: str, log: bool = False) -> Axis:
    """`KNOB=LO:HI:N` or `KNOB=V1,V2,…` -> an Axis; ValueError naming the bad value and the valid range."""
    knob, sep, spec = text.partition("=")
    knob, spec = knob.strip(), spec.strip()
    if not sep or not knob or not spec:
        raise ValueError(f"an axis takes KNOB=LO:HI:N or KNOB=V1,V2,..., got {text!r}")
    f = _field(method, knob)
    kind = field_kind(f)
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise ValueError(f"{knob}: LO:HI:N takes three parts, got {spec!r}")
        lo, hi = (parse_text(knob, float, p) for p in parts[:2])
        try:
            n = int(parts[2])
        except ValueError:
            raise ValueError(f"N (values of {knob}) must be an integer in [1, {MAX_VALUES}], got {parts[2]!r}") \
                from None
        return make_axis(method, knob, lo, hi, n, log)
    values = tuple(_checked(knob, f, parse_text(knob, kind, v)) for v in spec.split(","))
    if not 1 <= len(values) <= MAX_VALUES or len(set(values)) != len(values):
        raise ValueError(f"{knob}: between 1 and {MAX_VALUES} distinct values, got {spec!r}")
    if log and kind is float and min(values) <= 0:
        raise ValueError(f"{knob}: log spacing needs values > 0, got {spec!r}")
    return Axis(knob, values, log and kind is float)


def _axis(method: str, axis: Axis | str | None, log: bool = False) -> Axis:
    if axis is None:
        return SEED_AXIS
    return parse_axis(method, axis, log) if isinstance(axis, str) else axis


@dataclass
class Sweep:
    """A trained grid. runs[iy][ix]: the cell's ToyRun (None while it trains), K seeds each."""

    method: str
    dataset: str
    x: Axis
    y: Axis
    seeds: int
    base: ToyConfig  # the setting every cell shares, before the axis values
    runs: list[list[ToyRun | None]]
    train_seconds: float = 0.0
    programs: int = 0
    cells_done: int = 0
    threshold: float = COLLAPSE_THRESHOLD

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.y.values), len(self.x.values)

    def cell_settings(self, iy: int, ix: int) -> dict[str, Any]:
        out = {self.x.knob: self.x.values[ix]}
        if self.y.knob is not None:
            out[self.y.knob] = self.y.values[iy]
        return out

    def metric_names(self) -> list[str]:
        run = next((r for row in self.runs for r in row if r is not None), None)
        return list(run.metrics) if run else []

    def final(self, metric: str) -> np.ndarray:
        """(ny, nx, K) final values of `metric` per cell and seed; NaN where a cell has not finished or a
        seed diverged."""
        ny, nx = self.shape
        out = np.full((ny, nx, self.seeds), np.nan)
        for iy in range(ny):
            for ix in range(nx):
                run = self.runs[iy][ix]
                if run is not None and metric in run.metrics:
                    out[iy, ix] = run.metrics[metric][-1].double().numpy()
        return out

    def counts_above(self, metric: str = "center_norm", threshold: float | None = None) -> np.ndarray:
        """(ny, nx) how many seeds of each cell end with `metric` above the collapse threshold (-1: pending)."""
        t = self.threshold if threshold is None else threshold
        values = self.final(metric)
        out = (values > t).sum(-1)
        out[[[self.runs[iy][ix] is None for ix in range(self.shape[1])] for iy in range(self.shape[0])]] = -1
        return out

    def to_json(self) -> dict:
        """{"method", "dataset", "x": {"knob", "values"}, "y": {...}, "seeds", "settings",
        "metrics": {NAME: [[[value per seed] per x] per y]}, "counts": {"center_norm_above": [[int per x]
        per y]}, "threshold", "diverged", "programs", "train_seconds"}; NaN (a diverged seed) as null."""
        swept = {self.x.knob, self.y.knob}
        settings = {k: v for k, v in self.base.resolved_params().items() if k not in swept and k != "seeds"}

        def clean(a: np.ndarray):
            return [[[None if not math.isfinite(v) else float(v) for v in cell] for cell in row] for row in a]

        return {
            "method": self.method,
            "dataset": self.dataset,
            "x": self.x.to_json(),
            "y": self.y.to_json(),
            "seeds": self.seeds,
            "settings": settings,
            "metrics": {name: clean(self.final(name)) for name in self.metric_names()},
            "counts": {"center_norm_above": self.counts_above().tolist()},
            "threshold": self.threshold,
            "diverged": [[(r.diverged if r is not None else None) for r in row] for row in self.runs],
            "programs": self.programs,
            "train_seconds": self.train_seconds,
        }


def plan_sweep(method: str, x: Axis | str, y: Axis | str | None = None, seeds: int = 1, dataset: str = "blobs",
               settings: Mapping[str, Any] | None = None, log_x: bool = False,
               log_y: bool = False) -> tuple[Sweep, list[ToyConfig], list[tuple[int, int]]]:
    """Check everything and lay out the cells: -> (an empty Sweep, the cells' configs, their (iy, ix))."""
    x, y = _axis(method, x, log_x), _axis(method, y, log_y)
    if x.knob is None:
        raise ValueError("the x axis needs a knob")
    if x.knob == y.knob:
        raise ValueError(f"x and y both sweep {x.knob}; pick two knobs")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"seeds (per cell) must be in [1, {MAX_SEEDS}], got {seeds!r}")
    settings = dict(settings or {})
    for axis in (x, y):
        if axis.knob in settings:
            raise ValueError(f"{axis.knob} is swept; leave it out of the fixed settings")
    base = toy_config(method, dataset, {**settings, "seeds": seeds})
    cells = [(iy, ix) for iy in range(len(y.values)) for ix in range(len(x.values))]
    sweep = Sweep(method, dataset, x, y, seeds, base, [[None] * len(x.values) for _ in y.values])
    configs = [toy_config(method, dataset, {**settings, "seeds": seeds, **sweep.cell_settings(iy, ix)})
               for iy, ix in cells]
    return sweep, configs, cells


def run_sweep(method: str, x: Axis | str, y: Axis | str | None = None, seeds: int = 1, dataset: str = "blobs",
              settings: Mapping[str, Any] | None = None, progress: Callable[[int, int], None] | None = None,
              on_cells: Callable[[Sweep, list[tuple[int, int]]], None] | None = None,
              log_x: bool = False, log_y: bool = False) -> Sweep:
    """Train the grid (axes as `Axis` or `KNOB=LO:HI:N` text; y None: one knob and the seed).

    progress(done_epochs, total_epochs) over all programs; on_cells(sweep, [(iy, ix), ...]) as each
    program finishes, its cells already in `sweep.runs`. ValueError on bad input, before any training."""
    sweep, configs, cells = plan_sweep(method, x, y, seeds, dataset, settings, log_x, log_y)
    start = time.perf_counter()

    def done(indices: list[int], runs: list[ToyRun]) -> None:
        for i, run in zip(indices, runs):
            iy, ix = cells[i]
            sweep.runs[iy][ix] = run
        sweep.programs += 1
        sweep.cells_done += len(indices)
        sweep.train_seconds = time.perf_counter() - start
        if on_cells:
            on_cells(sweep, [cells[i] for i in indices])

    train_toys(configs, progress, stack_knobs=True, on_runs=done)
    sweep.train_seconds = time.perf_counter() - start
    return sweep


def programs_needed(method: str, x: Axis, y: Axis) -> int:
    """How many stacked programs the grid trains as."""
    n = 1
    for axis in (x, y):
        if not stacks(method, axis.knob):
            n *= len(axis.values)
    return n


__all__ = ["Axis", "MAX_SEEDS", "MAX_VALUES", "SEED_AXIS", "Sweep", "default_axis", "make_axis", "parse_axis", "plan_sweep",
           "programs_needed", "run_sweep", "stacks", "sweep_knobs"]
