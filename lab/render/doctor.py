"""Pictures of the doctor's readings (`lab.doctor`): the rows on the sphere, the singular-value spectrum beside
references, the readings as a table beside references, and the whole as a standalone HTML report. Each returns
a Plotly figure, rows or a string, so the "Check a model" page, a notebook and `python -m lab doctor --report`
show the same thing.
"""
from __future__ import annotations

import base64
import html
import io
import json
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from lab.core.vocab import COLLAPSE_THRESHOLD, label
from lab.doctor import PROTOTYPE_POINTS_MAX, DoctorReport
from lab.doctor.project import Projection
from lab.render.interactive import _outline
from lab.render.style import CENTER_COLORS, hex_color, hue

CLASS_COLOURS_MAX = 20  # beyond this a legend of classes is unreadable: one colour scale instead
SIGNATURE_COLOURS = {"healthy": "#1a7f37", "complete collapse": "#cf222e", "dimensional collapse": "#bc4c00",
                     "prototype collapse": "#8250df"}
# (reading, how to show it, what the lab counts as collapse), in the order of the table.
TABLE_ROWS = (("center_norm", "{:.3f}", f"≥ {COLLAPSE_THRESHOLD:g}"),
              ("center_share", "{:.3f}", f"≥ {COLLAPSE_THRESHOLD:g}"),
              ("median_cosine", "{:.3f}", "near 1"),
              ("effective_rank", "{:.4g}", "< the bound"),
              ("std_normalized", "{:.4f}", "≪ 1/√D"),
              ("points", "{}", f"≤ {PROTOTYPE_POINTS_MAX}"),
              ("knn_acc", "{:.3f}", "near 1/C"),
              ("class_center_norm", "{:.3f}", "—"),
              ("class_centroid_cosine", "{:.3f}", "near 1"),
              ("alignment", "{:.4f}", "—"),
              ("uniformity", "{:.3f}", "near 0"))
REFERENCE_DASHES = ("dot", "dash", "dashdot", "longdash", "longdashdot")
REFERENCE_COLOURS = ("#888888", "#7fb08a", "#d08c8c", "#5f8f6a", "#b06060")  # grey, then healthy / collapsed pairs
ROW_NAMES = {"median_cosine": "median cosine to s", "std_normalized": "std of normalised rows (lightly)",
             "points": f"points holding {COLLAPSE_THRESHOLD:.0%}", "knn_acc": "kNN accuracy (5-fold)",
             "alignment": "alignment", "uniformity": "uniformity",
             "class_center_norm": "‖class centroid‖ (median)",
             "class_centroid_cosine": "cosine between classes' centroids"}


def row_name(key: str) -> str:
    return ROW_NAMES.get(key, label(key) if key != "effective_rank" else "effective rank (on the sphere)")


def _class_colours(labels: np.ndarray) -> dict[Any, str]:
    names = sorted(set(labels.tolist()), key=str)
    return {c: hex_color(hue(i, len(names))) for i, c in enumerate(names)}


def sphere_figure(p: Projection, title: str = "", center_norm: float | None = None, class_names: Sequence[str]
                  | None = None, height: int = 520) -> go.Figure:
    """The sampled rows on the unit sphere (`lab.doctor.project`), coloured by class, with the center s as an
    arrow from the origin. center_norm: ‖s‖ of all rows (the readings'); the sample's where None.
    Each point's customdata is its row number, so a page can show that row's image on hover."""
    s_norm = p.center_norm if center_norm is None else center_norm
    how = ("exact: D ≤ 3" if p.exact else f"top-3 principal directions of the normalised rows, holding "
                                          f"{p.share:.0%} of their second moment")
    fig = go.Figure(_outline(3))
    hover = "row %{customdata[0]}<br>%{text}<br>shown: %{customdata[1]:.2f} of the row<extra></extra>"
    data = np.stack([p.index, p.inside], axis=1)
    if p.labels is None or len(set(p.labels.tolist())) > CLASS_COLOURS_MAX:
        colour = (dict(color=p.labels.astype(float), colorscale="Viridis", showscale=False)
                  if p.labels is not None and p.labels.dtype.kind in "biuf" else dict(color="#4c72b0"))
        fig.add_trace(_points(p.points, data, hover, ["" if p.labels is None else f"class {c}" for c in
                                                     (p.labels if p.labels is not None else range(len(data)))],
                              "rows", colour))
    else:
        for c, colour in _class_colours(p.labels).items():
            keep = p.labels == c
            name = _class_name(c, class_names)
            fig.add_trace(_points(p.points[keep], data[keep], hover, [name] * int(keep.sum()), name,
                                  dict(color=colour)))
    if p.labels is not None and len(set(p.labels.tolist())) <= CLASS_COLOURS_MAX:
        fig.add_trace(_centroids(p, class_names))
    tip = p.center
    s_colour = hex_color(CENTER_COLORS["s_data"])
    # A line without a marker at its tip: rows gathered at s must stay visible there.
    fig.add_trace(go.Scatter3d(x=[0, tip[0]], y=[0, tip[1]], z=[0, tip[2]], mode="lines",
                               line=dict(color=s_colour, width=8), name=f"center s (‖s‖ = {s_norm:.3f})",
                               hoverinfo="name"))
    axis = dict(range=[-1.1, 1.1], visible=False)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=60, b=0),
                      title=dict(text=f"{title}<br><sub>{len(p.index)} rows on the sphere, {how}</sub>",
                                 x=0.0, font=dict(size=15)),
                      scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube"),
                      legend=dict(x=1.0, xanchor="right", y=0.95, itemsizing="constant"))
    return fig


