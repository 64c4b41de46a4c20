"""The real-image engine (Fashion-MNIST on any CPU, ImageNet-100 on GPUs): ResNet-18 + the toy lab's method
modules with real-scale heads, DDP training under torchrun or SLURM. Its image data (folders, the decoded cache,
the generated ImageFolder, the ImageNet-100 subset, augmentations) lives in `lab.data`.

The public surface, for the runs launcher, the pages (through `lab.runs`) and notebooks; everything else
is the engine's own:
- `TrainConfig`: one run's settings, validated when made; `parse_train_args(argv)` / `parse_overrides(argv)`
  / `make_config(fields)` build one from a command line, `config_to_argv(cfg)` gives the flags back,
  `check_config(cfg)` adds the cheap checks that need the method (its knobs, its recipe);
- `preset_configs(name, overrides)`: the configs of a paper preset's runs (`PRESETS`, `NOTES`, `preset_runs`);
- `method_params(method, knobs)`: a method's knobs at ImageNet scale; `cuda_available()`;
- `write_fake_imagefolder(...)`: a small generated ImageFolder (demos, tests);
- `train(cfg)` (`lab.engine.train`) runs one.
"""
_API = {"config": ("TrainConfig", "check_config", "config_to_argv", "cuda_available", "make_config",
                   "parse_overrides", "parse_train_args", "preset_configs"),
        "fake": ("write_fake_imagefolder",), "model": ("method_params",),
        "presets": ("ALL", "NOTES", "PRESETS", "preset_runs")}
__all__ = ["ALL", "NOTES", "PRESETS", "TrainConfig", "check_config", "config_to_argv", "cuda_available", "make_config",
           "method_params", "parse_overrides", "parse_train_args", "preset_configs", "preset_runs",
           "write_fake_imagefolder"]


def __getattr__(name: str):
    # Imported on first use, not here: `python -m lab.engine.train` and the engine's other tools would
    # otherwise load these modules (and torch) first, and runpy warns when the module it runs is loaded.
    if name not in __all__:  # first, so that importing a submodule never comes back here
        raise AttributeError(f"module 'lab.engine' has no attribute {name!r}")
    from lab.engine import config, model, presets
    from lab.data import fake

    home = {"config": config, "fake": fake, "model": model, "presets": presets}
    return getattr(next(home[m] for m, names in _API.items() if name in names), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
