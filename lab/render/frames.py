"""GIF frames of features on the unit circle (or sphere), drawn straight into a fixed palette.

Matplotlib needs ~57 ms a frame here and GIF palette quantisation another ~50 ms; drawing
palette indices with NumPy and Pillow and encoding with one fixed palette skips both.
A frame shows: the features coloured by source point (augmented ones small, dataset points
large), residual arrows r = z - s for a readable subset, the three centers in the paper's
colours and, for a few points, the eq. 4 split of the loss's pull into center and residual term.
"""
from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lab.core import geometry as geo
from lab.render import style
from lab.core.schedules import evenly_spaced

# Palette layout: a few fixed colours, then one hue per source point, then the same hues faded.
WHITE, BLACK, GRID, TEXT = 0, 1, 2, 3
ARROW_INDEX = {"s_data": 4, "s_batch": 5, "s_aug": 6}
CENTER_TERM, RESIDUAL_TERM = 7, 8
HUE0 = 16
FADED0 = HUE0 + style.N_HUES


@lru_cache(maxsize=1)
def palette() -> bytes:
    """The one 256-colour palette every frame uses (768 bytes, RGB)."""
    # Unused slots get distinct dark colours: Pillow's GIF writer remaps palettes with repeated
    # entries through a slow pure-Python search, and a palette of unique colours skips it.
    colors = [(i, 0, 1) for i in range(256)]
    colors[WHITE], colors[BLACK], colors[GRID], colors[TEXT] = (255,) * 3, (0,) * 3, (200,) * 3, (60,) * 3
    for key, idx in ARROW_INDEX.items():
        colors[idx] = style.CENTER_COLORS[key]
    colors[CENTER_TERM], colors[RESIDUAL_TERM] = style.CENTER_TERM_COLOR, style.RESIDUAL_TERM_COLOR
    for i in range(style.N_HUES):
        colors[HUE0 + i] = style.hue(i, style.N_HUES)
        colors[FADED0 + i] = style.fade(style.hue(i, style.N_HUES))
    return bytes(c for rgb in colors for c in rgb)


def _view_matrix(dim: int, elevation: float = 25.0, azimuth: float = -55.0) -> np.ndarray:
    """(D, 3) map from feature space to screen (u, v, depth). The circle is seen head-on."""
    if dim == 2:
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    a, e = math.radians(azimuth), math.radians(elevation)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    # screen u = x', screen v = z' (up), depth = -y' (towards the viewer)
    r = rx @ rz
    return np.stack([r[0], r[2], -r[1]], axis=1)


