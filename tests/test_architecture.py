"""The house stays as drawn: the import-linter contracts of pyproject.toml hold, no import cycle (imports inside
functions count), no module over 500 lines, and every package says what it holds and what it may import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

import painterid

PKG = Path(painterid.__file__).parent
ROOT = PKG.parent
MAX_MODULE_LINES = 500


def import_graph(pkg_dir: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports, at any depth of the file (function bodies too)."""
    top = pkg_dir.name
    mods = {}
    for path in pkg_dir.rglob("*.py"):
        parts = path.relative_to(pkg_dir.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in mods.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        out = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = ".".join(base[: len(base) - node.level + 1] + [node.module or ""]).strip(".") \
                    if node.level else (node.module or "")
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    out.add(full if full in mods else target)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        graph[name] = {m for m in out if m in mods and m != name and m.split(".")[0] == top}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_counting_function_level_imports():
    assert cycles(import_graph(PKG)) == []


def test_the_cycle_check_sees_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import g\n")
    (pkg / "b.py").write_text("def g():\n    from . import a\n    return a\n")
    (pkg / "c.py").write_text("from pkg import a\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"]]


def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_every_package_says_what_it_holds_and_may_import():
    for init in sorted(PKG.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "May import" in doc or "may import" in doc, f"{init.relative_to(ROOT)}: no import rule stated"


def test_import_linter_contracts_hold():
    pytest.importorskip("importlinter")
    from importlinter.cli import lint_imports

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    names = {c["name"] for c in cfg["contracts"]}
    assert any("Layers" in n for n in names) and any("training" in n for n in names)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
