"""Toy-run pictures: the Plotly animation, the GIFs (one run, two side by side) and the curves over seeds."""
import io
import math

import numpy as np
import pytest
from PIL import Image

from lab.methods import METHOD_NAMES, method_class
from lab.render.toy import (
    CENTER_COLOR,
    CLASS_COLORS,
    draw_toy_frame,
    metric_band_figure,
    progress_indices,
    reference_lines,
    shown_features,
    side_by_side_gif,
    toy_animation,
    toy_gif_bytes,
)
from lab.train.toy import ToyConfig, train_toys


@pytest.fixture(scope="module")
def runs():
    configs = [ToyConfig(method="simsiam", dataset="blobs", seeds=2, epochs=12, dim=2),
               ToyConfig(method="dino", dataset="blobs3d", seeds=2, epochs=8, dim=3),
               ToyConfig(method="invariance", dataset="moons", seeds=2, epochs=6, dim=8)]
    return dict(zip(("circle", "sphere", "high"), train_toys(configs)))


def rgb(img):
    return np.asarray(img.convert("RGB"))


def count_color(a, color):
    return int(np.all(a == np.array(color), axis=-1).sum())


def test_animation_has_one_frame_per_evaluated_epoch(runs):
    run = runs["circle"]
    fig = toy_animation(run)
    assert [f.name for f in fig.frames] == [str(e) for e in run.epochs]
    assert [s.label for s in fig.layout.sliders[0].steps] == [str(e) for e in run.epochs]
    names = [t.name for t in fig.data]
    assert {"class 0", "class 1", "class 2", "residuals r = z − s"} <= set(names)
    assert any(n.startswith("center s (‖s‖=") for n in names if n)
    # Every point of the seed is drawn, split by class; frames move them.
    assert sum(len(t.x) for t in fig.data if (t.name or "").startswith("class")) == len(run.data.y_train)
    assert fig.frames[0].data[0].x != fig.frames[-1].data[0].x
    # The buttons sit above the plot, the legend beside it: neither collides with the slider.
    assert fig.layout.updatemenus[0].y > 1 and fig.layout.legend.x > 1
    assert fig.layout.title.text is None


def test_animation_frames_subsample_and_seed_choice(runs):
    run = runs["circle"]
    fig = toy_animation(run, max_frames=5, seed_index=1)
    assert len(fig.frames) == 5 and fig.frames[-1].name == str(run.epochs[-1])
    center = [t for t in fig.data if (t.name or "").startswith("center")][0]
    assert center.x[1] == pytest.approx(float(run.s[0, 1, 0]), abs=1e-3)
    with pytest.raises(ValueError, match="seed_index"):
        toy_animation(run, seed_index=2)


def test_sphere_and_higher_dimension(runs):
    fig = toy_animation(runs["sphere"])
    assert fig.data[1].type == "scatter3d" and fig.data[0].type == "surface"
    high = toy_animation(runs["high"])
    assert "D = 8: showing the first 3 coordinates, renormalised" in high.layout.title.text
    z, s, note = shown_features(runs["high"])
    assert z.shape[-1] == 3 and np.allclose(np.linalg.norm(z, axis=-1), 1, atol=1e-6)
    assert np.allclose(s, z.mean(1)) and note
    center = [t for t in high.data if (t.name or "").startswith("center")][0]
    assert "in 8-D" in center.name


def test_toy_gif_is_animated_with_the_center_and_the_classes(runs):
    data = toy_gif_bytes(runs["circle"], fps=10, size=240, loop=2)
    assert data[:6] == b"GIF89a"
    gif = Image.open(io.BytesIO(data))
    assert gif.is_animated and gif.n_frames == len(runs["circle"].epochs)
    assert gif.size == (240, 240) and gif.info["loop"] == 2 and gif.info["duration"] == 100
    gif.seek(gif.n_frames - 1)
    last = rgb(gif)
    assert count_color(last, CENTER_COLOR) > 20
    for color in CLASS_COLORS:
        assert count_color(last, color) > 10
    gif.seek(0)
    assert (rgb(gif) != last).any(axis=-1).mean() > 0.005, "the frames change over training"
    assert Image.open(io.BytesIO(toy_gif_bytes(runs["sphere"], size=200, max_frames=4))).n_frames == 4
    assert Image.open(io.BytesIO(toy_gif_bytes(runs["high"], size=200))).is_animated
    with pytest.raises(ValueError, match="fps"):
        toy_gif_bytes(runs["circle"], fps=0)


