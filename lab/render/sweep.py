"""The sweep's heatmap (`lab.train.sweep.Sweep`): one square per cell, coloured by the mean final metric over
its seeds, with how many seeds ended above the collapse threshold of ‖s‖ as the cell's text.

Squares of a scatter trace rather than a heatmap trace, so that a click on a cell selects a point the page
can read (`st.plotly_chart(on_select=...)`); each point's customdata is its (iy, ix). Cells still training
are grey with "…".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from lab.core import vocab

PENDING_COLOR = "#d9d9d9"


def axis_title(knob: str | None, log: bool = False) -> str:
    if knob is None:
        return ""
    return f"{knob} (log scale)" if log else knob


def _tick(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def metric_title(metric: str) -> str:
    """'final ‖s‖ of the normalised projector output': the metric and where it is read (`lab.core.vocab`)."""
    m = vocab.METRICS.get(metric)
    if metric == "center_norm":
        return "final ‖s‖ of the normalised projector output"
    where = f" ({m.where})" if m and m.where else ""
    return f"final {vocab.label(metric)}{where}"


def sweep_heatmap(sweep, metric: str = "center_norm", height: int = 520, selected: tuple[int, int] | None = None,
                  title: str | None = None, selected_seed: int = 0) -> go.Figure:
    """The grid as squares: colour = mean over seeds of the final `metric`, text = "k/K" seeds whose final
    ‖s‖ exceeds the threshold (K the cell's seeds; "×" marks a cell with a diverged seed).

    One knob and the seed (`sweep.y.knob` None): one row per seed, each square that seed's own value
    ("1/1" or "0/1"). customdata of a square: (iy, ix, seed index or -1); `selected` (iy, ix) with
    `selected_seed` gets a red outline."""
    ny, nx = sweep.shape
    by_seed = sweep.y.knob is None
    rows = sweep.seeds if by_seed else ny
    squares = _squares(sweep, metric, by_seed)
    size = max(18, min(70, int(0.72 * (height - 140) / max(rows, 1)), int(0.72 * 620 / max(nx, 1))))
    traces = squares.traces(metric, size)
    if selected is not None:
        iy, ix = selected
        traces.append(go.Scatter(x=[ix], y=[selected_seed if by_seed else iy], mode="markers", hoverinfo="skip", showlegend=False, name="selected",
                                 marker=dict(symbol="square-open", size=size + 6, color="red", line=dict(width=3))))
    fig = go.Figure(traces)
    heading = title or (f"{metric_title(metric)}, " + ("one row per seed" if by_seed else
                        f"mean of {sweep.seeds} seed(s) per cell") + f"; text: seeds with final ‖s‖ > {sweep.threshold:g}")
    fig.update_layout(
        height=height, title=dict(text=heading, font=dict(size=14)), plot_bgcolor="white",
        margin=dict(l=10, r=10, t=60, b=10), clickmode="event+select", dragmode=False,
    )
    fig.update_xaxes(title=axis_title(sweep.x.knob, sweep.x.log), tickmode="array", tickvals=list(range(nx)),
                     ticktext=[_tick(v) for v in sweep.x.values], range=[-0.6, nx - 0.4], showgrid=False,
                     zeroline=False)
    if by_seed:
        fig.update_yaxes(title="seed", tickmode="array", tickvals=list(range(rows)),
                         ticktext=[str(sweep.base.seed + s) for s in range(rows)], range=[-0.6, rows - 0.4],
                         showgrid=False, zeroline=False)
    else:
        fig.update_yaxes(title=axis_title(sweep.y.knob, sweep.y.log), tickmode="array", tickvals=list(range(ny)),
                         ticktext=[_tick(v) for v in sweep.y.values], range=[-0.6, ny - 0.4], showgrid=False,
                         zeroline=False)
    return fig


@dataclass
class _Squares:
    """The heatmap's squares in drawing order, one per cell (per cell and seed where a row is a seed):
    position, colour value (NaN: none), text, customdata, hover text, and whether the cell still trains."""

    x: list = field(default_factory=list)
    y: list = field(default_factory=list)
    color: list = field(default_factory=list)
    text: list = field(default_factory=list)
    custom: list = field(default_factory=list)
    hover: list = field(default_factory=list)
    pending: list = field(default_factory=list)

    def add(self, x: int, y: int, custom: list, color: float, text: str, hover: str, pending: bool) -> None:
        for name, value in (("x", x), ("y", y), ("custom", custom), ("color", color), ("text", text),
                            ("hover", hover), ("pending", pending)):
            getattr(self, name).append(value)

    def pick(self, name: str, pending: bool) -> list:
        return [v for v, p in zip(getattr(self, name), self.pending) if p == pending]

    def traces(self, metric: str, size: int) -> list[go.Scatter]:
        """The finished squares coloured on one scale (Viridis, [0, 1] for a unit-range metric), the pending
        ones grey."""
        colors = self.pick("color", False)
        finite_colors = [c for c in colors if math.isfinite(c)]
        cmin, cmax = (0.0, 1.0) if vocab.unit_range(metric) or not finite_colors else (min(finite_colors),
                                                                                       max(finite_colors))
        if cmin == cmax:
            cmin, cmax = cmin - 0.5, cmax + 0.5
        textcolor = ["white" if math.isfinite(c) and (c - cmin) / (cmax - cmin) > 0.55 else "black" for c in colors]
        traces = [go.Scatter(
            x=self.pick("x", False), y=self.pick("y", False), mode="markers+text", text=self.pick("text", False),
            customdata=self.pick("custom", False), hovertext=self.pick("hover", False), hoverinfo="text",
            textfont=dict(size=max(9, size // 5), color=textcolor),
            marker=dict(symbol="square", size=size, color=[c if math.isfinite(c) else cmin for c in colors],
                        colorscale="Viridis", cmin=cmin, cmax=cmax, line=dict(width=1, color="white"),
                        colorbar=dict(title=dict(text=vocab.short_label(metric), side="right"))),
            name="cells", showlegend=False)]
        if any(self.pending):
            traces.append(go.Scatter(
                x=self.pick("x", True), y=self.pick("y", True), mode="markers+text", text=self.pick("text", True),
                customdata=self.pick("custom", True), hovertext=self.pick("hover", True), hoverinfo="text",
                marker=dict(symbol="square", size=size, color=PENDING_COLOR, line=dict(width=1, color="white")),
                name="training", showlegend=False))
        return traces


def _squares(sweep, metric: str, by_seed: bool) -> _Squares:
    """Every cell's square (every cell and seed's where a row is a seed), a pending cell's grey."""
    ny, nx = sweep.shape
    values = sweep.final(metric)
    above = sweep.final("center_norm") > sweep.threshold
    out = _Squares()
    for row in range(sweep.seeds if by_seed else ny):
        iy, seed = (0, row) if by_seed else (row, -1)
        for ix in range(nx):
            run = sweep.runs[iy][ix]
            settings = ", ".join(f"{n} = {_tick(v)}" for n, v in sweep.cell_settings(iy, ix).items())
            if by_seed:
                settings += f", seed {sweep.base.seed + seed}"
            if run is None:
                out.add(ix, row, [iy, ix, seed], math.nan, "…", f"{settings}<br>training…", pending=True)
                continue
            cell = values[iy, ix] if not by_seed else values[iy, ix, seed:seed + 1]
            count, k = (int(above[iy, ix].sum()), sweep.seeds) if not by_seed else (int(above[iy, ix, seed]), 1)
            finite = cell[np.isfinite(cell)]
            mean = float(finite.mean()) if finite.size else math.nan
            per_seed = ", ".join("—" if not math.isfinite(v) else f"{v:.3f}" for v in cell)
            hover = (f"{settings}<br>{vocab.label(metric)}: " + (f"{per_seed}" if by_seed else
                     f"mean {mean:.3f} (seeds: {per_seed})") + f"<br>‖s‖ > {sweep.threshold:g} in {count} of {k}"
                     + (f"<br>{run.diverged}" if run.diverged else ""))
            text = f"{count}/{k}" + (" ×" if not finite.size or finite.size < cell.size else "")
            out.add(ix, row, [iy, ix, seed], mean, text, hover, pending=False)
    return out


def cell_label(sweep, iy: int, ix: int) -> str:
    """'lr = 0.0331, predictor_lr_scale = 0.158': a cell as the replay picker shows it."""
    return ", ".join(f"{n} = {_tick(v)}" for n, v in sweep.cell_settings(iy, ix).items())