def _points(xyz: np.ndarray, data: np.ndarray, hover: str, text: list, name: str, marker: dict) -> go.Scatter3d:
    # customdata as plain lists: Plotly would send an array as base64, and the hover script reads rows of it.
    return go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers", name=name, text=text,
                        customdata=data.tolist(), hovertemplate=hover, marker=dict(size=2.5, opacity=0.8, **marker))


def _centroids(p: Projection, class_names: Sequence[str] | None) -> go.Scatter3d:
    """Each class's centroid of the drawn rows, seen in the same 3 directions (inside the ball: the shorter, the
    more its rows spread), as a diamond in its class's colour."""
    colours = _class_colours(p.labels)
    classes = list(colours)
    at = np.stack([p.sample_rows_mean(c) for c in classes])
    names = [_class_name(c, class_names) for c in classes]
    return go.Scatter3d(x=at[:, 0], y=at[:, 1], z=at[:, 2], mode="markers", name="class centroids", text=names,
                        hovertemplate="centroid of %{text}<extra></extra>",
                        marker=dict(symbol="diamond", size=7, color=[colours[c] for c in classes],
                                    line=dict(color="#222", width=1)))


def _class_name(c: Any, class_names: Sequence[str] | None) -> str:
    if class_names is not None and isinstance(c, (int, np.integer)) and 0 <= int(c) < len(class_names):
        return str(class_names[int(c)])
    return f"class {c}"


def spectrum_figure(curves: Sequence[tuple[str, Mapping[str, Any]]], height: int = 420) -> go.Figure:
    """The singular values of the centred normalised rows, each divided by their sum (so runs of other N and D
    compare), by index, log scale: one line per (name, readings). Healthy rows spread their weight over many
    directions (a flat line); dimensional collapse drops to ~0 after a few; a reference at the same D says
    where "flat" is."""
    fig, references = go.Figure(), 0
    for name, r in curves:
        sigma = np.asarray(r["spectrum"], dtype=float)
        share = sigma / max(sigma.sum(), 1e-300)
        keep = share > 1e-12  # zeros (round-off, `lab.doctor.readings`) cannot be drawn on a log axis
        index = np.arange(1, len(share) + 1)[keep]
        shape = f"rank {r['effective_rank']:.3g}" if "D =" in name else f"D = {len(sigma)}, rank " \
                                                                          f"{r['effective_rank']:.3g}"
        line = dict(width=2.5)
        if name.startswith("reference"):  # thin, muted, each its own dash: the models stand out, in colour
            line = dict(width=1.5, dash=REFERENCE_DASHES[references % len(REFERENCE_DASHES)],
                        color=REFERENCE_COLOURS[references % len(REFERENCE_COLOURS)])
            references += 1
        fig.add_trace(go.Scatter(x=index, y=share[keep], mode="lines", name=f"{name} ({shape})", line=line))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=50, b=80), title=dict(
        text="Singular values of the centred normalised rows, each over their sum", x=0.0, font=dict(size=15)),
                      xaxis_title="index", yaxis_title="σᵢ / Σσ",
                      legend=dict(orientation="h", x=0.0, y=-0.2, yanchor="top"))
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_xaxes(type="log")
    return fig


def readings_rows(columns: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, str]]:
    """The table of readings, one row per reading, one column per (name, readings) (a model, or a reference),
    and what the lab counts as collapse. Readings a column lacks show as "—"."""
    rows = []
    for key, fmt, collapse in TABLE_ROWS:
        if not any(key in r for _, r in columns):
            continue
        row = {"reading": row_name(key)}
        for name, r in columns:
            row[name] = _value(key, fmt, r)
        rows.append(row | {"collapse": _collapse_note(key, collapse, columns)})
    return rows


def _value(key: str, fmt: str, r: Mapping[str, Any]) -> str:
    if key not in r:
        return "—"
    if key == "points":
        return "many" if r[key] is None else str(r[key])
    if key == "effective_rank":
        return f"{r[key]:.4g} of {r['dim']}"
    if key == "std_normalized":
        return f"{r[key]:.4f} (1/√D {r['std_healthy']:.4f})"
    return fmt.format(r[key])


