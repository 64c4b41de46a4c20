"""The live Real images view's data and pictures: what a rerun hands the canvas view (`live_view.js`, shared with
the toy pages), the finished run's curves, and its frames for a talk (GIF / MP4). Plain data, no Streamlit.

The run (`lab.train.real_live`) keeps its held-out rows already in 3 dimensions, on the sphere, with s seen in
the same 3 directions; here they are packed, captioned and drawn.
"""
from __future__ import annotations

import base64
import io
import math
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from lab.core import vocab
from lab.core.schedules import evenly_spaced
from lab.data.fmnist import CLASSES
from lab.render import style
from lab.render.frames import BLACK, GRID, TEXT, WHITE, _arrow, _Canvas, _font
from lab.render.live import live_curve, live_payload, pack_points
from lab.render.video import Source, check_size, export_source
from lab.train.changes import Change, change_caption

CLASS_RGB = tuple(style.hue(i, len(CLASSES)) for i in range(len(CLASSES)))
CLASS_HEX = tuple(style.hex_color(c) for c in CLASS_RGB)
CENTER_RGB = style.CENTER_COLORS["s_data"]
# Extra lines on the live chart, beside ‖s‖ of the held-out rows: (metric, label, colour, dashed)
EXTRA_CURVES = (("batch_center_norm", "‖s‖ of the step's training views", "#7f7f7f", True),
                ("knn_acc", "kNN accuracy (held-out, 5-fold)", "#ff7f0e", False))
CURVE_POINTS = 400  # readings per curve a rerun sends at most
CURVE_TITLE = "‖s‖ of the held-out images (projector output, pre-BN)"


def step_caption(change: Change, method: str) -> str:
    """'Stop-gradient off at step 100': a change of a live Real images run in words."""
    return change_caption(change, method, unit="step")


def events(changes: Sequence[Change], method: str) -> list[tuple[int, str]]:
    return [(ch.epoch, step_caption(ch, method)) for ch in changes]


def real_frames(frames: Sequence[tuple[int, object]], steps: Sequence[int], centers: np.ndarray,
                norms: Sequence[float], captions: Sequence[tuple[int, str]] = ()) -> list[list]:
    """frames: (step, points (N, 3) on the sphere), oldest first; steps, centers (T, 3) and norms (T,): every
    step read so far -> [[step, packed points, ‖s‖ (all D), caption, s in the 3 shown directions], ...]."""
    where = {int(s): i for i, s in enumerate(steps)}
    out = []
    for step, points in frames:
        i = where.get(int(step))
        if i is None:
            continue
        said = "; ".join(text for at, text in captions if at <= step)
        center = [round(float(c), 4) for c in np.nan_to_num(np.asarray(centers[i], dtype=np.float64))]
        out.append([int(step), pack_points(np.asarray(points)), float(np.nan_to_num(norms[i])), said, center])
    return out


def real_payload(run_id: str, labels, steps_total: int, frames: list[list], steps: Sequence[int],
                 metrics: Mapping[str, np.ndarray], changes: Sequence[tuple[int, str]], speed: float | None,
                 status: str, images: Sequence[str] | None = None) -> dict:
    """The live view's data (`lab.render.live.live_payload`) for a Real images run: 10 class colours, the
    x axis in steps, kNN and the training views' ‖s‖ drawn beside the held-out ‖s‖, and (once per run: the
    view keeps them) each point's image as a data URI for the hover."""
    keep = curve_points(len(steps))
    shown = [steps[i] for i in keep]
    curve = live_curve(shown, np.asarray(metrics["center_norm"])[keep] if "center_norm" in metrics else [])
    data = live_payload(run_id, labels, 3, steps_total, frames, curve, changes, speed, status,
                        colors=list(CLASS_HEX))
    data["title"] = CURVE_TITLE
    data["unit"] = "step"
    data["extra"] = [{"name": name, "color": color, "dash": dash,
                      "y": np.round(np.nan_to_num(np.asarray(metrics[key], dtype=np.float64)[keep]), 4).tolist()}
                     for key, name, color, dash in EXTRA_CURVES if key in metrics]
    data["legend"] = [[name, CLASS_HEX[i]] for i, name in enumerate(CLASSES)]
    if images is not None:
        data["images"] = list(images)
    return data


