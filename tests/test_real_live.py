"""Live Real images (`lab.train.real_live`, `lab.render.real_live`): a Fashion-MNIST run steered step by step,
its readings against plain reference code, a knob change acting from the next step, the held-out reading leaving
training as it was, bad input and divergence as one line, and the frames for a talk. The page: test_app_real_live,
tests/test_browser_real_live.py."""
import math
import time

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from lab.core import geometry as geo
from lab.data import fmnist
from lab.render import real_live as render
from lab.render.live import unpack_points
from lab.train import real_live
from lab.train.changes import Change
from lab.methods import METHOD_NAMES, method_class
from lab.train.real_live import RealLiveConfig, live_real, readings, train_real
from waits import HANG_S

needs_fmnist = pytest.mark.skipif(not fmnist.is_fashion_mnist(fmnist.DEBIAN_DIR),
                                  reason="needs Debian's dataset-fashion-mnist")
SMALL = dict(held_out=100, batch_size=32)  # 10 images of each class: a step and its reading in ~0.1 s


def wait_for(cond, what: str):
    deadline = time.monotonic() + HANG_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# ---------------------------------------------------------------- readings against plain code


def plain_knn(u: np.ndarray, y: np.ndarray, folds: int = 5, k: int = 20, t: float = 0.07) -> float:
    """Weighted kNN (InstDisc / DINO vote) by loops: row i in fold i % folds, the other folds its bank."""
    hits = 0
    for i in range(len(u)):
        bank = [j for j in range(len(u)) if j % folds != i % folds]
        sims = sorted(((float(u[i] @ u[j]), y[j]) for j in bank), reverse=True)[:k]
        votes = np.zeros(10)
        for sim, label in sims:
            votes[label] += math.exp(sim / t)
        hits += int(np.argmax(votes) == y[i])
    return hits / len(u)


