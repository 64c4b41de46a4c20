"""Reading an embedding file for the doctor (`lab.doctor.check`): .npy (memory-mapped), .npz, .pt/.pth (tensors
only: `torch.load(weights_only=True)`) and .safetensors (where the `safetensors` package is installed), with
optional labels (in the file or a file of their own) and a paired second view of each sample.

Key conventions of a .npz, a .safetensors or a .pt dict: the rows under "embeddings", "z" or "features" (else the
first array that is not labels or views), optional "labels" (N,) and "views" (N, D); or "z1" and "z2", the two
views of each sample. Every bad input raises ValueError with one line naming the bad value and what was expected,
so that the command line prints it as it is (`python -m lab doctor`).
"""
from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

try:  # optional: only .safetensors files need it, and the lab does not depend on it
    from safetensors.numpy import load_file as _read_safetensors
except ImportError:
    _read_safetensors = None

SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".safetensors")
LABEL_SUFFIXES = (".npy", ".pt", ".pth", ".txt")
Z_KEYS = ("embeddings", "z", "features")
PAIR_KEYS = ("z1", "z2")
LABELS_KEY, VIEWS_KEY = "labels", "views"
NUMBER_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what a row of numbers can hold


@dataclass(frozen=True)
class Embeddings:
    """z: (N, D) rows, one per sample (an np.ndarray, or an np.memmap for a .npy file: read in chunks, never
    whole); labels: (N,) the class of each row, or None; views: (N, D) the paired second view of each row, or
    None; source: where they came from (a path, or "array"); images: the images embedded, uint8 (N, H, W) or
    (N, H, W, 3), for thumbnails (a checkpoint embedded by `lab.doctor.embed`), or None. Checked on creation
    (one-line ValueError)."""

    z: Any
    labels: np.ndarray | None = None
    views: Any = None
    source: str = "array"
    images: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None  # the name of class c at [c], where the labels are 0..C-1

    def __post_init__(self):
        _check_rows(self.z, self.source, "embeddings")
        n, d = self.z.shape
        if self.labels is not None and tuple(self.labels.shape) != (n,):
            raise ValueError(f"{self.source}: labels of shape {tuple(self.labels.shape)}; expected ({n},), one "
                             "label per row of the embeddings")
        if self.views is not None and tuple(self.views.shape) != (n, d):
            raise ValueError(f"{self.source}: views of shape {tuple(self.views.shape)}; expected the embeddings' "
                             f"shape ({n}, {d}), one paired view per row")
        if self.images is not None and (self.images.dtype != np.uint8 or len(self.images) != n
                                        or self.images.shape[3:] not in ((), (3,)) or self.images.ndim < 3):
            raise ValueError(f"{self.source}: images of shape {tuple(self.images.shape)} and dtype "
                             f"{self.images.dtype}; expected uint8 ({n}, H, W) or ({n}, H, W, 3), one per row")


def embeddings(z: Any, labels: Any = None, views: Any = None, source: str = "array") -> Embeddings:
    """Embeddings from arrays: z (N, D) and views (N, D) numpy or torch; labels (N,) an array, a tensor or a
    path to a .npy/.pt/.txt file. Torch tensors become numpy arrays (half precision as float32)."""
    z = _as_rows(z, source, "embeddings")
    views = None if views is None else _as_rows(views, source, "views")
    return Embeddings(z, None if labels is None else _as_labels(labels, source), views, source)


def load_embeddings(path: str | Path, labels: Any = None) -> Embeddings:
    """The embeddings in `path` (.npy memory-mapped; .npz, .pt/.pth, .safetensors by the key conventions above).
    labels: a path to a .npy/.pt/.txt file or an array, (N,); given, it replaces labels found in the file."""
    path = Path(path)
    _check_file(path, SUFFIXES, "embeddings")
    suffix = path.suffix.lower()
    if suffix != ".npy":
        _check_fits(path, _whole_size(path))
    if suffix == ".npy":
        found: Any = _read_npy(path, mmap=True)
    elif suffix == ".npz":
        found = _read_npz(path)
    elif suffix == ".safetensors":
        found = _read_st(path)
    else:
        found = _read_torch(path)
    z, file_labels, views = _pick(found, str(path))
    return embeddings(z, file_labels if labels is None else labels, views, str(path))


def read_labels(path: str | Path) -> np.ndarray:
    """Labels from a .npy, a .pt/.pth (a tensor, or a dict with "labels") or a .txt file (one label per line,
    numbers or names; blank lines skipped) -> (N,) array."""
    path = Path(path)
    _check_file(path, LABEL_SUFFIXES, "labels")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = [line.strip() for line in path.read_text().splitlines()]
        return np.asarray([line for line in lines if line])
    found = _read_npy(path, mmap=False) if suffix == ".npy" else _read_torch(path)
    if isinstance(found, Mapping):
        if LABELS_KEY not in found:
            raise ValueError(f"{path}: holds keys {', '.join(map(str, found))}; expected a tensor or a dict with "
                             f"{LABELS_KEY!r}")
        found = found[LABELS_KEY]
    return _as_labels(found, str(path))


def _check_file(path: Path, suffixes: tuple[str, ...], what: str) -> None:
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: unknown extension {path.suffix or '(none)'!r} for {what}; expected one of "
                         + ", ".join(suffixes))
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: not a file; expected a {what} file")


