"""The lab's layers, read from the source: imports point down only, and there is no import circle.

core → methods → data → trainers and engine → claims and runs → render → UI (views/, app.py) → entry points,
and the benchmark harnesses (tools/) on top (DESIGN §3).
Every import statement counts, inside functions and under `if TYPE_CHECKING:` too: a function-level
import may speed up a command's start, but it must point down like any other.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = (  # (layer, module prefixes), lowest first: the folders of lab/ (DESIGN §3)
    ("base", ("lab.core",)),
    ("methods", ("lab.methods",)),
    ("data", ("lab.data",)),
    ("trainers and engine", ("lab.train", "lab.engine", "lab.imagenet")),  # lab.imagenet: the engine's old name
    ("claims and runs", ("lab.claims", "lab.runs", "lab.doctor")),
    ("render", ("lab.render",)),
    ("UI", ("views", "app")),
    ("entry points", ("lab.cli", "lab.__main__", "lab.bench", "lab")),
    ("harnesses", ("tools",)),
)
THIRD_PARTY_IN_BASE = {"torch", "numpy"}


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def sources() -> dict[str, Path]:
    files = [*(ROOT / "lab").rglob("*.py"), *(ROOT / "views").glob("*.py"), *(ROOT / "tools").rglob("*.py"),
             ROOT / "app.py"]
    return {module_name(p): p for p in files}


MODULES = sources()


def resolve(name: str) -> str | None:
    """The module of ours an imported name lives in (`lab.methods.fused` for `from lab.methods import fused`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported name, line) of every import statement in the file, nested ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names] or [(node.module, node.lineno)]
    return out


def layer(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "lab"):
            return i
    if module == "lab":
        return len(LAYERS) - 1
    raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py")


def graph() -> dict[str, set[str]]:
    edges = {}
    for module, path in MODULES.items():
        targets = {resolve(name) for name, _ in imports(path) if name.split(".")[0] in ("lab", "views", "tools")}
        edges[module] = {t for t in targets if t and t != module}
    return edges


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    mine = layer(module)
    for name, line in imports(MODULES[module]):
        target = resolve(name) if name.split(".")[0] in ("lab", "views", "tools") else None
        if target is None or target == module or module == "lab":
            continue
        assert layer(target) <= mine, (f"{module}:{line} imports {target}: {LAYERS[layer(target)][0]} is above "
                                       f"{LAYERS[mine][0]}")


def test_no_import_circle():
    edges, state, stack = graph(), {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(edges):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("module", [m for m in MODULES if layer(m) == 0])
def test_base_imports_only_torch_numpy_and_the_standard_library(module):
    for name, line in imports(MODULES[module]):
        top = name.split(".")[0]
        if top == "lab":
            assert layer(resolve(name)) == 0, f"{module}:{line} imports {name}"
        else:
            assert top in THIRD_PARTY_IN_BASE or top in sys.stdlib_module_names or top == "__future__", \
                f"{module}:{line} imports {name}"


def test_streamlit_only_in_the_pages_and_the_engine_never_imports_runs_render_or_ui():
    for module, path in MODULES.items():
        names = [n for n, _ in imports(path)]
        if module == "lab" or module.startswith("lab."):  # the pages (views/) and app.py own Streamlit
            assert not any(n.split(".")[0] == "streamlit" for n in names), module
        if module.startswith(("lab.engine", "lab.methods", "lab.train")):
            bad = [n for n in names if n.startswith(("lab.runs", "lab.render", "views.ui", "streamlit"))]
            assert not bad, (module, bad)


def test_pages_and_app_never_import_torch():
    for module, path in MODULES.items():
        if layer(module) == [n for n, _ in LAYERS].index("UI") and not module.startswith("lab."):
            assert not [n for n, _ in imports(path) if n.split(".")[0] == "torch"], module
