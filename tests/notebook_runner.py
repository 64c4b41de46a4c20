"""Run a stored notebook in a kernel of this venv and read its outputs (shared by the notebook tests).

The kernel must be this venv's Python and the notebook must find `lab` from notebooks/ by itself
(no PYTHONPATH); `execute` checks both with a last cell it appends, and that no cell raised.
"""
from __future__ import annotations

import base64
import io
import os
import sys
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from PIL import Image

MARKER = "KERNEL-CHECK"


def spec_runs_this_python(name: str) -> bool:
    """Whether kernel spec `name` starts this interpreter (jupyter_client swaps a bare 'python' for it)."""
    try:
        argv0 = KernelSpecManager().get_kernel_spec(name).argv[0]
    except NoSuchKernel:
        return False
    bare = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
    return argv0 in bare or os.path.abspath(argv0) == os.path.abspath(sys.executable)


def pngs(cell) -> list[Image.Image]:
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if "image/png" in data:
            img = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
            img.load()
            out.append(img)
    return out


def text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "text/plain" in o.get("data", {}):
            parts.append(o.data["text/plain"])
    return "".join(parts)


def cell_with(nb, needle: str):
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    return cell


def execute(path: Path, root: Path, kernel_name: str, monkeypatch, timeout: int = 600) -> nbformat.NotebookNode:
    """Execute the stored notebook at `path` and return it with outputs, after the common checks."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import sys, lab\nprint({MARKER!r}, sys.prefix, '|', lab.__file__, sep='\\n')"))
    NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"cell not run: {cell.source[:60]!r}"
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{cell.source[:60]!r} raised {errors[0].ename}: {errors[0].evalue}"
    lines = text(nb.cells[-1]).split("\n")
    i = lines.index(MARKER)
    assert os.path.samefile(lines[i + 1], sys.prefix), f"kernel ran {lines[i + 1]}, tests run {sys.prefix}"
    assert Path(lines[i + 3]).resolve().is_relative_to(root.resolve())
    return nb
