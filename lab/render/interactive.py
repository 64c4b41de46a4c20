"""Plotly figures: the feature animation (client-side frames, play/pause, epoch slider) and curves.

The animation is one figure whose frames the browser plays by itself, so a page never loops
in Python to animate (no flicker, no memory growth).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from lab.core import geometry as geo
from lab.render import style
from lab.render.frames import selected_points
from lab.core.schedules import evenly_spaced

CENTER_KEYS = ("s_aug", "s_batch", "s_data")


def point_colors(n: int) -> list[str]:
    return [style.hex_color(style.hue(i * style.N_HUES // max(n, 1), style.N_HUES)) for i in range(n)]


def _segments(starts: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
    """Line segments as coordinate lists separated by None (one trace draws many arrows)."""
    k, d = starts.shape
    pts = np.full((k * 3, d), np.nan)
    pts[0::3], pts[1::3] = starts, ends
    return [[None if np.isnan(v) else round(float(v), 4) for v in pts[:, j]] for j in range(d)]


def _frame_traces(run, epoch: int, n_residuals: int, n_gradient: int, show_aug: bool, full: bool = True) -> list:
    """The moving traces at one epoch; full=False keeps only what changes (coordinates, names),
    since an animation frame is merged into the traces already drawn."""
    z = run.z[epoch].numpy()
    n, dim = z.shape
    colors = point_colors(n)
    three = dim == 3

    def scatter(**kw) -> dict:
        # Plain dicts: validating thousands of frame traces through go.Scatter costs seconds.
        keep = kw if full else {k: v for k, v in kw.items() if k in ("x", "y", "z", "name")}
        return {"type": "scatter3d" if three else "scatter", **keep}

    def xyz(p: np.ndarray) -> dict:
        out = {"x": p[:, 0].round(4).tolist(), "y": p[:, 1].round(4).tolist()}
        if three:
            out["z"] = p[:, 2].round(4).tolist()
        return out

    traces = []
    za = run.z_aug[epoch].reshape(-1, dim).numpy() if show_aug else np.zeros((0, dim))
    aug_colors = np.repeat(colors, run.z_aug.shape[2]).tolist() if show_aug else []
    traces.append(scatter(**xyz(za), mode="markers", name="augmented points", hoverinfo="skip",
                          marker=dict(size=3 if three else 4, color=aug_colors, opacity=0.6)))
    traces.append(scatter(**xyz(z), mode="markers", name="dataset points",
                          marker=dict(size=5 if three else 9, color=colors, line=dict(width=1, color="black")),
                          customdata=list(range(n)), hovertemplate="point %{customdata}<extra></extra>"))
    s = run.s_data[epoch].numpy()
    idx = selected_points(n, n_residuals)
    rx = _segments(np.repeat(s[None], len(idx), 0), z[idx])
    traces.append(scatter(**dict(zip("xyz", rx)), mode="lines", name="residuals r = z − s",
                          line=dict(color="#888888", width=2), hoverinfo="skip"))
    center_term, residual_term = geo.gradient_split(run.z_aug[epoch])
    gidx = selected_points(n, n_gradient)
    for vec, color, name in ((np.repeat(center_term.numpy()[None], len(gidx), 0), style.CENTER_TERM_COLOR,
                              "pull: center term"),
                             (residual_term.numpy()[gidx], style.RESIDUAL_TERM_COLOR, "pull: residual term")):
        seg = _segments(z[gidx], z[gidx] + 0.3 * vec)
        traces.append(scatter(**dict(zip("xyz", seg)), mode="lines", name=name,
                              line=dict(color=style.hex_color(color), width=4), hoverinfo="skip"))
    for key in CENTER_KEYS:
        c = getattr(run, key)[epoch].numpy()
        seg = _segments(np.zeros((1, dim)), c[None])
        line = dict(color=style.hex_color(style.CENTER_COLORS[key]), width=6 if three else 4)
        kw = {} if three else {"marker": dict(symbol="arrow", size=14, angleref="previous",
                                               color=style.hex_color(style.CENTER_COLORS[key]))}
        traces.append(scatter(**dict(zip("xyz", seg)), mode="lines" if three else "lines+markers",
                              name=f"{style.CENTER_LABELS[key]} (‖s‖={np.linalg.norm(c):.2f})",
                              line=line, hoverinfo="name", **kw))
    return traces


def _outline(dim: int) -> list:
    t = np.linspace(0, 2 * np.pi, 121)
    if dim == 2:
        return [go.Scatter(x=np.cos(t), y=np.sin(t), mode="lines", line=dict(color="#cccccc", width=1),
                           hoverinfo="skip", showlegend=False)]
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
    return [go.Surface(x=np.cos(u) * np.sin(v), y=np.sin(u) * np.sin(v), z=np.cos(v), opacity=0.08,
                       showscale=False, hoverinfo="skip", colorscale=[[0, "#888"], [1, "#888"]])]


def animation_controls(frame_names: Sequence[str], frame_ms: int, redraw: bool) -> dict:
    """Layout entries for a client-side animation: ▶ Play / ❚❚ Pause above the plot, an epoch slider below.

    frame_names: the frames' names, which are their epochs; redraw: needed for 3-D scenes.
    """
    play = dict(frame=dict(duration=frame_ms, redraw=redraw), fromcurrent=True, transition=dict(duration=0))
    pause = dict(mode="immediate", frame=dict(duration=0, redraw=False))
    jump = dict(mode="immediate", frame=dict(duration=0, redraw=redraw), transition=dict(duration=0))
    return dict(
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=1.02, xanchor="left", yanchor="bottom",
                          showactive=False,
                          buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                   dict(label="❚❚ Pause", method="animate", args=[[None], pause])])],
        sliders=[dict(active=0, currentvalue=dict(prefix="epoch "), pad=dict(t=30),
                      steps=[dict(label=name, method="animate", args=[[name], jump]) for name in frame_names])],
    )


def feature_animation(
    run,
    max_frames: int = 60,
    n_residuals: int = 8,
    n_gradient: int = 3,
    show_aug: bool = True,
    height: int = 560,
    frame_ms: int = 80,
    title: str | None = None,
) -> go.Figure:
    """The run's features per epoch as a Plotly animation: play/pause buttons and an epoch slider.

    At most `max_frames` snapshots (evenly spread, last one included) keep the figure light.
    """
    dim = run.z.shape[-1]
    epochs = evenly_spaced(run.z.shape[0] - 1, max_frames)
    static = _outline(dim)
    first = _frame_traces(run, epochs[0], n_residuals, n_gradient, show_aug)
    moving = list(range(len(static), len(static) + len(first)))
    frames = [dict(data=_frame_traces(run, e, n_residuals, n_gradient, show_aug, full=False), traces=moving,
                   name=str(e))
              for e in epochs]
    fig = go.Figure(data=static + first, frames=frames, _validate=False)
    fig.update_layout(
        # Legend at the side and the title above the buttons: below the plot they collide with the slider.
        height=height, title=dict(text=title, y=0.99, yanchor="top") if title else None,
        margin=dict(l=10, r=10, t=70 if title else 40, b=10),
        legend=dict(orientation="v", x=1.02, xanchor="left", y=1.0, font=dict(size=11)),
        **animation_controls([str(e) for e in epochs], frame_ms, redraw=dim == 3),
    )
    if dim == 2:
        fig.update_xaxes(range=[-1.25, 1.25], zeroline=False, showgrid=False, visible=False)
        fig.update_yaxes(range=[-1.25, 1.25], scaleanchor="x", scaleratio=1, zeroline=False, showgrid=False,
                         visible=False)
        fig.update_layout(plot_bgcolor="white")
    else:
        axis = dict(range=[-1.15, 1.15], visible=False)
        fig.update_layout(scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube"))
    return fig


CURVE_STYLES = {
    "center_norm": ("solid", style.CENTER_COLORS["s_data"]),
    "center_norm_aug": ("dash", style.CENTER_COLORS["s_aug"]),
    "batch_center_norm": ("dot", style.CENTER_COLORS["s_batch"]),
}


def center_curves_figure(
    metrics: Mapping[str, Mapping[str, Sequence[float]]],
    x: str = "epoch",
    keys: Sequence[str] = ("center_norm", "center_norm_aug", "batch_center_norm"),
    height: int = 380,
    title: str | None = None,
) -> go.Figure:
    """Center magnitudes against epoch or optimizer step, for one or several runs.

    metrics: {run name: {"epoch": [...], "step": [...], metric: [...]}} (the CLI's metrics.json "runs").
    With one run, colour = metric (the paper's arrow colours); with several, colour = run, dash = metric.
    """
    if x not in ("epoch", "step"):
        raise ValueError(f"x must be 'epoch' or 'step', got {x!r}")
    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for r, (name, m) in enumerate(metrics.items()):
        for key in keys:
            dash, rgb = CURVE_STYLES.get(key, ("solid", (80, 80, 80)))
            color = style.hex_color(rgb) if len(metrics) == 1 else palette[r % len(palette)]
            pretty = style.center_metric_label(key)
            label = pretty if len(metrics) == 1 else f"{name} · {pretty}"
            fig.add_trace(go.Scatter(x=m[x], y=m[key], mode="lines", name=label,
                                     line=dict(color=color, dash=dash, width=2)))
    fig.add_hline(y=1.0, line=dict(color="#999", dash="dot", width=1), annotation_text="collapse",
                  annotation_position="bottom right")
    fig.update_layout(height=height, title=title, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      xaxis_title="optimizer step" if x == "step" else "epoch", yaxis_title="‖s‖",
                      yaxis=dict(range=[0, 1.05]), legend=dict(orientation="h", y=-0.25))
    return fig
