"""A small ImageFolder of real JPEG files for tests and demos: `python -m lab.data.fake --out DIR ...`.

Each class has its own shape, hue and stripe texture; each image places that object at a random
position and scale on a noisy background, so a network can learn the classes and an SSL method has
something to be invariant to. Everything is deterministic from the seed.
"""
from __future__ import annotations

import argparse
import colorsys
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from lab.core.clitools import OneLineParser
from lab.core.seeds import numpy_generator

SHAPES = ("disk", "square", "diamond", "ring", "cross", "triangle")
LIMITS = {"classes": (1, 1000), "per_class": (1, 100_000), "size": (8, 4096), "val_per_class": (1, 100_000),
          "seed": (0, 2**32 - 1)}
JPEG_QUALITY = 90


def class_name(c: int) -> str:
    return f"class{c:03d}"


def _check(name: str, value: int) -> int:
    lo, hi = LIMITS[name]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return int(value)


def _shape_mask(kind: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean (H, W) mask of a shape of radius r around the origin of the offsets dx, dy."""
    if kind == "disk":
        return dx**2 + dy**2 < r**2
    if kind == "square":
        return np.maximum(abs(dx), abs(dy)) < r * 0.85
    if kind == "diamond":
        return abs(dx) + abs(dy) < r * 1.1
    if kind == "ring":
        d = np.sqrt(dx**2 + dy**2)
        return abs(d - 0.7 * r) < 0.3 * r
    if kind == "cross":
        return (np.minimum(abs(dx), abs(dy)) < 0.3 * r) & (np.maximum(abs(dx), abs(dy)) < r)
    # triangle pointing up: below the two slanted edges, above the base
    return (dy < 0.6 * r) & (dy > -r + 2 * abs(dx))


def fake_image(c: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One image of class c: (size, size, 3) uint8, HWC as Pillow wants it."""
    # Golden-ratio hue spacing keeps neighbouring classes far apart in colour for any class count.
    hue = (c * 0.618034) % 1.0
    kind = SHAPES[c % len(SHAPES)]
    angle = np.pi * ((c // len(SHAPES)) * 0.37 % 1.0)
    freq = 6.0 + 4.0 * (c % 3)
    coords = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    cx, cy = rng.uniform(-0.35, 0.35, size=2)
    r = rng.uniform(0.35, 0.6)
    mask = _shape_mask(kind, xx - cx, yy - cy, r)
    stripes = 0.5 + 0.5 * np.sin(freq * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    rgb = np.array(colorsys.hsv_to_rgb((hue + rng.normal(0, 0.02)) % 1.0, 0.8, 0.95))
    fg = rgb[None, None, :] * (0.55 + 0.45 * stripes[..., None])
    bg = rng.uniform(0.25, 0.6) + 0.15 * (xx * rng.normal() + yy * rng.normal())[..., None]
    img = np.where(mask[..., None], fg, bg) + rng.normal(0, 0.06, size=(size, size, 3))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_fake_imagefolder(out, classes: int = 4, per_class: int = 16, size: int = 64,
                           val_per_class: int | None = None, seed: int = 0) -> Path:
    """Write out/train/<class>/*.jpg (per_class each) and out/val/<class>/*.jpg (val_per_class each,
    default max(1, per_class // 4)). Returns out as a Path."""
    classes, per_class, size, seed = (_check("classes", classes), _check("per_class", per_class),
                                      _check("size", size), _check("seed", seed))
    val_per_class = _check("val_per_class", max(1, per_class // 4) if val_per_class is None else val_per_class)
    out = Path(out)
    for split_id, (split, count) in enumerate((("train", per_class), ("val", val_per_class))):
        for c in range(classes):
            folder = out / split / class_name(c)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = numpy_generator(seed, split_id, c, i)
                Image.fromarray(fake_image(c, size, rng)).save(
                    folder / f"{split}_{c:03d}_{i:05d}.jpg", quality=JPEG_QUALITY)
    return out


def _ranged(name: str):
    lo, hi = LIMITS[name]

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {value}")
        return value
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m lab.data.fake",
                      description="Write a small ImageFolder (train/ and val/, one folder per class) "
                                  "of real JPEG files.")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--classes", type=_ranged("classes"), default=4, help="number of classes (default 4, 1-1000)")
    p.add_argument("--per-class", type=_ranged("per_class"), default=16,
                   help="training images per class (default 16)")
    p.add_argument("--size", type=_ranged("size"), default=64, help="image side in pixels (default 64, 8-4096)")
    p.add_argument("--val-per-class", type=_ranged("val_per_class"),
                   help="validation images per class (default: per-class // 4, at least 1)")
    p.add_argument("--seed", type=_ranged("seed"), default=0, help="seed (default 0)")
    a = p.parse_args(argv)
    out = write_fake_imagefolder(a.out, a.classes, a.per_class, a.size, a.val_per_class, a.seed)
    n_val = a.val_per_class or max(1, a.per_class // 4)
    print(f"wrote {a.classes * a.per_class} train and {a.classes * n_val} val JPEGs "
          f"({a.classes} classes, {a.size}x{a.size} px) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