def curve_points(n: int, most: int = CURVE_POINTS) -> np.ndarray:
    """Indices of at most `most` of n readings, evenly spread, the last always in: a rerun sends the curves
    whole, several times a second, and the chart is ~600 px wide."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.append(np.linspace(0, n - 1, most - 1).round().astype(int), n - 1))


def thumbnails(images: np.ndarray, scale: int = 2) -> list[str]:
    """images: (N, 28, 28) uint8 -> one PNG data URI each (2× size), for the hover."""
    out = []
    for img in np.asarray(images, dtype=np.uint8):
        buf = io.BytesIO()
        Image.fromarray(img).resize((img.shape[1] * scale, img.shape[0] * scale), Image.NEAREST).save(buf, "PNG")
        out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


# ---------------------------------------------------------------- the finished run


def run_figure(run, height: int = 380) -> go.Figure:
    """The readings of a finished run (`lab.train.real_live.RealRun`) against the step, every change marked."""
    x = run.steps
    fig = go.Figure()
    lines = (("center_norm", "‖s‖ held-out (pre-BN)", "#1f77b4", "solid"),
             ("batch_center_norm", "‖s‖ training views (pre-BN)", "#7f7f7f", "dash"),
             ("knn_acc", "kNN accuracy (held-out, 5-fold)", "#ff7f0e", "solid"))
    for key, name, color, dash in lines:
        fig.add_scatter(x=x, y=run.metrics[key], name=name, line=dict(color=color, dash=dash))
    rank = run.metrics["effective_rank"] / max(run.dim, 1)
    fig.add_scatter(x=x, y=rank, name=f"effective rank on the sphere / D (D = {run.dim})",
                    line=dict(color="#2ca02c", dash="dot"))
    fig.add_hline(y=vocab.COLLAPSE_THRESHOLD, line=dict(color="#999", dash="dot", width=1))
    for at, text in events(run.config.changes, run.config.method):
        fig.add_vline(x=at, line=dict(color="#d73027", dash="dash", width=1))
        fig.add_annotation(x=at, y=1.04, text=text, showarrow=False, xanchor="left", font=dict(color="#d73027"))
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=30, b=40), xaxis_title="step",
                      yaxis=dict(range=[0, 1.08]), legend=dict(orientation="h", y=-0.25))
    return fig


# ---------------------------------------------------------------- frames for a talk

CENTER_INDEX, CLASS0 = 4, 16
FADED0 = CLASS0 + len(CLASSES)


@lru_cache(maxsize=1)
def palette() -> bytes:
    """768 bytes: white, black, grid, text (as `lab.render.frames`), the center's green, then the 10 class
    colours and their faded twins (the far side of the sphere); the unused slots unique."""
    colors = [(i, 0, 1) for i in range(256)]
    colors[WHITE], colors[BLACK], colors[GRID], colors[TEXT] = (255,) * 3, (0,) * 3, (200,) * 3, (60,) * 3
    colors[CENTER_INDEX] = CENTER_RGB
    for i, rgb in enumerate(CLASS_RGB):
        colors[CLASS0 + i], colors[FADED0 + i] = rgb, style.fade(rgb)
    return bytes(c for rgb in colors for c in rgb)


def draw_frame(points: np.ndarray, center: np.ndarray, labels: np.ndarray, size: int, caption: str,
               subtitle: str = "") -> np.ndarray:
    """One frame: points (N, 3) on the sphere, center (3,) s in the same directions -> (size, size) palette
    indices into `palette()`. ASCII text only (Pillow's default font)."""
    canvas = _Canvas(size, 3)
    px, py, depth = canvas.to_screen(np.nan_to_num(points))
    hues = CLASS0 + np.asarray(labels) % len(CLASSES)
    canvas.stamp(px, py, np.where(depth >= 0, hues, hues + len(CLASSES)), max(2, size // 150))
    img = Image.fromarray(canvas.pixels, mode="P")
    draw = ImageDraw.Draw(img)
    t = np.linspace(0, 2 * np.pi, 181)
    draw.line([(canvas.cx + canvas.scale * math.cos(a), canvas.cy - canvas.scale * math.sin(a)) for a in t],
              fill=GRID, width=max(1, size // 300))
    ex, ey, _ = canvas.to_screen(np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], 1))
    draw.line(list(zip(ex, ey)), fill=GRID, width=1)
    ox, oy, _ = canvas.to_screen(np.zeros(3))
    sx, sy, _ = canvas.to_screen(np.nan_to_num(center))
    _arrow(draw, ox, oy, sx, sy, CENTER_INDEX, max(3, size // 120), size / 28)
    font, small = _font(max(9, size // 30)), _font(max(8, size // 44))
    pad = size // 60
    draw.text((pad, pad), caption, fill=TEXT, font=font)
    if subtitle:
        draw.text((pad, pad + font.size + 2), subtitle, fill=TEXT, font=small)
    x, y = pad, size - pad - 2 * (small.size + 3)
    for i, name in enumerate(CLASSES):
        w = small.size * 1.3 + draw.textlength(name, font=small) + small.size * 0.8
        if x + w > size - pad:
            x, y = pad, y + small.size + 3
        draw.rectangle([x, y + small.size * 0.3, x + small.size, y + small.size * 0.7], fill=CLASS0 + i)
        draw.text((x + small.size * 1.3, y), name, fill=TEXT, font=small)
        x += w
    return np.asarray(img)


def run_source(run, size: int = 480, max_frames: int | None = 200) -> Source:
    """A run's frames (at most max_frames, evenly spread, first and last kept) for `lab.render.video`."""
    size = check_size(size)
    at = evenly_spaced(len(run.steps) - 1, max_frames)
    captions = events(run.config.changes, run.config.method)
    norms = run.metrics["center_norm"]
    title = (f"{run.config.method} on Fashion-MNIST, seed {run.config.seed}; held-out, pre-BN, "
             f"top-3 directions")

    def draw(i: int) -> np.ndarray:
        t = at[i]
        step = run.steps[t]
        said = "; ".join(text for s, text in captions if s <= step)
        caption = f"step {step}/{run.config.steps}   |s| {norms[t]:.2f}   kNN {run.metrics['knn_acc'][t]:.2f}"
        sub = ascii_text(title + (f"; {said}" if said else ""))
        return draw_frame(run.points[t], run.centers[t], run.labels, size, caption, sub)

    return Source(len(at), draw, palette())


def frame_png(run, t: int, size: int = 440) -> bytes:
    """The run's t-th reading as a PNG (the replay of a finished run on the page)."""
    source = run_source(run, size, max_frames=None)
    img = Image.fromarray(source.draw(t), mode="P")
    img.putpalette(source.palette)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def ascii_text(text: str) -> str:
    return text.replace("→", "->").replace("−", "-").replace("‖", "|")


def export_run(run, fmt: str = "gif", size: int = 480, fps: float | None = None,
               duration_s: float | None = None) -> bytes:
    """The run as a GIF or MP4 for a talk (`lab.render.video.export_source`)."""
    return export_source(run_source(run, size), fmt, fps, duration_s)
