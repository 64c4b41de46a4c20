"""The live view's data: what one rerun of a live page hands to the browser's canvas view
(`live_view.js`, mounted by `views.ui.live_view`). Plain data, no Streamlit: the features of every epoch
trained since the last rerun, packed small, and the ‖s‖ curve so far.

Why packed: at 25 epochs a second, 600 points in 3-D as JSON floats are ~140 kB a second per browser;
as base64 int16 (4 decimal places on the sphere, finer than a pixel) ~60 kB.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Sequence

import numpy as np

from lab.core import vocab
from lab.render import style
from lab.render.toy import CENTER_COLOR, class_color

SCRIPT = Path(__file__).with_name("live_view.js")
MAX_FRAMES = 24  # a rerun that comes late sends at most this many epochs: the view skips ahead to now


def shown_coordinates(z) -> np.ndarray:
    """z: (N, D) -> (N, min(D, 3)): above D = 3 the first 3 coordinates, renormalised onto the sphere,
    as the replay shows them. Non-finite values (a diverged seed) become 0."""
    z = np.nan_to_num(np.asarray(z, dtype=np.float64))
    if z.shape[-1] > 3:
        z = z[:, :3] / np.maximum(np.linalg.norm(z[:, :3], axis=-1, keepdims=True), 1e-12)
    return z


def pack_points(z) -> str:
    """z: (N, d) on the unit sphere -> base64 of little-endian int16 (coordinate × 32767), row by row."""
    q = np.round(np.clip(np.asarray(z, dtype=np.float64), -1.0, 1.0) * 32767).astype("<i2")
    return base64.b64encode(q.tobytes()).decode("ascii")


def unpack_points(text: str, dim: int) -> np.ndarray:
    """The inverse of `pack_points` (what the browser does): (N, dim) floats."""
    return np.frombuffer(base64.b64decode(text), dtype="<i2").astype(np.float64).reshape(-1, dim) / 32767


def live_frames(frames: Sequence[tuple[int, object]], captions: Sequence[tuple[int, str]] = ()) -> list[list]:
    """frames: (epoch, z (N, D)) of one seed, oldest first -> [[epoch, packed points, ‖s‖, caption], ...],
    the last MAX_FRAMES of them. ‖s‖ is of all D coordinates, the points only of the shown ones; the
    caption names every change made up to that epoch."""
    out = []
    for epoch, z in list(frames)[-MAX_FRAMES:]:
        full = np.nan_to_num(np.asarray(z, dtype=np.float64))
        said = "; ".join(text for at, text in captions if at <= epoch)
        out.append([int(epoch), pack_points(shown_coordinates(full)), float(np.linalg.norm(full.mean(0))), said])
    return out


def live_curve(epochs: Sequence[int], values) -> dict:
    """values: (T, K) a metric per recorded epoch and seed -> {x, mean, lo, hi, seeds} for the live chart."""
    if not len(epochs):
        return {"x": [], "mean": [], "lo": [], "hi": [], "seeds": 0}
    v = np.nan_to_num(np.asarray(values, dtype=np.float64).reshape(len(epochs), -1))
    r = lambda a: np.round(a, 4).tolist()  # noqa: E731
    return {"x": [int(e) for e in epochs], "mean": r(v.mean(1)), "lo": r(v.min(1)), "hi": r(v.max(1)),
            "seeds": int(v.shape[1])}


def live_payload(run_id: str, labels, dim: int, epochs: int, frames: list[list], curve: dict,
                 events: Sequence[tuple[int, str]] = (), speed: float | None = None, status: str = "",
                 metric: str = "center_norm", colors: Sequence[str] | None = None) -> dict:
    """Everything one rerun sends: run_id names the run (a new one clears the view), labels: (N,) colour
    index per point (the class), dim: the full feature dimension, epochs: the run's length, frames from
    `live_frames`, curve from `live_curve` of `metric`, events: (epoch, caption) of every knob change;
    colors: one per label (default: the class colours)."""
    labels = np.asarray(labels).astype(int)
    if colors is None:
        colors = [class_color(c) for c in range(int(labels.max(initial=0)) + 1)]
    return {"run": run_id, "dim": min(int(dim), 3), "epochs": int(epochs), "speed": float(speed or 0),
            "labels": labels.tolist(), "colors": list(colors),
            "center_color": style.hex_color(CENTER_COLOR), "frames": frames, "curve": curve,
            "events": [[int(at), text] for at, text in events], "threshold": vocab.COLLAPSE_THRESHOLD,
            "status": status, "title": curve_title(metric, curve.get("seeds", 0))}


def curve_title(metric: str, seeds: int) -> str:
    """The live chart's title: the metric, and for several seeds what the line and the band are."""
    if seeds > 1:
        return f"{vocab.label(metric)}, mean over {seeds} seeds (band: lowest to highest)"
    return vocab.label(metric) + (", one seed" if seeds == 1 else "")
