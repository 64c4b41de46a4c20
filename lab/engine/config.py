"""The configuration of one ImageNet run and the command line that builds it, both declared once.

`TrainConfig`'s fields carry their help text and valid range in their metadata (`lab.core.checks.knob`); a config
is validated when it is made (bad input -> ValueError, one line). The command line is built from the fields
(`build_parser`: `--batch-size` for batch_size, bools as `--amp/--no-amp`, `--set KEY=VALUE` repeatable, old
spellings kept as aliases); `--config FILE.json` reads a JSON object of fields, and flags given beside it
override it. `parse_train_args` makes a config from argv, `config_to_argv` turns one back into argv, and
`preset_configs` makes the configs of a paper preset's runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from lab.core.checks import check_knobs, field_kind, knob
from lab.core.seeds import OFFSET, seed_stream
from lab.engine.model import method_params
from lab.engine.presets import ALL, preset_runs
from lab.engine.recipes import RECIPES, SCALES, data_scale, recipe
from lab.methods import METHOD_NAMES

PROG = "python -m lab.engine.train"
DESCRIPTION = "ImageNet-100 training: `python -m lab.engine.train --data DIR --method simsiam --out RUN ...`."
REQUIRED = ("data", "method", "out")  # a command line must name them (out has a default for the Python API only)


def _option(default: Any = dataclasses.MISSING, *, help: str, metavar: str | None = None, aliases: tuple = (),
            factory=None, **checks) -> Any:
    """A TrainConfig field: `lab.core.checks.knob`'s metadata (help, range, low_open) and the command line's own
    (metavar; aliases, the older spellings of the flag). factory: a default made afresh per config."""
    meta = {**knob(None, help=help, **checks).metadata, "metavar": metavar, "aliases": tuple(aliases)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """One ImageNet run. None means the method's recipe default (`lab.engine.recipes.RECIPES`).

    batch_size is the global batch (split evenly over the DDP ranks); lr is the base learning rate for
    batch 256 (scaled linearly by batch_size / 256), as in the recipes. aug_groups (default: the world
    size) splits the global batch into groups augmented with their own random stream, so a one-process
    run with aug_groups = G sees exactly the views of a G-process run.
    """

    data: str = _option(help="ImageFolder root with train/<class>/*.jpg (and val/ for kNN), or a folder with "
                             "Fashion-MNIST's four idx files (e.g. /usr/share/datasets/fashion-mnist)", metavar="DIR")
    method: str = _option(help="one of: " + ", ".join(METHOD_NAMES), metavar="NAME")
    set: Mapping[str, Any] = _option(factory=dict, metavar="KEY=VALUE",
                                     help="a method knob on top of its recipe (e.g. predictor=false, lam=0, "
                                          "momentum=0.9); repeatable")
    epochs: int | None = _option(None, range=(1, 100_000), help="default: the method's recipe")
    batch_size: int | None = _option(None, range=(2, 1 << 20),
                                     help="global batch over all ranks; default: the recipe's")
    image_size: int | None = _option(None, range=(16, 1024),
                                     help="side of the training views in pixels; default 224 (28 on Fashion-MNIST)")
    load_size: int | None = _option(None, range=(16, 2048),
                                    help="decoded size before cropping; default image_size·256/224, rounded "
                                         "(Fashion-MNIST: its 28 px)")
    device: str = _option("auto", help="auto (cuda when present, else cpu; under torchrun cuda:LOCAL_RANK), "
                                       "cpu, cuda, cuda:N")
    out: str = _option("runs/imagenet", metavar="DIR", help="run folder (checkpoint, metrics.jsonl, config.json, "
                                                            "train.log); the same folder resumes")
    seed: int = _option(0, range=(0, 2**31 - 1), help="seed of weights, batch order and augmentations")
    workers: int = _option(4, range=(0, 256), help="data-loading processes per rank")
    cache: str | None = _option(None, metavar="DIR", help="pre-decoded cache folder (python -m lab.data.cache)")
    knn_every: int = _option(10, range=(0, 100_000),
                             help="epochs between kNN evaluations (and always after the last epoch); 0: only at the end")
    knn_k: int = _option(20, range=(1, 10_000), help="neighbours that vote in the kNN")
    knn_temperature: float = _option(0.07, range=(0.0, 100.0), low_open=True,
                                     help="temperature T of the kNN vote weights exp(sim/T)")
    log_every_steps: int = _option(50, range=(1, 1 << 30), aliases=("--log-every",),
                                   help="a step line in metrics.jsonl every N steps")
    collapse_threshold: float | None = _option(None, range=(0.0, 1.0), metavar="T", aliases=("--collapse-guard",),
                                               help="stop when the method's collapse signature holds (center_norm "
                                                    "≥ T, or its other signs: lab.core.collapse) for collapse_patience "
                                                    "epochs (off by default)")
    collapse_patience: int = _option(3, range=(1, 100_000), help="epochs in a row with a collapse sign that stop a run")
    lr: float | None = _option(None, range=(0.0, 100.0), low_open=True,
                               help="base lr for batch 256 (scaled by batch/256); default: the recipe's")
    max_steps_per_epoch: int | None = _option(None, range=(1, 1 << 30), help="cut epochs short (tests, demos)")
    amp: bool = _option(True, help="bf16 autocast on CUDA (CPU runs float32 either way)")
    channels_last: bool = _option(True, help="channels-last memory format on CUDA (CPU convolutions gain nothing)")
    aug_groups: int | None = _option(None, range=(1, 4096),
                                     help="augmentation groups of the global batch (default: the world size)")
    progress: bool = _option(True, help="a progress bar on stderr when it is a terminal")

    def __post_init__(self):
        if self.method not in METHOD_NAMES:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHOD_NAMES)}")
        if not isinstance(self.set, Mapping):
            raise ValueError(f"set must map knob names to values, got {self.set!r}")
        # Normalised so that equal settings compare (and serialise) equal, whatever types came in.
        object.__setattr__(self, "set", dict(sorted(dict(self.set).items())))
        for name in ("data", "out", "cache"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))
        self._check_bools()
        check_knobs(self)
        if self.load_size is not None and self.image_size is not None and self.load_size < self.image_size:
            raise ValueError(f"load_size must be >= image_size ({self.image_size}), got {self.load_size}")
        self._check_device()

    def _check_bools(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if field_kind(f) is bool and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be true or false, got {value!r}")

    def _check_device(self) -> None:
        if self.device == "auto":
            return
        try:
            torch.device(self.device)
        except (RuntimeError, ValueError, TypeError):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}") from None

    @property
    def scale(self) -> str:
        """"fmnist" when data is a folder of Fashion-MNIST's idx files, else "imagenet" (`recipes.SCALES`)."""
        return data_scale(self.data)

    def resolved(self) -> "TrainConfig":
        """The scale's and the recipe's defaults filled in (epochs, batch_size, image_size, load_size)."""
        scale = SCALES[self.scale]
        rec = get_recipe(self.method, scale.name)
        image_size = self.image_size or scale.image_size
        load_size = self.load_size or scale.load_size or int(round(image_size * 256 / 224))
        if scale.load_size is not None and load_size != scale.load_size:
            raise ValueError(f"load_size must be {scale.load_size} on {scale.label} (its images' size), got {load_size}")
        if load_size < image_size:
            raise ValueError(f"load_size must be >= image_size ({image_size}), got {load_size}")
        return dataclasses.replace(self, epochs=self.epochs or rec.epochs, batch_size=self.batch_size or rec.batch_size,
                                   image_size=image_size, load_size=load_size)

    def to_json(self) -> dict[str, Any]:
        """Every field as plain JSON types: what `--config FILE.json` reads back (`TrainConfig(**d) == self`)."""
        return jsonable(dataclasses.asdict(self))


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))