def _collapse_note(key: str, collapse: str, columns: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    if key == "effective_rank":
        bound = columns[0][1].get("effective_rank_bound")
        return f"< {bound:g}" if bound is not None else "not judged (D too small)"
    return collapse


def signature_html(report: DoctorReport, name: str = "") -> str:
    colour = SIGNATURE_COLOURS.get(report.signature, "#333")
    return (f'<p><b style="color:{colour}">{html.escape(name + ": ") if name else ""}'
            f'{html.escape(report.signature)}</b> — {html.escape(report.why)}</p>')


def thumbnails(images: np.ndarray, index: np.ndarray, size: int = 64) -> dict[int, str]:
    """Row number -> a PNG data URI of its image (uint8 (N, H, W) or (N, H, W, 3)), for hover pictures."""
    out = {}
    for i in np.asarray(index).tolist():
        image = Image.fromarray(np.asarray(images[i])).resize((size, size), Image.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        out[int(i)] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return out


# Shows the hovered row's image in a corner of the plot: Plotly's hover labels cannot hold images.
HOVER_IMAGE_JS = """
(function() {
  var gd = document.getElementById('{plot_id}'); var thumbs = %s;
  var img = document.createElement('img');
  img.style = 'position:absolute;left:8px;bottom:8px;width:96px;height:96px;image-rendering:pixelated;' +
              'border:1px solid #ccc;background:#fff;display:none;z-index:10';
  gd.style.position = 'relative'; gd.appendChild(img);
  gd.on('plotly_hover', function(e) {
    var d = e.points[0].customdata; var src = d && thumbs[String(d[0])];
    if (src) { img.src = src; img.style.display = 'block'; }
  });
  gd.on('plotly_unhover', function() { img.style.display = 'none'; });
})();
"""


def figure_html(fig: go.Figure, include_plotlyjs: bool | str = False, thumbs: Mapping[int, str] | None = None,
                div_id: str | None = None) -> str:
    """One figure as an HTML fragment; with thumbs, the hovered row's image shows in its corner."""
    post = HOVER_IMAGE_JS % json.dumps({str(k): v for k, v in thumbs.items()}) if thumbs else None
    return fig.to_html(full_html=False, include_plotlyjs=include_plotlyjs, post_script=post, div_id=div_id,
                       config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}})


PAGE_STYLE = ("body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;max-width:1400px}"
              "table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #d0d7de;padding:4px 10px;"
              "text-align:left}th{background:#f6f8fa}.row{display:flex;flex-wrap:wrap;gap:16px}"
              ".row>div{flex:1 1 520px;min-width:420px}small{color:#57606a}")


def report_html(models: Sequence[tuple[str, DoctorReport, Projection, Mapping[int, str] | None]],
                references: Sequence[tuple[str, Mapping[str, Any]]] = (), made: str = "",
                class_names: Sequence[str] | None = None) -> str:
    """A standalone HTML report (plotly.js inside, works offline): each model's signature and why, the readings
    beside the references, each model's rows on the sphere (with the images on hover where thumbnails are
    given) and the spectra. models: (name, report, projection, thumbnails or None); references: (name,
    readings), e.g. `lab.doctor.references`."""
    columns = [(name, report.readings) for name, report, _, _ in models] + list(references)
    table = _table_html(readings_rows(columns))
    spheres = []
    for i, (name, report, projection, thumbs) in enumerate(models):
        fig = sphere_figure(projection, name, report.readings["center_norm"], class_names)
        fig.update_layout(width=660)  # a fixed size: a WebGL scene sized by a flex box at load can come out cut
        spheres.append(f"<div>{figure_html(fig, i == 0, thumbs)}</div>")
    curves = [(name, report.readings) for name, report, _, _ in models] + [
        (name, r) for name, r in references if "spectrum" in r]
    spectrum = figure_html(spectrum_figure(curves))
    heads = "".join(signature_html(report, name) for name, report, _, _ in models)
    sources = "".join(f"<li>{html.escape(name)}: {report.readings['n']} rows × {report.readings['dim']} dimensions, "
                      f"{report.readings['skipped_rows']} skipped (NaN, inf or zero norm)</li>"
                      for name, report, _, _ in models)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Collapse Lab: check a model</title>"
            f"<style>{PAGE_STYLE}</style></head><body><h1>Collapse Lab: check a model</h1>"
            f"<small>{html.escape(made)}</small><ul>{sources}</ul>{heads}<h2>Readings</h2>{table}"
            f"<small>Every reading is on the unit sphere (each row L2-normalised first). References: the same "
            f"readings of other embeddings, so a number has something to stand beside.</small>"
            f"<h2>On the sphere</h2><div class='row'>{''.join(spheres)}</div><h2>Spectrum</h2>{spectrum}"
            f"</body></html>")


def _table_html(rows: Sequence[Mapping[str, str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