def test_frame_draws_points_center_and_residuals():
    z = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    img = draw_toy_frame(z, z.mean(0), np.array([0, 1, 2, 0]), size=200, caption="epoch 0",
                         res_idx=np.array([0, 1]))
    assert img.mode == "P" and img.size == (200, 200)
    a = rgb(img)
    assert count_color(a, CENTER_COLOR) > 5 and count_color(a, CLASS_COLORS[1]) > 5


def test_side_by_side_gif_aligns_runs_by_training_progress(runs):
    a, b = runs["circle"], runs["high"]  # 12 and 6 epochs: 13 and 7 snapshots
    data = side_by_side_gif(a, b, titles=("simsiam", "invariance"), size=200)
    gif = Image.open(io.BytesIO(data))
    assert gif.is_animated and gif.n_frames == 13
    assert gif.size[0] > 2 * 200 and gif.size[1] == 200
    # Halfway through the frames both runs are halfway through their epochs.
    ia, ib = progress_indices(a, 13), progress_indices(b, 13)
    assert a.epochs[ia[6]] == 6 and b.epochs[ib[6]] == 3
    assert ia[-1] == len(a.epochs) - 1 and ib[-1] == len(b.epochs) - 1


def test_band_figure_has_mean_and_band_per_run(runs):
    fig = metric_band_figure({"simsiam": runs["circle"], "dino": runs["sphere"]}, "center_norm")
    lines = [t for t in fig.data if t.mode == "lines" and t.fill is None]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert [t.name for t in lines] == ["simsiam", "dino"] and len(bands) == 2
    run = runs["circle"]
    assert list(lines[0].y) == pytest.approx(run.metrics["center_norm"].double().mean(1).tolist())
    band_y = np.asarray(bands[0].y)
    assert band_y.max() == pytest.approx(run.metrics["center_norm"].max().item())
    assert [s.y0 for s in fig.layout.shapes] == [1.0]  # collapse line
    steps = metric_band_figure({"a": run}, "center_norm", x="step")
    assert steps.data[-1].x[-1] == run.epochs[-1] * run.config.steps_per_epoch


def test_band_figure_reference_lines(runs):
    z_std = metric_band_figure({"c": runs["circle"], "s": runs["sphere"]}, "z_std")
    assert sorted(s.y0 for s in z_std.layout.shapes) == pytest.approx([1 / math.sqrt(3), 1 / math.sqrt(2)])
    entropy = metric_band_figure({"dino": runs["sphere"]}, "teacher_entropy")
    k = runs["sphere"].config.method_config.n_prototypes
    assert entropy.layout.shapes[0].y0 == pytest.approx(math.log(k)) and k == 16  # the toy default
    loss = metric_band_figure({"simsiam": runs["circle"]}, "loss")
    assert loss.layout.shapes[0].y0 == -1.0
    assert reference_lines(runs["high"], "knn_acc") == [(pytest.approx(1 / 3), "chance")]
    # Several metrics on one chart, runs without a metric skipped.
    acc = metric_band_figure({"c": runs["circle"]}, ["knn_acc", "linear_acc"], band="std")
    assert len([t for t in acc.data if t.fill is None]) == 2
    assert len(metric_band_figure({"c": runs["circle"]}, "teacher_entropy").data) == 0


def test_a_run_that_diverged_in_its_first_epoch_still_renders():
    run = train_toys([ToyConfig(method="barlow", params=(("batchnorm", False),), lr=10.0, seeds=2, epochs=5)])[0]
    assert run.diverged and "epoch 1" in run.diverged and run.epochs == [0]
    assert len(toy_animation(run).frames) == 1
    # The one snapshot as a still GIF (Pillow merges identical frames).
    assert toy_gif_bytes(run, size=120)[:6] == b"GIF89a"
    assert Image.open(io.BytesIO(side_by_side_gif(run, run, size=120))).size[1] == 120
    assert metric_band_figure({"b": run}, "center_norm").data


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_loss_chart_shows_every_methods_collapse_value(method):
    """The collapse line comes from the method's own `collapse_value` (not its text), for all nine."""
    config = ToyConfig(method=method, seeds=1, epochs=1, max_evals=2)
    run = train_toys([config])[0]
    want = method_class(method).collapse_value(config.method_config, config.dim, config.batch_size)
    assert want is not None, method
    fig = metric_band_figure({method: run}, "loss")
    assert [s.y0 for s in fig.layout.shapes] == [pytest.approx(want)], method
