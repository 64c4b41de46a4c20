"""Matplotlib figures for notebooks and the shipped assets (README, docs/).

Pure rendering: every function takes metrics (the CLI's metrics.json "runs" mapping, or
`{name: run.metrics()}`) or finished runs, and returns a Figure, a PIL image or text. Nothing here
trains. Figures use the object-oriented API (`matplotlib.figure.Figure`, no pyplot state), so they
are safe to build in Streamlit scripts and worker threads.

- `fig_b1`: the paper's Fig. B.1, center vector magnitude against epoch (or step) for the settings.
- `final_frames_grid`: the paper's Fig. B.2, the last frame of each run tiled in a grid.
- `summary_table`: final ‖s‖ and the first epoch past a threshold, as fixed-width text.
- `fig_bands`: the paper's Figs. 3 and 4, per metric the mean over seeds with a min–max band per setting.
- `save_png`: write a Figure or a PIL image to PNG atomically.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image, ImageDraw

from lab.core import vocab
from lab.render import style

X_AXES = {"epoch": "epoch", "step": "optimizer step"}

# Warm hues = mini-batch SGD, cool hues = batch SGD; the darker one of each pair = centered augmentation.
# (Okabe-Ito colours, distinct from the green/blue/red arrow colours of the frames.)
SETTING_COLORS = {
    "mini_batch_sgd_centered_augmentation": "#D55E00",
    "mini_batch_sgd_shifted_augmentation": "#E69F00",
    "batch_sgd_centered_augmentation": "#0072B2",
    "batch_sgd_shifted_augmentation": "#56B4E9",
}
_FALLBACK_COLORS = ["#009E73", "#CC79A7", "#000000", "#F0E442", "#7f7f7f", "#8c564b"]

def setting_label(name: str) -> str:
    """A readable label for a run name: 'mini_batch_sgd_shifted_augmentation' -> 'mini-batch SGD, shifted aug.'."""
    text = name
    for old, new in (("mini_batch_sgd", "mini-batch SGD,"), ("batch_sgd", "batch SGD,"),
                     ("_augmentation", " aug.")):
        text = text.replace(old, new)
    return text.replace("_", " ").strip(" ,")


def _setting_colors(names: Sequence[str]) -> dict[str, str]:
    colors, spare = {}, iter(_FALLBACK_COLORS * (1 + len(names) // len(_FALLBACK_COLORS)))
    for name in names:
        colors[name] = SETTING_COLORS.get(name) or next(spare)
    return colors


def _series(m: Mapping[str, Sequence[float]], key: str, name: str) -> list[float]:
    if key not in m:
        raise ValueError(f"run {name!r} has no metric {key!r}; it has: {', '.join(sorted(m))}")
    return [float(v) for v in m[key]]


def fig_b1(
    metrics: Mapping[str, Mapping[str, Sequence[float]]],
    key: str = "center_norm_aug",
    also: Sequence[str] | str = ("center_norm",),
    x: str = "epoch",
    title: str | None = None,
    xlim: tuple[float, float] | None = None,
) -> Figure:
    """The paper's Fig. B.1: center vector magnitude of each setting against epoch or step.

    metrics: {setting name: {"epoch": [...], "step": [...], key: [...], ...}}, e.g. the "runs" of the
    CLI's metrics.json or `{name: run.metrics()}`. One colour per setting; `key` is drawn solid, each
    metric in `also` dashed and faded in the same colour. y runs over [0, 1.02] with a dotted line at
    ‖s‖ = 1 (collapse). x: "epoch" or "step" (optimizer steps: mini-batch SGD takes many per epoch).
    xlim: the x range to show (default: 0 to the longest run), e.g. to zoom in on the first steps.
    The solid line of setting `name` has gid f"{name}:{key}", a dashed one f"{name}:{other key}".
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if not metrics:
        raise ValueError("metrics is empty: give at least one run")
    also = (also,) if isinstance(also, str) else tuple(k for k in also if k != key)
    names = list(metrics)
    colors = _setting_colors(names)

    fig = Figure(figsize=(8.0, 5.4), layout="constrained")
    ax = fig.add_subplot()
    x_max = 0.0
    for name in names:
        m = metrics[name]
        xs = _series(m, x, name)
        x_max = max([x_max, *xs])
        for k in also:
            ys = _series(m, k, name)
            ax.plot(xs, ys, color=colors[name], linestyle=(0, (4, 2)), linewidth=1.3, alpha=0.55,
                    label=f"_{name}:{k}", gid=f"{name}:{k}")
        ys = _series(m, key, name)
        if len(ys) != len(xs):
            raise ValueError(f"run {name!r}: {len(xs)} {x} values but {len(ys)} {key} values")
        ax.plot(xs, ys, color=colors[name], linestyle="-", linewidth=2.0, label=setting_label(name),
                gid=f"{name}:{key}")

    ax.axhline(1.0, color="#777777", linestyle=":", linewidth=1.2, zorder=0)
    ax.annotate("collapse", xy=(1.0, 1.0), xycoords=("axes fraction", "data"), xytext=(4, 0),
                textcoords="offset points", va="center", ha="left", color="#555555", fontsize=9)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlim(*(xlim if xlim is not None else (0.0, x_max if x_max > 0 else 1.0)))
    ax.set_xlabel(X_AXES[x])
    ax.set_ylabel("center vector magnitude ‖s‖")
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title(title if title is not None else f"Center vector magnitude per {X_AXES[x]} (paper Fig. B.1)")

    handles = [Line2D([], [], color=colors[n], linewidth=2.0, label=setting_label(n)) for n in names]
    handles.append(Line2D([], [], color="#333333", linewidth=2.0, label=f"solid: {style.center_metric_label(key)}"))
    for k in also:
        handles.append(Line2D([], [], color="#333333", linewidth=1.3, alpha=0.55, linestyle=(0, (4, 2)),
                              label=f"dashed: {style.center_metric_label(k)}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False, fontsize=9)
    return fig


def _grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols): 1×n below four tiles, 2×2 for four, then as square as possible."""
    if n < 4:
        return 1, n
    cols = 2 if n == 4 else math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def final_frames_grid(runs: Mapping[str, object], size: int = 360, epoch: int = -1) -> Image.Image:
    """The paper's Fig. B.2: one frame per run (`draw_frame`, titled with the run name), tiled in RGB.

    runs: {name: lab.train.b1.B1Run}; four runs give a 2×2 grid (2·size square), fewer a 1×n row.
    epoch: the snapshot to draw; negative counts from the end (-1 = each run's last epoch, so runs
    of different lengths each show their own final state).
    """
    from lab.render.frames import draw_frame  # imported here: frames pulls in imageio

    if not runs:
        raise ValueError("runs is empty: give at least one run")
    if not isinstance(runs, Mapping):
        raise TypeError(f"runs must be a mapping {{name: run}}, got {type(runs).__name__}")
    rows, cols = _grid_shape(len(runs))
    grid = Image.new("RGB", (cols * size, rows * size), "white")
    for i, (name, run) in enumerate(runs.items()):
        n_snap = run.z.shape[0]
        e = epoch + n_snap if epoch < 0 else epoch
        if not 0 <= e < n_snap:
            raise ValueError(f"epoch {epoch} is out of range for run {name!r} with epochs 0..{n_snap - 1}")
        tile = draw_frame(run, e, size=size, title=name).convert("RGB")
        grid.paste(tile, ((i % cols) * size, (i // cols) * size))
    draw = ImageDraw.Draw(grid)  # thin separators between the tiles
    for c in range(1, cols):
        draw.line([(c * size, 0), (c * size, rows * size)], fill=(200, 200, 200), width=1)
    for r in range(1, rows):
        draw.line([(0, r * size), (cols * size, r * size)], fill=(200, 200, 200), width=1)
    return grid


def summary_table(
    metrics: Mapping[str, Mapping[str, Sequence[float]]],
    keys: Sequence[str] = ("center_norm_aug", "center_norm"),
    threshold: float = vocab.COLLAPSE_THRESHOLD,
) -> str:
    """Fixed-width text: per run, the epochs trained, the final value of each key and the first
    epoch at which it exceeds `threshold` ("never" if it does not)."""
    if not metrics:
        raise ValueError("metrics is empty: give at least one run")
    header = ["setting", "epochs"]
    for k in keys:
        header += [f"final {vocab.short_label(k)}", f"first > {threshold:g}"]
    rows = []
    for name, m in metrics.items():
        row = [name, str(int(m["epoch"][-1]))]
        for k in keys:
            vals = _series(m, k, name)
            first = vocab.first_epoch_above(m[k], m["epoch"], threshold)
            row += [f"{vals[-1]:.3f}", "never" if first is None else str(first)]
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, rows)])


# The paper's Fig. 3/4 colours where they name a colour (SimSiam blue, no predictor red, no
# stop-gradient pink, simplified green), in Okabe-Ito hues; other labels take the fallback colours.
BAND_COLORS = {
    "simsiam": "#0072B2",
    "no predictor": "#D55E00",
    "no stop-gradient": "#CC79A7",
    "simplified": "#009E73",
}

def fig_bands(
    runs: Mapping[str, object],
    metrics: Sequence[str] | str = ("center_norm", "knn_acc"),
    title: str | None = None,
) -> Figure:
    """The paper's Figs. 3 and 4: one subplot per metric; per run, the mean over seeds against epoch
    (solid line) with a shaded band from the seeds' minimum to their maximum.

    runs: {label: lab.train.toy.ToyRun} (reads `.epochs` and `.metrics[name]`, a (T, K) tensor of
    T evaluated epochs by K seeds). Labels in `BAND_COLORS` get the paper's colours. center_norm gets
    a dotted line at 1 ("collapse"); center norms and accuracies share the y range [0, 1.02].
    The mean line of run `label` for metric `m` has gid f"{label}:{m}", its band f"{label}:{m}:band".
    """
    metrics = _checked_band_metrics(runs, metrics)
    labels = list(runs)
    colors, widths = _band_styles(labels)
    fig = Figure(figsize=(4.6 * len(metrics) + 0.6, 4.4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    x_max, seed_counts = 0.0, []
    for ax, metric in zip(axes, metrics):
        for label in labels:
            xs, values = _band_values(label, runs[label], metric)
            x_max = max([x_max, *xs])
            seed_counts.append(values.shape[1])
            mean, low, high = values.mean(axis=1), values.min(axis=1), values.max(axis=1)
            ax.fill_between(xs, low, high, color=colors[label], alpha=0.2, linewidth=0, gid=f"{label}:{metric}:band")
            ax.plot(xs, mean, color=colors[label], linewidth=widths[label], label=label, gid=f"{label}:{metric}")
        _band_axis(ax, metric)
    for ax in axes:
        ax.set_xlim(0.0, x_max if x_max > 0 else 1.0)
    seeds = "/".join(str(n) for n in sorted(set(seed_counts)))
    fig.suptitle(title if title is not None else f"Mean over {seeds} seeds; band: min to max over the seeds")
    fig.legend(handles=[Line2D([], [], color=colors[n], linewidth=widths[n], label=n) for n in labels],
               loc="outside lower center", ncols=min(len(labels), 4), frameon=False, fontsize=9)
    return fig


def _checked_band_metrics(runs: Mapping[str, object], metrics: Sequence[str] | str) -> tuple[str, ...]:
    """`fig_bands`' input checked: a non-empty mapping of runs that all have every metric. -> the metrics."""
    if not runs:
        raise ValueError("runs is empty: give at least one run")
    if not isinstance(runs, Mapping):
        raise TypeError(f"runs must be a mapping {{label: run}}, got {type(runs).__name__}")
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not metrics:
        raise ValueError("metrics is empty: name at least one metric")
    for label, run in runs.items():
        missing = [m for m in metrics if m not in run.metrics]
        if missing:
            raise ValueError(f"run {label!r} has no metric {', '.join(map(repr, missing))}; "
                             f"available: {', '.join(sorted(run.metrics))}")
    return metrics


def _band_styles(labels: Sequence[str]) -> tuple[dict[str, str], dict[str, float]]:
    """A colour (the paper's where it has one) and a line width per run label."""
    colors, spare = {}, iter(_FALLBACK_COLORS * (1 + len(labels) // len(_FALLBACK_COLORS)))
    for label in labels:
        colors[label] = BAND_COLORS.get(label) or next(spare)
    # Each later run a little thinner, so a curve drawn over another (two collapsed runs at ‖s‖ = 1)
    # leaves the earlier one's edges visible.
    widths = {label: max(1.2, 2.6 - 0.6 * i) for i, label in enumerate(labels)}
    return colors, widths


def _band_values(label: str, run, metric: str) -> tuple[list[float], np.ndarray]:
    """One run's epochs and its (T, K) values of `metric` (a single seed as one column)."""
    values = run.metrics[metric]
    values = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float)
    if values.ndim == 1:  # a single seed
        values = values[:, None]
    xs = [float(e) for e in run.epochs]
    if len(xs) != values.shape[0]:
        raise ValueError(f"run {label!r}: {len(run.epochs)} epochs but {values.shape[0]} {metric} values")
    return xs, values


def _band_axis(ax, metric: str) -> None:
    """One panel's reference line, y range, labels and grid."""
    if metric == "center_norm":
        ax.axhline(1.0, color="#777777", linestyle=":", linewidth=1.2, zorder=0)
        ax.annotate("collapse", xy=(0.99, 1.0), xycoords=("axes fraction", "data"), xytext=(0, -3),
                    textcoords="offset points", va="top", ha="right", color="#555555", fontsize=9)
    if vocab.unit_range(metric):
        ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel(vocab.label(metric))
    ax.set_title(metric, fontsize=10)
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)


def fig_engine_claim(panels: Sequence[str], curves: Mapping[str, Mapping[int, Mapping]], title: str) -> Figure:
    """An engine experiment's figure: per panel (metric) one line per seed of every variant (a colour per
    variant, markers at the epochs that have the metric: kNN only where it was evaluated), epoch 0 = the
    untrained model. curves: `lab.claims.engine_curves`'s second value."""
    fig = Figure(figsize=(4.4 * len(panels) + 0.6, 4.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = {label: (_FALLBACK_COLORS + list(SETTING_COLORS.values()))[i % 10] for i, label in enumerate(curves)}
    for ax, metric in zip(axes, panels):
        for label, seeds in curves.items():
            for seed, c in seeds.items():
                pts = [(e, v) for e, v in zip(c["epoch"], c.get(metric, [])) if v is not None]
                if pts:
                    ax.plot(*zip(*pts), color=colors[label], marker="o", markersize=3.5, linewidth=1.3, alpha=0.8)
        if metric.startswith("center_norm"):
            ax.axhline(vocab.COLLAPSE_THRESHOLD, color="#777777", linestyle=":", linewidth=1.2, zorder=0)
        if vocab.unit_range(metric):
            ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("epoch (0 = untrained)")
        ax.set_title(vocab.label(metric) + (" (pre-BN)" if metric == "center_norm" else ""), fontsize=10)
        ax.grid(True, color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
    fig.suptitle(title, fontsize=11)
    fig.legend(handles=[Line2D([], [], color=colors[n], marker="o", label=f"{n} ({len(curves[n])} seeds)")
                        for n in curves], loc="outside lower center", ncols=min(len(curves), 4), frameon=False,
               fontsize=9)
    return fig


def save_png(fig_or_image: Figure | Image.Image, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write a Matplotlib Figure (dpi, tight bounding box) or a PIL image to `path` as PNG, atomically:
    the bytes go to `path + ".part"` first, which is then renamed over `path`. Returns the path."""
    path = Path(path)
    if not isinstance(fig_or_image, (Figure, Image.Image)):
        raise TypeError(f"expected a matplotlib Figure or a PIL image, got {type(fig_or_image).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        if isinstance(fig_or_image, Figure):
            fig_or_image.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        else:
            img = fig_or_image
            if img.mode not in ("1", "L", "LA", "I", "P", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
            img.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
