"""Pictures of toy runs (`lab.train.toy.ToyRun`): the feature animation, GIFs, and metric curves over seeds.

A toy run holds z: (T, K, N, D) features of the training points at the evaluated epochs for K seeds,
s: (T, K, D) their centers, and metrics {name: (T, K)}. Points are coloured by class; the green arrow
is the center s of all training points; grey lines are residuals r = z − s for a few points per class.
At D > 3 the pictures show the first three coordinates renormalised onto the sphere, and say so.

The GIF frames reuse the B.1 frame machinery (`lab.render.frames`: canvas, discs, arrows, one fixed
palette, imageio with mode "L" and the palette beside it); the Plotly figures reuse its layout choices
(legend at the side, title above the play buttons, epoch slider below).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Mapping, Sequence

import imageio.v3 as iio
import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from lab.core import vocab
from lab.methods import method_class
from lab.render import style
from lab.render.frames import BLACK, GRID, TEXT, WHITE, _arrow, _Canvas, _font
from lab.render.interactive import _outline, _segments, animation_controls
from lab.core.schedules import evenly_spaced
from lab.train.changes import change_caption

CLASS_COLORS = ((31, 119, 180), (255, 127, 14), (148, 103, 189))  # blue, orange, purple: none is the center's green
RESIDUAL_COLOR = (150, 150, 150)
CENTER_COLOR = style.CENTER_COLORS["s_data"]
BAND_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
BAND_DASHES = ("solid", "dash", "dot", "dashdot")  # a run's metrics after the first

def class_color(c: int) -> str:
    return style.hex_color(CLASS_COLORS[c % len(CLASS_COLORS)])


# ---------------------------------------------------------------- what a picture shows


def shown_features(run, seed_index: int = 0) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The features and center a picture draws for one seed.

    -> z: (T, N, d) with d = D for D ≤ 3, else the first 3 coordinates renormalised; s: (T, d) the
    center of exactly those points (= run.s at D ≤ 3); note: None, or a sentence saying what was projected.
    """
    k = run.z.shape[1]
    if not 0 <= seed_index < k:
        raise ValueError(f"seed_index must be in [0, {k - 1}], got {seed_index!r}")
    z = np.nan_to_num(run.z[:, seed_index].numpy().astype(np.float64))
    dim = z.shape[-1]
    note = None
    if dim > 3:
        z = z[..., :3]
        z = z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
        note = f"D = {dim}: showing the first 3 coordinates, renormalised"
    return z, z.mean(axis=-2), note


def _frame_indices(run, max_frames: int | None) -> list[int]:
    """Indices into run.epochs (evaluated epochs) that become frames, first and last included."""
    return evenly_spaced(len(run.epochs) - 1, max_frames)


def _residual_points(labels: np.ndarray, per_class: int) -> np.ndarray:
    """A few evenly spread points of each class that get a residual arrow."""
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        take = np.unique(np.linspace(0, len(idx) - 1, min(per_class, len(idx))).round().astype(int))
        picks.append(idx[take])
    return np.concatenate(picks) if picks else np.zeros(0, int)


def _pull_arrows(run, seed_index: int, d: int, longest: float = 0.35):
    """The pull arrows of one seed in the shown coordinates (the first d), scaled so that the longest arrow
    of the run is `longest` long: (points (P,), common (T, d), residual (T, P, d)), or None where the run
    has none."""
    arrows = getattr(run, "pull_arrows", None)
    if not arrows:
        return None
    points = arrows["points"][seed_index].numpy()
    common = np.nan_to_num(arrows["common"][:, seed_index, :d].numpy().astype(np.float64))
    residual = np.nan_to_num(arrows["residual"][:, seed_index, :, :d].numpy().astype(np.float64))
    top = max(np.linalg.norm(common, axis=-1).max(initial=0.0), np.linalg.norm(residual, axis=-1).max(initial=0.0))
    gain = longest / top if top > 0 else 0.0
    return points, common * gain, residual * gain


def _true_norm(run, t: int, seed_index: int) -> float:
    return float(np.nan_to_num(run.s[t, seed_index].norm().item()))


# ---------------------------------------------------------------- Plotly animation


