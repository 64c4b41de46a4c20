"""The center pull of every method (paper §2, eq. 4): the loss's pull on each feature, split into the part
common to all features and the per-sample residual, and read along the center s.

The pull on a feature is p_i = −B ∂L/∂z_i taken on the unit sphere: z_i = y_i/‖y_i‖ of the online
projector output y_i, moved along the sphere at fixed ‖y_i‖, so p_i = −B ‖y_i‖ (I − z_i z_iᵀ) ∂L/∂y_i,
tangent to the sphere at z_i (⟨p_i, z_i⟩ = 0). B (the number of samples per view) undoes the loss's
mean over the batch, so p_i is the pull of sample i's own loss term. Taking it on the sphere is what
makes it one thing: ‖z1 − z2‖² and −2⟨z1, z2⟩ differ by a constant on the sphere, but their ambient
gradients differ by the radial 2 z1, and the ambient mean of 2(z2 − z1) is ≈ 0 where that of 2 z2 is
2s. The tangent parts agree.

The split. The common part is the mean pull P̄ = E_i[p_i] (the same vector for every feature), the
residual of feature i is p_i − P̄ (they average to zero), as in eq. 4 where the common center term
s = E_x[μ_z] is the mean of the pulls μ_z and the residuals μ_z − s average to zero. Read along the
center: `center_pull` = ⟨P̄, s/‖s‖⟩, s = E_i[z_i] the center of the same features. Since s is the mean
feature, ⟨P̄, ŝ⟩ is (× B) the rate at which a descent step on the features themselves would change
‖s‖: positive, the loss drags the features together towards s (the collapse direction); negative,
something in the loss pushes them apart against it. `residual_pull` = E_i ‖p_i − P̄‖.

For the invariance loss, B·∂L/∂z1_i = −2 z2_i up to a radial term, so p_i = 2 (I − z_i z_iᵀ)(s⁺ + r⁺_i)
with (s⁺, r⁺_i) = `lab.core.geometry.gradient_split` of the partners: eq. 4's split, projected on the sphere
(tests/test_pull.py checks it), and P̄ = 2 (s⁺ − E_i[z_i ⟨z_i, z⁺_i⟩]): eq. 4's center term less the
radial part of the partners that the sphere removes (the projected residuals do not average to zero).

Generic over the methods (`lab.methods`): each method's `loss(x1, x2)` calls its online `encoder` once
per view (view 1, then view 2); the pull shadows `model.encoder.forward` for one loss to catch the two
projector outputs, and autograd gives ∂L/∂y through the method's own loss (EMA teachers, BYOL's target,
DINO's teacher are other modules and are left alone). Buffers a loss moves (BatchNorm running statistics, DINO's center,
SwAV's queue) are put back, and no parameter's .grad is touched, so training does not see the call.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from lab.core import geometry as geo


def tangent(v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The part of v tangent to the sphere at z (unit). v, z: (..., D) -> (..., D)."""
    return v - (v * z).sum(-1, keepdim=True) * z


def _views_grad(model, x1: torch.Tensor, x2: torch.Tensor | None, partner: torch.Tensor | None = None):
    """Projector outputs y and ∂L/∂y of the loss summed over seeds, one pair per view: [(y1, g1), (y2, g2)],
    each (K, B, D). With `partner` (K, N), view 2 is x1[partner]: the online encoder's second call returns
    its first call's outputs gathered at `partner` (what it would compute for a per-sample encoder, as the
    toy's, with no batch statistics in it), so the gradient of each point's one feature collects its slots
    in both views and the backbone runs once: [(y, g)], (K, N, D)."""
    encoder = model.encoder
    caught: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(x):  # shadows the module's forward for the two calls of one loss
        if partner is not None and caught:
            rows = torch.arange(x.shape[0]).view(-1, 1)
            out = caught[0][0][rows, partner], caught[0][1][rows, partner]
        else:  # the backbone needs no graph: the gradient is taken at y
            with torch.no_grad():
                h, y = type(encoder).forward(encoder, x)
            out = h, y.requires_grad_()
        caught.append(out)
        return out

    saved = [t.detach().clone() for t in model.buffers()]
    encoder.forward = forward
    try:
        with torch.enable_grad():
            if partner is not None:
                x2 = x1[torch.arange(x1.shape[0]).view(-1, 1), partner]  # the target branches encode it
            loss, _ = model.loss(x1, x2)
            if len(caught) != 2:
                raise RuntimeError(f"{type(model).__name__}.loss called its encoder {len(caught)} times, not once "
                                   "per view: the pull cannot tell the views apart")
            wrt = [y for _, y in caught[: 1 if partner is not None else 2]]
            grads = torch.autograd.grad(loss.sum(), wrt, allow_unused=True)
    finally:
        del encoder.forward
        with torch.no_grad():
            for t, old in zip(model.buffers(), saved):
                t.copy_(old)
    return [(y.detach(), torch.zeros_like(y) if g is None else g.detach()) for y, g in zip(wrt, grads)]


