"""Layering: the package's import graph is acyclic, and every module imports alone in a fresh interpreter.

The graph is read from the source (``ast``), so a cycle is found even where Python would
tolerate it at run time. Edges are the ``icm_lib`` modules a module imports, at module level
and inside functions alike: a function-level import must not hide a cycle either. An import
of a package (``from icm_lib.models import create``) is an edge to its ``__init__``; an import
of a submodule through its package (``from icm_lib.data import layout``) is an edge to the
submodule only, as Python loads it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "icm_lib"
# The command line is the only module that may import the command line.
CLI = "icm_lib.cli"


def module_names() -> dict[str, Path]:
    """Every module of ``icm_lib`` by dotted name (a package by its own name)."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _resolve(module: str, node: ast.ImportFrom | ast.Import, package: str, known: set[str]) -> set[str]:
    """The ``icm_lib`` modules one import statement loads (its own targets, not their parents)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if node.level:
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = set()
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        if sub in known:
            found.add(sub)
        elif target in known:
            found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: the icm_lib modules it imports}``, from every import statement in its source."""
    names = module_names()
    known = set(names)
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _resolve(name, node, package, known)
        graph[name] = edges - {name}
    return graph


def test_graph_reader_finds_edges_and_cycles():
    """The reader itself: known edges are seen, and a cycle added by hand is reported."""
    graph = import_graph()
    assert "icm_lib.models" in graph["icm_lib.checkpoint"]
    assert "icm_lib.models.tcm" in graph["icm_lib.models"]
    assert "icm_lib.errors" in graph["icm_lib.io"]
    looped = {**graph, "icm_lib.errors": graph["icm_lib.errors"] | {"icm_lib.checkpoint"}}
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(looped).static_order())


def test_import_graph_is_acyclic():
    graph = import_graph()
    try:
        order = tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        pytest.fail(f"import cycle in icm_lib: {' -> '.join(err.args[1])}")
    assert set(order) == set(graph)


def test_no_module_imports_the_command_line():
    importers = sorted(name for name, edges in import_graph().items() if CLI in edges and name != CLI)
    assert not importers, f"import the command line ({CLI}): {importers}"


def test_every_module_imports_in_dependency_order_in_a_fresh_interpreter():
    """Each module alone, dependencies first, in one new interpreter: a hidden run-time cycle fails here."""
    order = list(TopologicalSorter(import_graph()).static_order())
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    out = subprocess.run([sys.executable, "-c", script, *order], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.parametrize("modules", ["icm_lib.models, icm_lib.checkpoint", "icm_lib.checkpoint, icm_lib.models"])
def test_models_and_checkpoint_import_together(modules):
    out = subprocess.run(
        [sys.executable, "-c", f"import {modules}"], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-3000:]
