"""The toy-data notebooks (Fig. 3, Fig. 4, the claims) run top to bottom in a kernel of this venv.

Kernel handling and execution follow tests/test_notebook.py: the kernel is this venv's Python, and the
notebooks import `lab` as installed by scripts/install.sh (`pip install -e .`, no PYTHONPATH). Training takes a while: the Fig. 3
and Fig. 4 notebooks about half a minute each, the claims notebook one to three minutes.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from lab.claims import CLAIM_KEYS
from notebook_runner import cell_with, execute, pngs, text

NOTEBOOKS = ("fig3_simplified_vs_simsiam", "fig4_simsiam_ablations", "claims")
VERDICTS = ("held", "did not hold", "mixed")
DATASETS = ("blobs", "moons")


def _notebook_path(root: Path, name: str) -> Path:
    return root / "notebooks" / f"{name}.ipynb"












def _execute(root: Path, name: str, kernel_name: str, monkeypatch) -> nbformat.NotebookNode:
    return execute(_notebook_path(root, name), root, kernel_name, monkeypatch)


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
    assert re.search(r"^(from lab[.\w]* import|import lab)", source, re.M), "the notebook imports lab"
    assert "torch.optim" not in source


def _check_figure_notebook(nb, variants: tuple[str, ...], claim_keys: tuple[str, ...]) -> None:
    train = text(cell_with(nb, "train_toys("))
    assert f"trained {len(variants) * len(DATASETS)} settings × 5 seeds" in train

    # The table of final numbers names every variant on both data sets, mean ± std.
    table = text(cell_with(nb, "def final("))
    for ds in DATASETS:
        for label in variants:
            assert re.search(rf"^{ds}\s+{re.escape(label)}\s+\d\.\d{{3}} ± \d\.\d{{3}}\s+\d\.\d{{3}} ± \d\.\d{{3}}",
                             table, re.M), f"no row for {label} on {ds}:\n{table}"

    # One band figure per data set, as PNGs of a sensible size.
    bands = cell_with(nb, "fig_bands(")
    images = pngs(bands)
    assert len(images) == len(DATASETS)
    for png in images:
        assert png.width > 600 and png.height > 250
        assert png.convert("L").getextrema()[0] < 100, "dark content (lines, text)"

    # The verdict of each claim the figure is about, from the claims' own tests.
    verdicts = text(cell_with(nb, "results_table("))
    for key in claim_keys:
        assert re.search(rf"^verdict  {key}: ({'|'.join(VERDICTS)})$", verdicts, re.M), verdicts
    for label in variants:
        assert label in verdicts


def test_fig3_notebook(root, kernel_name, monkeypatch):
    nb = _execute(root, "fig3_simplified_vs_simsiam", kernel_name, monkeypatch)
    _check_figure_notebook(nb, ("simplified", "simsiam"), ("fig3",))
    (data,) = pngs(cell_with(nb, "ax.scatter("))
    assert data.width > 400


def test_fig4_notebook(root, kernel_name, monkeypatch):
    nb = _execute(root, "fig4_simsiam_ablations", kernel_name, monkeypatch)
    keys = tuple(k for k in CLAIM_KEYS if k == "fig4" or k.startswith("fig4_"))
    _check_figure_notebook(nb, ("simsiam", "no predictor", "no stop-gradient"), keys)
    per_seed = text(cell_with(nb, "residual_norm"))
    for ds in DATASETS:
        for label in ("simsiam", "no predictor", "no stop-gradient"):
            assert re.search(rf"^{ds}\s+{re.escape(label)}\s+\d\.\d{{4}}", per_seed, re.M)


def test_claims_notebook(root, kernel_name, monkeypatch):
    nb = _execute(root, "claims", kernel_name, monkeypatch)
    assert f"ran {len(CLAIM_KEYS)} claims" in text(cell_with(nb, "run_claims("))

    report = text(cell_with(nb, "print(results_table(results))"))
    assert report.count("\n[") + report.startswith("[") == len(CLAIM_KEYS)

    # The compact table: a verdict for every claim key, and the result on each data set.
    table = text(cell_with(nb, "rows = []"))
    for key in CLAIM_KEYS:
        assert re.search(rf"^{re.escape(key)}\s+({'|'.join(VERDICTS)})\s+blobs\s", table, re.M), \
            f"no verdict for {key}:\n{table}"
    # Each data set's count: seeds it held in of the testable ones, and those untestable (control collapsed).
    moons = re.findall(r"^\s+moons\s+(?:held|did not hold|mixed|untestable) \((\d)/(\d)(?:, (\d) untestable)?\)\s",
                       table, re.M)
    assert len(moons) == len(CLAIM_KEYS) and all(int(n) + int(u or 0) == 5 for _, n, u in moons), table
    assert "seed by seed" in " ".join(" ".join(c.source.split()) for c in nb.cells if c.cell_type == "markdown")

    summary = text(cell_with(nb, 'for verdict in ("held"'))
    counts = [int(m) for m in re.findall(r"^(?:held|mixed|did not hold|untestable)\s+(\d+):", summary, re.M)]
    assert sum(counts) == len(CLAIM_KEYS)

    prose = " ".join(" ".join(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    assert "may not reproduce on toy data" in prose
    assert "Nothing is tuned to make a claim pass" in prose
