import io

import numpy as np
import pytest
from PIL import Image

from lab.render.frames import draw_frame, gif_bytes, palette, write_gif
from lab.core.schedules import evenly_spaced
from lab.render.interactive import center_curves_figure, feature_animation
from lab.render import style
from lab.train.b1 import paper_config, train_b1


@pytest.fixture(scope="module")
def runs():
    return train_b1([paper_config("mini_batch_sgd_centered_augmentation", epochs=12),
                     paper_config("batch_sgd_shifted_augmentation", epochs=12, dim=3)])


def rgb(img):
    return np.asarray(img.convert("RGB"))


def count_color(a, color):
    return int(np.all(a == np.array(color), axis=-1).sum())


def test_frame_shows_the_three_center_colors_and_points(runs):
    img = draw_frame(runs[0], 12, size=400)
    assert img.size == (400, 400) and img.mode == "P"
    a = rgb(img)
    for color in style.CENTER_COLORS.values():
        assert count_color(a, color) > 30  # each center arrow is drawn
    assert count_color(a, style.CENTER_TERM_COLOR) > 10 and count_color(a, style.RESIDUAL_TERM_COLOR) > 0
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 20  # coloured by source point


def test_frames_change_over_training(runs):
    first, last = rgb(draw_frame(runs[0], 0)), rgb(draw_frame(runs[0], 12))
    assert (first != last).any(axis=-1).mean() > 0.01


def test_sphere_frame_renders(runs):
    a = rgb(draw_frame(runs[1], 5, size=300))
    assert a.shape == (300, 300, 3) and count_color(a, style.CENTER_COLORS["s_data"]) > 10


def test_palette_colors_are_unique():
    p = palette()
    assert len(p) == 768 and len({p[i:i + 3] for i in range(0, 768, 3)}) == 256


def test_gif_is_animated_and_matches_the_frames(runs):
    data = gif_bytes(runs[0], fps=10, size=200, loop=2)
    assert data[:6] == b"GIF89a"
    im = Image.open(io.BytesIO(data))
    assert im.n_frames == 13
    assert im.info["loop"] == 2 and im.info["duration"] == 100
    im.seek(5)
    assert np.array_equal(rgb(im), rgb(draw_frame(runs[0], 5, size=200)))


def test_gif_frame_cap_keeps_first_and_last():
    assert evenly_spaced(500, 100)[0] == 0 and evenly_spaced(500, 100)[-1] == 500
    assert len(evenly_spaced(500, 100)) == 100 and evenly_spaced(10, 100) == list(range(11))


@pytest.mark.parametrize("kwargs", [dict(fps=0), dict(fps=float("nan")), dict(size=10), dict(loop=-1)])
def test_gif_rejects_bad_settings(runs, kwargs):
    with pytest.raises(ValueError):
        gif_bytes(runs[0], **kwargs)


def test_write_gif_is_atomic(tmp_path, runs):
    path = write_gif(tmp_path / "a.gif", runs[0], size=100, max_frames=3)
    assert path.read_bytes()[:6] == b"GIF89a" and not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("which", [0, 1])
def test_plotly_animation_has_client_side_frames(runs, which):
    fig = feature_animation(runs[which], max_frames=5)
    assert [f.name for f in fig.frames] == ["0", "3", "6", "9", "12"]
    assert fig.layout.updatemenus[0].buttons[0].label.endswith("Play")
    assert len(fig.layout.sliders[0].steps) == 5
    moving = fig.frames[-1].traces
    dataset = fig.data[moving[1]]
    assert len(dataset.x) == 100
    last = fig.frames[-1].data[1]
    np.testing.assert_allclose(np.array(last.x, float), runs[which].z[12][:, 0].numpy(), atol=1e-3)
    fig.to_json()  # serialises (what the page and the notebook do)


def test_center_curves(runs):
    metrics = {"a": runs[0].metrics(), "b": runs[1].metrics()}
    fig = center_curves_figure(metrics, x="step")
    assert len(fig.data) == 6 and list(fig.data[0].x) == metrics["a"]["step"]
    with pytest.raises(ValueError):
        center_curves_figure(metrics, x="time")


def test_gif_of_a_run_with_no_training_has_one_frame():
    run = train_b1([paper_config("mini_batch_sgd_centered_augmentation", epochs=0)])[0]
    im = Image.open(io.BytesIO(gif_bytes(run, size=100)))
    assert im.n_frames == 1
