"""Schedules as pure functions (base layer: imports nothing from lab).

Learning-rate and EMA schedules of the recipes, functions of the step or of training progress in [0, 1];
and `evenly_spaced`, which picks the epochs a trainer evaluates and a renderer draws.
"""
from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base: float, final: float = 0.0) -> float:
    """Linear warmup to `base` over `warmup_steps`, then cosine from `base` to `final` at `total_steps`.

    Step 0 already trains (base / warmup_steps, not 0); the last warmup step reaches `base`;
    steps past `total_steps` stay at `final`.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, {total_steps}], got {warmup_steps}")
    step = min(max(step, 0), total_steps)
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    t = (step - warmup_steps) / span
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def cosine_to_one(progress: float, start: float) -> float:
    """EMA momentum from `start` at progress 0 to 1 at progress 1 along a half cosine (BYOL, DINO)."""
    p = min(max(progress, 0.0), 1.0)
    return 1.0 - (1.0 - start) * 0.5 * (1.0 + math.cos(math.pi * p))


def linear_warmup(progress: float, start: float, end: float, warmup: float) -> float:
    """`start` at progress 0, linearly to `end` at progress `warmup`, then `end` (DINO's teacher temperature).

    warmup = 0 means no schedule: always `start`.
    """
    if warmup <= 0:
        return start
    return start + (end - start) * min(max(progress, 0.0) / warmup, 1.0)


def evenly_spaced(last: int, count: int | None) -> list[int]:
    """All of 0..last, or `count` of them evenly spread, first and last included (count None or 0: all)."""
    if not count or last + 1 <= count:
        return list(range(last + 1))
    return sorted({round(i * last / (count - 1)) for i in range(count)})