def get_recipe(method: str, scale: str = "imagenet", knobs: Mapping[str, Any] | None = None):
    if method not in RECIPES:
        raise ValueError(f"no ImageNet recipe for method {method!r}; valid: {', '.join(RECIPES)}")
    return recipe(method, scale, knobs)


def check_config(cfg: TrainConfig) -> TrainConfig:
    """The cheap checks beyond the fields' own, before anything starts: the method's knobs parse and
    exist, the method has a recipe. Bad -> ValueError, one line."""
    method_params(cfg.method, cfg.set, cfg.scale)
    get_recipe(cfg.method, cfg.scale, cfg.set)
    return cfg


def cuda_available() -> bool:
    """Whether torch sees a CUDA device here (device "auto" then means cuda)."""
    return torch.cuda.is_available()


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


# ----------------------------------------------------------------------------------------- command line

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise ValueError(f"{self.prog}: {message}")


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def build_parser(presets: bool = True) -> argparse.ArgumentParser:
    """One flag per TrainConfig field (its name with dashes), --config, and (presets) --preset / --run.

    Only the flags given appear in the parsed namespace (argparse.SUPPRESS), so that a --config file's
    values stand wherever no flag overrides them; the fields' defaults live in TrainConfig alone."""
    p = _Parser(prog=PROG, description=DESCRIPTION, argument_default=argparse.SUPPRESS)
    p.add_argument("--config", metavar="FILE.json",
                   help="a JSON object of these fields (e.g. a run folder's train_config.json); flags given "
                        "beside it override it, --set knob by knob")
    for f in dataclasses.fields(TrainConfig):
        _add_flag(p, f)
    if presets:
        p.add_argument("--preset", metavar="NAME", help="print a paper preset's runs as commands (--run: run them); all: every preset, seed by seed")
        p.add_argument("--run", action="store_true",
                       help="with --preset: run them one after another into OUT/<run name>")
    return p


