"""Check a model: any embedding (uploaded, or a file, a run folder or a ResNet state dict on this machine) read by
`lab.doctor` and drawn by `lab.render.doctor`: its collapse signature with the numbers that decided it, the
readings beside references, the rows on the sphere, the spectrum, and the whole as an HTML report to download.

Widgets -> lab.doctor (read, name, project) -> lab.render.doctor (figures, report) -> st.*. No science here.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from lab import doctor
from lab.doctor.project import project
from lab.doctor.references import references_for
from lab.render import doctor as draw

SUFFIXES = [s.lstrip(".") for s in doctor.load.SUFFIXES]
LABEL_SUFFIXES = [s.lstrip(".") for s in doctor.load.LABEL_SUFFIXES]
UPLOAD_LIMIT_MB = float(os.environ.get("LAB_UPLOAD_LIMIT_MB", "500"))  # below Streamlit's own (config.toml)
# Paths typed on the page must stay inside these: the lab's folder, its runs, the Debian data sets, and any
# folders listed in $LAB_CHECK_ROOTS (separated by ":").
ROOTS = tuple(Path(p).expanduser().resolve() for p in (
    os.getcwd(), os.environ.get("LAB_RUNS_DIR", "runs"), "/usr/share/datasets",
    *filter(None, os.environ.get("LAB_CHECK_ROOTS", "").split(os.pathsep))))
UPLOAD, PATH = "Upload a file", "A path on this machine"
KEY = "check_results"


def _inside_roots(text: str, what: str) -> Path:
    path = Path(text.strip()).expanduser()
    path = (ROOTS[0] / path if not path.is_absolute() else path).resolve()
    if not any(path == root or root in path.parents for root in ROOTS):
        raise ValueError(f"{what} {text!r} is outside the folders this page may read "
                         f"({', '.join(str(r) for r in ROOTS)})")
    if not path.exists():
        raise ValueError(f"{what} {text!r} does not exist")
    return path


def _form(slot: str) -> dict | None:
    """One model's input widgets -> what to read, or None where nothing is given yet."""
    how = st.radio("Embeddings from", (UPLOAD, PATH), horizontal=True, key=f"{slot}_how")
    if how == UPLOAD:
        file = st.file_uploader("Embeddings, one row per sample: (N, D)", type=SUFFIXES, key=f"{slot}_file",
                                help=f"{', '.join('.' + s for s in SUFFIXES)}; at most {UPLOAD_LIMIT_MB:g} MB")
        labels = st.file_uploader("Labels (optional), one per row", type=LABEL_SUFFIXES, key=f"{slot}_labels")
        return None if file is None else {"upload": file, "labels": labels}
    path = st.text_input("Embedding file, run folder (python -m lab.engine.train --out) or ResNet state dict",
                         key=f"{slot}_path", placeholder="runs/fmnist/simsiam-s0")
    data = st.text_input("Images to embed a checkpoint on (Fashion-MNIST idx folder or ImageFolder)",
                         key=f"{slot}_data", placeholder="/usr/share/datasets/fashion-mnist",
                         help="not needed for an embedding file or a run folder (it embeds its own data)")
    limit = st.number_input("Images to embed", 100, 60_000, 10_000, 100, key=f"{slot}_limit")
    return {"path": path, "data": data, "limit": int(limit)} if path.strip() else None


def _read(ask: dict, folder: Path, progress) -> tuple[doctor.Embeddings, str]:
    """The embeddings the form asks for (an upload is copied into `folder` first) -> (embeddings, a name)."""
    if "upload" in ask:
        file = ask["upload"]
        if file.size > UPLOAD_LIMIT_MB * 1e6:
            raise ValueError(f"{file.name} is {file.size / 1e6:.0f} MB; this page takes at most "
                             f"{UPLOAD_LIMIT_MB:g} MB (python -m lab doctor FILE reads files of any size)")
        path = folder / Path(file.name).name
        path.write_bytes(file.getvalue())
        labels = None
        if ask["labels"] is not None:
            labels = folder / ("labels-" + Path(ask["labels"].name).name)
            labels.write_bytes(ask["labels"].getvalue())
        return doctor.load_embeddings(path, labels), file.name
    path = _inside_roots(ask["path"], "path")
    data = _inside_roots(ask["data"], "data folder") if ask["data"].strip() else None
    options = {"data": data, "limit": ask["limit"]} if doctor.is_checkpoint(path) else {}
    if options and data is None:
        options.pop("data")  # a run folder embeds its own data
    return doctor.read(path, progress=progress, **options), path.name