def toy_animation(
    run,
    seed_index: int = 0,
    max_frames: int = 51,
    residuals_per_class: int = 4,
    height: int = 540,
    frame_ms: int = 120,
    title: str | None = None,
) -> go.Figure:
    """One seed's features per evaluated epoch as a Plotly animation (play/pause, epoch slider).

    D = 2: the unit circle; D = 3: the sphere (Scatter3d); D > 3: the first 3 coordinates renormalised
    (the title says so). Points coloured by class, the center s in green, grey residuals r = z − s, and
    where the run has them (`ToyRun.pull_arrows`) the loss's pull on a few points split as in eq. 4
    (`lab.core.pull`): the common part (the mean pull, the same arrow at every point, orange) and each point's
    residual part (purple), drawn from the point, one scale for the whole run.
    """
    scene = _Scene(run, seed_index, residuals_per_class)
    frames_at = _frame_indices(run, max_frames)
    static = _outline(scene.d)
    first = scene.traces(frames_at[0], full=True)
    moving = list(range(len(static), len(static) + len(first)))
    heading = " · ".join(x for x in (title, scene.note) if x) or None
    frames = [dict(data=scene.traces(t, full=False), traces=moving, name=str(run.epochs[t])) for t in frames_at]
    if getattr(run.config, "changes", ()):  # each frame names the knob changes made by its epoch
        for frame, t in zip(frames, frames_at):
            text = " · ".join(x for x in (heading, events_so_far(run, t)) if x)
            frame["layout"] = dict(title=dict(text=text or None))
        heading = " · ".join(x for x in (heading, events_so_far(run, frames_at[0])) if x) or None
    fig = go.Figure(data=static + first, frames=frames, _validate=False)
    fig.update_layout(
        # As in lab.render.interactive: title at the very top, buttons under it, legend at the side,
        # the epoch slider alone below the plot.
        height=height, title=dict(text=heading, y=0.99, yanchor="top", font=dict(size=14)) if heading else None,
        margin=dict(l=10, r=10, t=70 if heading else 40, b=10),
        legend=dict(orientation="v", x=1.02, xanchor="left", y=1.0, font=dict(size=11), itemsizing="constant"),
        **animation_controls([str(run.epochs[t]) for t in frames_at], frame_ms, redraw=scene.three),
    )
    _scene_axes(fig, scene.three)
    return fig


