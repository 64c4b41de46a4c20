"""ImageFolder loading: root/split/<class>/*.jpg decoded with Pillow in DataLoader workers, or read from a
pre-decoded cache (`lab.data.cache`); or Fashion-MNIST's idx files, held in memory (`lab.data.fmnist`).

Every batch is a CPU uint8 tensor (B, 3, size, size) (Fashion-MNIST: (B, 1, 28, 28)), short side resized
to `size` and center cropped,
with int64 labels (B,). Epoch order is a permutation drawn from (seed, epoch); each of world_size ranks
takes a disjoint strided shard of it, so all ranks see the same number of batches (DDP needs that).
Within a batch the indices are sorted: the cache reads the memmap in file order, and the JPEG path
does the same so that both paths yield the same batches.
"""
from __future__ import annotations

import json
import math
import os
import queue
import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from lab.core.seeds import numpy_generator
from lab.data import fmnist

EXTENSIONS = (".jpg", ".jpeg", ".png")
# The cache folder's format (`lab.data.cache` builds it; the loader here reads it).
FORMAT = 1
IMAGES, LABELS, META = "images.u8", "labels.npy", "meta.json"
# A corrupt file is replaced by the next decodable one in scan order, so batches keep their size.
MAX_SUBSTITUTES = 8


class DataError(ValueError):
    """Bad data on disk (missing folder, no images, a cache that does not fit): one line naming the path."""


