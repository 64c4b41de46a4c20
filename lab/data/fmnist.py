"""Fashion-MNIST (Xiao et al., 2017) from its four original idx files, read straight into memory.

Debian's `dataset-fashion-mnist` package installs them, gzipped, under `/usr/share/datasets/fashion-mnist/`
(60,000 train and 10,000 test images, 28×28 grayscale, 10 classes; 31 MB). Any folder that holds the
four files, plain or gzipped, works. Nothing is converted or written: `load_split` returns one uint8
tensor. A missing, truncated or inconsistent file raises `FashionMNISTError` with one line naming it.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "sudo apt-get install dataset-fashion-mnist (puts the files in /usr/share/datasets/fashion-mnist)"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SIDE = 28
# The engine's splits: "train" trains, "val" is the official test split (kNN and the other evaluations).
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SIZES = {"train": 60_000, "val": 10_000}
# Pixel mean and std of the training images (over all 60,000 × 784 pixels, in [0, 1]).
MEAN, STD = 0.2860, 0.3530
_MAGIC = {1: 0x0801, 3: 0x0803}  # idx: unsigned bytes, 1 dimension (labels) / 3 dimensions (images)


class FashionMNISTError(ValueError):
    """A missing, truncated or inconsistent Fashion-MNIST file (one line, naming it)."""


def file_path(root, stem: str) -> Path | None:
    """root/stem, or root/stem.gz; None when neither is there."""
    for name in (stem, stem + ".gz"):
        path = Path(root) / name
        if path.is_file():
            return path
    return None


def is_fashion_mnist(root) -> bool:
    """Whether `root` is a folder holding the training files (images and labels), plain or gzipped."""
    return root is not None and Path(root).is_dir() and all(file_path(root, s) is not None for s in FILES["train"])


def has_split(root, split: str) -> bool:
    return all(file_path(root, s) is not None for s in FILES[split])


def read_idx(path: Path, dims: int) -> np.ndarray:
    """The array of one idx file of unsigned bytes with `dims` dimensions (header checked against the size)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise FashionMNISTError(f"{path}: cannot be read ({e})") from None
    header = 4 + 4 * dims
    if len(raw) < header:
        raise FashionMNISTError(f"{path}: truncated ({len(raw)} bytes, shorter than its header)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _MAGIC[dims]:
        raise FashionMNISTError(f"{path}: not an idx file of {dims}-d unsigned bytes (magic {magic:#06x}, "
                                f"expected {_MAGIC[dims]:#06x})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    need = header + int(np.prod(shape))
    if len(raw) != need:
        what = "truncated" if len(raw) < need else "longer than its header says"
        raise FashionMNISTError(f"{path}: {what} ({len(raw):,} bytes; the header {shape} needs {need:,})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_split(root, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the folder `root`: images (N, 1, 28, 28) uint8, labels (N,) int64 in 0..9."""
    if split not in FILES:
        raise ValueError(f"split must be one of {', '.join(FILES)}, got {split!r}")
    paths = []
    for stem in FILES[split]:
        path = file_path(root, stem)
        if path is None:
            raise FashionMNISTError(f"{Path(root) / stem}(.gz) is missing; {INSTALL_HINT}")
        paths.append(path)
    images, labels = read_idx(paths[0], 3), read_idx(paths[1], 1)
    if images.shape[1:] != (SIDE, SIDE):
        raise FashionMNISTError(f"{paths[0]}: images are {images.shape[1]}×{images.shape[2]}, expected 28×28")
    if len(labels) != len(images):
        raise FashionMNISTError(f"{paths[1]}: {len(labels):,} labels for {len(images):,} images in {paths[0].name}")
    if len(labels) and labels.max() >= len(CLASSES):
        raise FashionMNISTError(f"{paths[1]}: label {int(labels.max())} outside 0..{len(CLASSES) - 1}")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file of unsigned bytes (gzipped when the name ends in .gz); for small test folders."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = _MAGIC[array.ndim].to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    raw += array.tobytes()
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)


def write_subset(root, out, per_class: dict[str, int], gz: bool = True) -> Path:
    """A smaller Fashion-MNIST folder: the first `per_class[split]` images of every class of each split of
    `root` (tests and demos that need real images but not all of them)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split, n in per_class.items():
        images, labels = load_split(root, split)
        keep = np.concatenate([np.flatnonzero(labels.numpy() == c)[:n] for c in range(len(CLASSES))])
        keep.sort()
        for stem, array in zip(FILES[split], (images[keep, 0].numpy(), labels[keep].numpy())):
            write_idx(out / (stem + (".gz" if gz else "")), array)
    return out
