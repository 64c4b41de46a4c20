"""The paper's ImageNet-100 experiments as lists of runs: `preset_runs("fig7-byol-momentum")`, read from the
registry of the paper's experiments (`lab.experiments`: each experiment's variants at the "imagenet" scale,
the engine's). The same presets run on Fashion-MNIST (`preset_runs(name, "fmnist")`), with 3 seeds each.

Each run: {"name", "method", "set": knob overrides on top of the method's recipe, "epochs", "seed"}. The
paper's text (captions, §3.3–3.5, B.2–B.4) names what each figure varies but not its epochs or, for Fig. 7,
the momentum values; those are ours and said so in `NOTES` (each experiment's `note`).
EPOCHS["imagenet"] = 200 for every run: the budget for one ImageNet-100 run (under an hour on one H100),
half of solo-learn's 400. EPOCHS["fmnist"] and SEEDS["fmnist"]: see `FMNIST_WHY`.
"""
from __future__ import annotations

import copy

from lab.experiments import BY_PRESET

EPOCHS = {"imagenet": 200, "fmnist": 10}
SEEDS = {"imagenet": (0,), "fmnist": (0, 1, 2)}
FMNIST_WHY = ("10 epochs (2,340 steps of 256): the collapses the paper reports (no predictor, predictor lr 1 %, "
              "no centering, a low EMA momentum) are runaway feedbacks that show within a few hundred steps on "
              "the toy and in the paper's curves' first epochs, and 10 epochs of the 128-feature ResNet take about "
              "10 minutes on a 2-core CPU; 3 seeds, so each verdict is a count out of 3, not one run's fate")


def _runs(experiment, scale: str) -> list[dict]:
    seeds = SEEDS[scale]
    return [{"name": v.run if len(seeds) == 1 else f"{v.run}-s{seed}", "method": v.method,
             "set": v.knobs_at("imagenet"), "epochs": EPOCHS[scale], "seed": seed, "variant": v.label}
            for v in experiment.variants_at("imagenet") for seed in seeds]


PRESETS: dict[str, list[dict]] = {preset: _runs(e, "imagenet") for preset, e in BY_PRESET.items()}
FMNIST_PRESETS: dict[str, list[dict]] = {preset: _runs(e, "fmnist") for preset, e in BY_PRESET.items()}
NOTES: dict[str, str] = {preset: f"paper {e.source.removeprefix('paper ')}: {e.note}" for preset, e in BY_PRESET.items()}


def preset_runs(name: str, scale: str = "imagenet") -> list[dict]:
    """The runs of preset `name` at `scale` (copies: safe to edit). Unknown name -> ValueError listing the
    valid ones."""
    table = {"imagenet": PRESETS, "fmnist": FMNIST_PRESETS}.get(scale)
    if table is None:
        raise ValueError(f"unknown scale {scale!r}; valid: imagenet, fmnist")
    if name not in table:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(table)}")
    return copy.deepcopy(table[name])
