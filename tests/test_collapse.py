"""Collapse signatures: every method declares one its runs can read, and each kind is told on the readings
that define it (and not on healthy ones)."""
import math

import pytest
import torch

from lab.core import collapse, geometry, metrics
from lab.engine.train import EPOCH_KEYS
from lab.methods import METHOD_NAMES, build_method, method_class
from lab.render import runs as view

D, C = 8, 10


def _extras(name: str) -> set[str]:
    model = build_method(name, None, seeds=[0], in_dim=2, dim=D)
    return set(model.extra_metrics(torch.randn(1, 16, 2)))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_declares_a_signature_its_epoch_lines_can_read(name):
    signature = method_class(name).signature
    assert signature and all(isinstance(s, collapse.Sign) for s in signature)
    logged = set(EPOCH_KEYS) | _extras(name) | {collapse.THRESHOLD, collapse.N_CLASSES}
    for sign in signature:
        assert sign.metric in logged and sign.ref in logged, sign
        assert sign.rule().startswith(sign.kind + ": ")


def test_kinds_from_their_readings():
    healthy = {"center_norm": 0.3, "effective_rank": 40.0, "loss": -0.8, "collapse_loss": -1.0}
    simsiam = method_class("simsiam").signature
    assert collapse.collapse_signs(simsiam, healthy, n_classes=C) == []
    point = dict(healthy, center_norm=0.999, loss=-0.9995, effective_rank=1.0)
    signs = collapse.collapse_signs(simsiam, point, n_classes=C)
    assert [s["metric"] for s in signs] == ["center_norm", "loss", "effective_rank"]
    assert collapse.collapse_kind(signs) == collapse.COMPLETE
    assert collapse.phrase(signs[0]) == "complete: ‖s‖ center norm 0.999 ≥ 0.9"
    # Behind a BatchNorm: ‖s‖ unremarkable, 3 directions left for 10 classes (bound C − 1 = 9).
    few = dict(healthy, effective_rank=3.0)
    assert collapse.collapse_kind(collapse.collapse_signs(simsiam, few, n_classes=C)) == collapse.DIMENSIONAL
    assert collapse.collapse_signs(simsiam, few) == []  # C unknown: the rank is not judged
    # The guard's own threshold for ‖s‖.
    assert collapse.collapse_signs(simsiam, dict(healthy, center_norm=0.5), threshold=0.4)[0]["bound"] == 0.4


def test_dino_uniform_and_one_prototype():
    lnk = math.log(64)
    dino = method_class("dino").signature
    healthy = {"center_norm": 0.2, "teacher_entropy": 0.98 * lnk, "teacher_sample_entropy": 0.4 * lnk,
               "teacher_entropy_max": lnk}
    assert collapse.collapse_signs(dino, healthy) == []  # the mean reads ln K when healthy: no sign by itself
    uniform = dict(healthy, teacher_sample_entropy=0.99 * lnk)
    assert collapse.collapse_kind(collapse.collapse_signs(dino, uniform)) == collapse.UNIFORM
    one = dict(healthy, teacher_entropy=0.01 * lnk, teacher_sample_entropy=0.0)
    assert collapse.collapse_kind(collapse.collapse_signs(dino, one)) == collapse.COMPLETE


def test_swav_logs_its_prediction_entropies_against_ln_p():
    model = build_method("swav", None, seeds=[0, 1], in_dim=2, dim=D)
    m = model.extra_metrics(torch.randn(2, 32, 2))
    lnp = math.log(model.cfg.n_prototypes)
    assert torch.allclose(m["code_entropy_max"], torch.full((2,), lnp))
    assert bool((m["code_sample_entropy"] <= m["code_entropy"] + 1e-6).all())  # concavity of the entropy
    # One point for every sample: each sample's prediction is the batch mean's.
    same = model.extra_metrics(torch.ones(2, 32, 2))
    assert torch.allclose(same["code_sample_entropy"], same["code_entropy"], atol=1e-5)


def test_bad_signs_name_the_bad_value():
    with pytest.raises(ValueError, match="unknown collapse kind 'total'"):
        collapse.Sign("total", "center_norm", "≥", collapse.THRESHOLD)
    with pytest.raises(ValueError, match="unknown comparison '>'"):
        collapse.Sign(collapse.COMPLETE, "center_norm", ">", collapse.THRESHOLD)


