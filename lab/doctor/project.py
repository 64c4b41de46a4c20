"""Where to look at an embedding from: a seeded sample of its rows on the unit sphere, in 3 dimensions.

Exact for D ≤ 3 (D = 2 on the circle z = 0). For D > 3 the rows are shown in the top-3 principal directions of
the normalised rows, taken about the origin, not about their mean: the second moment E[u uᵀ] of unit rows has
trace 1, its top eigenvector is s/‖s‖ when the rows crowd around s, so a collapse shows as the points gathering
on one axis, while a centred PCA would hide the center the lab is about. `share` is the part of that second
moment the 3 directions hold (1 where D ≤ 3); each point is drawn at its direction within them (`inside`: the
length of its projection before that, 1 where exact), so the picture says how much of each row it shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lab.core.geometry import sphere_basis
from lab.doctor.load import Embeddings
from lab.doctor.readings import sample_index, sample_rows

SPHERE_SAMPLE = 2_000  # rows drawn: enough to see clusters, light enough for a WebGL scatter in any browser


@dataclass(frozen=True)
class Projection:
    """points: (M, 3) on the unit sphere; inside: (M,) the length of each row's projection on the 3 shown
    directions (1 where exact); index: (M,) the rows of the embedding they are; labels: (M,) or None;
    center: (3,) the sample's center s seen in the 3 directions; center_norm: ‖s‖ of the sample in D dimensions;
    share: the part of the second moment of the normalised rows the 3 directions hold; exact: D ≤ 3; dim: D."""

    points: np.ndarray
    inside: np.ndarray
    index: np.ndarray
    labels: np.ndarray | None
    center: np.ndarray
    center_norm: float
    share: float
    exact: bool
    dim: int
    shown: np.ndarray | None = None  # (M, 3) the rows' projections before each is put on the sphere

    def sample_rows_mean(self, label: Any) -> np.ndarray:
        """(3,) the centroid of the drawn rows of class `label`, seen in the 3 directions (not renormalised)."""
        keep = self.labels == label
        return (self.shown if self.shown is not None else self.points)[keep].mean(axis=0)


def project(emb: Embeddings, sample: int = SPHERE_SAMPLE, seed: int = 0) -> Projection:
    """A seeded sample of at most `sample` rows of emb (rows without a direction left out), in 3 dimensions."""
    n, dim = emb.z.shape
    index = sample_index(n, min(n, sample), seed)
    u, ok = sample_rows(emb.z, index)
    u, index = u[ok], index[ok]
    if len(u) == 0:
        raise ValueError(f"{emb.source}: none of the {len(ok)} sampled rows has a direction (finite, non-zero)")
    mean = u.mean(axis=0)
    basis, share = sphere_basis(u, mean)
    shown = u @ basis
    inside = np.linalg.norm(shown, axis=1)
    points = shown / np.maximum(inside, 1e-12)[:, None]
    labels = None if emb.labels is None else np.asarray(emb.labels)[index]
    return Projection(points, inside, index, labels, mean @ basis, float(np.linalg.norm(mean)), share,
                      dim <= 3, int(dim), shown)


__all__ = ["Projection", "SPHERE_SAMPLE", "project"]
