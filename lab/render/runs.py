"""Plotly figures and small views of ImageNet runs, from the rows of their `metrics.jsonl`.

Pure: every function takes metric rows (`lab.runs.read_metrics(path)`: dicts with `"kind": "step" |
"epoch" | "end"`) or a run's info, and returns a figure, bytes, text or numbers. No Streamlit, no files,
no torch: the Runs page, a notebook and the tests call the same functions.

- `metric_chart`: one metric of several runs overlaid, against epoch or optimizer step, with smoothing,
  a log axis and the metric's reference lines (the loss's collapse value, 1/√D for z_std, ln K for the
  teacher entropy, the warning threshold and 1 for ‖s‖).
- `progress`, `format_eta`, `table_rows`: a run's epoch fraction and estimated time left; the runs table.
- `metrics_csv`: every row as CSV. `collapse_warnings`: runs whose ‖s‖ crossed a threshold.
- `paper_figure`: the paper's Figs. 5, 6, 7, B.4, B.5, B.6 (‖s‖ and kNN accuracy per epoch) from the runs
  of a preset (`lab.engine.presets`).
"""
from __future__ import annotations

import csv
import io
import math
import time
from datetime import datetime
from typing import Any, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab.core import vocab
from lab.core.collapse import KINDS, collapse_kind, phrase
from lab.core.experiments import BY_PRESET
from lab.render import style

Rows = Sequence[Mapping[str, Any]]

X_AXES = {"epoch": "epoch", "step": "optimizer step"}
# The Runs page's charts, those a selected run logs: ‖s‖ where collapse can show, its robust twin (the share of
# views near the mean direction) and ‖s‖ after the BatchNorm that hides it, the effective rank before and after
# it (dimensional collapse), the per-sample entropies of DINO and SwAV (uniform collapse), then kNN, the loss,
# the lr and the speed.
LIVE_METRICS = ("center_norm", "center_share", "center_norm_post_bn", "effective_rank",
                "effective_rank_post_bn", "teacher_sample_entropy", "code_sample_entropy", "knn_acc", "loss", "lr",
                "images_per_s")
CENTER_METRICS = ("center_norm", "center_norm_pre_bn", "center_norm_post_bn", "batch_center_norm")
DEFAULT_THRESHOLD = vocab.COLLAPSE_THRESHOLD
# Okabe-Ito: told apart by colour-blind readers too; the toy pages' arrow green/blue/red stay reserved.
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
REFERENCE_COLOR = "#888888"
THRESHOLD_COLOR = style.hex_color(style.CENTER_TERM_COLOR)  # the orange of the center term: a warning
ACTIVE = ("queued", "running")


# ---------------------------------------------------------------- rows -> series


def epoch_rows(rows: Rows) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("kind") == "epoch"]


def _number(value: Any) -> float | None:
    """A finite float, or None for missing, null, non-numbers, NaN and ±inf (JSON lines may hold any)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def series(rows: Rows, metric: str, x: str = "epoch") -> tuple[list[float], list[float]]:
    """(xs, ys) of one metric. x="epoch": the epoch rows. x="step": the step rows where the metric has
    some (the loss every N steps), else the epoch rows placed at their last step. Rows without a finite
    value (kNN runs only every few epochs) are left out."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    chosen = epoch_rows(rows)
    if x == "step":
        steps = [r for r in rows if r.get("kind") == "step" and _number(r.get(metric)) is not None]
        chosen = steps or chosen
    xs, ys = [], []
    for r in chosen:
        xv, yv = _number(r.get(x)), _number(r.get(metric))
        if xv is not None and yv is not None:
            xs.append(xv)
            ys.append(yv)
    return xs, ys


def smooth_values(values: Sequence[float], smooth: float) -> list[float]:
    """Exponential moving average with weight `smooth` in [0, 1), debiased like TensorBoard's, so the
    first points are not pulled towards 0. smooth = 0 returns the values unchanged."""
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth!r}")
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = smooth * avg + (1.0 - smooth) * v
        out.append(avg / (1.0 - smooth ** i) if smooth else v)
    return out


def _last(rows: Rows, key: str) -> float | None:
    for r in reversed(epoch_rows(rows)):
        value = _number(r.get(key))
        if value is not None:
            return value
    return None


def _entropy_max(rows: Rows) -> float | None:
    """ln K of DINO's teacher or ln P of SwAV's prototypes, whichever the run logs."""
    found = _last(rows, "teacher_entropy_max")
    return found if found is not None else _last(rows, "code_entropy_max")


