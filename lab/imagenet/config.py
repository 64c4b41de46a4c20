"""The configuration of one ImageNet run and the command line that builds it.

`TrainConfig` is validated once, when it is made (bad input -> ValueError, one line); `build_parser` /
`config_from_args` turn `python -m lab.imagenet.train` flags into one, and `preset_commands` a paper preset
into the flags of each of its runs.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from lab.methods import METHOD_NAMES
from lab.checks import check_range

PROG = "python -m lab.imagenet.train"
DESCRIPTION = "ImageNet-100 training: `python -m lab.imagenet.train --data DIR --method simsiam --out RUN ...`."


@dataclass(frozen=True)
class TrainConfig:
    """One ImageNet run. None means the method's recipe default (`lab.imagenet.recipes.RECIPES`).

    batch_size is the global batch (split evenly over the DDP ranks); lr is the base learning rate for
    batch 256 (scaled linearly by batch_size / 256), as in the recipes. aug_groups (default: the world
    size) splits the global batch into groups augmented with their own random stream, so a one-process
    run with aug_groups = G sees exactly the views of a G-process run.
    """

    data: str
    method: str
    set: Mapping[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    batch_size: int | None = None
    image_size: int = 224
    load_size: int | None = None  # None: image_size · 256/224, rounded
    device: str = "auto"  # auto: cuda when present, else cpu; under torchrun cuda:LOCAL_RANK
    out: str = "runs/imagenet"
    seed: int = 0
    workers: int = 4
    cache: str | None = None
    knn_every: int = 10  # epochs between kNN evaluations (and always after the last epoch); 0: only at the end
    knn_k: int = 20
    knn_temperature: float = 0.07
    log_every_steps: int = 50
    collapse_threshold: float | None = None  # guard off by default
    collapse_patience: int = 3
    lr: float | None = None
    max_steps_per_epoch: int | None = None
    amp: bool = True  # bf16 autocast; CUDA only
    channels_last: bool = True  # CUDA only (CPU convolutions gain nothing from it)
    aug_groups: int | None = None
    progress: bool = True  # a progress bar on stderr when it is a terminal

    def __post_init__(self):
        if self.method not in METHOD_NAMES:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHOD_NAMES)}")
        # Normalised so that equal settings compare (and serialise) equal, whatever types came in.
        object.__setattr__(self, "set", dict(sorted(dict(self.set).items())))
        object.__setattr__(self, "data", str(self.data))
        object.__setattr__(self, "out", str(self.out))
        if self.cache is not None:
            object.__setattr__(self, "cache", str(self.cache))
        self._check_ints()
        self._check_floats()
        if self.load_size is not None and self.load_size < self.image_size:
            raise ValueError(f"load_size must be >= image_size ({self.image_size}), got {self.load_size}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}") from None

    def _check_ints(self) -> None:
        ints = {"epochs": (1, 100_000), "batch_size": (2, 1 << 20), "image_size": (16, 1024),
                "load_size": (16, 2048), "seed": (0, 2**31 - 1), "workers": (0, 256), "knn_every": (0, 100_000),
                "knn_k": (1, 10_000), "log_every_steps": (1, 1 << 30), "collapse_patience": (1, 100_000),
                "max_steps_per_epoch": (1, 1 << 30), "aug_groups": (1, 4096)}
        for name, (low, high) in ints.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
            check_range(name, value, low, high)

    def _check_floats(self) -> None:
        check_range("knn_temperature", self.knn_temperature, 0.0, 100.0, low_open=True)
        if self.collapse_threshold is not None:
            check_range("collapse_threshold", self.collapse_threshold, 0.0, 1.0)
        if self.lr is not None:
            check_range("lr", self.lr, 0.0, 100.0, low_open=True)

    def resolved(self) -> "TrainConfig":
        """Recipe defaults filled in (epochs, batch_size, load_size); everything else unchanged."""
        recipe = get_recipe(self.method)
        return dataclasses.replace(
            self, epochs=self.epochs or recipe.epochs, batch_size=self.batch_size or recipe.batch_size,
            load_size=self.load_size or int(round(self.image_size * 256 / 224)))


def get_recipe(method: str):
    from lab.imagenet.recipes import RECIPES

    if method not in RECIPES:
        raise ValueError(f"no ImageNet recipe for method {method!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[method]


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """['key=value', ...] -> {key: value} (values stay strings; the method config parses them)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def jsonable(value: Any) -> Any:
    """A config, recipe or knob value as plain JSON types (anything else as its str)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def prepare_check(cfg: TrainConfig) -> TrainConfig:
    """The cheap checks of a preset's runs before the first one starts (method knobs, recipe)."""
    from lab.imagenet.model import method_params

    method_params(cfg.method, cfg.set)
    get_recipe(cfg.method)
    return cfg


