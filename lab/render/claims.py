"""Pictures of claim results: every seed's final value as a dot over its variant's mean, per data set.

Reads the results contract (`lab.claims.toy_results_json`, the shipped `assets/toy_claims.json`), so a
page, a notebook and the shipped file draw the same picture. Returns Plotly figures.
"""
from __future__ import annotations

from typing import Any, Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab.core import vocab

HELD_COLOR, FAILED_COLOR, MEAN_COLOR, UNTESTABLE_COLOR = "#1a9850", "#d73027", "#333333", "#aaaaaa"
READ_ON = "final ‖s‖ of the normalised projector output (the features the loss acts on)"


def _jitter(i: int, n: int) -> float:
    """Spread n dots of one variant across ±0.2 of its slot, in seed order (no randomness: same picture)."""
    return 0.0 if n <= 1 else -0.2 + 0.4 * i / (n - 1)


def claim_seeds_figure(result: Mapping[str, Any], threshold: float = vocab.COLLAPSE_THRESHOLD,
                       height: int = 300) -> go.Figure:
    """One claim of the results contract: a column per data set, a row per metric its rule reads; in each
    panel every variant's seeds as dots (green where the claim held in that seed, red where not) and the
    mean over seeds as a bar. ‖s‖ panels carry the collapse threshold."""
    datasets = list(result["datasets"])
    metrics = list(result.get("metrics") or ["center_norm"])
    titles = [f"{ds}: {d['verdict']}, {d['held']} of {d['n']} seeds"
              + (f" ({len(d['untestable'])} untestable)" if d.get("untestable") else "")
              for ds, d in result["datasets"].items()]
    fig = make_subplots(rows=len(metrics), cols=len(datasets), shared_yaxes=True, vertical_spacing=0.12,
                        subplot_titles=titles + [""] * (len(datasets) * (len(metrics) - 1)))
    for col, ds in enumerate(datasets, start=1):
        d = result["datasets"][ds]
        held = {seed: ok for seed, ok in d.get("per_seed_held", {}).items()}
        untestable = d.get("untestable", {})
        labels = list(d["per_seed"])
        for row, metric in enumerate(metrics, start=1):
            for x, label in enumerate(labels):
                per = d["per_seed"][label]
                values = [v[metric] for v in per.values()]
                mean = sum(values) / len(values) if values else 0.0
                fig.add_trace(go.Bar(x=[x], y=[mean], width=0.6, marker_color="rgba(120,120,120,0.25)",
                                     hovertemplate=f"{label}: mean %{{y:.3f}} over {len(values)} seeds<extra></extra>",
                                     showlegend=False), row=row, col=col)
                for i, (seed, v) in enumerate(per.items()):
                    ok = held.get(seed)
                    color = (UNTESTABLE_COLOR if seed in untestable else HELD_COLOR if ok else
                             FAILED_COLOR if ok is not None else MEAN_COLOR)
                    state = ("untestable (its control collapsed)" if seed in untestable else
                             "held" if ok else "did not hold" if ok is not None else "—")
                    fig.add_trace(go.Scatter(
                        x=[x + _jitter(i, len(per))], y=[v[metric]], mode="markers", showlegend=False,
                        marker=dict(size=9, color=color, line=dict(width=1, color="white")),
                        hovertemplate=(f"{label}, seed {seed}: {vocab.label(metric)} %{{y:.3f}}; claim "
                                       f"{state} in this seed<extra></extra>")), row=row, col=col)
            if metric == "center_norm":
                fig.add_hline(y=threshold, line=dict(dash="dot", color=FAILED_COLOR, width=1), row=row, col=col)
            fig.update_xaxes(tickvals=list(range(len(labels))), ticktext=labels, row=row, col=col)
            if col == 1:
                fig.update_yaxes(title_text="final ‖s‖" if metric == "center_norm" else vocab.label(metric),
                                 row=row, col=col)
    fig.update_layout(height=height * len(metrics), margin=dict(l=50, r=10, t=40, b=30), bargap=0.3,
                      plot_bgcolor="white")
    fig.update_yaxes(gridcolor="#eee", zeroline=False)
    return fig