def test_banner_and_table_name_the_kind():
    signs = [{"kind": "dimensional", "metric": "effective_rank", "op": "<", "value": 3.0, "bound": 9.0}]
    rows = [{"kind": "epoch", "epoch": 1, "center_norm": 0.3, "collapse_signs": [], "collapse_kind": None},
            {"kind": "epoch", "epoch": 2, "center_norm": 0.3, "collapse_signs": signs, "collapse_kind": "dimensional"}]
    out = view.collapse_warnings({"r": rows}, 0.9)
    assert out == ["r: dimensional collapse at epoch 2 (the features span a few directions): "
                   "dimensional: effective rank 3 < 9"]
    info = {"name": "r", "status": "running", "epoch": 2, "epochs": 5, "last_epoch_metrics": rows[-1]}
    assert view.table_rows([info])[0]["collapse"] == "dimensional"
    assert view.collapse_warnings({"r": rows[:1]}, 0.9) == []


# ------------------------------------------------------------------ any embedding, read on the sphere

def _embedding(case: str, n: int = 1000, d: int = 512) -> torch.Tensor:
    """Synthetic embeddings (N, D), float64, seeded: each one a kind of (no) collapse."""
    g = torch.Generator().manual_seed(0)
    gauss = torch.randn(n, d, generator=g, dtype=torch.float64)
    point = torch.zeros(d, dtype=torch.float64)
    point[0] = 1.0
    if case == "healthy":  # spread evenly over the sphere
        return gauss
    if case == "one point":
        return point.expand(n, d).clone()
    if case == "one point + far outliers":  # 98 % at one point; 2 % elsewhere with 100x the norm
        y = point.expand(n, d).clone()
        y[: n // 50] = 100 * gauss[: n // 50]
        return y
    if case == "most at one point, a few opposite":  # 92 % at one point, 8 % at its antipode
        y = point.expand(n, d).clone()
        y[: 2 * n // 25] = -point
        return y
    if case == "rank-2 subspace":
        return gauss[:, :2] @ torch.randn(2, d, generator=g, dtype=torch.float64)
    if case == "five prototypes":  # every sample at one of five points
        return torch.randn(5, d, generator=g, dtype=torch.float64)[torch.arange(n) % 5]
    raise ValueError(case)


@pytest.mark.parametrize("case, kind, signs", [
    ("healthy", None, []),
    ("one point", collapse.COMPLETE, ["center_norm", "center_share", "effective_rank"]),
    # The far samples count as one sample each on the sphere: ‖s‖ ≈ 0.98, the share 0.98, few directions.
    ("one point + far outliers", collapse.COMPLETE, ["center_norm", "center_share"]),
    # ‖s‖ = 0.92 − 0.08 = 0.84 reads healthy; the share of samples near s reads 0.92 (and one direction is left).
    ("most at one point, a few opposite", collapse.COMPLETE, ["center_share", "effective_rank"]),
    ("rank-2 subspace", collapse.DIMENSIONAL, ["effective_rank"]),
    ("five prototypes", collapse.DIMENSIONAL, ["effective_rank"]),
])
def test_an_embedding_is_named_by_its_readings_on_the_sphere(case, kind, signs):
    readings = metrics.embedding_readings(_embedding(case))
    held = collapse.collapse_signs(collapse.EMBEDDING, readings, n_classes=C)
    assert [s["metric"] for s in held] == signs, (case, readings)
    assert collapse.collapse_kind(held) == kind, (case, readings)


def test_the_readings_of_the_outlier_case():
    """98 % of the samples at one point, 2 % far away (99.5 % of the squared norm): on the sphere ‖s‖ is within
    2 × 2 % of 1, the share near s is the point's 98 % (the outliers tilt s by at most 0.02 / 0.98, so the point's
    cosine to it stays above 0.9997) and the rank is that of the 20 outliers' directions, far below D."""
    r = metrics.embedding_readings(_embedding("one point + far outliers"))
    assert r["center_norm"] >= 1 - 2 * 0.02 and r["center_share"] == pytest.approx(0.98)
    assert r["effective_rank"] <= 21 < r["effective_rank_max"] / 10
    healthy = metrics.embedding_readings(_embedding("healthy"))
    # N(0, I) on the sphere: ‖s‖ ~ 1/√N, each cosine to s ~ 1/√D (none near 0.9), the rank near D (N = 2D samples).
    assert healthy["center_norm"] < 5 / math.sqrt(1000) and healthy["center_share"] == 0.0
    assert healthy["effective_rank"] > 0.8 * 512


def test_center_cosines_average_to_the_center_norm():
    z = geometry.normalize(torch.randn(3, 200, 5, dtype=torch.float64) + torch.tensor([1.0, 0, 0, 0, 0]))
    assert torch.allclose(geometry.center_cosines(z).mean(-1), geometry.center_norm(z), atol=1e-12)
