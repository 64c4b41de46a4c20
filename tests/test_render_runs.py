"""The Runs page's figures and views (`lab.render.runs`) on synthetic metric rows: pure functions, so
hand-made rows shaped like `metrics.jsonl` (the trainer's `EPOCH_KEYS`) are enough here."""
import csv
import io
import math
from datetime import datetime, timedelta

import pytest

from lab.core import vocab
from lab.engine.presets import PRESETS
from lab.engine.train import EPOCH_KEYS
from lab.render import runs as view


def fake_rows(epochs: int = 6, steps_per_epoch: int = 4, center=lambda e: 0.1 * e, collapse_loss=-1.0,
              healthy=1 / math.sqrt(2048), knn_every: int = 2, status: str | None = "finished", **extra) -> list[dict]:
    """Rows like the trainer writes: step lines every step, one epoch line per epoch, an end line."""
    rows, step = [], 0
    for e in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
            step += 1
            rows.append({"kind": "step", "epoch": e, "step": step, "loss": 1.0 / step, "batch_center_norm": 0.05,
                         "lr": 0.1})
        row = {k: None for k in EPOCH_KEYS}
        row.update(kind="epoch", epoch=e, step=step, loss=1.0 / e, collapse_loss=collapse_loss, center_norm=center(e),
                   residual_norm=0.9, z_std=0.02, z_std_healthy=healthy,
                   knn_acc=0.2 * e if e % knn_every == 0 else None,
                   lr=0.1, images_per_s=100.0 + e, epoch_seconds=10.0, knn_seconds=2.0 if e % knn_every == 0 else 0.0,
                   n_corrupt=0, collapsed=False, **{k: v(e) if callable(v) else v for k, v in extra.items()})
        rows.append(row)
    if status:
        rows.append({"kind": "end", "status": status, "epoch": epochs, "step": step})
    return rows


def lines(fig) -> dict:
    """Data traces by name -> (x, y)."""
    return {t.name: (list(t.x), list(t.y)) for t in fig.data}


def references(fig) -> dict:
    """Horizontal reference lines: label -> y."""
    ys = [s.y0 for s in fig.layout.shapes]
    labels = [a.text for a in fig.layout.annotations if a.text != "no values yet"]
    return dict(zip(labels, ys))


def test_epoch_metric_overlays_runs_and_skips_missing_values():
    runs = {"a": fake_rows(), "b": fake_rows(epochs=3)}
    fig = view.metric_chart(runs, "knn_acc")
    got = lines(fig)
    assert set(got) == {"a", "b"}
    assert got["a"] == ([2.0, 4.0, 6.0], pytest.approx([0.4, 0.8, 1.2]))  # kNN every 2 epochs: nulls left out
    assert got["b"][0] == [2.0]
    assert fig.data[0].line.color != fig.data[1].line.color
    assert fig.layout.xaxis.title.text == "epoch"


def test_step_axis_uses_step_rows_where_the_metric_has_them():
    rows = fake_rows(epochs=2, steps_per_epoch=3)
    loss_x, loss_y = lines(view.metric_chart({"a": rows}, "loss", x="step"))["a"]
    assert loss_x == [1, 2, 3, 4, 5, 6] and loss_y[0] == 1.0  # the step lines
    center_x, _ = lines(view.metric_chart({"a": rows}, "center_norm", x="step"))["a"]
    assert center_x == [3.0, 6.0]  # epoch rows, placed at their last step
    with pytest.raises(ValueError, match="x must be one of epoch, step"):
        view.metric_chart({"a": rows}, "loss", x="time")


def test_reference_lines():
    dim = 256
    rows = fake_rows(healthy=1 / math.sqrt(dim), teacher_entropy=lambda e: 8.0 - e,
                     teacher_entropy_max=math.log(4096))
    assert references(view.metric_chart({"a": rows}, "loss")) == {"collapse value": -1.0}
    assert references(view.metric_chart({"a": rows}, "z_std")) == {"healthy 1/√D (D=256)": pytest.approx(1 / 16)}
    entropy = references(view.metric_chart({"a": rows}, "teacher_entropy"))
    assert entropy == {"ln K (uniform)": pytest.approx(math.log(4096))}
    center = references(view.metric_chart({"a": rows}, "center_norm", threshold=0.8))
    assert center == {"collapse ‖s‖ = 1": 1.0, "warning ‖s‖ = 0.8": 0.8}
    assert references(view.metric_chart({"a": rows}, "center_norm")) == {"collapse ‖s‖ = 1": 1.0}
    assert references(view.metric_chart({"a": rows}, "images_per_s")) == {}
    # Two methods with different collapse values: one line each, named after its runs.
    dino = fake_rows(collapse_loss=math.log(4096))
    both = references(view.metric_chart({"simsiam": rows, "dino": dino}, "loss"))
    assert both == {"collapse value (simsiam)": -1.0, "collapse value (dino)": pytest.approx(math.log(4096))}


