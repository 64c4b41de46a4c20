"""ImageNet-100: the 100 classes of the CMC subset (Tian et al., "Contrastive Multiview Coding", 2019;
the imagenet100.txt that CMC, solo-learn and others ship), and a command that builds it from a full
ImageNet tree by symlinking class folders:

    python -m lab.data.subset --imagenet FULL_DIR --out DIR
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from lab.core.clitools import OneLineParser
from lab.data.folder import DataError

CLASS_LIST = Path(__file__).with_name("imagenet100.txt")
SPLITS = ("train", "val")


def imagenet100_wnids() -> list[str]:
    """The 100 WordNet ids of ImageNet-100, in the order of CMC's imagenet100.txt."""
    return CLASS_LIST.read_text().split()


def build_subset(imagenet, out, wnids: Sequence[str] | None = None) -> Path:
    """Make out/{train,val}/<wnid> symlinks to imagenet/{train,val}/<wnid> for each wnid (default: ImageNet-100).

    Everything is checked before the first link is made, so a missing class folder leaves nothing half built.
    Links that already point to the right folder are kept (running it twice is fine).
    """
    imagenet, out = Path(imagenet).absolute(), Path(out)
    wnids = list(imagenet100_wnids() if wnids is None else wnids)
    if not wnids or len(set(wnids)) != len(wnids):
        raise ValueError(f"wnids must be a non-empty list without repeats, got {len(wnids)} ({len(set(wnids))} unique)")
    if not imagenet.is_dir():
        raise DataError(f"{imagenet}: ImageNet folder not found")
    plan = []
    for split in SPLITS:
        missing = [w for w in wnids if not (imagenet / split / w).is_dir()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(f"{imagenet / split / missing[0]}: class folder missing{more}; {split}/ must hold "
                            f"one folder per wnid")
        plan += [(imagenet / split / w, out / split / w) for w in wnids]
    for src, link in plan:
        if link.is_symlink() or link.exists():
            if not (link.is_symlink() and Path(os.readlink(link)) == src):
                raise DataError(f"{link}: already exists and is not a link to {src}")
    for src, link in plan:
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            os.symlink(src, link, target_is_directory=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m lab.data.subset",
                      description="Build ImageNet-100 (the CMC class list) as symlinks into a full ImageNet tree. "
                                  "FULL_DIR/train and FULL_DIR/val must both be in class-folder layout "
                                  "(FULL_DIR/val/<wnid>/*.JPEG): the raw ILSVRC2012 val folder is flat and must "
                                  "first be sorted into class folders (e.g. with the widely used valprep.sh).")
    p.add_argument("--imagenet", required=True, type=Path, metavar="FULL_DIR",
                   help="full ImageNet root holding train/<wnid> and val/<wnid>")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="where to create train/<wnid> and val/<wnid> links")
    p.add_argument("--classes", type=Path, metavar="FILE", help="a file of wnids to use instead (whitespace separated)")
    a = p.parse_args(argv)
    try:
        wnids = a.classes.read_text().split() if a.classes else None
        out = build_subset(a.imagenet, a.out, wnids)
    except (ValueError, OSError) as e:
        print(f"{p.prog}: {e}", file=sys.stderr)
        return 2
    n = len(wnids) if wnids else 100
    print(f"linked {n} classes x {len(SPLITS)} splits under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
