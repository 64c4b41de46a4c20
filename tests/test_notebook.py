"""notebooks/b1_collapse.ipynb runs top to bottom in a kernel of this venv and shows Figs. B.1 and B.2."""
from __future__ import annotations

import base64
import io
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from PIL import Image

from lab.train.b1 import PAPER_SETTINGS

MARKER = "KERNEL-CHECK"


def _notebook_path(root: Path) -> Path:
    return root / "notebooks" / "b1_collapse.ipynb"


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


def test_notebook_executes_and_shows_the_figures(root, stored, kernel_name, monkeypatch):
    notebooks_dir = _notebook_path(root).parent
    # No PYTHONPATH: the notebook's first cell must find lab/ from the notebooks folder by itself.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    nb = nbformat.from_dict(stored)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import sys, lab\nprint({MARKER!r}, sys.prefix, '|', lab.__file__, sep='\\n')"))
    client = NotebookClient(nb, timeout=300, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(notebooks_dir)}})
    client.execute()

    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"cell not run: {cell.source[:60]!r}"
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{cell.source[:60]!r} raised {errors[0].ename}: {errors[0].evalue}"

    # The kernel was this venv's Python, and it imported this checkout's lab.
    lines = _text(nb.cells[-1]).split("\n")
    i = lines.index(MARKER)
    assert os.path.samefile(lines[i + 1], sys.prefix), f"kernel ran {lines[i + 1]}, tests run {sys.prefix}"
    assert Path(lines[i + 3]).resolve().is_relative_to(root.resolve())

    assert f"trained {len(PAPER_SETTINGS)} runs" in _text(_cell(nb, "train_b1("))

    table = _text(_cell(nb, "summary_table("))
    for name in PAPER_SETTINGS:
        assert name in table
    assert "first > 0.9" in table and "‖s‖ aug" in table and "‖s‖ data" in table

    claims = _text(_cell(nb, "check_b1(runs)"))
    verdicts = [line.split("  ")[0] for line in claims.splitlines() if not line.startswith(" ")]
    assert len(verdicts) == 4 and set(verdicts) <= {"held", "did not hold"}
    assert "all four settings collapse" in claims

    # Fig. B.1 per epoch and per step: Matplotlib PNGs of a sensible size.
    figures = [c for c in nb.cells if c.cell_type == "code" and "fig_b1(" in c.source]
    assert len(figures) == 2
    assert any('x="step"' in c.source for c in figures)
    for cell in figures:
        (png,) = _pngs(cell)
        assert png.width > 400 and png.height > 300

    # Fig. B.2: a 2×2 grid of frames.
    (grid,) = _pngs(_cell(nb, "final_frames_grid("))
    assert grid.width == grid.height >= 2 * 240
    assert grid.convert("L").getextrema()[0] < 100, "the grid has dark content (points, arrows, text)"
