"""The one-time pre-decoded cache: every image of one split decoded once (the loader's resize + center crop)
into a memory-mapped uint8 array, so training reads pixels instead of decoding JPEGs.

    python -m lab.data.cache --data DIR --split train --size PX --out CACHE_DIR

CACHE_DIR holds images.u8 (N, 3, size, size) raw uint8, labels.npy (N,) int64 and meta.json (classes,
size, n, n_corrupt, source). It is built in a temporary sibling folder and renamed into place at the
end, so an interrupted build never leaves a folder that looks complete. Corrupt files are skipped and
counted. `lab.data.folder.make_loader(..., cache=CACHE_DIR)` reads it (one cache folder per split); the
format's names and its reader live there, beside the loader.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lab.core.clitools import OneLineParser
from lab.data.folder import FORMAT, IMAGES, LABELS, META, DataError, JpegDataset, collate, read_meta, scan

BUILD_BATCH = 64


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmp_name(out: Path, pid: int | str = "*") -> Path:
    # The host is in the name so that builds on a shared file system never judge each other's pids.
    return out.parent / f".{out.name}.tmp-{socket.gethostname()}-{pid}"


def _remove_stale_builds(out: Path) -> None:
    """Temporary folders of builds on this machine whose process is gone (killed): they can be large."""
    for tmp in out.parent.glob(_tmp_name(out).name):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _progress_line(split: str, done: int, n: int, start: float) -> str:
    rate = done / max(time.perf_counter() - start, 1e-9)
    eta = (n - done) / rate if rate > 0 else float("inf")
    return f"\rcache {split}: {done}/{n} images, {rate:.0f} images/s, {eta:.0f} s left "


def build_cache(root, split: str, size: int, out_dir, workers: int = 2, overwrite: bool = False,
                progress: bool | None = None) -> Path:
    """Decode root/split once into the cache folder out_dir; returns out_dir as a Path.

    workers: decoding processes; progress: a progress line on stderr (default: when it is a terminal).
    An existing out_dir is an error unless overwrite, which replaces it only once the new cache is complete.
    """
    if not isinstance(size, int) or not 1 <= size <= 8192:
        raise ValueError(f"size must be an integer in 1..8192, got {size!r}")
    if not isinstance(workers, int) or not 0 <= workers <= 256:
        raise ValueError(f"workers must be an integer in 0..256, got {workers!r}")
    samples, classes = scan(root, split)
    out = Path(out_dir).absolute()
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; remove it or rebuild with overwrite (--overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out)
    tmp = _tmp_name(out, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        n_good, corrupt = _decode_all(samples, size, tmp, workers, split,
                                      sys.stderr.isatty() if progress is None else progress)
        if n_good == 0:
            raise DataError(f"{Path(root) / split}: none of its {len(samples)} files could be decoded")
        meta = {"format": FORMAT, "classes": classes, "size": size, "n": n_good, "n_corrupt": len(corrupt),
                "corrupt": [str(samples[j][0]) for j in corrupt[:1000]], "split": split,
                "source": str(Path(root).absolute() / split), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                     time.gmtime())}
        with open(tmp / META, "w") as f:  # written last: a folder with meta.json has all its data
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Path(out_dir)


def _decode_all(samples, size: int, tmp: Path, workers: int, split: str, progress: bool) -> tuple[int, list[int]]:
    """Decode every sample into tmp/images.u8 and tmp/labels.npy in scan order, corrupt files left out."""
    n, frame = len(samples), 3 * size * size
    images = np.memmap(tmp / IMAGES, dtype=np.uint8, mode="w+", shape=(n, 3, size, size))
    labels = np.empty(n, dtype=np.int64)
    loader = torch.utils.data.DataLoader(JpegDataset(samples, size, substitute=False), batch_size=BUILD_BATCH,
                                         shuffle=False, num_workers=workers, collate_fn=collate)
    pos, corrupt, start = 0, [], time.perf_counter()
    for b, (x, y, bad) in enumerate(loader):
        images[pos:pos + len(y)] = x.numpy()
        labels[pos:pos + len(y)] = y.numpy()
        pos += len(y)
        corrupt.extend(bad)
        if progress and (b % 20 == 0 or pos + len(corrupt) == n):
            sys.stderr.write(_progress_line(split, pos + len(corrupt), n, start))
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    images.flush()
    del images
    os.truncate(tmp / IMAGES, pos * frame)  # corrupt files leave the tail unused
    np.save(tmp / LABELS, labels[:pos])
    return pos, corrupt


def _move_into_place(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m lab.data.cache",
                      description="Decode one split of an ImageFolder once into a memory-mapped uint8 cache "
                                  "(one cache folder per split; pass it to the trainer's loader).")
    p.add_argument("--data", required=True, type=Path, help="ImageFolder root holding SPLIT/<class>/*.jpg")
    p.add_argument("--split", default="train", help="split folder to cache (default train)")
    p.add_argument("--size", required=True, type=int, help="image side in pixels after resize + center crop (8-1024)")
    p.add_argument("--out", required=True, type=Path, help="cache folder to create")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="decoding processes (default: min(8, CPUs))")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing cache folder once the new one is built")
    a = p.parse_args(argv)
    if not 8 <= a.size <= 1024:
        p.error(f"argument --size: expected an integer in 8..1024, got {a.size}")
    if not 0 <= a.workers <= 256:
        p.error(f"argument --workers: expected an integer in 0..256, got {a.workers}")
    # SIGTERM becomes SystemExit, so the build's cleanup removes its temporary folder.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    start = time.perf_counter()
    try:
        out = build_cache(a.data, a.split, a.size, a.out, workers=a.workers, overwrite=a.overwrite)
    except DataError as e:
        print(f"{p.prog}: {e}", file=sys.stderr)
        return 2
    meta = read_meta(out)
    gb = meta["n"] * 3 * a.size * a.size / 1e9
    print(f"cached {meta['n']} images ({len(meta['classes'])} classes, {a.size} px, {gb:.2f} GB) to {out} "
          f"in {time.perf_counter() - start:.1f} s; {meta['n_corrupt']} corrupt files skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