def control_text(control: str | None, health: Mapping[str, Mapping[str, Any]] | None) -> str:
    """One line on a claim's control arm (the standard method) from its per-seed health (`lab.core.experiments
    .Health.to_json`, by seed): 'Control *simsiam*: healthy in 4 of 5 seeds; seed 1: collapsed: …'."""
    if not control:
        return "No control arm: the claim is about one method alone."
    if not health:
        return (f"Control *{control}*: its health was not recorded (results made before the control rule; "
                "re-run them to see it).")
    sick = {seed: h["why"] for seed, h in health.items() if not h["healthy"]}
    line = f"Control *{control}*: healthy in {len(health) - len(sick)} of {len(health)} seeds"
    if not sick:
        return line + "."
    return line + "; untestable where it collapsed: " + "; ".join(f"seed {seed}: {why}" for seed, why in sick.items())


def variant_rows(dataset: Mapping[str, Any], threshold: float = vocab.COLLAPSE_THRESHOLD) -> list[dict]:
    """A table of one data set of a claim: per variant the mean ± std, the seeds above the threshold, and
    each seed's final ‖s‖."""
    rows = []
    for label, n in dataset["numbers"].items():
        per = dataset["per_seed"].get(label, {})
        rows.append({"setting": label,
                     "final ‖s‖ (mean ± std)": f"{n['center_norm']:.2f} ± {n['center_norm_std']:.2f}",
                     f"seeds above {threshold}": f"{n.get('above', 0)} of {n.get('seeds', len(per))}",
                     "per seed ‖s‖": ", ".join(f"{v['center_norm']:.2f}" for v in per.values()),
                     "kNN (mean ± std)": f"{n['knn_acc']:.2f} ± {n['knn_acc_std']:.2f}",
                     "note": "diverged" if n.get("diverged") else ""})
    return rows


def sweep_strip_figure(data: Mapping[str, Any], metric: str = "center_norm", height: int = 300,
                       log: bool | None = None) -> go.Figure:
    """A one-knob sweep (`lab.train.sweep.Sweep.to_json`, y the seed axis): every seed's final value as a dot
    at each knob value, the mean as a line, and "k/K" seeds above the threshold over each value."""
    xs = list(data["x"]["values"])
    cells = data["metrics"][metric][0]  # [value per seed] per x
    threshold = data.get("threshold", vocab.COLLAPSE_THRESHOLD)
    log = bool(data["x"].get("log")) if log is None else log
    fig = go.Figure()
    for x, per in zip(xs, cells):
        finite = [v for v in per if v is not None]
        fig.add_trace(go.Scatter(x=[x] * len(finite), y=finite, mode="markers", showlegend=False,
                                 marker=dict(size=8, color=[FAILED_COLOR if v > threshold else HELD_COLOR
                                                            for v in finite], line=dict(width=1, color="white")),
                                 hovertemplate=f"{data['x']['knob']} {x:g}: %{{y:.3f}}<extra></extra>"))
    means = [sum(v for v in per if v is not None) / max(1, sum(v is not None for v in per)) for per in cells]
    fig.add_trace(go.Scatter(x=xs, y=means, mode="lines+text", name="mean over seeds", line=dict(color=MEAN_COLOR),
                             text=[f"{c}/{data['seeds']}" for c in data["counts"]["center_norm_above"][0]],
                             textposition="top center", textfont=dict(size=10), showlegend=False,
                             hovertemplate="mean %{y:.3f}<extra></extra>"))
    if metric == "center_norm":
        fig.add_hline(y=threshold, line=dict(dash="dot", color=FAILED_COLOR, width=1))
    fig.update_layout(height=height, margin=dict(l=50, r=10, t=40, b=40), plot_bgcolor="white",
                      title=dict(text=f"{data['dataset']}: {data['x']['knob']} over its range, {data['seeds']} seeds "
                                      f"(labels: seeds above {threshold})", font=dict(size=13)),
                      xaxis_title=data["x"]["knob"], yaxis_title="final ‖s‖" if metric == "center_norm"
                      else vocab.label(metric))
    fig.update_xaxes(type="log" if log else "linear", gridcolor="#eee")
    fig.update_yaxes(gridcolor="#eee", range=[0, 1.05] if metric == "center_norm" else None)
    return fig