def test_readings_match_plain_code():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 12)
    z = rng.standard_normal((120, 16)) + 3 * np.eye(16)[y] + 0.5  # classes apart, and a shared offset
    got = readings(torch.from_numpy(z).float(), torch.from_numpy(y))
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    assert got["center_norm"] == pytest.approx(np.linalg.norm(u.mean(0)), abs=1e-6)
    sv = np.linalg.svd(u - u.mean(0), compute_uv=False)
    p = sv / sv.sum()
    assert got["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-5)
    # float32 similarities: a vote can only flip where two weights tie to ~1e-6, which these rows do not
    assert got["knn_acc"] == pytest.approx(plain_knn(u.astype(np.float32), y), abs=1 / 120)
    assert 0.5 < got["knn_acc"] <= 1.0


def test_aligned_basis_turns_within_the_span_towards_the_previous_one():
    rng = np.random.default_rng(1)
    previous = np.linalg.qr(rng.standard_normal((8, 3)))[0]
    swapped = previous[:, [1, 0, 2]] * np.array([1.0, -1.0, 1.0])  # the same span, two directions swapped, one flipped
    np.testing.assert_allclose(geo.aligned_basis(swapped, previous), previous, atol=1e-12)
    other = np.linalg.qr(rng.standard_normal((8, 3)))[0]
    turned = geo.aligned_basis(other, previous)
    np.testing.assert_allclose(turned.T @ turned, np.eye(3), atol=1e-12)  # still orthonormal
    np.testing.assert_allclose(turned @ turned.T, other @ other.T, atol=1e-12)  # the same span
    assert np.trace(turned.T @ previous) >= np.trace(other.T @ previous) - 1e-12


# ---------------------------------------------------------------- the settings


@pytest.mark.parametrize("kw, words", [
    (dict(steps=0), "steps must be in [10, 2000]"),
    (dict(steps=2.5), "steps must be a whole number"),
    (dict(method="nope"), "method must be one of"),
    (dict(params=(("stop_grad", "maybe"),)), "stop_grad"),
    (dict(steps=20, changes="20:stop_grad=false"), "the epoch must be in [0, 19]"),
    (dict(changes="5:predictor_hidden=8"), "cannot change mid-run"),
    (dict(lr=0.0), "lr must be in (0.0, 10.0]"),
])
def test_bad_settings_are_one_line(kw, words):
    with pytest.raises(ValueError) as err:
        RealLiveConfig(**kw)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_missing_data_set_says_how_to_install_it(tmp_path):
    with pytest.raises(fmnist.FashionMNISTError, match="apt-get install dataset-fashion-mnist"):
        train_real(RealLiveConfig(steps=10, data=str(tmp_path)))


@needs_fmnist
def test_knob_defaults_are_the_recipes_and_movable():
    assert real_live.knob_defaults("simsiam") == {"predictor": True, "stop_grad": True, "predictor_lr_scale": 1.0}
    assert real_live.knob_defaults("dino")["teacher_momentum"] == 0.996  # the Fashion-MNIST scale's stated override
    images, labels = real_live.held_out(RealLiveConfig(held_out=200, seed=3))
    assert images.shape == (200, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [20] * 10


# ---------------------------------------------------------------- runs


@needs_fmnist
def test_a_change_acts_from_the_next_step_and_the_reading_leaves_training_alone():
    plain = train_real(RealLiveConfig(steps=10, **SMALL))
    changed = train_real(RealLiveConfig(steps=10, changes="4:stop_grad=false", **SMALL))
    wider = train_real(RealLiveConfig(steps=10, **{**SMALL, "held_out": 200}))
    assert plain.steps == list(range(11)) and plain.points.shape == (11, 100, 3)
    # Up to the change the two runs are one; from the step after it they part.
    np.testing.assert_array_equal(plain.metrics["loss"][:5], changed.metrics["loss"][:5])
    np.testing.assert_array_equal(plain.metrics["center_norm"][:5], changed.metrics["center_norm"][:5])
    # Stop-gradient changes the gradient, not the loss's value: step 5's update differs, so the reading after
    # it and the loss of the step after that.
    assert plain.metrics["center_norm"][5] != changed.metrics["center_norm"][5]
    assert plain.metrics["loss"][6] != changed.metrics["loss"][6]
    # Reading 200 held-out images instead of 100 (BatchNorm in train mode on them) trains the same model.
    np.testing.assert_array_equal(plain.metrics["loss"], wider.metrics["loss"])
    assert changed.config.changes == (Change(4, "stop_grad", False),)
    assert np.isnan(plain.metrics["loss"][0]) and np.isfinite(plain.metrics["loss"][1:]).all()


@needs_fmnist
def test_a_change_of_the_predictor_lr_or_the_optimizer_reaches_every_group():
    trainer = real_live._Trainer(RealLiveConfig(steps=10, **SMALL), None)
    base = trainer.base_lr
    scales = [g["lr_scale"] for g in trainer.opt.param_groups]
    decays = [g["weight_decay"] for g in trainer.opt.param_groups]
    assert sorted(set(scales)) == [1.0] and 0.0 in decays and max(decays) > 0
    trainer.apply([Change(0, "predictor_lr_scale", 0.01), Change(0, "weight_decay", 0.0),
                   Change(0, "lr", 0.2), Change(0, "sgd_momentum", 0.5)])
    predictor = {id(p) for p in trainer.model.predictor.parameters()}
    for g in trainer.opt.param_groups:
        in_predictor = {id(p) for p in g["params"]} <= predictor
        assert g["lr_scale"] == pytest.approx(0.01 if in_predictor else 1.0)
        assert g["weight_decay"] == 0.0 and g["momentum"] == 0.5
    assert trainer.base_lr == pytest.approx(0.2 * 32 / 256) and base == pytest.approx(0.5 * 32 / 256)
    trainer.apply([Change(1, "weight_decay", 1e-3)])
    assert [g["weight_decay"] > 0 for g in trainer.opt.param_groups] == [d > 0 for d in decays], \
        "weight decay back on the weights only, never on biases and BatchNorm"


@needs_fmnist
def test_points_are_the_rows_on_the_sphere_in_their_top_directions():
    run = train_real(RealLiveConfig(steps=10, **SMALL))
    np.testing.assert_allclose(np.linalg.norm(run.points, axis=-1), 1.0, atol=1e-5)
    # s seen in 3 of D directions is never longer than s itself, and the top direction holds most of it.
    seen = np.linalg.norm(run.centers, axis=-1)
    assert (seen <= run.metrics["center_norm"] + 1e-6).all()
    assert (seen >= 0.5 * run.metrics["center_norm"]).all()
    assert ((run.metrics["share"] > 0) & (run.metrics["share"] <= 1)).all()
    assert run.dim == 512 and run.images.shape == (100, 28, 28)


@needs_fmnist
def test_divergence_ends_the_run_with_one_line(monkeypatch):
    real = real_live.SSLAugment.forward

    def poisoned(self, x):
        v1, v2 = real(self, x)
        return v1 * float("nan"), v2

    monkeypatch.setattr(real_live.SSLAugment, "forward", poisoned)
    run = train_real(RealLiveConfig(steps=10, **SMALL))
    assert run.diverged.startswith("training diverged at step 1: the loss became nan")
    assert run.steps == [0], "the untrained reading is kept, nothing after the bad step"


@needs_fmnist
def test_live_pause_step_change_and_stop():
    live = live_real(RealLiveConfig(steps=40, **SMALL), playing=False)
    try:
        wait_for(lambda: live.control.epoch == 0, "the untrained frame")
        steps, points, metrics = live.control.latest()
        assert steps == [0] and points.shape == (1, 100, 3) and metrics["s3"].shape == (1, 1, 3)
        wait_for(lambda: live.control.waiting, "the trainer waiting for its turn")
        time.sleep(0.3)
        assert live.control.epoch == 0, "paused: nothing trains"
        live.control.step()
        wait_for(lambda: live.control.epoch == 1, "one step")
        live.control.change("stop_grad", "false")
        with pytest.raises(ValueError, match="stop_grad"):
            live.control.change("stop_grad", "sometimes")
        live.control.step(2)
        wait_for(lambda: live.control.epoch == 3, "two more steps")
        assert live.control.applied == [Change(1, "stop_grad", False)]
        live.control.stop()
        wait_for(lambda: live.done, "the stop")
        assert live.error is None and live.run.steps == [0, 1, 2, 3]
        assert live.run.config.changes == (Change(1, "stop_grad", False),)
    finally:
        live.control.stop()


# ---------------------------------------------------------------- what the page and a talk get


@needs_fmnist
def test_payload_frames_and_export():
    run = train_real(RealLiveConfig(steps=10, changes="3:stop_grad=false", **SMALL))
    frames = [(s, run.points[i]) for i, s in enumerate(run.steps)]
    events = render.events(run.config.changes, "simsiam")
    assert events == [(3, "Stop-gradient off at step 3")]
    packed = render.real_frames(frames, run.steps, run.centers, run.metrics["center_norm"], events)
    assert [f[0] for f in packed] == run.steps
    np.testing.assert_allclose(unpack_points(packed[4][1], 3), run.points[4], atol=1 / 32767)
    assert packed[2][3] == "" and packed[4][3] == "Stop-gradient off at step 3"
    np.testing.assert_allclose(packed[4][4], run.centers[4], atol=1e-4)
    metrics = {k: v[:, None] for k, v in run.metrics.items()}
    thumbs = render.thumbnails(run.images[:3])
    data = render.real_payload("r1", run.labels, 10, packed, run.steps, {k: v[:, 0] for k, v in metrics.items()},
                               events, None, "Training", thumbs)
    assert data["unit"] == "step" and data["dim"] == 3 and len(data["colors"]) == 10
    assert [e["name"] for e in data["extra"]] == [n for _, n, _, _ in render.EXTRA_CURVES]
    assert data["images"][0].startswith("data:image/png;base64,") and data["legend"][0][0] == "T-shirt/top"
    gif = render.export_run(run, "gif", size=200, fps=10)
    frames_out = iio.imread(gif, index=None)
    assert gif[:6] == b"GIF89a" and len(frames_out) == len(run.steps) and frames_out.shape[1:3] == (200, 200)
    mp4 = render.export_run(run, "mp4", size=200, duration_s=2.0)
    assert iio.imread(mp4, index=None, plugin="FFMPEG", extension=".mp4").shape[1:3] == (200, 200)
    # Every class colour and the center's green are drawn.
    rgb = np.frombuffer(render.palette(), dtype=np.uint8).reshape(256, 3)
    drawn = set(np.unique(render.draw_frame(run.points[-1], run.centers[-1], run.labels, 300, "x")).tolist())
    assert render.CENTER_INDEX in drawn
    assert all(render.CLASS0 + c in drawn or render.FADED0 + c in drawn for c in range(10))  # near or far side
    assert tuple(rgb[render.CENTER_INDEX]) == render.CENTER_RGB
    fig = render.run_figure(run)
    assert len(fig.data) == 4 and any("Stop-gradient off at step 3" in a.text for a in fig.layout.annotations)


def other_value(field, current):
    """A valid value of a knob other than `current`: the other boolean, or another of its slider stops."""
    if isinstance(current, bool):
        return not current
    stops = [s for s in field.metadata.get("stops") or () if s != current]
    return stops[len(stops) // 2] if stops else None


@needs_fmnist
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_trains_live_and_takes_each_of_its_knobs_mid_run(method):
    fields = {f.name: f for f in method_class(method).movable_knobs()}
    changes = [Change(1, knob, value) for knob, current in real_live.knob_defaults(method).items()
               if (value := other_value(fields[knob], current)) is not None]
    live = live_real(RealLiveConfig(method=method, steps=10, changes=tuple(changes), **SMALL), playing=False)
    live.control.step(3)
    wait_for(lambda: live.control.epoch == 3, "three steps")
    live.control.stop()
    wait_for(lambda: live.done, "the stop")
    run = live.run
    assert live.error is None and run.diverged is None and run.steps == [0, 1, 2, 3]
    for key in ("center_norm", "knn_acc", "effective_rank", "batch_center_norm"):
        assert np.isfinite(run.metrics[key][1:]).all(), (method, key)
    assert run.config.changes == tuple(changes)


def test_a_long_run_sends_at_most_curve_points_readings_the_last_included():
    steps = list(range(1501))
    metrics = {"center_norm": np.linspace(0, 1, 1501), "knn_acc": np.linspace(1, 0, 1501)}
    data = render.real_payload("r", np.zeros(300, int), 2000, [], steps, metrics, [], None, "")
    assert len(data["curve"]["x"]) <= render.CURVE_POINTS and data["curve"]["x"][-1] == 1500
    assert data["curve"]["mean"][-1] == 1.0 and data["extra"][0]["y"][-1] == 0.0
    assert len(data["extra"][0]["y"]) == len(data["curve"]["x"])
    assert render.real_payload("r", [], 300, [], steps[:50], {k: v[:50] for k, v in metrics.items()}, [], None,
                               "")["curve"]["x"] == steps[:50]