def reference_lines(runs: Mapping[str, Rows], metric: str, threshold: float | None = None) -> list[tuple[float, str]]:
    """(y, label) of the metric's reference values (`lab.core.vocab.reference_lines`) over these runs, read from
    each run's epoch lines (collapse_loss, z_std_healthy = 1/√D, teacher_entropy_max = ln K); one line per
    distinct value, and where the runs disagree (a loss's collapse value differs by method) each label
    names its runs."""
    found: dict[tuple[float, str], list[str]] = {}
    for name, rows in runs.items():
        healthy = _last(rows, "z_std_healthy")
        lines = vocab.reference_lines(metric, dim=round(healthy ** -2) if healthy else None,
                                      collapse_loss=_last(rows, "collapse_loss"),
                                      entropy_max=_entropy_max(rows), threshold=threshold)
        for y, text in lines:
            found.setdefault((round(y, 9), text), []).append(name)
    values_per_text: dict[str, int] = {}
    for _, text in found:
        values_per_text[text] = values_per_text.get(text, 0) + 1
    return [(y, text if values_per_text[text] == 1 else f"{text} ({', '.join(names)})")
            for (y, text), names in found.items()]


def live_metrics(runs: Mapping[str, Rows]) -> list[str]:
    """`LIVE_METRICS` that at least one of the runs has a value of (‖s‖ always: its chart says "no values
    yet" while a run starts)."""
    return [m for m in LIVE_METRICS if m == "center_norm" or any(series(rows, m)[1] for rows in runs.values())]


def run_color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# ---------------------------------------------------------------- figures


