"""Talk export: the lab's animations as GIF or MP4 at a chosen size and fps or duration (issue 13, item 4).

Frames stay palette indices (H, W) uint8 with their 256-colour palette beside them, as the GIF code in
`lab.render.frames` and `lab.render.toy` draws them: a GIF is then encoded with that fixed palette (nothing is
quantised) and an MP4 hands ffmpeg the indices and palette (its pal8 input). MP4s are H.264 in yuv420p (what
slides, browsers and phones play), written by the ffmpeg binary of the imageio-ffmpeg wheel (started with an
argument list, no shell) to a temporary file that is read back; odd widths or heights are padded to even
ones, as yuv420p needs.

The three animations the pages offer, as a `Source` (frames drawn on demand, so an MP4 draws the next frame
while ffmpeg encodes the last) or a `Clip` (all frames drawn): one toy run (`toy_source` / `toy_frames`), two
toy runs side by side aligned by training progress (`side_by_side_*`) and a B.1 run (`b1_*`). `export`
encodes a Clip or plain arrays, `export_source` a Source, and `toy_export` / `side_by_side_export` /
`b1_export` draw and encode in one call (the playground can call `toy_export` as it is).
"""
from __future__ import annotations

import itertools
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import imageio.v3 as iio
import numpy as np

from lab.render import frames as b1
from lab.render import toy
# Private helpers of the sibling render modules, imported rather than copied: `_run_frame` draws one
# toy frame, `_frame_indices` picks a run's frame epochs (the same ones `toy_gif_bytes` uses).
from lab.render.toy import _frame_indices, _run_frame, progress_indices, shown_features
from lab.core.schedules import evenly_spaced

FORMATS = ("gif", "mp4")
MIME = {"gif": "image/gif", "mp4": "video/mp4"}
SIZE_RANGE = (120, 1080)  # pixels, one panel's side
FPS_RANGE = (1, 60)
DURATION_RANGE = (1, 120)  # seconds
X264_ARGS = ("-preset", "veryfast")  # x264: fast, and a 200-frame 480-px B.1 clip stays under 0.1 MB
GIF_MIN_DELAY_CS = 2  # browsers slow down GIF frames shorter than 20 ms


@dataclass(frozen=True)
class Clip:
    """Frames to export: indices (T, H, W) uint8 into palette (768 bytes, RGB), or RGB frames (T, H, W, 3)
    with palette None."""

    frames: np.ndarray
    palette: bytes | None = None

    def rgb(self) -> np.ndarray:
        """(T, H, W, 3) uint8."""
        if self.palette is None:
            return self.frames
        return np.take(np.frombuffer(self.palette, dtype=np.uint8).reshape(256, 3), self.frames, axis=0)


# ---------------------------------------------------------------- checks


def _in_range(name: str, value, lo: float, hi: float, unit: str = "") -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value) and lo <= value <= hi
    if not ok:
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}]{unit}, got {value!r}")


def check_size(size) -> int:
    """A panel's side in pixels, in SIZE_RANGE (whole pixels)."""
    _in_range("size", size, *SIZE_RANGE, " pixels")
    if int(size) != size:
        raise ValueError(f"size must be a whole number of pixels in [{SIZE_RANGE[0]}, {SIZE_RANGE[1]}], got {size!r}")
    return int(size)