# ----------------------------------------------------------------------------------------- command line

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise ValueError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=DESCRIPTION)
    p.add_argument("--data", help="ImageFolder root with train/<class>/*.jpg (and val/ for kNN)")
    p.add_argument("--method", help="one of: " + ", ".join(METHOD_NAMES))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a method knob (e.g. predictor=false, lam=0, momentum=0.9); repeatable")
    p.add_argument("--epochs", type=int, help="default: the method's recipe")
    p.add_argument("--batch-size", type=int, help="global batch over all ranks; default: the recipe's")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--load-size", type=int, help="decoded size before cropping; default image-size·256/224")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")
    p.add_argument("--out", help="run folder (checkpoint, metrics.jsonl, config.json, train.log); "
                                 "the same --out resumes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=4, help="data-loading processes per rank")
    p.add_argument("--cache", help="pre-decoded cache folder (python -m lab.imagenet.cache)")
    p.add_argument("--lr", type=float, help="base lr for batch 256 (scaled by batch/256); default: the recipe's")
    p.add_argument("--collapse-guard", type=float, metavar="T",
                   help="stop when center_norm > T for --collapse-patience epochs (off by default)")
    p.add_argument("--collapse-patience", type=int, default=3, metavar="N")
    p.add_argument("--knn-every", type=int, default=10, metavar="E", help="kNN every E epochs and at the end")
    p.add_argument("--knn-k", type=int, default=20)
    p.add_argument("--knn-temperature", type=float, default=0.07)
    p.add_argument("--log-every", type=int, default=50, metavar="STEPS", help="a step line every STEPS steps")
    p.add_argument("--max-steps-per-epoch", type=int, metavar="S", help="cut epochs short (tests, demos)")
    p.add_argument("--aug-groups", type=int, help="augmentation groups of the global batch (default: world size)")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--preset", metavar="NAME", help="print a paper preset's runs as commands (--run: run them)")
    p.add_argument("--run", action="store_true", help="with --preset: run them one after another into --out/<name>")
    return p


def config_from_args(args: argparse.Namespace, **over) -> TrainConfig:
    values = dict(data=args.data, method=args.method, set=parse_sets(args.set), epochs=args.epochs,
                  batch_size=args.batch_size, image_size=args.image_size, load_size=args.load_size,
                  device=args.device, out=args.out, seed=args.seed, workers=args.workers, cache=args.cache,
                  knn_every=args.knn_every, knn_k=args.knn_k, knn_temperature=args.knn_temperature,
                  log_every_steps=args.log_every, collapse_threshold=args.collapse_guard,
                  collapse_patience=args.collapse_patience, lr=args.lr, max_steps_per_epoch=args.max_steps_per_epoch,
                  amp=not args.no_amp, channels_last=not args.no_channels_last, aug_groups=args.aug_groups,
                  progress=not args.no_progress)
    values.update(over)
    return TrainConfig(**values)


# The flags a preset passes on to each of its runs (method, --set, --epochs and --out are per run).
_PASSTHROUGH = (("batch_size", "--batch-size"), ("image_size", "--image-size"), ("load_size", "--load-size"),
                ("device", "--device"), ("seed", "--seed"), ("workers", "--workers"), ("cache", "--cache"),
                ("lr", "--lr"), ("max_steps_per_epoch", "--max-steps-per-epoch"), ("knn_every", "--knn-every"),
                ("knn_k", "--knn-k"), ("knn_temperature", "--knn-temperature"), ("log_every", "--log-every"),
                ("collapse_guard", "--collapse-guard"), ("collapse_patience", "--collapse-patience"),
                ("aug_groups", "--aug-groups"), ("no_amp", "--no-amp"), ("no_channels_last", "--no-channels-last"),
                ("no_progress", "--no-progress"))


def preset_commands(name: str, args: argparse.Namespace) -> list[tuple[dict, list[str]]]:
    """(run, argv) for each run of a preset; the user's other flags are passed on."""
    from lab.imagenet.presets import preset_runs

    runs = preset_runs(name)
    out = Path(args.out or f"runs/{name}")
    result = []
    for r in runs:
        argv = ["--data", args.data or "DATA", "--method", r["method"]]
        for k, v in r.get("set", {}).items():
            argv += ["--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
        epochs = args.epochs or r.get("epochs")
        if epochs:
            argv += ["--epochs", str(epochs)]
        argv += _passthrough_flags(args)
        argv += ["--out", str(out / r["name"])]
        result.append((r, argv))
    return result


def _passthrough_flags(args: argparse.Namespace) -> list[str]:
    """The user's flags that differ from the parser's defaults, as argv."""
    defaults = build_parser()
    argv = []
    for attr, flag in _PASSTHROUGH:
        value = getattr(args, attr)
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False and value != defaults.get_default(attr):
            argv += [flag, str(value)]
    return argv