def _on_sphere(y: torch.Tensor, g: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, p): unit features and the pull −b ‖y‖ (I − z zᵀ) g on the sphere. y, g: (K, M, D)."""
    z = geo.normalize(y)
    return z, -b * y.norm(dim=-1, keepdim=True) * tangent(g, z)


def sphere_pulls(model, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                       torch.Tensor]:
    """Features and pulls of both views. x1, x2: (K, B, d) -> (z1, z2, p1, p2), each (K, B, D): z the unit
    features, p = −B ‖y‖ (I − z zᵀ) ∂L/∂y the pull on the sphere of each view's slot."""
    (z1, p1), (z2, p2) = (_on_sphere(y, g, x1.shape[-2]) for y, g in _views_grad(model, x1, x2))
    return z1, z2, p1, p2


def split(z: torch.Tensor, p: torch.Tensor) -> dict[str, torch.Tensor]:
    """The common / residual split of pulls p on features z. z, p: (K, M, D) ->
    {center_pull (K,), residual_pull (K,), common (K, D) = P̄, residual (K, M, D) = p − P̄, s (K, D)}."""
    s = geo.center_vector(z)
    common = p.mean(dim=-2)
    residual = p - common.unsqueeze(-2)
    s_hat = geo.normalize(s)
    return {"center_pull": (common * s_hat).sum(-1), "residual_pull": residual.norm(dim=-1).mean(-1),
            "common": common, "residual": residual, "s": s}


def center_pull(model, x1: torch.Tensor, x2: torch.Tensor | None = None,
                partner: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The method's pull on the features of one batch, split (module docstring).

    Either x1, x2: (K, B, d) two views: the features are the 2B of both views, z, p: (K, 2B, D); or
    x1 (K, N, d) with partner (K, N) indices: view 2 is x1[partner] (the toy trainer's fixed positive
    partners), and each of the N points gets the sum of the pulls on its slots in both views (its feature
    is one vector), z, p: (K, N, D), s the center of the N points.
    -> `split`'s dict plus z and p; center_pull, residual_pull: (K,).
    """
    if partner is not None:
        (y, g), = _views_grad(model, x1, None, partner)
        z, p = _on_sphere(y, g, x1.shape[-2])
    else:
        if x2 is None:
            raise ValueError("center_pull needs x2 or partner")
        z1, z2, p1, p2 = sphere_pulls(model, x1, x2)
        z, p = torch.cat([z1, z2], dim=-2), torch.cat([p1, p2], dim=-2)
    out = split(z, p)
    out.update(z=z, p=p)
    return out


def arrow_points(labels: torch.Tensor, per_class: int = 2) -> torch.Tensor:
    """A few evenly spread points of each class that get pull arrows. labels: (N,) -> (P,) indices."""
    picks = []
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().flatten()
        take = torch.linspace(0, len(idx) - 1, min(per_class, len(idx))).round().long().unique()
        picks.append(idx[take])
    return torch.cat(picks) if picks else torch.zeros(0, dtype=torch.long)


def arrows(pulled: Mapping[str, torch.Tensor], points: torch.Tensor) -> dict[str, torch.Tensor]:
    """The arrows of a few points from `center_pull`'s dict. points: (K, P) indices into its features ->
    {common (K, D): P̄, drawn at every point; residual (K, P, D): p_i − P̄ at those points}."""
    rows = torch.arange(points.shape[0]).view(-1, 1)
    return {"common": pulled["common"].detach().clone(), "residual": pulled["residual"][rows, points].detach().clone()}


# ---------------------------------------------------------------- what the paper predicts

# What the paper predicts for the sign of `center_pull`: ALONG (> 0), NOT_ALONG (≈ 0 or < 0), or None (no sign).
# Each method states its own prediction (`lab.methods.base.Method.pull_prediction`); the readings below judge it.
ALONG, NOT_ALONG = "along s", "not along s"

# Eq. 4 in words: the invariance loss's pull, which methods without a push against the center inherit.
EQ4_PULL = ("the pull of −⟨z, z⁺⟩ is the center s plus a residual, and nothing pushes back, so it points along s "
            "and ‖s‖ grows to collapse")


def observed(center: float, residual: float, tolerance: float = 0.05) -> str:
    """What a run's mean center_pull shows: "along s" (> tolerance × mean residual_pull), "against s"
    (< −tolerance × it) or "≈ 0" in between. The 5 % was chosen before any run was read."""
    if not (math.isfinite(center) and math.isfinite(residual)):
        return "undefined (diverged)"
    band = tolerance * abs(residual)
    return "along s" if center > band else "against s" if center < -band else "≈ 0"


def agrees(predicted: str | None, seen: str) -> bool | None:
    """Does what the run shows match the prediction? None where the paper predicts no sign."""
    if predicted is None or seen.startswith("undefined"):
        return None
    return seen == "along s" if predicted == ALONG else seen != "along s"


def reading(center: torch.Tensor, residual: torch.Tensor) -> dict[str, Any]:
    """What a run's curves show. center, residual: (T, K) `center_pull`, `residual_pull` at the evaluated
    epochs -> {per_seed: [mean over epochs of center_pull, per seed], mean: their mean, residual: the mean
    residual_pull, seen: `observed` of the two means}. The rule (mean over the evaluated epochs, per seed and
    over seeds) was fixed before any run was read."""
    per_seed = center.double().nanmean(0)
    mean, res = float(per_seed.nanmean()), float(residual.double().nanmean())
    return {"per_seed": [float(v) for v in per_seed], "mean": mean, "residual": res, "seen": observed(mean, res)}