def check_export_args(fmt: str, fps: float | None, duration_s: float | None) -> None:
    """One-line ValueErrors naming the bad value and the valid range."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fps is not None and duration_s is not None:
        raise ValueError(f"give fps or duration_s, not both (got fps={fps!r}, duration_s={duration_s!r})")
    if fps is not None:
        _in_range("fps", fps, *FPS_RANGE)
    if duration_s is not None:
        _in_range("duration", duration_s, *DURATION_RANGE, " seconds")


# ---------------------------------------------------------------- timing


def _gif_delay_cs(fps: float) -> int:
    return max(GIF_MIN_DELAY_CS, int(round(100.0 / fps)))


def plan(n_frames: int, fmt: str = "mp4", fps: float | None = None,
         duration_s: float | None = None) -> tuple[np.ndarray, float]:
    """Which of n_frames frames to show and at what fps: -> (indices, fps).

    fps given (or neither: 12 fps): every frame at that rate (a GIF's rate on its 1/100 s grid).
    duration_s given: the fps is n_frames / duration within FPS_RANGE (a GIF's at most 50, its shortest delay);
    past either end frames are evenly dropped or repeated so that len(indices) / fps = duration_s
    (to a frame; a GIF's delays are whole 1/100 s).
    """
    check_export_args(fmt, fps, duration_s)
    if n_frames < 1:
        raise ValueError(f"a clip needs at least 1 frame, got {n_frames}")
    if duration_s is None:
        rate = 12.0 if fps is None else float(fps)
        if fmt == "gif":
            rate = 100.0 / _gif_delay_cs(rate)
        return np.arange(n_frames), rate
    hi = min(FPS_RANGE[1], 100 / GIF_MIN_DELAY_CS) if fmt == "gif" else FPS_RANGE[1]
    rate = min(max(n_frames / duration_s, FPS_RANGE[0]), hi)
    if fmt == "gif":
        rate = 100.0 / _gif_delay_cs(rate)
    count = max(1, int(round(rate * duration_s)))
    return np.minimum(np.arange(count) * n_frames // count, n_frames - 1), rate


# ---------------------------------------------------------------- encoders


def pad_even(frames: np.ndarray, fill: int | None = None) -> np.ndarray:
    """(T, H, W[, 3]) padded by one row / column at the bottom / right where H / W is odd (yuv420p needs even
    sides). fill: the pad's value (a palette's white index), else the edge pixels repeated."""
    h, w = frames.shape[1:3]
    pad = [(0, 0), (0, h % 2), (0, w % 2)] + [(0, 0)] * (frames.ndim - 3)
    if not (h % 2 or w % 2):
        return frames
    if fill is None:
        return np.pad(frames, pad, mode="edge")
    return np.pad(frames, pad, mode="constant", constant_values=fill)


def encode_mp4(frames, fps: float, quality: float = 6.0) -> bytes:
    """H.264 MP4 (yuv420p, +faststart) at fps of RGB frames (T, H, W, 3) uint8, or of a `Clip`; odd sides are
    padded to even (a palette clip with its white)."""
    clip = frames if isinstance(frames, Clip) else Clip(np.asarray(frames))
    shape, dtype = clip.frames.shape, clip.frames.dtype
    if dtype != np.uint8 or len(shape) != (3 if clip.palette is not None else 4) or shape[0] == 0 \
            or (clip.palette is None and shape[-1] != 3):
        raise ValueError(f"frames must be (T, H, W, 3) RGB or (T, H, W) palette indices, uint8, T >= 1, "
                         f"got {shape} {dtype}")
    _in_range("fps", fps, *FPS_RANGE)
    if clip.palette is not None:
        return _palette_mp4(iter(clip.frames), clip.palette, fps, quality)
    data = np.ascontiguousarray(pad_even(clip.frames))
    return _ffmpeg_mp4(data, data.shape[2], data.shape[1], fps, "rgb24", quality)


def _palette_mp4(frames: Iterator[np.ndarray], palette: bytes, fps: float, quality: float = 6.0) -> bytes:
    """An MP4 of palette-index frames (H, W) taken one at a time from an iterator, so a lazy one draws the next
    frame while ffmpeg (another process) encodes the last. The indices go to ffmpeg as they are (pal8), each
    frame followed by its palette as ffmpeg's rawvideo input reads pal8: a quarter of the bytes of RGB through
    the pipe and no per-pixel lookup in Python (an RGB lookup and its pipe writes were about a quarter of an export)."""
    rgb = np.frombuffer(palette, dtype=np.uint8).reshape(256, 3)
    white = np.flatnonzero((rgb == 255).all(1))
    fill = int(white[0]) if len(white) else None
    first = pad_even(np.asarray(next(frames))[None], fill)[0]
    rest = (pad_even(np.asarray(f)[None], fill)[0] for f in frames)
    argb = _pal8_palette(rgb)
    packets = (np.concatenate([f.reshape(-1), argb]) for f in itertools.chain([first], rest))
    return _ffmpeg_mp4(packets, first.shape[1], first.shape[0], fps, "pal8", quality)


def _pal8_palette(rgb: np.ndarray) -> np.ndarray:
    """(256, 3) RGB -> ffmpeg's pal8 palette: 256 opaque 0xAARRGGBB words in native byte order, as uint8."""
    rgb = rgb.astype(np.uint32)
    words = np.uint32(0xFF000000) | rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]
    return words.astype("=u4").view(np.uint8)


def _ffmpeg_mp4(frames: Iterable[np.ndarray], w: int, h: int, fps: float, pix_fmt_in: str, quality: float) -> bytes:
    import imageio_ffmpeg

    fd, name = tempfile.mkstemp(suffix=".mp4", prefix="lab_clip_")
    os.close(fd)
    try:
        # imageio-ffmpeg starts its ffmpeg binary with an argument list (no shell) and pipes raw frames in.
        writer = imageio_ffmpeg.write_frames(
            name, (w, h), fps=float(fps), codec="libx264", pix_fmt_in=pix_fmt_in, pix_fmt_out="yuv420p",
            quality=quality, macro_block_size=1, ffmpeg_log_level="error",
            output_params=[*X264_ARGS, "-movflags", "+faststart"])
        writer.send(None)  # start ffmpeg
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
        return Path(name).read_bytes()
    finally:
        Path(name).unlink(missing_ok=True)


def encode_gif(clip: Clip, fps: float, loop: int = 0) -> bytes:
    """An animated GIF of clip at fps (on GIF's 1/100 s grid). Palette clips keep their palette as given
    (indices go in as "L" with the palette beside them, see `lab.render.frames.gif_bytes`); RGB clips are
    quantised by Pillow (slow)."""
    frames = clip.frames
    if len(frames) == 1:  # Pillow's GIF writer needs >= 2 frames for a list of durations
        frames = np.concatenate([frames, frames])
    durations = [_gif_delay_cs(fps) * 10] * len(frames)
    if clip.palette is None:
        return iio.imwrite("<bytes>", frames, extension=".gif", duration=durations, loop=loop)
    return iio.imwrite("<bytes>", frames, extension=".gif", mode="L", palette=clip.palette,
                       duration=durations, loop=loop, optimize=False)


def export(frames: Clip | np.ndarray, fmt: str = "gif", fps: float | None = None,
           duration_s: float | None = None, palette: bytes | None = None, loop: int = 0) -> bytes:
    """Encode frames as fmt ("gif" or "mp4") at fps, or timed to last duration_s seconds (see `plan`).

    frames: a `Clip`, RGB frames (T, H, W, 3) uint8, or palette indices (T, H, W) with palette.
    loop (GIF only): 0 = forever, else the number of plays.
    """
    clip = frames if isinstance(frames, Clip) else Clip(np.asarray(frames), palette)
    if clip.frames.ndim != (3 if clip.palette is not None else 4):
        raise ValueError(f"frames must be (T, H, W) indices with a palette or (T, H, W, 3) RGB, "
                         f"got {clip.frames.shape}")
    indices, rate = plan(len(clip.frames), fmt, fps, duration_s)
    picked = Clip(clip.frames[indices], clip.palette)
    if fmt == "gif":
        return encode_gif(picked, rate, loop)
    return encode_mp4(picked, rate)


def file_name(stem: str, fmt: str) -> str:
    return f"{stem}.{fmt}"


# ---------------------------------------------------------------- frames of the lab's animations


@dataclass(frozen=True)
class Source:
    """A clip drawn on demand: count frames, draw(i) -> (H, W) palette indices into palette."""

    count: int
    draw: Callable[[int], np.ndarray]
    palette: bytes

    def clip(self) -> Clip:
        return Clip(np.stack([self.draw(i) for i in range(self.count)]), self.palette)


def _drawn(source: Source, indices: np.ndarray) -> Iterator[np.ndarray]:
    """source's frames at indices (non-decreasing: a repeated frame is drawn once)."""
    last, frame = None, None
    for i in indices:
        if i != last:
            last, frame = i, source.draw(int(i))
        yield frame


def export_source(source: Source, fmt: str = "gif", fps: float | None = None, duration_s: float | None = None,
                  loop: int = 0) -> bytes:
    """`export` of a `Source`, drawing only the frames shown; an MP4 draws each frame while ffmpeg encodes."""
    indices, rate = plan(source.count, fmt, fps, duration_s)
    if fmt == "gif":
        return encode_gif(Clip(np.stack(list(_drawn(source, indices))), source.palette), rate, loop)
    return _palette_mp4(_drawn(source, indices), source.palette, rate)


def toy_source(run, seed_index: int = 0, size: int = 400, max_frames: int | None = 51,
               title: str | None = None) -> Source:
    """One seed of a toy run (`lab.train.toy.ToyRun`), one frame per evaluated epoch (at most max_frames):
    the frames of `lab.render.toy.toy_gif_bytes`."""
    size = check_size(size)
    shown = shown_features(run, seed_index)
    at = _frame_indices(run, max_frames)
    return Source(len(at), lambda i: np.asarray(_run_frame(run, at[i], seed_index, size, title, shown)),
                  toy.toy_palette())


def side_by_side_source(run_a, run_b, titles: Sequence[str] = ("A", "B"), seed_index: int = 0, size: int = 360,
                        max_frames: int = 51) -> Source:
    """Two toy runs side by side (each size × size, a grey gap between), aligned by training progress:
    the frames of `lab.render.toy.side_by_side_gif`. Width 2 · size + gap."""
    size = check_size(size)
    runs = (run_a, run_b)
    n = max(2, min(max_frames, max(len(r.epochs) for r in runs)))
    seeds = [min(seed_index, r.z.shape[1] - 1) for r in runs]
    shown = [shown_features(r, k) for r, k in zip(runs, seeds)]
    index = [progress_indices(r, n) for r in runs]
    gap = np.full((size, max(2, size // 100)), b1.GRID, dtype=np.uint8)

    def draw(i: int) -> np.ndarray:
        panels = [np.asarray(_run_frame(r, index[j][i], seeds[j], size, titles[j], shown[j]))
                  for j, r in enumerate(runs)]
        return np.concatenate([panels[0], gap, panels[1]], axis=1)

    return Source(n, draw, toy.toy_palette())


def b1_source(run, size: int = 480, max_frames: int | None = 200, title: str | None = None) -> Source:
    """A B.1 run (`lab.train.b1.B1Run`), one frame per snapshot (at most max_frames, evenly spread): the frames
    of `lab.render.frames.gif_bytes`."""
    size = check_size(size)
    epochs = evenly_spaced(run.z.shape[0] - 1, max_frames)
    return Source(len(epochs), lambda i: np.asarray(b1.draw_frame(run, epochs[i], size=size, title=title)),
                  b1.palette())


def toy_frames(run, seed_index: int = 0, size: int = 400, max_frames: int | None = 51,
               title: str | None = None) -> Clip:
    return toy_source(run, seed_index, size, max_frames, title).clip()


def side_by_side_frames(run_a, run_b, titles: Sequence[str] = ("A", "B"), seed_index: int = 0, size: int = 360,
                        max_frames: int = 51) -> Clip:
    return side_by_side_source(run_a, run_b, titles, seed_index, size, max_frames).clip()


def b1_frames(run, size: int = 480, max_frames: int | None = 200, title: str | None = None) -> Clip:
    return b1_source(run, size, max_frames, title).clip()


def toy_export(run, fmt: str = "gif", size: int = 400, fps: float | None = None, duration_s: float | None = None,
               seed_index: int = 0, max_frames: int | None = 51, title: str | None = None) -> bytes:
    """`toy_source` encoded by `export_source`; the arguments are checked before any frame is drawn."""
    check_export_args(fmt, fps, duration_s)
    return export_source(toy_source(run, seed_index, size, max_frames, title), fmt, fps, duration_s)


def side_by_side_export(run_a, run_b, fmt: str = "gif", size: int = 360, fps: float | None = None,
                        duration_s: float | None = None, titles: Sequence[str] = ("A", "B"), seed_index: int = 0,
                        max_frames: int = 51) -> bytes:
    """`side_by_side_source` encoded by `export_source`: both runs in one file."""
    check_export_args(fmt, fps, duration_s)
    return export_source(side_by_side_source(run_a, run_b, titles, seed_index, size, max_frames), fmt, fps,
                         duration_s)


def b1_export(run, fmt: str = "gif", size: int = 480, fps: float | None = None, duration_s: float | None = None,
              max_frames: int | None = 200, title: str | None = None) -> bytes:
    """`b1_source` encoded by `export_source`."""
    check_export_args(fmt, fps, duration_s)
    return export_source(b1_source(run, size, max_frames, title), fmt, fps, duration_s)