def test_smoothing_changes_values_and_keeps_raw_behind():
    rows = fake_rows(epochs=8, center=lambda e: 0.9 if e % 2 else 0.1)
    raw = lines(view.metric_chart({"a": rows}, "center_norm"))["a"][1]
    fig = view.metric_chart({"a": rows}, "center_norm", smooth=0.8)
    got = lines(fig)
    assert got["a (raw)"][1] == raw
    smoothed = got["a"][1]
    assert smoothed != raw and smoothed[0] == pytest.approx(raw[0])  # debiased: the first point is the value
    assert max(smoothed[2:]) - min(smoothed[2:]) < max(raw) - min(raw)  # the zigzag flattens
    assert [t.showlegend for t in fig.data] == [False, None]
    assert view.smooth_values([1.0, 2.0], 0.0) == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"smooth must be in \[0, 1\)"):
        view.smooth_values([1.0], 1.0)


def test_log_axis_drops_non_positive_reference_lines():
    rows = fake_rows()
    fig = view.metric_chart({"a": rows}, "loss", log_y=True)
    assert fig.layout.yaxis.type == "log"
    assert references(fig) == {}  # the collapse value −1 has no place on a log axis
    assert view.metric_chart({"a": rows}, "loss").layout.yaxis.type == "linear"


def test_empty_runs_say_so():
    fig = view.metric_chart({"a": [], "b": [{"kind": "step", "step": 1, "loss": 0.5}]}, "center_norm")
    assert [a.text for a in fig.layout.annotations][-1] == "no values yet"
    assert all(len(t.y) == 0 for t in fig.data)


def test_csv_round_trip():
    rows = fake_rows(epochs=2, steps_per_epoch=2)
    text = view.metrics_csv(rows).decode("utf-8")
    back = list(csv.DictReader(io.StringIO(text)))
    assert len(back) == len(rows)
    assert text.splitlines()[0].startswith("kind,")
    for got, want in zip(back, rows):
        for key, value in want.items():
            if value is None:
                assert got[key] == ""
            elif isinstance(value, (bool, str)):
                assert got[key] == str(value)
            else:
                assert float(got[key]) == value  # full precision
        assert all(got[k] == "" for k in got if k not in want)


def test_collapse_warnings():
    healthy = fake_rows(center=lambda e: 0.05)
    collapsing = fake_rows(center=lambda e: min(0.2 * e, 0.99), status=None)
    guarded = fake_rows(epochs=3, center=lambda e: 0.97, status="collapsed")
    out = view.collapse_warnings({"ok": healthy, "bad": collapsing, "guard": guarded}, 0.9)
    assert len(out) == 2
    assert out[0].startswith("bad: ‖s‖ reached 0.990 at epoch 5 (threshold 0.9); now 0.990 at epoch 6")
    assert "early sign of complete collapse" in out[0]
    assert out[1].startswith("guard:") and "collapse guard" in out[1]
    assert view.collapse_warnings({"bad": collapsing}, 1.0) == []


