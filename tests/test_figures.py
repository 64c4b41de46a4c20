"""lab.render.figures: Fig. B.1 curves, the Fig. B.2 grid of final frames, the summary table, save_png."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from lab.render.figures import fig_b1, final_frames_grid, save_png, summary_table
from lab.train.b1 import PAPER_SETTINGS, paper_config, train_b1

EPOCHS = 5


@pytest.fixture(scope="module")
def runs():
    configs = [paper_config(n, seed=0, epochs=EPOCHS) for n in PAPER_SETTINGS]
    return dict(zip(PAPER_SETTINGS, train_b1(configs)))


@pytest.fixture(scope="module")
def metrics(runs):
    return {name: run.metrics() for name, run in runs.items()}


def _lines_by_gid(fig: Figure) -> dict[str, object]:
    (ax,) = fig.axes
    return {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}


def test_fig_b1_one_solid_line_per_setting_with_the_given_data(metrics):
    fig = fig_b1(metrics)
    assert isinstance(fig, Figure)
    lines = _lines_by_gid(fig)
    solid = [line for line in lines.values() if line.get_linestyle() == "-"]
    assert len(solid) == len(PAPER_SETTINGS)
    colors = set()
    for name, m in metrics.items():
        line = lines[f"{name}:center_norm_aug"]
        assert line.get_linestyle() == "-"
        np.testing.assert_allclose(line.get_xdata(), m["epoch"])
        np.testing.assert_allclose(line.get_ydata(), m["center_norm_aug"])
        dashed = lines[f"{name}:center_norm"]
        assert dashed.get_linestyle() != "-"
        assert dashed.get_alpha() < 1
        np.testing.assert_allclose(dashed.get_ydata(), m["center_norm"])
        assert dashed.get_color() == line.get_color()
        colors.add(line.get_color())
    assert len(colors) == len(PAPER_SETTINGS), "one colour per setting"
    ax = fig.axes[0]
    assert ax.get_ylim() == pytest.approx((0.0, 1.02))
    # The dotted collapse line at 1.
    assert any(line.get_linestyle() == ":" and list(line.get_ydata()) == [1, 1] for line in ax.get_lines())
    # A legend that names every setting and the two metrics.
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert len(texts) == len(PAPER_SETTINGS) + 2
    assert any("mini-batch SGD, shifted" in t for t in texts)


def test_fig_b1_step_axis_uses_the_step_values(metrics):
    fig = fig_b1(metrics, key="center_norm", also=(), x="step")
    lines = _lines_by_gid(fig)
    assert len(lines) == len(PAPER_SETTINGS)
    name = "mini_batch_sgd_centered_augmentation"
    np.testing.assert_allclose(lines[f"{name}:center_norm"].get_xdata(), metrics[name]["step"])
    assert metrics[name]["step"][-1] == EPOCHS * 20  # 1000 samples / batch 50
    assert fig.axes[0].get_xlabel() == "optimizer step"


def test_fig_b1_accepts_plain_json_lists():
    m = {"a": {"epoch": [0, 1, 2], "step": [0, 2, 4], "center_norm_aug": [0.1, 0.5, 0.9], "center_norm": [0, 0, 1]}}
    lines = _lines_by_gid(fig_b1(m))
    np.testing.assert_allclose(lines["a:center_norm_aug"].get_ydata(), [0.1, 0.5, 0.9])


@pytest.mark.parametrize("bad", ["epochs", "time", ""])
def test_fig_b1_rejects_a_bad_x(metrics, bad):
    with pytest.raises(ValueError, match="x must be"):
        fig_b1(metrics, x=bad)


def test_fig_b1_rejects_missing_metric_and_empty_input(metrics):
    with pytest.raises(ValueError, match="no metric 'knn_acc'"):
        fig_b1(metrics, key="knn_acc")
    with pytest.raises(ValueError, match="empty"):
        fig_b1({})


def test_final_frames_grid_is_a_2x2_rgb_grid_of_different_tiles(runs):
    size = 160
    img = final_frames_grid(runs, size=size)
    assert img.mode == "RGB"
    assert img.size == (2 * size, 2 * size)
    a = np.asarray(img)
    tiles = [a[r * size + 2:(r + 1) * size - 2, c * size + 2:(c + 1) * size - 2] for r in (0, 1) for c in (0, 1)]
    for t in tiles:
        assert t.std() > 0, "a tile is blank"
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(tiles[i], tiles[j]), f"tiles {i} and {j} are identical"


def test_final_frames_grid_shows_the_last_epoch_and_fewer_runs_make_a_row(runs):
    from lab.render.frames import draw_frame

    name = "batch_sgd_centered_augmentation"
    run = runs[name]
    size = 120
    row = final_frames_grid({name: run, "other": runs["mini_batch_sgd_centered_augmentation"]}, size=size)
    assert row.size == (2 * size, size)
    last = np.asarray(draw_frame(run, EPOCHS, size=size, title=name).convert("RGB"))
    # The separator line is drawn on the tile's right edge only.
    np.testing.assert_array_equal(np.asarray(row)[:, : size - 1], last[:, : size - 1])
    first = np.asarray(final_frames_grid({name: run}, size=size, epoch=0))
    assert not np.array_equal(first, last)
    with pytest.raises(ValueError, match="out of range"):
        final_frames_grid({name: run}, size=size, epoch=EPOCHS + 1)
    with pytest.raises(ValueError, match="empty"):
        final_frames_grid({}, size=size)


def test_summary_table_names_every_setting(metrics):
    table = summary_table(metrics)
    lines = table.splitlines()
    assert len(lines) == 2 + len(PAPER_SETTINGS)
    for name, m in metrics.items():
        (line,) = [ln for ln in lines if ln.startswith(name + " ")]
        assert f"{m['center_norm_aug'][-1]:.3f}" in line
    never = summary_table({"x": {"epoch": [0, 1], "center_norm_aug": [0.1, 0.2], "center_norm": [0.95, 0.99]}})
    row = never.splitlines()[-1].split()
    assert row == ["x", "1", "0.200", "never", "0.990", "0"]


@pytest.mark.parametrize("kind", ["figure", "image"])
def test_save_png_writes_a_valid_png_and_no_part_file(tmp_path, metrics, runs, kind):
    obj = fig_b1(metrics) if kind == "figure" else final_frames_grid(runs, size=100)
    path = tmp_path / "sub" / f"{kind}.png"
    path.parent.mkdir()
    path.write_bytes(b"old contents")  # replaced, not appended to
    out = save_png(obj, path)
    assert out == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.width > 100 and img.height > 100
        if kind == "image":
            assert img.size == (200, 200)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_save_png_rejects_other_objects_and_leaves_nothing(tmp_path):
    path = tmp_path / "x.png"
    with pytest.raises(TypeError):
        save_png(b"not an image", path)
    assert list(tmp_path.iterdir()) == []


def test_save_png_removes_the_part_file_when_writing_fails(tmp_path, metrics):
    fig = fig_b1(metrics)

    def broken_savefig(fname, **kwargs):
        open(fname, "wb").write(b"partial")
        raise OSError("disk full")

    fig.savefig = broken_savefig
    path = tmp_path / "x.png"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        save_png(fig, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
    assert path.read_bytes() == b"old", "a failed write must leave the old file alone"


def test_save_png_writes_to_a_part_file_then_renames(tmp_path, runs, monkeypatch):
    import lab.render.figures as figures

    calls = []
    real_replace = os.replace

    def recording_replace(src, dst):
        calls.append((Path(src), Path(dst), Path(src).read_bytes()[:8]))
        real_replace(src, dst)

    monkeypatch.setattr(figures.os, "replace", recording_replace)
    path = tmp_path / "grid.png"
    save_png(final_frames_grid(runs, size=64), path)
    assert calls == [(tmp_path / "grid.png.part", path, b"\x89PNG\r\n\x1a\n")]