class _Scene:
    """What `toy_animation` draws of one seed, in the shown coordinates (`shown_features`): per evaluated
    epoch t, the points by class, the residuals of a few points, the center arrow and the pull arrows."""

    def __init__(self, run, seed_index: int, residuals_per_class: int):
        self.run, self.seed_index = run, seed_index
        self.z, self.s, self.note = shown_features(run, seed_index)
        self.d = self.z.shape[-1]
        self.three = self.d == 3
        self.arrows = _pull_arrows(run, seed_index, self.d)
        self.labels = run.data.y_train.numpy()
        self.res_idx = _residual_points(self.labels, residuals_per_class)
        self.classes = sorted(int(c) for c in np.unique(self.labels))

    def traces(self, t: int, full: bool) -> list[dict]:
        """Epoch t's moving traces; full=False: only their coordinates and names (an animation frame)."""
        kind = "scatter3d" if self.three else "scatter"
        out = []
        for kw in [*self._points(t), self._residuals(t), self._center(t), *self._pulls(t)]:
            keep = kw if full else {k: v for k, v in kw.items() if k in ("x", "y", "z", "name")}
            out.append({"type": kind, **keep})
        return out

    def _xyz(self, p: np.ndarray) -> dict:
        out = {"x": p[:, 0].round(4).tolist(), "y": p[:, 1].round(4).tolist()}
        if self.three:
            out["z"] = p[:, 2].round(4).tolist()
        return out

    def _points(self, t: int) -> list[dict]:
        z, labels = self.z, self.labels
        return [dict(**self._xyz(z[t, labels == c]), mode="markers", name=f"class {c}", hoverinfo="skip",
                     marker=dict(size=3 if self.three else 6, color=class_color(c), opacity=0.8))
                for c in self.classes]

    def _residuals(self, t: int) -> dict:
        seg = _segments(np.repeat(self.s[t][None], len(self.res_idx), 0), self.z[t, self.res_idx])
        return dict(**dict(zip("xyz", seg)), mode="lines", name="residuals r = z − s", hoverinfo="skip",
                    line=dict(color=style.hex_color(RESIDUAL_COLOR), width=2))

    def _center(self, t: int) -> dict:
        norm = _true_norm(self.run, t, self.seed_index)
        full_dim = self.run.z.shape[-1]
        label = f"center s (‖s‖={norm:.2f})" if full_dim <= 3 else f"center s (‖s‖={norm:.2f} in {full_dim}-D)"
        seg = _segments(np.zeros((1, self.d)), self.s[t][None])
        # 2-D: an arrowhead; 3-D (no arrow symbol there): a dot on the tip.
        kw = {"marker": dict(size=[0, 6, 0], color=style.hex_color(CENTER_COLOR))} if self.three else \
            {"marker": dict(symbol="arrow", size=14, angleref="previous", color=style.hex_color(CENTER_COLOR))}
        return dict(**dict(zip("xyz", seg)), mode="lines+markers", name=label, hoverinfo="name",
                    line=dict(color=style.hex_color(CENTER_COLOR), width=6 if self.three else 4), **kw)

    def _pulls(self, t: int) -> list[dict]:
        if self.arrows is None:
            return []
        points, common, residual = self.arrows
        starts = self.z[t, points]
        out = []
        for vec, color, name in ((np.repeat(common[t][None], len(points), 0), style.CENTER_TERM_COLOR,
                                  "pull: common part (mean over points)"),
                                 (residual[t], style.RESIDUAL_TERM_COLOR, "pull: residual part")):
            seg = _segments(starts, starts + vec)
            tip = [0, 4, 0] * len(points) if self.three else [0, 9, 0] * len(points)
            kw = {"marker": dict(size=tip, color=style.hex_color(color))} if self.three else \
                {"marker": dict(symbol="arrow", size=tip, angleref="previous", color=style.hex_color(color))}
            out.append(dict(**dict(zip("xyz", seg)), mode="lines+markers", name=name, hoverinfo="name",
                            line=dict(color=style.hex_color(color), width=4 if self.three else 2), **kw))
        return out


def _scene_axes(fig: go.Figure, three: bool) -> None:
    """The sphere's cube (3-D) or the circle's square plane (2-D), axes hidden."""
    if three:
        axis = dict(range=[-1.15, 1.15], visible=False)
        # Closer than Plotly's default eye (1.25, 1.25, 1.25), which leaves the sphere small.
        fig.update_layout(scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube",
                                     camera=dict(eye=dict(x=0.85, y=0.85, z=0.65)), domain=dict(x=[0, 1], y=[0, 1])))
    else:
        fig.update_xaxes(range=[-1.2, 1.2], zeroline=False, showgrid=False, visible=False)
        fig.update_yaxes(range=[-1.2, 1.2], scaleanchor="x", scaleratio=1, zeroline=False, showgrid=False,
                         visible=False)
        fig.update_layout(plot_bgcolor="white")


# ---------------------------------------------------------------- GIF frames

CENTER_INDEX, RESIDUAL_INDEX = 4, 5
CLASS0 = 16
FADED_CLASS0 = CLASS0 + len(CLASS_COLORS)


@lru_cache(maxsize=1)
def toy_palette() -> bytes:
    """The 256-colour palette of every toy frame (768 bytes). Indices 0–3 as in `frames.palette()`
    (the canvas fills with WHITE), then the center, residual and class colours; unused slots unique."""
    colors = [(i, 0, 1) for i in range(256)]
    colors[WHITE], colors[BLACK], colors[GRID], colors[TEXT] = (255,) * 3, (0,) * 3, (200,) * 3, (60,) * 3
    colors[CENTER_INDEX], colors[RESIDUAL_INDEX] = CENTER_COLOR, RESIDUAL_COLOR
    for i, rgb in enumerate(CLASS_COLORS):
        colors[CLASS0 + i] = rgb
        colors[FADED_CLASS0 + i] = style.fade(rgb)
    return bytes(c for rgb in colors for c in rgb)