def metric_chart(
    runs: Mapping[str, Rows],
    metric: str,
    x: str = "epoch",
    smooth: float = 0.0,
    log_y: bool = False,
    threshold: float | None = None,
    height: int = 320,
    title: str | None = None,
) -> go.Figure:
    """One metric of several runs overlaid: a line per run (named after the run), its reference lines
    as dashed horizontal lines (layout shapes, labelled), a log y axis on request.

    With smooth > 0 each run's line is the smoothed curve and the raw values stay behind it, faint and
    out of the legend (trace name "<run> (raw)"). The chart keeps its zoom across live refreshes
    (uirevision). A run without values for the metric yet draws no line.
    """
    fig = go.Figure()
    n_points = 0
    for i, (name, rows) in enumerate(runs.items()):
        xs, ys = series(rows, metric, x)
        n_points += len(ys)
        color = run_color(i)
        if smooth > 0 and ys:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{name} (raw)", showlegend=False,
                                     hoverinfo="skip", line=dict(color=_rgba(color, 0.25), width=1)))
        # Markers while there are few points: a run's first epochs would otherwise draw nothing visible.
        mode = "lines+markers" if len(ys) <= 30 else "lines"
        fig.add_trace(go.Scatter(x=xs, y=smooth_values(ys, smooth) if smooth > 0 else ys, mode=mode, name=name,
                                 line=dict(color=color, width=2), marker=dict(size=5)))
    for y, label in reference_lines(runs, metric, threshold):
        if log_y and y <= 0:
            continue  # not on a log axis
        warn = label.startswith("warning")
        fig.add_hline(y=y, line=dict(color=THRESHOLD_COLOR if warn else REFERENCE_COLOR, dash="dash", width=1),
                      annotation_text=label, annotation_position="top left",
                      annotation_font=dict(size=11, color=THRESHOLD_COLOR if warn else "#555"))
    label = vocab.label(metric)
    where = vocab.METRICS[metric].where if metric in vocab.METRICS else ""
    heading = title or (f"{label}<br><sup>read on {where}</sup>" if where else label)
    fig.update_layout(
        height=height, title=dict(text=heading, font=dict(size=15)), uirevision=f"{metric}-{x}",
        margin=dict(l=10, r=10, t=40, b=10), xaxis_title=X_AXES.get(x, x), yaxis_title=label,
        yaxis_type="log" if log_y else "linear", legend=dict(orientation="h", y=-0.25), hovermode="x unified")
    if vocab.unit_range(metric) and not log_y:
        fig.update_yaxes(range=[0, 1.05])
    _whole_epochs(fig, x, runs, metric)
    if n_points == 0:
        fig.add_annotation(text="no values yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                           font=dict(size=14, color="#888"))
    return fig


def _whole_epochs(fig: go.Figure, x: str, runs: Mapping[str, Rows], metric: str) -> None:
    """Ticks at whole epochs while there are few (Plotly would write 1.2, 1.4, ... under a 2-epoch run)."""
    if x != "epoch":
        return
    last = max((max(series(rows, metric, x)[0], default=0.0) for rows in runs.values()), default=0.0)
    if last <= 12:
        fig.update_xaxes(tick0=0, dtick=1)


# ---------------------------------------------------------------- progress and the runs table


def _get(info: Any, key: str, default: Any = None) -> Any:
    return info.get(key, default) if isinstance(info, Mapping) else getattr(info, key, default)


def _started_seconds(started: Any) -> float | None:
    if not started:
        return None
    try:
        when = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp()  # a naive time is local time, as datetime.now().isoformat() writes it


def _local_time(started: Any) -> str:
    """An ISO time (UTC or local) as local 'YYYY-mm-dd HH:MM:SS'; the text itself if it is not one."""
    seconds = _started_seconds(started)
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S") if seconds is not None else str(started or "")


def progress(info: Any, now: float | None = None) -> tuple[float, float | None]:
    """(fraction of epochs done in [0, 1], seconds left or None) of a run (a RunInfo or its to_json()).

    The time per epoch is the run's own last `epoch_seconds` + `knn_seconds` where the metrics have
    them (unaffected by pauses between a stop and a resume), else the time since start over the epochs
    done. Only a queued or running run with at least one epoch done has an ETA.
    """
    epoch, epochs = _get(info, "epoch") or 0, _get(info, "epochs") or 0
    fraction = min(max(epoch / epochs, 0.0), 1.0) if epochs > 0 else 0.0
    if _get(info, "status") not in ACTIVE or epoch <= 0 or epochs <= 0:
        return fraction, None
    last = _get(info, "last_epoch_metrics") or {}
    per_epoch = _number(last.get("epoch_seconds"))
    if per_epoch is not None:
        per_epoch += _number(last.get("knn_seconds")) or 0.0
    else:
        began = _started_seconds(_get(info, "started"))
        if began is None:
            return fraction, None
        per_epoch = max((time.time() if now is None else now) - began, 0.0) / epoch
    return fraction, max(epochs - epoch, 0) * per_epoch


def queue_progress(infos: Sequence[Any], now: float | None = None) -> tuple[float, str] | None:
    """(fraction of the preset queue's runs ended, one line with its ETA) while preset runs wait in the
    queue, else None. The queue: the runs launched from a preset. A waiting run is estimated at the median
    time of the queue's ended runs (epochs × their last epoch_seconds, plus kNN), else at the running run's."""
    runs = [i for i in infos if _get(i, "preset")]
    waiting = [i for i in runs if _get(i, "status") == "queued"]
    if not waiting:
        return None
    running = [i for i in runs if _get(i, "status") == "running"]
    ended = [i for i in runs if _get(i, "status") in ("finished", "collapsed")]
    per_run = [_run_seconds(i) for i in ended]
    per_run = sorted(s for s in per_run if s is not None)
    if per_run:
        estimate = per_run[len(per_run) // 2]
    else:
        estimate = next((s for s in map(_run_seconds, running) if s is not None), None)
    left = None if estimate is None else len(waiting) * estimate + sum(progress(i, now)[1] or 0.0 for i in running)
    fraction = len(ended) / len(runs)
    eta = f"; about {format_eta(left)} left ({format_eta(estimate)} a run)" if left is not None else ""
    return fraction, (f"Preset queue: {len(ended)} of {len(runs)} runs ended, {len(running)} running, "
                      f"{len(waiting)} waiting{eta}")


def _run_seconds(info: Any) -> float | None:
    """A whole run's time: its epochs × its last epoch's seconds, plus one kNN."""
    last = _get(info, "last_epoch_metrics") or {}
    per_epoch, epochs = _number(last.get("epoch_seconds")), _get(info, "epochs") or 0
    if per_epoch is None or epochs <= 0:
        return None
    return epochs * per_epoch + (_number(last.get("knn_seconds")) or 0.0)


def format_eta(seconds: float | None) -> str:
    """1 h 05 min, 4 min 10 s, 12 s; '' for None."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


COLLAPSE_COLUMN_HELP = ("The kind of collapse the run's latest epoch shows by its method's signature: "
                        + "; ".join(f"{kind}: {what}" for kind, what in KINDS.items()) + ". Empty: no sign.")


def table_rows(infos: Sequence[Any], now: float | None = None) -> list[dict]:
    """The runs table: one dict per run (name, status, method, progress in [0, 1], epoch "e/E", ETA,
    last ‖s‖, the collapse kind its latest epoch shows (`lab.core.collapse`; "" for none), started), in order."""
    out = []
    for info in infos:
        fraction, eta = progress(info, now)
        last = _get(info, "last_epoch_metrics") or {}
        center = _number(last.get("center_norm"))
        out.append({"name": _get(info, "name"), "status": _get(info, "status"), "method": _get(info, "method") or "",
                    "progress": fraction, "epoch": f"{_get(info, 'epoch') or 0}/{_get(info, 'epochs') or '?'}",
                    "ETA": format_eta(eta), "‖s‖": None if center is None else round(center, 4),
                    "collapse": last.get("collapse_kind") or "",
                    "started": _local_time(_get(info, "started"))})
    return out


# ---------------------------------------------------------------- CSV and warnings


def metrics_csv(rows: Rows) -> bytes:
    """Every row as CSV (UTF-8): one column per key, in order of first appearance, `kind` first; a row
    without a key leaves it empty. Numbers keep full precision (repr)."""
    keys: dict[str, None] = {"kind": None}
    for r in rows:
        keys.update(dict.fromkeys(r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(keys), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue().encode("utf-8")


def collapse_warnings(runs: Mapping[str, Rows], threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """One sentence per run whose epoch `center_norm` reached `threshold` (an early sign of complete
    collapse), one per run whose latest epoch shows another sign of its method's collapse signature
    (dimensional, uniform: `lab.core.collapse`, written on the epoch lines by the engine), and one per run the
    guard ended as collapsed. Runs with no sign say nothing."""
    out = []
    for name, rows in runs.items():
        epochs = epoch_rows(rows)
        crossed = [r for r in epochs if (_number(r.get("center_norm")) or 0.0) >= threshold]
        ended = [r for r in rows if r.get("kind") == "end"]
        collapsed = bool(ended) and ended[-1].get("status") == "collapsed"
        guard = ": the collapse guard stopped it as collapsed" if collapsed else ""
        if crossed:
            first, last = crossed[0], epochs[-1]
            out.append(f"{name}: ‖s‖ reached {first['center_norm']:.3f} at epoch {first.get('epoch')} "
                       f"(threshold {threshold:g}); now {last['center_norm']:.3f} at epoch {last.get('epoch')}"
                       + (guard or ": an early sign of complete collapse (every sample one point)"))
        others = [s for s in (epochs[-1].get("collapse_signs") or [] if epochs else [])
                  if isinstance(s, Mapping) and s.get("metric") != "center_norm"]
        if others:
            kind = collapse_kind(others)
            out.append(f"{name}: {kind} collapse at epoch {epochs[-1].get('epoch')} ({KINDS[kind]}): "
                       + "; ".join(map(phrase, others)) + ("" if crossed else guard))
        elif collapsed and not crossed:
            out.append(f"{name}: stopped by the collapse guard as collapsed")
    return out


# ---------------------------------------------------------------- the paper's figures


# Preset -> (figure title, panels), from the registry of the paper's experiments. Fig. 5 also shows ‖s‖
# after BatchNorm: that is the figure's point.
PAPER_FIGURES: dict[str, tuple[str, tuple[str, ...]]] = {
    preset: (f"{e.figure}: {e.title}", e.panels) for preset, e in BY_PRESET.items()}


def preset_members(preset_name: str, names: Sequence[str]) -> dict[str, dict]:
    """Which of `names` are runs of the preset: {run name: the preset's entry}. A run matches an entry
    when its name is the entry's name, or ends with it after a `-`, `_` or `.` (a launcher's prefix such
    as `b5-simsiam-nopred`); the longest matching entry wins (`simsiam-nopred` over `simsiam`)."""
    from lab.engine.presets import preset_runs

    entries = sorted(preset_runs(preset_name) + preset_runs(preset_name, "fmnist"), key=lambda e: -len(e["name"]))
    out = {}
    for name in names:
        for e in entries:
            if name == e["name"] or any(name.endswith(sep + e["name"]) for sep in "-_."):
                out[name] = e
                break
    return out


def _entry_label(name: str, entry: Mapping[str, Any]) -> str:
    """'b5-simsiam-nopred (predictor=False)': the run and the knobs its preset entry sets, less the schedules
    that ImageNet scale turns off to keep a run at the value it is named after (`Variant.imagenet_knobs`)."""
    schedules = {k for v in BY_PRESET[entry["preset"]].variants for k, _ in v.imagenet_knobs}
    knobs = ", ".join(f"{k}={v}" for k, v in entry.get("set", {}).items() if k not in schedules)
    return f"{name} ({knobs or 'standard'})"


def paper_figure(preset_name: str, runs: Mapping[str, Rows], height: int = 360) -> go.Figure | None:
    """The paper's figure of a preset from its runs: one panel per metric (‖s‖ per epoch, kNN accuracy per
    epoch; Fig. 5 adds ‖s‖ after BatchNorm), a line per run in the preset's order of variants (ImageNet runs
    or Fashion-MNIST seeds), labelled with its knobs.
    None while no run of the preset has an epoch yet. Runs not in the preset are ignored.
    Unknown preset -> ValueError listing the valid ones."""
    if preset_name not in PAPER_FIGURES:
        raise ValueError(f"unknown preset {preset_name!r}; valid: {', '.join(PAPER_FIGURES)}")
    title, panels = PAPER_FIGURES[preset_name]
    members = preset_members(preset_name, list(runs))
    if not any(epoch_rows(runs[name]) for name in members):
        return None
    present = [m for m in panels if any(series(runs[n], m)[1] for n in members)] or list(panels[:1])
    fig = make_subplots(rows=1, cols=len(present), subplot_titles=[vocab.label(m) for m in present])
    order = [e["variant"] for e in _preset_entries(preset_name)]
    ranked = sorted(members, key=lambda n: (order.index(members[n]["variant"]), n))
    for i, name in enumerate(ranked):
        label = _entry_label(name, members[name])
        for col, metric in enumerate(present, start=1):
            xs, ys = series(runs[name], metric)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(ys) <= 30 else "lines", name=label,
                                     legendgroup=name, showlegend=col == 1, line=dict(color=run_color(i), width=2),
                                     marker=dict(size=5)), row=1, col=col)
            whole = {"tick0": 0, "dtick": 1} if max(xs, default=0.0) <= 12 else {}  # see _whole_epochs
            fig.update_xaxes(title_text="epoch", row=1, col=col, **whole)
            if vocab.unit_range(metric):
                fig.update_yaxes(range=[0, 1.05], row=1, col=col)
    fig.update_layout(height=height, title=dict(text=title, font=dict(size=15)), margin=dict(l=10, r=10, t=70, b=10),
                      legend=dict(orientation="h", y=-0.25), uirevision=preset_name)
    return fig


def _preset_entries(preset_name: str) -> list[dict]:
    from lab.engine.presets import preset_runs

    return preset_runs(preset_name)


# ---------------------------------------------------------------- the engine claims' figures


def engine_claim_chart(panels: Sequence[str], curves: Mapping[str, Mapping[int, Mapping]], title: str,
                       height: int = 340) -> go.Figure:
    """Plotly twin of `lab.render.figures.fig_engine_claim`: per panel a line per seed of every variant (a
    colour per variant), epoch 0 = the untrained model, the collapse threshold dotted on ‖s‖ panels."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[
        vocab.label(m) + (" (pre-BN)" if m == "center_norm" else "") for m in panels])
    for i, (label, seeds) in enumerate(curves.items()):
        for j, (seed, c) in enumerate(seeds.items()):
            for col, metric in enumerate(panels, start=1):
                pts = [(e, v) for e, v in zip(c["epoch"], c.get(metric, [])) if v is not None]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{label} ({len(seeds)} seeds)",
                                         legendgroup=label, showlegend=col == 1 and j == 0,
                                         hovertext=f"{label}, seed {seed}", line=dict(color=run_color(i), width=1.6),
                                         marker=dict(size=5)), row=1, col=col)
    for col, metric in enumerate(panels, start=1):
        fig.update_xaxes(title_text="epoch (0 = untrained)", tick0=0, dtick=1, row=1, col=col)
        if vocab.unit_range(metric):
            fig.update_yaxes(range=[0, 1.05], row=1, col=col)
        if metric.startswith("center_norm"):
            fig.add_hline(vocab.COLLAPSE_THRESHOLD, line=dict(color="#777777", dash="dot", width=1), row=1, col=col)
    fig.update_layout(height=height, title=dict(text=title, font=dict(size=15)), margin=dict(l=10, r=10, t=70, b=10),
                      legend=dict(orientation="h", y=-0.3))
    return fig
