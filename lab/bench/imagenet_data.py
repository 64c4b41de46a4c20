"""Data-side measurements for `python -m lab.bench imagenet`: JPEG decode + resize throughput of the
loader, the pre-decoded cache path, and the batched augmentations.

ImageNet's training JPEGs average about 400x350 px and ~110 KB (quality ~90 with real texture); the
bench images are 500x375 by default with a similar byte count, so decode cost is comparable.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lab.core.seeds import numpy_generator

BENCH_CLASSES = 10


def _natural_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 with smooth structure, edges and fine texture, so a quality-90 JPEG has
    roughly ImageNet's bytes per pixel (pure noise would decode slower, flat colour much faster)."""
    low = Image.fromarray(rng.integers(0, 256, (height // 24 + 2, width // 24 + 2, 3), dtype=np.uint8))
    img = np.asarray(low.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(3):  # a few hard-edged blobs
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, 120)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 20.0, img.shape)  # ~100 KB per 500x375 file at quality 90
    return np.clip(img, 0, 255).astype(np.uint8)


def make_bench_jpegs(out, n: int, width: int = 500, height: int = 375, seed: int = 0) -> Path:
    """Write n ImageNet-like JPEGs (quality 90) as an ImageFolder out/train/<class>/*.jpg; returns out."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise ValueError(f"width and height must be in 16..8192, got {width}x{height}")
    out = Path(out)
    for i in range(n):
        folder = out / "train" / f"class{i % BENCH_CLASSES:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        img = _natural_image(numpy_generator(seed, i), width, height)
        Image.fromarray(img).save(folder / f"img{i:06d}.jpg", quality=90)
    return out


def loading_throughput(root, split: str, *, size: int, batch_size: int, workers: int, max_batches: int,
                       cache=None) -> dict:
    """Images/s of make_loader over up to max_batches batches; the first batch (worker start-up, first
    file reads) is a warm-up and not counted. Returns dict(images_per_s, images, seconds, ...)."""
    from lab.data.folder import make_loader

    if max_batches < 2:
        raise ValueError(f"max_batches must be >= 2 (the first batch is a warm-up), got {max_batches}")
    loader = make_loader(root, split, size=size, batch_size=batch_size, workers=workers, shuffle=True,
                         cache=cache)
    images, start = 0, None
    for b, (x, _) in enumerate(loader):
        if b == 0:
            start = time.perf_counter()
        else:
            images += len(x)
        if b + 1 >= max_batches:
            break
    seconds = time.perf_counter() - start if start is not None else 0.0
    if images == 0:
        raise ValueError(f"{root}/{split}: fewer than 2 batches of {batch_size}; make more bench images")
    return {"images_per_s": images / seconds, "images": images, "seconds": seconds, "size": size,
            "batch_size": batch_size, "workers": workers, "source": "cache" if cache else "jpeg"}


def augment_throughput(batch: int, size: int, device, repeats: int = 3) -> dict:
    """Source images/s through SSLAugment (two views each) on a random uint8 batch (batch, 3, size, size)
    on `device`; best of `repeats` after a warm-up. Returns dict(images_per_s, images, seconds, ...)."""
    from lab.data.augment import SSLAugment

    device = torch.device(device)
    aug = SSLAugment(size).to(device)
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    aug(x)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        aug(x)
        sync()
        best = min(best, time.perf_counter() - start)
    return {"images_per_s": batch / best, "images": batch, "seconds": best, "size": size,
            "device": str(device), "views": 2}
