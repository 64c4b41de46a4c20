"""The paper's ImageNet-100 experiments as lists of runs: `preset_runs("fig7-byol-momentum")`, read from the
registry of the paper's experiments (`lab.core.experiments`: each experiment's variants at the "imagenet" scale,
the engine's). The same presets run on Fashion-MNIST (`preset_runs(name, "fmnist")`), with 3 seeds each.

Each run: {"name", "method", "set": knob overrides on top of the method's recipe, "epochs", "seed"}. The
paper's text (captions, §3.3–3.5, B.2–B.4) names what each figure varies but not its epochs or, for Fig. 7,
the momentum values; those are ours and said so in `NOTES` (each experiment's `note`).
EPOCHS["imagenet"] = 200 for every run: the budget for one ImageNet-100 run (under an hour on one H100),
half of solo-learn's 400. EPOCHS["fmnist"] and SEEDS["fmnist"]: see `FMNIST_WHY`.
"""
from __future__ import annotations

import copy

from lab.core.experiments import BY_PRESET

EPOCHS = {"imagenet": 200, "fmnist": 3}
SEEDS = {"imagenet": (0,), "fmnist": (0, 1, 2)}
# At Fashion-MNIST scale an "epoch" is cut to STEPS_PER_EPOCH steps and kNN runs every KNN_EVERY epochs
# (and on the untrained model); None: the engine's defaults.
STEPS_PER_EPOCH = {"imagenet": None, "fmnist": 78}
KNN_EVERY = {"imagenet": None, "fmnist": 3}
FMNIST_WHY = ("a budget, not a recipe: 3 epochs of 78 steps of 256 (234 steps, 60,000 views of each branch: one "
              "pass over the training set), kNN on the untrained model and at the end, about 1.5 minutes a run on "
              "a 2-core CPU, so the 54 runs of all presets (18 variants × 3 seeds) take about 80 minutes. That is "
              "0.06 % of the paper's ImageNet-100 training in steps; a collapse that needs longer to appear will "
              "not show, and the page says so next to every verdict. 3 seeds, so each verdict is a count out of 3, "
              "not one run's fate")


def _runs(experiment, scale: str) -> list[dict]:
    seeds = SEEDS[scale]
    return [{"name": v.run if len(seeds) == 1 else f"{v.run}-s{seed}", "method": v.method,
             "set": v.knobs_at("imagenet"), "epochs": EPOCHS[scale], "seed": seed, "variant": v.label,
             "max_steps_per_epoch": STEPS_PER_EPOCH[scale], "knn_every": KNN_EVERY[scale]}
            for v in experiment.variants_at("imagenet") for seed in seeds]


PRESETS: dict[str, list[dict]] = {preset: _runs(e, "imagenet") for preset, e in BY_PRESET.items()}
FMNIST_PRESETS: dict[str, list[dict]] = {preset: _runs(e, "fmnist") for preset, e in BY_PRESET.items()}
NOTES: dict[str, str] = {preset: f"paper {e.source.removeprefix('paper ')}: {e.note}" for preset, e in BY_PRESET.items()}


ALL = "all"  # every preset as one queue: seed 0 of every preset first, then seed 1, ...


def preset_runs(name: str, scale: str = "imagenet") -> list[dict]:
    """The runs of preset `name` at `scale` (copies: safe to edit), each with its "preset". `ALL`: every
    preset's, seed by seed, so that a queue cut short still holds whole seeds of every experiment. Unknown
    name -> ValueError listing the valid ones."""
    table = {"imagenet": PRESETS, "fmnist": FMNIST_PRESETS}.get(scale)
    if table is None:
        raise ValueError(f"unknown scale {scale!r}; valid: imagenet, fmnist")
    if name == ALL:
        runs = [{**run, "preset": preset} for preset, runs in table.items() for run in runs]
        return copy.deepcopy(sorted(runs, key=lambda run: run["seed"]))
    if name not in table:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(table)}, {ALL}")
    return [{**run, "preset": name} for run in copy.deepcopy(table[name])]