def test_progress_and_eta():
    now = datetime(2026, 1, 1, 12, 0, 0)
    last = {"epoch_seconds": 50.0, "knn_seconds": 10.0}
    running = {"status": "running", "epoch": 3, "epochs": 10, "started": (now - timedelta(seconds=300)).isoformat(),
               "last_epoch_metrics": last}
    assert view.progress(running, now.timestamp()) == (0.3, pytest.approx(7 * 60.0))
    # Without the run's own epoch time: time since start over the epochs done.
    no_times = dict(running, last_epoch_metrics={})
    assert view.progress(no_times, now.timestamp()) == (0.3, pytest.approx(7 * 100.0))
    assert view.progress(dict(running, status="finished", epoch=10), now.timestamp()) == (1.0, None)
    assert view.progress(dict(running, status="stopped"), now.timestamp()) == (0.3, None)
    assert view.progress(dict(running, epoch=0), now.timestamp()) == (0.0, None)
    assert view.progress({"status": "queued", "epoch": 0, "epochs": None}) == (0.0, None)
    assert [view.format_eta(s) for s in (None, 12, 250, 3900)] == ["", "12 s", "4 min 10 s", "1 h 05 min"]
    info = dict(running, name="r1", method="simsiam", last_epoch_metrics=dict(last, center_norm=0.51234))
    row = view.table_rows([info], now.timestamp())[0]
    assert row == {"name": "r1", "status": "running", "method": "simsiam", "progress": 0.3, "epoch": "3/10",
                   "ETA": "7 min 00 s", "‖s‖": 0.5123, "collapse": "",
                   "started": (now - timedelta(seconds=300)).strftime("%Y-%m-%d %H:%M:%S")}


@pytest.mark.parametrize("preset", list(view.PAPER_FIGURES))
def test_paper_figure_for_every_preset(preset):
    entries = PRESETS[preset]
    # Named as a launcher might: the preset as a prefix; plus a run of another preset to be ignored.
    runs = {f"{preset}-{e['name']}": fake_rows(epochs=4, center=lambda ep, i=i: 0.1 * ep * (i + 1) / len(entries),
                                               center_norm_post_bn=0.01, effective_rank=5.0,
                                               effective_rank_post_bn=6.0, teacher_sample_entropy=2.0) for i, e in enumerate(entries)}
    runs["someone-else"] = fake_rows()
    fig = view.paper_figure(preset, runs)
    panels = view.PAPER_FIGURES[preset][1]
    assert [a.text for a in fig.layout.annotations] == [vocab.label(m) for m in panels]
    assert len(fig.data) == len(entries) * len(panels)
    legend = [t.name for t in fig.data if t.showlegend]
    assert [n.split(" (")[0] for n in legend] == [f"{preset}-{e['name']}" for e in entries]  # the preset's order
    assert "someone-else" not in {t.name for t in fig.data}
    first = fig.data[0]
    assert list(first.x) == [1.0, 2.0, 3.0, 4.0] and first.xaxis == "x"


def test_paper_figure_waits_for_runs():
    assert view.paper_figure("b5-simsiam-predictor", {}) is None
    assert view.paper_figure("b5-simsiam-predictor", {"simsiam": fake_rows(epochs=0)}) is None
    fig = view.paper_figure("b5-simsiam-predictor", {"simsiam-nopred": fake_rows(epochs=2)})
    assert [t.name for t in fig.data if t.showlegend] == ["simsiam-nopred (predictor=False)"]
    with pytest.raises(ValueError, match="unknown preset 'fig9'; valid: fig5-barlow"):
        view.paper_figure("fig9", {})


def test_preset_members_prefers_the_longest_name():
    got = view.preset_members("b5-simsiam-predictor", ["b5-simsiam", "b5-simsiam-nopred", "simsiam", "xsimsiam"])
    assert {k: v["name"] for k, v in got.items()} == {"b5-simsiam": "simsiam", "b5-simsiam-nopred": "simsiam-nopred",
                                                       "simsiam": "simsiam"}


def test_queue_progress_counts_the_preset_queue_and_its_eta():
    last = {"epoch_seconds": 20.0, "knn_seconds": 10.0}
    runs = [{"name": "a", "status": "finished", "epoch": 3, "epochs": 3, "preset": "fig5-barlow",
             "last_epoch_metrics": last},
            {"name": "b", "status": "running", "epoch": 1, "epochs": 3, "preset": "fig5-barlow",
             "last_epoch_metrics": last},
            {"name": "c", "status": "queued", "epoch": 0, "epochs": 3, "preset": "fig5-barlow"},
            {"name": "lone", "status": "queued", "epoch": 0, "epochs": 3}]  # not launched from a preset
    fraction, line = view.queue_progress(runs)
    assert fraction == pytest.approx(1 / 3)
    # c waits: 3 × 20 + 10 = 70 s; b has 2 epochs of 30 s left.
    assert line == "Preset queue: 1 of 3 runs ended, 1 running, 1 waiting; about 2 min 10 s left (1 min 10 s a run)"
    assert view.queue_progress(runs[:2]) is None  # nothing waits
