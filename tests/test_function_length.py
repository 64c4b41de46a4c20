"""Functions read at once: none is longer than 60 lines, read from the source of lab/, views/, tools/ and app.py.

A function's length is its def's `end_lineno - lineno + 1` in the AST: the signature, the docstring, comments
and blank lines inside it, and any function nested in it all count. A nested function (or a method) also
counts on its own, named by its qualified name (`path:outer.inner`, `path:Class.method`), so a nested def
over 60 lines fails too. A long function is split into named steps (a page into its sections, a trainer
into an object with methods), not moved into a nested def.

ALLOWLIST names the few functions still over the limit, each with its length when it was listed. The list
may only shrink: an entry must still exist, may not grow past its recorded length, and must still be over
60 lines (one that drops to 60 or below is removed from the list, and then stays under the limit).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60
ALLOWLIST: dict[str, int] = {}  # empty: every function reads at once; keep it that way


def sources() -> list[Path]:
    return sorted([*(ROOT / "lab").rglob("*.py"), *(ROOT / "views").rglob("*.py"), *(ROOT / "tools").rglob("*.py"),
                   ROOT / "app.py"])


def lengths_in(source: str, path: str) -> dict[str, int]:
    """{"path:qualified.name": lines} of every def in `source` (async ones too); a name defined twice (in two
    branches of an if) keeps its longest."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    key = f"{path}:{name}"
                    out[key] = max(out.get(key, 0), child.end_lineno - child.lineno + 1)
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source, filename=path), "")
    return out


def function_lengths() -> dict[str, int]:
    out: dict[str, int] = {}
    for file in sources():
        out |= lengths_in(file.read_text(), file.relative_to(ROOT).as_posix())
    return out


LENGTHS = function_lengths()


def test_every_source_is_read():
    assert {"app.py:home_page", "views/runs.py:page", "lab/cli.py:main", "lab/train/toy.py:_StackedProgram.train",
            "tools/bench/gpu_check.py:cmd_fmnist"} <= set(LENGTHS)


def test_no_function_is_longer_than_60_lines():
    long = {name: n for name, n in LENGTHS.items() if n > LIMIT and name not in ALLOWLIST}
    assert not long, (f"functions over {LIMIT} lines (split them into named steps): "
                      + ", ".join(f"{name} ({n})" for name, n in sorted(long.items(), key=lambda kv: -kv[1])))


def test_the_allowlist_only_shrinks():
    for name, recorded in ALLOWLIST.items():
        assert name in LENGTHS, f"{name} is gone: remove it from ALLOWLIST"
        assert LENGTHS[name] <= recorded, f"{name} grew to {LENGTHS[name]} lines from {recorded}: split it"
        assert LENGTHS[name] > LIMIT, f"{name} is {LENGTHS[name]} lines now, within {LIMIT}: remove it from ALLOWLIST"


def test_nested_functions_and_methods_count_on_their_own():
    """The measure itself: an outer def includes its nested one (docstring and blank lines too), which is
    also named alone; methods go by their class."""
    source = ('def outer():\n    """Doc."""\n\n    def inner():\n        return 1\n\n    return inner\n\n\n'
              "class C:\n    def m(self):\n        pass\n\n    async def a(self):\n        pass\n")
    assert lengths_in(source, "x.py") == {"x.py:outer": 7, "x.py:outer.inner": 2, "x.py:C.m": 2, "x.py:C.a": 2}
