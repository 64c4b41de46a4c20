"""lab.render.figures.fig_bands: the Fig. 3 / Fig. 4 curves, mean over seeds with a min–max band."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from lab.render.figures import BAND_COLORS, fig_bands, save_png
from lab.train.toy import ToyConfig, ToyRun, train_toys

T, K = 6, 4


def _fake_run(offset: float, seeds: int = K) -> ToyRun:
    """A ToyRun with known metrics: (T, K) values that differ per seed, without training."""
    real = _tiny_runs()["simsiam"]
    epochs = [0, 2, 4, 6, 8, 10]
    g = torch.Generator().manual_seed(int(offset * 100))
    base = torch.linspace(0.1, 0.8, T)[:, None] + offset
    metrics = {
        "center_norm": (base + 0.1 * torch.rand(T, seeds, generator=g)).clamp(0, 1),
        "knn_acc": (0.5 + 0.4 * torch.rand(T, seeds, generator=g)),
        "loss": -torch.rand(T, seeds, generator=g),
    }
    z = torch.nn.functional.normalize(torch.randn(T, seeds, 5, 3, generator=g), dim=-1)
    return ToyRun(real.config, real.data, epochs, z, metrics, 0.0)


_CACHE: dict = {}


def _tiny_runs() -> dict[str, ToyRun]:
    """Two real (short) runs, so the figure is also checked on what the trainer returns."""
    if not _CACHE:
        configs = [ToyConfig(method="simsiam", dataset="blobs", seeds=2, epochs=4),
                   ToyConfig(method="simplified", dataset="blobs", seeds=2, epochs=4)]
        _CACHE.update(zip(("simsiam", "simplified"), train_toys(configs)))
    return _CACHE


def _by_gid(fig: Figure) -> dict[str, object]:
    out = {}
    for ax in fig.axes:
        for artist in [*ax.get_lines(), *ax.collections]:
            if artist.get_gid():
                out[artist.get_gid()] = artist
    return out


def _band_limits(band: PolyCollection) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edge of a fill_between band, per x (the polygon's vertices grouped by x)."""
    verts = band.get_paths()[0].vertices
    xs = np.unique(verts[:, 0])
    low = np.array([verts[verts[:, 0] == x, 1].min() for x in xs])
    high = np.array([verts[verts[:, 0] == x, 1].max() for x in xs])
    return low, high


def test_mean_line_and_min_max_band_per_run_and_metric():
    runs = {"simsiam": _fake_run(0.0), "no predictor": _fake_run(0.15), "mine": _fake_run(0.05)}
    fig = fig_bands(runs, metrics=("center_norm", "knn_acc", "loss"), title="test")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    artists = _by_gid(fig)
    for label, run in runs.items():
        for metric in ("center_norm", "knn_acc", "loss"):
            values = run.metrics[metric].double().numpy()
            line = artists[f"{label}:{metric}"]
            np.testing.assert_allclose(line.get_xdata(), run.epochs)
            np.testing.assert_allclose(line.get_ydata(), values.mean(axis=1), rtol=1e-6)
            band = artists[f"{label}:{metric}:band"]
            assert isinstance(band, PolyCollection)
            assert band.get_alpha() == pytest.approx(0.2)
            low, high = _band_limits(band)
            np.testing.assert_allclose(low, values.min(axis=1), rtol=1e-6)
            np.testing.assert_allclose(high, values.max(axis=1), rtol=1e-6)
            assert (high > low).any(), "the seeds differ, so the band has width"
            assert tuple(band.get_facecolor()[0][:3]) == pytest.approx(to_rgb(line.get_color()))
    # The paper's colours for the labels it names, distinct colours for all.
    colors = {label: artists[f"{label}:center_norm"].get_color() for label in runs}
    assert colors["simsiam"] == BAND_COLORS["simsiam"]
    assert colors["no predictor"] == BAND_COLORS["no predictor"]
    assert len(set(colors.values())) == len(runs)
    # Legend names every run; the title is ours.
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert texts == list(runs)
    assert fig.get_suptitle() == "test"


def test_collapse_line_and_unit_range_on_center_norm_and_accuracy():
    fig = fig_bands({"simsiam": _fake_run(0.0)})
    ax_center, ax_acc = fig.axes
    assert ax_center.get_ylim() == pytest.approx((0.0, 1.02))
    assert ax_acc.get_ylim() == pytest.approx((0.0, 1.02))
    dotted = [line for line in ax_center.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 1 and list(dotted[0].get_ydata()) == [1, 1]
    assert "collapse" in [t.get_text() for t in ax_center.texts]
    assert not [line for line in ax_acc.get_lines() if line.get_linestyle() == ":"], "no collapse line on accuracy"
    assert ax_center.get_xlim() == pytest.approx((0.0, 10.0))
    assert "4 seeds" in fig.get_suptitle()


def test_real_runs_and_png(tmp_path):
    runs = _tiny_runs()
    fig = fig_bands(runs, metrics="center_norm")
    assert len(fig.axes) == 1
    line = _by_gid(fig)["simplified:center_norm"]
    np.testing.assert_allclose(line.get_ydata(), runs["simplified"].metrics["center_norm"].double().mean(1).numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(line.get_xdata(), runs["simplified"].epochs)
    path = save_png(fig_bands(runs), tmp_path / "bands.png")
    assert path.stat().st_size > 5_000


def test_bad_metric_names_the_available_ones():
    runs = {"simsiam": _fake_run(0.0)}
    with pytest.raises(ValueError) as err:
        fig_bands(runs, metrics=("center_norm", "knn_accuracy"))
    message = str(err.value)
    assert "knn_accuracy" in message and "simsiam" in message
    for name in ("center_norm", "knn_acc", "loss"):
        assert name in message


def test_empty_inputs_raise():
    with pytest.raises(ValueError, match="empty"):
        fig_bands({})
    with pytest.raises(ValueError, match="empty"):
        fig_bands({"simsiam": _fake_run(0.0)}, metrics=())
    with pytest.raises(TypeError, match="mapping"):
        fig_bands([_fake_run(0.0)])


def test_epochs_and_values_must_match():
    run = _fake_run(0.0)
    run.epochs = run.epochs[:-1]
    with pytest.raises(ValueError, match="epochs"):
        fig_bands({"simsiam": run})
