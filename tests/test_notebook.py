"""notebooks/b1_collapse.ipynb runs top to bottom in a kernel of this venv and shows Figs. B.1 and B.2."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from lab.train.b1 import PAPER_SETTINGS
from notebook_runner import cell_with, execute, pngs, text
from waits import HANG_S


def _notebook_path(root: Path) -> Path:
    return root / "notebooks" / "b1_collapse.ipynb"


@pytest.fixture(scope="module")
def stored(root) -> nbformat.NotebookNode:
    return nbformat.read(_notebook_path(root), as_version=4)


def test_notebook_is_stored_clean(stored):
    nbformat.validate(stored)
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert code and len(stored.cells) > len(code), "code and markdown cells"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, "save the notebook without outputs"
    assert stored.metadata.kernelspec.name == "python3"








def test_notebook_executes_and_shows_the_figures(root, stored, kernel_name, monkeypatch):
    nb = execute(_notebook_path(root), root, kernel_name, monkeypatch, timeout=HANG_S)

    assert f"trained {len(PAPER_SETTINGS)} runs" in text(cell_with(nb, "train_b1("))

    table = text(cell_with(nb, "summary_table("))
    for name in PAPER_SETTINGS:
        assert name in table
    assert "first > 0.9" in table and "‖s‖ aug" in table and "‖s‖ data" in table

    claims = text(cell_with(nb, "check_b1(runs)"))
    verdicts = [line.split("  ")[0] for line in claims.splitlines() if not line.startswith(" ")]
    assert len(verdicts) == 4 and set(verdicts) <= {"held", "did not hold"}
    assert "all four settings collapse" in claims

    # Fig. B.1 per epoch and per step: Matplotlib PNGs of a sensible size.
    figures = [c for c in nb.cells if c.cell_type == "code" and "fig_b1(" in c.source]
    assert len(figures) == 2
    assert any('x="step"' in c.source for c in figures)
    for cell in figures:
        (png,) = pngs(cell)
        assert png.width > 400 and png.height > 300

    # Fig. B.2: a 2×2 grid of frames.
    (grid,) = pngs(cell_with(nb, "final_frames_grid("))
    assert grid.width == grid.height >= 2 * 240
    assert grid.convert("L").getextrema()[0] < 100, "the grid has dark content (points, arrows, text)"