def draw_toy_frame(
    z: np.ndarray,
    s: np.ndarray,
    labels: np.ndarray,
    size: int = 400,
    caption: str = "",
    title: str | None = None,
    res_idx: np.ndarray | None = None,
) -> Image.Image:
    """One 'P'-mode frame (`toy_palette()`): z (N, d) shown features (d = 2 or 3), s (d,) their center,
    labels (N,) classes. caption: top-left line (epoch, ‖s‖); title: a second, smaller line."""
    n, d = z.shape
    canvas = _Canvas(size, d)
    hues = CLASS0 + (labels % len(CLASS_COLORS))
    r_big = max(2, size // 130)
    px, py, depth = canvas.to_screen(z)
    canvas.stamp(px, py, np.where(depth >= 0, hues, hues + len(CLASS_COLORS)), r_big)
    img = Image.fromarray(canvas.pixels, mode="P")
    img.putpalette(toy_palette())
    draw = ImageDraw.Draw(img)
    t = np.linspace(0, 2 * np.pi, 181)
    draw.line([(canvas.cx + canvas.scale * math.cos(a), canvas.cy - canvas.scale * math.sin(a)) for a in t],
              fill=GRID, width=max(1, size // 300))
    if d == 3:
        ex, ey, _ = canvas.to_screen(np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], 1))
        draw.line(list(zip(ex, ey)), fill=GRID, width=1)
    width, head = max(2, size // 160), size / 28
    sx, sy, _ = canvas.to_screen(s)
    for i in res_idx if res_idx is not None else []:
        _arrow(draw, sx, sy, px[i], py[i], RESIDUAL_INDEX, max(1, width // 2), head * 0.45)
    ox, oy, _ = canvas.to_screen(np.zeros(d))
    _arrow(draw, ox, oy, sx, sy, CENTER_INDEX, width + 1, head)
    draw.ellipse([ox - 2, oy - 2, ox + 2, oy + 2], fill=BLACK)

    font, small = _font(max(9, size // 30)), _font(max(8, size // 40))
    pad = size // 60
    draw.text((pad, pad), caption, fill=TEXT, font=font)
    if title:
        draw.text((pad, pad + font.size + 2), title, fill=TEXT, font=small)
    legend = [(CENTER_INDEX, "center s"), (RESIDUAL_INDEX, "r = z - s")] + \
             [(CLASS0 + c, f"class {c}") for c in range(len(CLASS_COLORS))]
    x, y = pad, size - pad - small.size - 3
    for color, label in legend:
        w = small.size * 1.3 + draw.textlength(label, font=small) + small.size
        if x + w > size - pad:
            break
        draw.rectangle([x, y + small.size * 0.3, x + small.size, y + small.size * 0.7], fill=color)
        draw.text((x + small.size * 1.3, y), label, fill=TEXT, font=small)
        x += w
    return img


def events_so_far(run, t: int, ascii_only: bool = False) -> str:
    """The knob changes a run made by its t-th recorded epoch, in words ("Stop-gradient off at epoch 120")."""
    said = [change_caption(ch, run.config.method) for ch in getattr(run.config, "changes", ())
            if ch.epoch <= run.epochs[t]]
    text = "; ".join(said)
    return text.replace("→", "->").replace("−", "-") if ascii_only else text


def _run_frame(run, t: int, seed_index: int, size: int, title: str | None, shown=None) -> Image.Image:
    z, s, note = shown if shown is not None else shown_features(run, seed_index)
    labels = run.data.y_train.numpy()
    caption = f"epoch {run.epochs[t]}/{run.config.epochs}   |s| {_true_norm(run, t, seed_index):.2f}"
    # ASCII only: Pillow's default font has no "−" or "‖".
    sub = ", ".join(x for x in (title, note and f"first 3 of {run.z.shape[-1]} dims, renormalised",
                                events_so_far(run, t, ascii_only=True)) if x) or None
    return draw_toy_frame(z[t], s[t], labels, size, caption, sub, _residual_points(labels, 3))


def _check_gif_args(fps: float, size: int) -> None:
    if not (math.isfinite(fps) and 0.5 <= fps <= 60):
        raise ValueError(f"fps must be in [0.5, 60], got {fps!r}")
    if not (64 <= size <= 2048):
        raise ValueError(f"size must be in [64, 2048] pixels, got {size!r}")


def _encode(frames: np.ndarray, fps: float, loop: int, hold_last: float) -> bytes:
    # Palette indices go in as "L" with the palette beside them (see lab.render.frames.gif_bytes):
    # Pillow then keeps the palette as given. GIF delays are in 1/100 s.
    if len(frames) == 1:  # a run that diverged in its first epoch; Pillow's GIF writer needs ≥ 2 for a list
        frames = np.concatenate([frames, frames])
    frame_ms = max(20, int(round(100.0 / fps)) * 10)
    durations = [frame_ms] * len(frames)
    durations[-1] += int(hold_last * 1000)
    return iio.imwrite("<bytes>", frames, extension=".gif", mode="L", palette=toy_palette(),
                       duration=durations, loop=loop, optimize=False)


def toy_gif_bytes(
    run,
    seed_index: int = 0,
    fps: float = 12.0,
    size: int = 400,
    max_frames: int | None = 51,
    title: str | None = None,
    loop: int = 0,
    hold_last: float = 1.0,
) -> bytes:
    """An animated GIF of one seed's features, one frame per evaluated epoch (at most `max_frames`)."""
    _check_gif_args(fps, size)
    shown = shown_features(run, seed_index)
    frames = np.stack([np.asarray(_run_frame(run, t, seed_index, size, title, shown))
                       for t in _frame_indices(run, max_frames)])
    return _encode(frames, fps, loop, hold_last)


def progress_indices(run, n_frames: int) -> list[int]:
    """For frames at training progress 0 … 1 (n_frames evenly), the evaluated epoch index of `run`
    nearest to that progress; a run that stopped early (diverged) holds its last snapshot."""
    epochs = np.asarray(run.epochs, dtype=float)
    total = max(run.config.epochs, 1)
    targets = np.linspace(0.0, 1.0, n_frames) * total
    return [int(np.abs(epochs - t).argmin()) for t in targets]


def side_by_side_gif(
    run_a,
    run_b,
    titles: Sequence[str] = ("A", "B"),
    seed_index: int = 0,
    fps: float = 12.0,
    size: int = 360,
    max_frames: int = 51,
    loop: int = 0,
    hold_last: float = 1.0,
) -> bytes:
    """Two runs' frames side by side (each `size` pixels square, titled), aligned by training progress:
    frame i shows each run at i/(n−1) of its own epochs, so runs of different length end together."""
    _check_gif_args(fps, size)
    runs = (run_a, run_b)
    n = max(2, min(max_frames, max(len(r.epochs) for r in runs)))
    shown = [shown_features(r, min(seed_index, r.z.shape[1] - 1)) for r in runs]
    index = [progress_indices(r, n) for r in runs]
    gap = np.full((size, max(2, size // 100)), GRID, dtype=np.uint8)
    frames = []
    for i in range(n):
        panels = [np.asarray(_run_frame(r, index[j][i], min(seed_index, r.z.shape[1] - 1), size, titles[j],
                                        shown[j])) for j, r in enumerate(runs)]
        frames.append(np.concatenate([panels[0], gap, panels[1]], axis=1))
    return _encode(np.stack(frames), fps, loop, hold_last)


# ---------------------------------------------------------------- curves over seeds


def reference_lines(run, metric: str) -> list[tuple[float, str]]:
    """Reference values of a metric for this run (`lab.core.vocab.reference_lines`): (y, label). Empty where the
    metric has none."""
    cfg = run.config
    entropy = run.metrics.get("teacher_entropy_max")
    return vocab.reference_lines(
        metric, dim=cfg.dim, n_classes=int(run.data.y_train.max()) + 1,
        collapse_loss=method_class(cfg.method).collapse_value(cfg.method_config, cfg.dim, cfg.batch_size),
        entropy_max=None if entropy is None else float(entropy[0, 0]))


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def metric_band_figure(
    runs: Mapping[str, object],
    metric: str | Sequence[str],
    x: str = "epoch",
    band: str = "minmax",
    height: int = 300,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Mean over seeds (line) with a shaded band (min–max, or ±1 std) per run, and reference lines.

    runs: {label: ToyRun or ToyCurves}; metric: one name or several (then one line per run and metric, dashed after
    the first); x: "epoch" or "step" (optimizer steps). Runs without the metric are skipped.
    Reference lines: center_norm 1 (collapse), z_std 1/√D, teacher_entropy ln K, accuracies chance,
    effective_rank D, loss the method's collapse value where it is a number.
    """
    if x not in ("epoch", "step"):
        raise ValueError(f"x must be 'epoch' or 'step', got {x!r}")
    if band not in ("minmax", "std"):
        raise ValueError(f"band must be 'minmax' or 'std', got {band!r}")
    names = [metric] if isinstance(metric, str) else list(metric)
    fig = go.Figure()
    refs: dict[float, str] = {}
    for r, (label, run) in enumerate(runs.items()):
        color = (colors or {}).get(label) or BAND_COLORS[r % len(BAND_COLORS)]
        xs = np.asarray(run.epochs, dtype=float)
        if x == "step":
            xs = xs * run.config.steps_per_epoch
        for m, name in enumerate(names):
            if name not in run.metrics:
                continue
            parts = [label] * (len(runs) > 1) + [vocab.label(name)] * (len(names) > 1)
            _add_band(fig, xs, run.metrics[name], band, color, BAND_DASHES[m % len(BAND_DASHES)],
                      line_name=" · ".join(parts) or vocab.label(name), group=f"{label}/{name}")
            for y, text in reference_lines(run, name):
                refs.setdefault(round(y, 6), text)
        _add_change_lines(fig, run, x, color)
    for y, text in refs.items():
        fig.add_hline(y=y, line=dict(color="#888", dash="dot", width=1), annotation_text=text,
                      annotation_position="top left", annotation_font=dict(size=10, color="#666"))
    _band_layout(fig, names, len(runs), x, height, title)
    return fig


def _add_band(fig: go.Figure, xs: np.ndarray, values, band: str, color: str, dash: str, line_name: str,
              group: str) -> None:
    """One run's metric: the mean over seeds as a line, and the band around it where there are several seeds.
    values: (T, K)."""
    v = values.double().numpy()  # (T, K)
    mean = v.mean(1)
    lo, hi = (v.min(1), v.max(1)) if band == "minmax" else (mean - v.std(1), mean + v.std(1))
    if v.shape[1] > 1:
        fig.add_trace(go.Scatter(
            x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
            fillcolor=_rgba(color, 0.18), line=dict(width=0), hoverinfo="skip", showlegend=False,
            legendgroup=group, name=f"{line_name} ({'min–max' if band == 'minmax' else '±1 std'})"))
    fig.add_trace(go.Scatter(x=xs, y=mean, mode="lines", name=line_name, legendgroup=group,
                             line=dict(color=color, width=2, dash=dash)))


def _add_change_lines(fig: go.Figure, run, x: str, color: str) -> None:
    """A marked line at every knob change of the run."""
    for ch in getattr(run.config, "changes", ()):
        at = ch.epoch * (run.config.steps_per_epoch if x == "step" else 1)
        fig.add_vline(x=at, line=dict(color=color, dash="dash", width=1),
                      annotation_text=change_caption(ch, run.config.method), annotation_position="top right",
                      annotation_font=dict(size=10, color=color))


def _band_layout(fig: go.Figure, names: Sequence[str], n_runs: int, x: str, height: int, title: str | None) -> None:
    y_title = vocab.label(names[0]) if len(names) == 1 else None
    legend = n_runs > 1 or len(names) > 1
    fig.update_layout(
        height=height, title=dict(text=title, font=dict(size=14)) if title else None,
        margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        yaxis_title=y_title, showlegend=legend, xaxis_title="optimizer step" if x == "step" else "epoch",
        # Under the x-axis title (top-anchored, so Plotly grows the bottom margin for it, not over the title).
        legend=dict(orientation="h", yanchor="top", y=-0.3, x=0, font=dict(size=11)),
    )
    if vocab.unit_range(names[0]):
        fig.update_yaxes(range=[0, 1.05])