def _check(asks: list[dict]) -> dict:
    """Read and draw each asked model -> what the results part shows (kept in the session)."""
    bar = st.progress(0.0, text="Reading…")
    models, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lab-check-") as folder:
        for i, ask in enumerate(asks):
            def progress(done: int, total: int, i=i) -> None:
                bar.progress(min(1.0, (i + done / max(total, 1)) / len(asks)),
                             text=f"Embedding images: {done}/{total}")
            emb, name = _read(ask, Path(folder), progress)
            report, shown = doctor.check(emb), project(emb)
            models.append({"name": name if len(asks) == 1 else f"{'AB'[i]}: {name}", "report": report,
                           "projection": shown, "class_names": emb.class_names,
                           "thumbs": None if emb.images is None else draw.thumbnails(emb.images, shown.index)})
            bar.progress((i + 1) / len(asks), text=f"Read {name}")
    refs = references_for(models[0]["report"].readings)
    # The report once per check, not on every rerun of the page: it is a few MB of HTML.
    report = draw.report_html([(m["name"], m["report"], m["projection"], m["thumbs"]) for m in models], refs,
                              f"made {time.strftime('%Y-%m-%d %H:%M')} by Collapse Lab", models[0]["class_names"])
    bar.empty()
    return {"models": models, "references": refs, "seconds": time.perf_counter() - started,
            "report": report.encode()}


def _show(found: dict) -> None:
    models, refs = found["models"], found["references"]
    for m in models:
        report = m["report"]
        shout = st.success if report.signature == doctor.HEALTHY else st.error
        shout(f"**{m['name']}: {report.signature}.** {report.why}")
    st.subheader("Readings")
    columns = [(m["name"], m["report"].readings) for m in models] + refs
    st.dataframe(draw.readings_rows(columns), hide_index=True, width="stretch")
    st.caption("Each row L2-normalised first (the sphere the losses see). References: rows uniform on the sphere "
               "at this D and N (the healthiest this shape reads), and the lab's own Fashion-MNIST SimSiam with "
               "and without its predictor (healthy, collapsed), at the D their columns say.")
    st.subheader("On the sphere")
    for column, m in zip(st.columns(len(models)), models):
        fig = draw.sphere_figure(m["projection"], m["name"], m["report"].readings["center_norm"],
                                 m["class_names"])
        if m["thumbs"]:  # images on hover need a script Streamlit's chart has no room for: the report's figure
            with column:
                components.html(draw.figure_html(fig, True, m["thumbs"]),
                                height=fig.layout.height + 20)
            column.caption("Hover over a point to see its image (bottom left of the plot).")
        else:
            column.plotly_chart(fig, width="stretch", key=f"sphere_{m['name']}")
    st.subheader("Spectrum")
    curves = [(m["name"], m["report"].readings) for m in models] + [(n, r) for n, r in refs if "spectrum" in r]
    st.plotly_chart(draw.spectrum_figure(curves), width="stretch", key="spectrum")
    st.download_button("Download the HTML report", found["report"], "collapse-check.html", "text/html",
                       icon=":material/download:")
    st.caption(f"Read in {found['seconds']:.1f} s.")


def page() -> None:
    st.title("Check a model")
    st.markdown("Has your model collapsed, and how? Give the embeddings any code produced (one row per sample), "
                "a run of this lab, or a ResNet backbone (torchvision's keys, solo-learn's or lightly's "
                "`backbone.` prefix) with images to embed. The same as `python -m lab doctor PATH`.")
    asks = [_form("a")]
    if st.toggle("Compare with a second model", key="check_compare"):
        st.markdown("**Second model**")
        asks.append(_form("b"))
    if st.button("Check", type="primary", disabled=asks[0] is None or None in asks):
        try:
            st.session_state[KEY] = _check(asks)
        except (ValueError, OSError, RuntimeError) as e:  # bad input, unreadable file, a model that will not run
            st.session_state.pop(KEY, None)
            st.error(str(e).strip().splitlines()[0])
    if KEY in st.session_state:
        _show(st.session_state[KEY])


if __name__ == "__main__":
    page()