def scan(root, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    """ImageFolder listing of root/split: ([(path, class index)], sorted class names).

    Files are sorted within a class; hidden files and other extensions are ignored.
    """
    folder = split_folder(root, split)
    classes = class_folders(folder)
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        with os.scandir(folder / name) as entries:
            files = sorted(e.name for e in entries
                           if not e.name.startswith(".") and e.name.lower().endswith(EXTENSIONS))
        samples.extend((folder / name / f, label) for f in files)
    if not samples:
        raise DataError(f"{folder}: no images (*.jpg, *.jpeg, *.png) in its {len(classes)} class folders")
    return samples, classes


def split_folder(root, split: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found (expected {root}/{split}/<class>/*.jpg)")
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"{folder}: split folder not found (expected {folder}/<class>/*.jpg)")
    return folder


def class_folders(folder: Path) -> list[str]:
    """Sorted names of the class folders (symlinked folders count) of one split folder."""
    with os.scandir(folder) as entries:
        classes = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    if not classes:
        raise DataError(f"{folder}: no class folders (expected {folder}/<class>/*.jpg)")
    return classes


def decode(path, size: int) -> np.ndarray:
    """Decode an image file and center crop it to a square: (size, size, 3) uint8, HWC. Raises on a bad file.

    JPEG draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers `size`,
    which is most of the cost of a large JPEG. The resize reads only the central square (`box`),
    so resize-short-side and center-crop are one antialiased bilinear resample.
    """
    with Image.open(path) as im:
        im.draft("RGB", (size, size))
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
        im = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
        return np.asarray(im)


def try_decode(path, size: int) -> np.ndarray | None:
    """decode(), or None for a file Pillow cannot read (truncated, garbage, unsupported)."""
    try:
        return decode(path, size)
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError...
        return None


class JpegDataset(torch.utils.data.Dataset):
    """Item i -> (image (S, S, 3) uint8 or None, label, indices of corrupt files met on the way).

    substitute=True replaces a corrupt file by the next decodable one (the loader's batches keep
    their size); substitute=False returns None for it (the cache builder skips it).
    """

    def __init__(self, samples: list[tuple[Path, int]], size: int, substitute: bool = True):
        # numpy arrays, not a list of Paths: forked workers read them without touching refcounts, so
        # the pages stay shared (a list of 100k+ objects would be copied into every worker).
        self.paths = np.array([os.fsencode(p) for p, _ in samples])
        self.labels = np.array([label for _, label in samples], dtype=np.int64)
        self.size, self.substitute = size, substitute

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        bad = []
        for k in range(MAX_SUBSTITUTES + 1 if self.substitute else 1):
            j = (i + k) % len(self.paths)
            img = try_decode(os.fsdecode(self.paths[j]), self.size)
            if img is not None:
                return img, int(self.labels[j]), bad
            bad.append(j)
        return None, -1, bad


def collate(items) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """[(img (S,S,3) | None, label, bad)] -> images (B', 3, S, S) uint8, labels (B',) int64, corrupt indices.

    B' counts the decoded images; the loader's substitution keeps B' = B unless a whole run of files is bad.
    """
    good = [(img, label) for img, label, _ in items if img is not None]
    bad = sorted({j for _, _, b in items for j in b})
    size = good[0][0].shape[0] if good else 0
    images = np.empty((len(good), 3, size, size), dtype=np.uint8)
    for k, (img, _) in enumerate(good):
        images[k] = img.transpose(2, 0, 1)
    labels = torch.tensor([label for _, label in good], dtype=torch.int64)
    return torch.from_numpy(images), labels, bad


def epoch_batches(n: int, *, batch_size: int, shuffle: bool, drop_last: bool, seed: int, epoch: int,
                  rank: int, world_size: int) -> list[np.ndarray]:
    """The index batches of one rank for one epoch: a permutation of range(n) from (seed, epoch), strided
    over ranks. drop_last: every rank takes n // world_size and full batches only; otherwise the order is
    wrapped to a multiple of world_size (as torch's DistributedSampler) and the last batch may be short."""
    order = numpy_generator(seed, epoch).permutation(n) if shuffle else np.arange(n)
    if drop_last:
        per_rank = n // world_size
        shard = order[rank:per_rank * world_size:world_size]
        n_batches = per_rank // batch_size
    else:
        per_rank = math.ceil(n / world_size)
        shard = np.resize(order, per_rank * world_size)[rank::world_size]
        n_batches = math.ceil(per_rank / batch_size)
    return [np.sort(shard[b * batch_size:(b + 1) * batch_size]) for b in range(n_batches)]


class _EpochBatches(torch.utils.data.Sampler):
    """Batch sampler the DataLoader re-iterates each epoch (in the main process, so persistent
    workers see the new order): it yields whatever the loader put in `batches`."""

    def __init__(self):
        self.batches: list[np.ndarray] = []

    def __iter__(self):
        return (b.tolist() for b in self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _JpegSource:
    def __init__(self, samples, size: int, workers: int):
        self.sampler = _EpochBatches()
        self.loader = torch.utils.data.DataLoader(
            JpegDataset(samples, size), batch_sampler=self.sampler, num_workers=workers, collate_fn=collate,
            pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None)

    def iterate(self, batches: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[int]]]:
        self.sampler.batches = batches
        return iter(self.loader)


class ImageLoader:
    """Batches of one split for one rank. Call set_epoch(e) before each epoch (epoch 0 by default), or
    set_epoch(e, start_batch=k) to continue epoch e after its first k batches.

    Attributes: classes (sorted names), n_images (the split, all ranks), n_corrupt (corrupt files
    skipped so far on this rank; with a cache, those the cache build skipped), size, batch_size.
    """

    def __init__(self, source, n_images: int, classes: list[str], *, size: int, batch_size: int, shuffle: bool,
                 drop_last: bool, seed: int, rank: int, world_size: int, n_corrupt: int = 0, where: str = ""):
        self._source, self.n_images, self.classes = source, n_images, classes
        self.size, self.batch_size = size, batch_size
        self._order: Callable[[int], list[np.ndarray]] = lambda epoch: epoch_batches(
            n_images, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, epoch=epoch,
            rank=rank, world_size=world_size)
        self._bad: set[int] = set()
        self._cache_corrupt = n_corrupt
        self.epoch = 0
        self._batches = self._order(0)
        if not self._batches:
            raise DataError(f"{where}: {n_images} images give no full batch of {batch_size} on each of "
                            f"{world_size} rank(s); lower the batch size")

    @property
    def n_corrupt(self) -> int:
        return self._cache_corrupt + len(self._bad)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """The batches of `epoch` from batch `start_batch` on (0: the whole epoch).

        start_batch resumes an epoch part way: the order is fixed by (seed, epoch), so the batches left are
        those an uninterrupted epoch would yield next, and the skipped ones are never decoded. len() counts
        the batches left.
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        plan = self._order(epoch)
        n = len(plan)
        if isinstance(start_batch, bool) or not isinstance(start_batch, (int, np.integer)) or not 0 <= start_batch <= n:
            raise ValueError(f"start_batch must be an integer in 0..{n}, got {start_batch!r}")
        self.epoch = epoch
        self._batches = plan[start_batch:]

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels, bad in self._source.iterate(self._batches):
            self._bad.update(bad)
            if len(labels) == 0:
                raise DataError(f"every file of a batch is corrupt (indices {bad[:5]}...); check the data")
            yield images, labels


# ----------------------------------------------------------------------------------------- cache folders

def read_meta(cache) -> dict:
    """meta.json of a complete cache folder; DataError when the folder is missing or incomplete."""
    cache = Path(cache)
    if not cache.is_dir():
        raise DataError(f"{cache}: cache folder not found (build it with python -m lab.data.cache)")
    try:
        meta = json.loads((cache / META).read_text())
    except FileNotFoundError:
        raise DataError(f"{cache}: not a complete cache (no {META}); rebuild it") from None
    except json.JSONDecodeError:
        raise DataError(f"{cache}: {META} is not valid JSON; rebuild the cache") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{cache}: cache format {meta.get('format')!r}, this lab reads {FORMAT}; rebuild it")
    return meta


def open_cache(cache, root, split: str, size: int, prefetch: int = 2) -> tuple["CacheSource", dict]:
    """Check a cache folder against the request and open it: (source for ImageLoader, meta)."""
    cache = Path(cache)
    meta = read_meta(cache)
    if meta["size"] != size:
        raise DataError(f"{cache}: cache holds {meta['size']} px images, {size} px asked; "
                        f"build a cache with --size {size}")
    if meta["split"] != split:
        raise DataError(f"{cache}: cache of split {meta['split']!r}, {split!r} asked")
    if root is not None and (Path(root) / split).is_dir():
        classes = class_folders(Path(root) / split)
        if classes != meta["classes"]:
            raise DataError(f"{cache}: cache has {len(meta['classes'])} classes, {Path(root) / split} has "
                            f"{len(classes)} (or other names); rebuild the cache")
    n, frame = meta["n"], 3 * size * size
    if (cache / IMAGES).stat().st_size != n * frame:
        raise DataError(f"{cache / IMAGES}: {(cache / IMAGES).stat().st_size} bytes, {n * frame} expected; "
                        f"rebuild the cache")
    labels = np.load(cache / LABELS)
    if labels.shape != (n,):
        raise DataError(f"{cache / LABELS}: {labels.shape[0]} labels, {n} expected; rebuild the cache")
    return CacheSource(cache / IMAGES, labels, n, size, prefetch), meta


class CacheSource:
    """Batches gathered from the memmap with numpy's take (it releases the GIL; torch.index_select on a
    uint8 memmap measured ~100x slower), straight into a pinned tensor when CUDA is there. A background
    thread gathers the next `prefetch` batches, so page faults and copies overlap the training step."""

    def __init__(self, path: Path, labels: np.ndarray, n: int, size: int, prefetch: int = 2):
        self.images = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, 3, size, size))
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.prefetch = prefetch
        self.pin = torch.cuda.is_available()

    def gather(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """idx (B,) sorted -> images (B, 3, S, S) uint8, labels (B,) int64, no corrupt files."""
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        images = torch.empty((len(idx),) + self.images.shape[1:], dtype=torch.uint8, pin_memory=self.pin)
        np.take(self.images, idx, axis=0, out=images.numpy(), mode="clip")  # "clip": unbuffered; idx is valid
        return images, self.labels[torch.from_numpy(idx)], []

    def iterate(self, batches: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[int]]]:
        if self.prefetch <= 0:
            return (self.gather(b) for b in batches)
        return _prefetched(self.gather, batches, self.prefetch)


_END = object()


def _prefetched(fn, items: list, depth: int):
    """fn(item) for each item, computed by a background thread up to `depth` ahead. Leaving the loop
    early stops the thread; an exception in it is raised here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(fn(item))
            q.put(_END)
        except BaseException as e:  # hand it to the consumer
            q.put(e)

    thread = threading.Thread(target=work, daemon=True, name="cache-prefetch")
    thread.start()
    try:
        while True:
            got = q.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        while thread.is_alive():  # unblock a put() waiting on a full queue
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


# ----------------------------------------------------------------------------------------- in memory

class TensorSource:
    """Batches gathered from images already in memory (Fashion-MNIST: 47 MB for the training split)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def iterate(self, batches: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[int]]]:
        for idx in batches:
            i = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
            yield self.images.index_select(0, i), self.labels.index_select(0, i), []


_MEMORY: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def load_fashion_mnist(root, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of a Fashion-MNIST folder, read once per process (the kNN loader reuses the training split)."""
    paths = [fmnist.file_path(root, stem) for stem in fmnist.FILES[split]]
    key = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) if p else None for p in paths)
    if key not in _MEMORY:
        if len(_MEMORY) >= 4:
            _MEMORY.clear()
        _MEMORY[key] = fmnist.load_split(root, split)
    return _MEMORY[key]


def check_split(root, split: str) -> None:
    """ValueError (one line, naming the folder or file) unless root/split can be read: an ImageFolder split,
    or a Fashion-MNIST split of its idx files."""
    if fmnist.is_fashion_mnist(root):
        load_fashion_mnist(root, split)
    else:
        scan(root, split)


def has_split(root, split: str) -> bool:
    """Whether root has the split at all (Fashion-MNIST: its files; an ImageFolder: root/split)."""
    if fmnist.is_fashion_mnist(root):
        return fmnist.has_split(root, split)
    try:
        split_folder(root, split)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------------- loaders

def _check_args(size: int, batch_size: int, workers: int, seed: int, rank: int, world_size: int) -> None:
    checks = (("size", size, 1, 8192), ("batch_size", batch_size, 1, 1 << 20), ("workers", workers, 0, 256),
              ("seed", seed, 0, 2**63 - 1), ("world_size", world_size, 1, 1 << 16),
              ("rank", rank, 0, world_size - 1))
    for name, value, lo, hi in checks:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")


def make_loader(root, split: str, *, size: int, batch_size: int, workers: int = 2, shuffle: bool = True,
                drop_last: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                cache: str | Path | None = None) -> ImageLoader:
    """Loader of root/split (an ImageFolder), or of the pre-decoded cache folder `cache` built from it.

    With a cache, root/split is only consulted (when present) to check that its classes match.
    """
    _check_args(size, batch_size, workers, seed, rank, world_size)
    kw = dict(size=size, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, rank=rank,
              world_size=world_size)
    if fmnist.is_fashion_mnist(root):
        if cache is not None:
            raise DataError(f"{root}: Fashion-MNIST is read into memory; --cache is for ImageFolders")
        if size != fmnist.SIDE:
            raise DataError(f"{root}: Fashion-MNIST images are {fmnist.SIDE} px; load size must be {fmnist.SIDE}, "
                            f"got {size}")
        images, labels = load_fashion_mnist(root, split)
        return ImageLoader(TensorSource(images, labels), len(labels), list(fmnist.CLASSES), where=str(root), **kw)
    if cache is not None:
        source, meta = open_cache(cache, root, split, size)
        return ImageLoader(source, meta["n"], meta["classes"], n_corrupt=meta["n_corrupt"], where=str(cache), **kw)
    samples, classes = scan(root, split)
    return ImageLoader(_JpegSource(samples, size, workers), len(samples), classes,
                       where=str(Path(root) / split), **kw)
