"""The toy-data notebooks (Fig. 3, Fig. 4, the claims) run top to bottom in a kernel of this venv.

Kernel handling and execution follow tests/test_notebook.py: the kernel is this venv's Python, and the
notebooks find `lab` from notebooks/ by themselves (no PYTHONPATH). Training takes a while: the Fig. 3
and Fig. 4 notebooks about half a minute each, the claims notebook one to three minutes.
"""
from __future__ import annotations

import base64
import io
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from PIL import Image

from lab.claims import CLAIM_KEYS

MARKER = "KERNEL-CHECK"
NOTEBOOKS = ("fig3_simplified_vs_simsiam", "fig4_simsiam_ablations", "claims")
VERDICTS = ("held", "did not hold", "mixed")
DATASETS = ("blobs", "moons")


def _notebook_path(root: Path, name: str) -> Path:
    return root / "notebooks" / f"{name}.ipynb"


def _spec_runs_this_python(name: str) -> bool:
    """Whether kernel spec `name` starts this interpreter (jupyter_client swaps a bare 'python' for it)."""
    try:
        argv0 = KernelSpecManager().get_kernel_spec(name).argv[0]
    except NoSuchKernel:
        return False
    bare = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
    return argv0 in bare or os.path.abspath(argv0) == os.path.abspath(sys.executable)


@pytest.fixture
def kernel_name(tmp_path_factory, monkeypatch) -> str:
    """'python3', made to start this venv's interpreter: if the installed spec does not, a spec
    pointing at sys.executable is written to a temp dir that JUPYTER_PATH puts first."""
    if not _spec_runs_this_python("python3"):
        from ipykernel.kernelspec import install

        prefix = tmp_path_factory.mktemp("kernel")
        install(kernel_name="python3", prefix=str(prefix))
        monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        assert _spec_runs_this_python("python3")
    return "python3"


def _pngs(cell) -> list[Image.Image]:
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if "image/png" in data:
            img = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
            img.load()
            out.append(img)
    return out


def _text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "text/plain" in o.get("data", {}):
            parts.append(o.data["text/plain"])
    return "".join(parts)


def _cell(nb, needle: str):
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    return cell


def _execute(root: Path, name: str, kernel_name: str, monkeypatch) -> nbformat.NotebookNode:
    """Run the stored notebook (plus a last cell naming the kernel's Python and lab) and check that
    every cell ran without an error, in this venv, importing this checkout's lab."""
    path = _notebook_path(root, name)
    # No PYTHONPATH: the notebook's first cell must find lab/ from the notebooks folder by itself.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import sys, lab\nprint({MARKER!r}, sys.prefix, '|', lab.__file__, sep='\\n')"))
    client = NotebookClient(nb, timeout=600, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()

    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"cell not run: {cell.source[:60]!r}"
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{cell.source[:60]!r} raised {errors[0].ename}: {errors[0].evalue}"

    lines = _text(nb.cells[-1]).split("\n")
    i = lines.index(MARKER)
    assert os.path.samefile(lines[i + 1], sys.prefix), f"kernel ran {lines[i + 1]}, tests run {sys.prefix}"
    assert Path(lines[i + 3]).resolve().is_relative_to(root.resolve())
    return nb


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_clean(root, name):
    stored = nbformat.read(_notebook_path(root, name), as_version=4)
    nbformat.validate(stored)
    assert stored.nbformat == 4
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert code and len(stored.cells) > len(code), "code and markdown cells"
    ids = [c.get("id") for c in stored.cells]
    assert all(ids) and len(set(ids)) == len(ids), "every cell has its own id"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, "save the notebook without outputs"
    assert stored.metadata.kernelspec.name == "python3"
    # The notebooks call lab; they do not train with anything else.
    source = "\n".join(c.source for c in code)
    assert "import lab" in source and "torch.optim" not in source


def _check_figure_notebook(nb, variants: tuple[str, ...], claim_keys: tuple[str, ...]) -> None:
    train = _text(_cell(nb, "train_toys("))
    assert f"trained {len(variants) * len(DATASETS)} settings × 5 seeds" in train

    # The table of final numbers names every variant on both data sets, mean ± std.
    table = _text(_cell(nb, "def final("))
    for ds in DATASETS:
        for label in variants:
            assert re.search(rf"^{ds}\s+{re.escape(label)}\s+\d\.\d{{3}} ± \d\.\d{{3}}\s+\d\.\d{{3}} ± \d\.\d{{3}}",
                             table, re.M), f"no row for {label} on {ds}:\n{table}"

    # One band figure per data set, as PNGs of a sensible size.
    bands = _cell(nb, "fig_bands(")
    pngs = _pngs(bands)
    assert len(pngs) == len(DATASETS)
    for png in pngs:
        assert png.width > 600 and png.height > 250
        assert png.convert("L").getextrema()[0] < 100, "dark content (lines, text)"

    # The verdict of each claim the figure is about, from the claims' own tests.
    verdicts = _text(_cell(nb, "results_table("))
    for key in claim_keys:
        assert re.search(rf"^verdict  {key}: ({'|'.join(VERDICTS)})$", verdicts, re.M), verdicts
    for label in variants:
        assert label in verdicts


def test_fig3_notebook(root, kernel_name, monkeypatch):
    nb = _execute(root, "fig3_simplified_vs_simsiam", kernel_name, monkeypatch)
    _check_figure_notebook(nb, ("simplified", "simsiam"), ("fig3",))
    (data,) = _pngs(_cell(nb, "ax.scatter("))
    assert data.width > 400


def test_fig4_notebook(root, kernel_name, monkeypatch):
    nb = _execute(root, "fig4_simsiam_ablations", kernel_name, monkeypatch)
    keys = tuple(k for k in CLAIM_KEYS if k == "fig4" or k.startswith("fig4_"))
    _check_figure_notebook(nb, ("simsiam", "no predictor", "no stop-gradient"), keys)
    per_seed = _text(_cell(nb, "residual_norm"))
    for ds in DATASETS:
        for label in ("simsiam", "no predictor", "no stop-gradient"):
            assert re.search(rf"^{ds}\s+{re.escape(label)}\s+\d\.\d{{4}}", per_seed, re.M)


def test_claims_notebook(root, kernel_name, monkeypatch):
    nb = _execute(root, "claims", kernel_name, monkeypatch)
    assert f"ran {len(CLAIM_KEYS)} claims" in _text(_cell(nb, "run_claims("))

    report = _text(_cell(nb, "print(results_table(results))"))
    assert report.count("\n[") + report.startswith("[") == len(CLAIM_KEYS)

    # The compact table: a verdict for every claim key, and the result on each data set.
    table = _text(_cell(nb, "rows = []"))
    for key in CLAIM_KEYS:
        assert re.search(rf"^{re.escape(key)}\s+({'|'.join(VERDICTS)})\s+blobs\s", table, re.M), \
            f"no verdict for {key}:\n{table}"
    assert len(re.findall(r"^\s+moons\s+(held|did not hold)\s", table, re.M)) == len(CLAIM_KEYS)

    summary = _text(_cell(nb, 'for verdict in ("held"'))
    counts = [int(m) for m in re.findall(r"^(?:held|mixed|did not hold)\s+(\d+):", summary, re.M)]
    assert sum(counts) == len(CLAIM_KEYS)

    prose = " ".join(" ".join(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    assert "may not reproduce on toy data" in prose
    assert "Nothing is tuned to make a claim pass" in prose