def _add_flag(p: argparse.ArgumentParser, f: dataclasses.Field) -> None:
    meta, kind = f.metadata, field_kind(f)
    names = [flag_name(f.name), *meta["aliases"]]
    default = "" if f.default in (None, dataclasses.MISSING) else f" (default: {f.default})"
    if f.name == "set":  # the one field that is a mapping: repeated KEY=VALUE
        p.add_argument(*names, dest=f.name, action="append", metavar=meta["metavar"], help=meta["help"])
    elif kind is bool:
        p.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, help=meta["help"] + default)
    else:
        metavar = meta["metavar"] or {int: "N", float: "X"}.get(kind, f.name.upper())
        p.add_argument(*names, dest=f.name, type=kind, metavar=metavar, help=meta["help"] + default)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The fields in a --config file: a JSON object whose keys are TrainConfig fields (any subset)."""
    try:
        values = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"--config {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise ValueError(f"--config {path}: not JSON ({e})") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a JSON object of TrainConfig fields, got {type(values).__name__}")
    unknown = sorted(set(values) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"--config {path}: unknown field {unknown[0]!r}; valid: {', '.join(FIELD_NAMES)}")
    return values


def fields_given(args: argparse.Namespace) -> dict[str, Any]:
    """The fields a parsed command line sets: its --config file's, then its flags (--set merges knob by knob)."""
    values = read_config_file(args.config) if hasattr(args, "config") else {}
    for name in FIELD_NAMES:
        if hasattr(args, name):
            value = getattr(args, name)
            values[name] = {**values.get("set", {}), **parse_sets(value)} if name == "set" else value
    return values


def parse_overrides(argv: Sequence[str]) -> dict[str, Any]:
    """The fields that argv (one run's flags, no --preset) sets, as `fields_given`; bad flags -> ValueError."""
    return fields_given(build_parser(presets=False).parse_args(list(argv)))


def make_config(values: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from fields a command line gave, which must include data, method and out."""
    missing = [f for f in REQUIRED if values.get(f) is None]
    if missing:
        raise ValueError(f"missing --{missing[0]} (needed: --data, --method, --out)")
    return TrainConfig(**values)


def config_from_args(args: argparse.Namespace, **over) -> TrainConfig:
    return make_config({**fields_given(args), **over})


def parse_train_args(argv: Sequence[str]) -> TrainConfig:
    """One run's command line (flags and --config, no --preset) -> its TrainConfig; bad input -> ValueError."""
    return make_config(parse_overrides(argv))


def _knob_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def config_to_argv(cfg: TrainConfig) -> list[str]:
    """The flags that make cfg again: data and method, then each field that differs from its default
    (`parse_train_args(config_to_argv(cfg)) == cfg`, knob values as the text --set gives them)."""
    argv = []
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        flag = flag_name(f.name)
        if f.name == "set":
            argv += [a for k, v in value.items() for a in ("--set", f"{k}={_knob_text(v)}")]
        elif isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv


def preset_configs(name: str, overrides: Mapping[str, Any]) -> list[tuple[dict, TrainConfig]]:
    """(run, config) for each run of preset `name` (`lab.engine.presets.preset_runs`, at the scale of the
    data folder): the run's method, knobs, epochs and seed, under `overrides` (fields as `parse_overrides`
    gives them): their epochs win, their knobs go on top of the run's, their seed offsets the run's, a method
    of theirs is an error. Each run's out is OUT/<run name>, OUT defaulting to runs/<preset>; preset "all":
    OUT/<preset>/<run name>. A scale's steps per epoch and kNN interval (`presets.STEPS_PER_EPOCH`) apply
    unless the overrides set them."""
    if "method" in overrides:
        raise ValueError("train args of a preset must not contain --method: each preset run has its own")
    base = Path(overrides.get("out") or f"runs/{name}")
    result = []
    for run in preset_runs(name, data_scale(overrides.get("data"))):
        folder = base / run["preset"] / run["name"] if name == ALL else base / run["name"]
        scaled = {k: run[k] for k in ("max_steps_per_epoch", "knn_every") if run.get(k) is not None}
        values = {**scaled, **overrides, "method": run["method"], "set": {**run["set"], **overrides.get("set", {})},
                  "epochs": overrides.get("epochs") or run["epochs"], "out": str(folder),
                  "seed": seed_stream(run["seed"], overrides.get("seed", 0), strides=(OFFSET,))}
        result.append((run, make_config(values)))
    return result
