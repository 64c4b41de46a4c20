"""notebooks/check_a_model.ipynb runs top to bottom in a kernel of this venv: three embeddings named as their
mechanism says, the readings beside references, the sphere and the spectrum as Plotly figures, the report."""
from __future__ import annotations

import nbformat
import pytest

from notebook_runner import cell_with, execute, text
from waits import HANG_S

PLOTLY = "application/vnd.plotly.v1+json"


@pytest.fixture(scope="module")
def path(root):
    return root / "notebooks" / "check_a_model.ipynb"


def test_notebook_is_stored_clean(path):
    stored = nbformat.read(path, as_version=4)
    nbformat.validate(stored)
    for cell in (c for c in stored.cells if c.cell_type == "code"):
        assert cell.outputs == [] and cell.execution_count is None, "save the notebook without outputs"


def test_notebook_names_each_collapse_and_draws_it(root, path, kernel_name, monkeypatch):
    nb = execute(path, root, kernel_name, monkeypatch, timeout=HANG_S)
    named = text(cell_with(nb, "check_and_project("))
    assert "healthy: healthy." in named and "one point: complete collapse." in named
    assert "a plane: dimensional collapse." in named
    assert "signature: complete collapse" in text(cell_with(nb, "report_table("))
    figures = [c for c in nb.cells if c.cell_type == "code" and ("sphere_figure(" in c.source
                                                                   or "spectrum_figure(" in c.source)]
    assert len(figures) == 2
    for cell in figures:
        assert any(PLOTLY in o.get("data", {}) for o in cell.outputs), "a Plotly figure"
    assert "report: " in text(cell_with(nb, "report_html("))