def available_memory() -> int:
    """Bytes of memory this machine can still give (MemAvailable of /proc/meminfo; unbounded where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62


def _whole_size(path: Path) -> int:
    """The bytes a file that is read whole takes in memory: an .npz its members unpacked, others their size."""
    if path.suffix.lower() == ".npz":
        try:
            with zipfile.ZipFile(path) as archive:
                return sum(info.file_size for info in archive.infolist())
        except (OSError, zipfile.BadZipFile):
            pass  # np.load names what is wrong with it
    return path.stat().st_size


def _check_fits(path: Path, size: int) -> None:
    """.npz, .pt and .safetensors are read whole (only .npy is memory-mapped): refuse one that would not fit,
    with the way out, rather than let the machine swap or the process be killed."""
    free = available_memory()
    if size > 0.8 * free:  # the rows, then their float64 chunks and the D × D sums beside them
        raise ValueError(f"{path}: {size / 1e9:.1f} GB to read whole ({path.suffix} files are not memory-mapped) "
                         f"and {free / 1e9:.1f} GB of memory available; save the rows as .npy (numpy.save), which "
                         "the doctor reads in chunks")


def _read_npy(path: Path, mmap: bool) -> np.ndarray:
    # allow_pickle=False: a .npy of Python objects would run code from the file when read
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as e:
        if "object" in str(e).lower():  # numpy reads any file without its .npy header as a pickle too
            raise ValueError(f"{path}: refused for safety: not a .npy array of numbers, and reading it would mean "
                             "unpickling Python objects") from None
        raise ValueError(f"{path}: not a readable .npy array ({_first_line(e)})") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npy array ({_first_line(e)})") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as e:
        if "object" in str(e).lower() or "pickle" in str(e).lower():
            raise ValueError(f"{path}: refused for safety: it holds pickled Python objects; expected arrays of "
                             "numbers") from None
        raise ValueError(f"{path}: not a readable .npz archive ({_first_line(e)})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({_first_line(e)})") from None


def _read_torch(path: Path) -> Any:
    """A .pt/.pth file's contents, with weights_only=True only: a file that needs other Python objects built is
    refused, since unpickling them can run any code the file names."""
    try:
        # mmap keeps a large tensor on disk until read; only the zip format (torch.save since 1.6) allows it
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        named = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if named:  # the file names a Python object to build: a class, or a function that would run
            raise ValueError(f"{path}: refused for safety: it needs unpickling arbitrary Python objects "
                             f"({named.group(1)}), which torch.load(weights_only=True) will not do; expected a tensor "
                             "or a dict of tensors") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(e))
        raise ValueError(f"{path}: not a readable torch file of tensors (torch.load(weights_only=True): "
                         f"{detail.group(1).strip() if detail else _first_line(e)})") from None
    except Exception as e:  # a damaged file raises RuntimeError, KeyError, EOFError, ...: each is one bad input
        raise ValueError(f"{path}: not a readable torch file ({type(e).__name__}: {_first_line(e)})") from None


def _read_st(path: Path) -> dict[str, np.ndarray]:
    if _read_safetensors is None:
        raise ValueError(f"{path}: reading .safetensors needs the safetensors package (pip install safetensors)")
    try:
        return _read_safetensors(str(path))
    except Exception as e:  # the package raises its own error types for a damaged file
        raise ValueError(f"{path}: not a readable .safetensors file ({_first_line(e)})") from None


def _pick(found: Any, source: str) -> tuple[Any, Any, Any]:
    """(z, labels, views) from a file's contents: an array or tensor is z; a mapping by the key conventions."""
    if isinstance(found, (np.ndarray, torch.Tensor)):
        return found, None, None
    if not isinstance(found, Mapping):
        raise ValueError(f"{source}: holds a {type(found).__name__}; expected an array, a tensor or a dict of them")
    if all(key in found for key in PAIR_KEYS):
        return found[PAIR_KEYS[0]], found.get(LABELS_KEY), found[PAIR_KEYS[1]]
    key = next((k for k in Z_KEYS if k in found), None)
    if key is None:
        key = next((k for k, v in found.items() if k not in (LABELS_KEY, VIEWS_KEY)
                    and isinstance(v, (np.ndarray, torch.Tensor))), None)
    if key is None:
        raise ValueError(f"{source}: holds keys {', '.join(map(str, found)) or '(none)'}; expected an array under "
                         f"one of {', '.join(Z_KEYS)} (or {' and '.join(PAIR_KEYS)})")
    return found[key], found.get(LABELS_KEY), found.get(VIEWS_KEY)


def _as_rows(x: Any, source: str, what: str) -> np.ndarray:
    """x as a numpy array of numbers (a memmap stays one); torch's half precisions become float32, which numpy
    can hold."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).numpy()
    elif not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in NUMBER_KINDS:
        raise ValueError(f"{source}: {what} of dtype {x.dtype}; expected real numbers")
    return x


def _as_labels(x: Any, source: str) -> np.ndarray:
    if isinstance(x, (str, Path)):
        return read_labels(x)
    labels = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if labels.ndim == 2 and labels.shape[1] == 1:  # a column, as some tools write one label per row
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{source}: labels of shape {tuple(labels.shape)}; expected a 1-D array (N,)")
    if labels.dtype.kind not in NUMBER_KINDS + "US":
        raise ValueError(f"{source}: labels of dtype {labels.dtype}; expected numbers or names")
    return labels


def _check_rows(z: Any, source: str, what: str) -> None:
    shape = tuple(z.shape)
    if len(shape) != 2:
        raise ValueError(f"{source}: {what} of shape {shape} ({len(shape)}-D); expected a 2-D (N, D) array, one "
                         "row per sample")
    if shape[1] < 2:
        raise ValueError(f"{source}: {what} of shape {shape} have D = {shape[1]}; expected D >= 2 dimensions "
                         "(on a 1-D sphere every row is +1 or -1)")
    if shape[0] < 2:
        raise ValueError(f"{source}: {what} of shape {shape} have N = {shape[0]} rows; expected N >= 2 samples")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