@lru_cache(maxsize=8)
def _disc(radius: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    keep = dx * dx + dy * dy <= radius * radius + radius
    return dy[keep], dx[keep]


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


class _Canvas:
    """A square palette image with feature space [-1.15, 1.15]² mapped onto it."""

    def __init__(self, size: int, dim: int):
        self.size = size
        self.pixels = np.full((size, size), WHITE, dtype=np.uint8)
        # Room above for the caption and below for the legend; pull arrows may reach radius ~1.3.
        self.scale = size * 0.36
        self.cx, self.cy = size / 2, size * 0.52
        self.view = _view_matrix(dim)

    def to_screen(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """p: (..., D) feature-space points -> pixel x, pixel y, depth (> 0 faces the viewer)."""
        q = p @ self.view
        return self.cx + self.scale * q[..., 0], self.cy - self.scale * q[..., 1], q[..., 2]

    def stamp(self, xs: np.ndarray, ys: np.ndarray, colors: np.ndarray, radius: int) -> None:
        """Draw filled discs in one index write. Writes go offset by offset, all points per offset (where
        discs overlap the later offset, then the later point, wins), as a loop over the offsets would."""
        dy, dx = _disc(radius)
        x = np.rint(xs).astype(np.int64) + dx[:, None]
        y = np.rint(ys).astype(np.int64) + dy[:, None]
        ok = (x >= 0) & (x < self.size) & (y >= 0) & (y < self.size)
        self.pixels.reshape(-1)[(y * self.size + x)[ok]] = np.broadcast_to(colors, x.shape)[ok]


def _arrow(draw: ImageDraw.ImageDraw, x0, y0, x1, y1, color: int, width: int, head: float) -> None:
    length = math.hypot(x1 - x0, y1 - y0)
    if length < 1.0:
        return
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    head = min(head, 0.5 * length)
    bx, by = x1 - ux * head, y1 - uy * head
    draw.line([(x0, y0), (bx, by)], fill=color, width=width)
    w = head * 0.45
    draw.polygon([(x1, y1), (bx - uy * w, by + ux * w), (bx + uy * w, by - ux * w)], fill=color)


def _hue_index(n_points: int) -> np.ndarray:
    return HUE0 + (np.arange(n_points) * style.N_HUES // max(n_points, 1))


def selected_points(n_points: int, count: int) -> np.ndarray:
    """Evenly spread indices of the points that get residual or eq. 4 arrows."""
    return np.unique(np.linspace(0, n_points - 1, count).round().astype(int)) if count > 0 else np.zeros(0, int)


def draw_frame(
    run,
    epoch: int,
    size: int = 480,
    n_residuals: int = 8,
    n_gradient: int = 3,
    title: str | None = None,
) -> Image.Image:
    """One frame ('P' mode, `palette()`) of `run` (a `lab.train.b1.B1Run`) at snapshot `epoch`."""
    z = run.z[epoch].numpy()
    z_aug = run.z_aug[epoch]
    n, dim = z.shape
    canvas = _Canvas(size, dim)
    hues = _hue_index(n)
    r_big, r_small = max(2, size // 110), max(1, size // 240)

    # Points: augmented first (small), then the dataset points (large) on top; the far side faded.
    za = z_aug.reshape(-1, dim).numpy()
    ax_, ay_, adepth = canvas.to_screen(za)
    aug_hues = np.repeat(hues, z_aug.shape[1])
    canvas.stamp(ax_, ay_, np.where(adepth >= 0, aug_hues, aug_hues + style.N_HUES), r_small)
    px, py, pdepth = canvas.to_screen(z)
    canvas.stamp(px, py, np.full(n, BLACK), r_big + 1)
    canvas.stamp(px, py, np.where(pdepth >= 0, hues, hues + style.N_HUES), r_big)

    img = Image.fromarray(canvas.pixels, mode="P")
    img.putpalette(palette())
    # The parts that never change are drawn once per size, dim and title (Pillow's text was a third of a
    # frame), then laid on at the depth they always had: the outline over the points, the legend over it all.
    img.paste(*_layer(_draw_outline, size, dim))
    draw = ImageDraw.Draw(img)
    _draw_arrows(draw, canvas, run, epoch, px, py, hues, n_residuals, n_gradient)
    _caption(draw, size, epoch, run)
    img.paste(*_layer(_draw_legend, size, title))
    return img


_UNSET = 255  # a palette slot no layer draws with: marks the pixels a layer leaves as they are


@lru_cache(maxsize=16)
def _layer(paint, size: int, arg) -> tuple[Image.Image, tuple[int, int], Image.Image]:
    """`paint(draw, size, arg)` on an empty size × size canvas, as `Image.paste` arguments (image, corner,
    mask): pasting it is drawing it again, as P-mode drawing and its 1-bit text only ever set pixels."""
    img = Image.new("P", (size, size), _UNSET)
    paint(ImageDraw.Draw(img), size, arg)
    mask = Image.fromarray(np.asarray(img) != _UNSET)
    box = mask.getbbox() or (0, 0, 1, 1)  # only the drawn part: pasting costs by the area
    return img.crop(box), box[:2], mask.crop(box)


def _draw_outline(draw: ImageDraw.ImageDraw, size: int, dim: int) -> None:
    """The unit circle (or the sphere's silhouette) and, for a sphere, its equator."""
    canvas = _Canvas(size, dim)
    t = np.linspace(0, 2 * np.pi, 181)
    silhouette = [(canvas.cx + canvas.scale * math.cos(a), canvas.cy - canvas.scale * math.sin(a)) for a in t]
    draw.line(silhouette, fill=GRID, width=max(1, size // 300))
    if dim == 3:
        rx, ry, _ = canvas.to_screen(np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], axis=1))
        draw.line(list(zip(rx, ry)), fill=GRID, width=1)


def _draw_arrows(draw: ImageDraw.ImageDraw, canvas: _Canvas, run, epoch: int, px, py, hues,
                 n_residuals: int, n_gradient: int) -> None:
    z, z_aug = run.z[epoch].numpy(), run.z_aug[epoch]
    n, dim = z.shape
    width, head = max(2, canvas.size // 160), canvas.size / 28
    # Residual arrows r = z - s, from the center's tip to the point.
    sx, sy, _ = canvas.to_screen(run.s_data[epoch].numpy())
    for i in selected_points(n, n_residuals):
        _arrow(draw, sx, sy, px[i], py[i], int(hues[i]), max(1, width // 2), head * 0.5)
    # Eq. 4 overlay: the pull on a point = center term s + residual term (μ_i - s), drawn from the point.
    center_term, residual_term = geo.gradient_split(z_aug)
    gain = 0.3  # short enough to stay near the circle, long enough to compare the two
    for i in selected_points(n, n_gradient) if n_gradient else []:
        p = z[i]
        for vec, color in ((center_term.numpy(), CENTER_TERM), (residual_term[i].numpy(), RESIDUAL_TERM)):
            ex, ey, _ = canvas.to_screen(p + gain * vec)
            _arrow(draw, px[i], py[i], ex, ey, color, width, head * 0.6)
    # The three centers from the origin, red under blue under green as in the paper.
    ox, oy, _ = canvas.to_screen(np.zeros(dim))
    for key in ("s_aug", "s_batch", "s_data"):
        ex, ey, _ = canvas.to_screen(getattr(run, key)[epoch].numpy())
        _arrow(draw, ox, oy, ex, ey, ARROW_INDEX[key], width + 1, head)
    draw.ellipse([ox - 2, oy - 2, ox + 2, oy + 2], fill=BLACK)


def _caption(draw: ImageDraw.ImageDraw, size: int, epoch: int, run) -> None:
    """The caption's changing part: the epoch and the centers' norms."""
    font = _font(max(9, size // 30))
    pad = size // 60
    last = run.z.shape[0] - 1
    draw.text((pad, pad), f"epoch {epoch}/{last}", fill=TEXT, font=font)
    norms = (f"|s| {run.s_data[epoch].norm():.2f}   "
             f"aug {run.s_aug[epoch].norm():.2f}   batch {run.s_batch[epoch].norm():.2f}")
    right = draw.textlength(norms, font=font)
    draw.text((size - pad - right, pad), norms, fill=TEXT, font=font)


def _draw_legend(draw: ImageDraw.ImageDraw, size: int, title: str | None) -> None:
    """The caption's fixed part: the title under the epoch line, the colour legend along the bottom."""
    font = _font(max(9, size // 30))
    small = _font(max(8, size // 40))
    pad = size // 60
    if title:
        draw.text((pad, pad + font.size + 2), title, fill=TEXT, font=small)
    legend = [(ARROW_INDEX["s_data"], "data s"), (ARROW_INDEX["s_batch"], "batch s"),
              (ARROW_INDEX["s_aug"], "augmented s"), (CENTER_TERM, "pull: center term"),
              (RESIDUAL_TERM, "pull: residual")]
    # Flow the legend into as many bottom rows as the width needs.
    rows: list[list[tuple[int, str, float]]] = [[]]
    x = pad
    for color, label in legend:
        w = small.size * 1.3 + draw.textlength(label, font=small) + small.size
        if rows[-1] and x + w > size - pad:
            rows.append([])
            x = pad
        rows[-1].append((color, label, w))
        x += w
    line = small.size + 3
    for r, row in enumerate(rows):
        y = size - pad - line * (len(rows) - r)
        x = pad
        for color, label, w in row:
            draw.rectangle([x, y + small.size * 0.3, x + small.size, y + small.size * 0.7], fill=color)
            draw.text((x + small.size * 1.3, y), label, fill=TEXT, font=small)
            x += w


def gif_bytes(
    run,
    fps: float = 20.0,
    size: int = 480,
    loop: int = 0,
    max_frames: int | None = 200,
    title: str | None = None,
    hold_last: float = 1.0,
) -> bytes:
    """An animated GIF of the run, one frame per snapshot (at most `max_frames`, evenly spread).

    fps: frames per second; loop: 0 = forever, else the number of plays; hold_last: seconds the
    final frame stays up before the loop restarts.
    """
    if not (math.isfinite(fps) and 0.5 <= fps <= 60):
        raise ValueError(f"fps must be in [0.5, 60], got {fps!r}")
    if not (64 <= size <= 2048):
        raise ValueError(f"size must be in [64, 2048] pixels, got {size!r}")
    if loop < 0:
        raise ValueError(f"loop must be >= 0 (0 = forever), got {loop!r}")
    epochs = evenly_spaced(run.z.shape[0] - 1, max_frames)
    frames = np.stack([np.asarray(draw_frame(run, e, size=size, title=title)) for e in epochs])
    # Frames go in as "L" (palette indices) with the palette beside them: Pillow then takes the
    # palette as given, where "P" arrays from imageio would be remapped through a slow search.
    # GIF stores delays in 1/100 s: keep frame times on that grid.
    frame_ms = max(20, int(round(100.0 / fps)) * 10)
    durations = [frame_ms] * len(epochs)
    durations[-1] += int(hold_last * 1000)
    # Pillow takes a list of durations only for several frames (a run of 0 epochs has one).
    return iio.imwrite("<bytes>", frames, extension=".gif", mode="L", palette=palette(),
                       duration=durations if len(durations) > 1 else durations[0], loop=loop, optimize=False)


def write_gif(path: str | Path, run, **kwargs) -> Path:
    """Write `gif_bytes(run, **kwargs)` to path atomically (a temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(gif_bytes(run, **kwargs))
    tmp.replace(path)
    return path


def image_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format=fmt)
    return buf.getvalue()


