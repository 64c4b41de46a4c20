"""Colours and labels shared by the GIF frames, the Plotly figures and the Matplotlib figures."""
from __future__ import annotations

import colorsys

from lab.core import vocab

# The paper's arrow colours (Fig. B.2): green = center of all dataset points,
# blue = center from one mini-batch of un-augmented points, red = center of the augmented points.
CENTER_COLORS = {"s_data": (0, 150, 60), "s_batch": (30, 90, 230), "s_aug": (220, 30, 30)}
CENTER_LABELS = {
    "s_data": "center of all dataset points",
    "s_batch": "center from one mini-batch",
    "s_aug": "center of augmented points",
}
METRIC_FOR_CENTER = {"s_data": "center_norm", "s_batch": "batch_center_norm", "s_aug": "center_norm_aug"}
CENTER_COLOR_NAMES = {"s_data": "green", "s_batch": "blue", "s_aug": "red"}


def center_metric_label(metric: str) -> str:
    """'‖s‖: center of all dataset points (green)' for a B.1 center metric; the vocabulary's label otherwise."""
    arrow = next((a for a, m in METRIC_FOR_CENTER.items() if m == metric), None)
    if arrow is None:
        return vocab.label(metric)
    return f"‖s‖: {CENTER_LABELS[arrow]} ({CENTER_COLOR_NAMES[arrow]})"
# Eq. 4 overlay: the pull -∂L/∂z on a sample = common center term + the sample's residual term.
CENTER_TERM_COLOR = (245, 140, 0)
RESIDUAL_TERM_COLOR = (150, 60, 200)
N_HUES = 100


def hue(i: int, n: int) -> tuple[int, int, int]:
    """Colour of source point i of n: evenly spaced hues, so neighbours in index differ visibly."""
    h = ((i * 37) % n) / n if n > 1 else 0.0  # stride 37 scatters similar hues over the points
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % rgb


def fade(rgb: tuple[int, int, int], amount: float = 0.65) -> tuple[int, int, int]:
    """Blend towards white: points on the far side of the sphere."""
    return tuple(int(c + (255 - c) * amount) for c in rgb)  # type: ignore[return-value]
