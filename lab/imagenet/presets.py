"""The paper's ImageNet-100 experiments as lists of runs: `preset_runs("fig7-byol-momentum")`, read from the
registry of the paper's experiments (`lab.experiments`: each experiment's variants at the "imagenet" scale).

Each run: {"name", "method", "set": knob overrides on top of the method's recipe, "epochs"}. The paper's
text (captions, §3.3–3.5, B.2–B.4) names what each figure varies but not its epochs or, for Fig. 7, the
momentum values; those are ours and said so in `NOTES` (each experiment's `note`). EPOCHS = 200 for every
run: the budget for one ImageNet-100 run (under an hour on one H100), half of solo-learn's 400.
"""
from __future__ import annotations

import copy

from lab.experiments import BY_PRESET

EPOCHS = 200

PRESETS: dict[str, list[dict]] = {
    preset: [{"name": v.run, "method": v.method, "set": v.knobs_at("imagenet"), "epochs": EPOCHS}
             for v in e.variants_at("imagenet")]
    for preset, e in BY_PRESET.items()}
NOTES: dict[str, str] = {preset: f"paper {e.source.removeprefix('paper ')}: {e.note}" for preset, e in BY_PRESET.items()}


def preset_runs(name: str) -> list[dict]:
    """The runs of preset `name` (copies: safe to edit). Unknown name -> ValueError listing the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
