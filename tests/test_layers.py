"""The package's layout stays as docs/architecture.md draws it: no import cycles, imports only downward.

Every import counts, wherever it is written (module level, inside a function, under
``TYPE_CHECKING``): each is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rxkube"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The package modules that module ``name`` imports."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from . import errors`` imports the submodule; ``from .x import y`` module x.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("rxkube"):
                found.add(target)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def layers() -> list[tuple[str, list[str]]]:
    """The layer table of docs/architecture.md, bottom up: (layer, module entries)."""
    lines = ARCHITECTURE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| layer | modules |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return rows


def entry_of(name: str) -> str:
    """How the table names a module: ``client.py``, or ``testing/`` for the test server."""
    parts = name.split(".")[1:]
    if parts[:1] == ["testing"]:
        return "testing/"
    if not parts:
        return "__init__.py"
    return "/".join(parts) + ".py"


def layer_index() -> dict[str, int]:
    where: dict[str, int] = {}
    for number, (_layer, entries) in enumerate(layers()):
        for entry in entries:
            assert entry not in where, f"{entry} is in two layers of docs/architecture.md"
            where[entry] = number
    return where


def test_every_module_has_a_layer_in_the_architecture_table() -> None:
    where = layer_index()
    missing = sorted({entry_of(name) for name in MODULES} - set(where))
    assert missing == [], f"add these to the layer table of docs/architecture.md: {missing}"
    unknown = sorted(set(where) - {entry_of(name) for name in MODULES})
    assert unknown == [], f"docs/architecture.md names modules that do not exist: {unknown}"


def test_each_layer_imports_only_layers_below_it() -> None:
    where = layer_index()
    names = [layer for layer, _ in layers()]
    upward = [
        f"{name} ({names[where[entry_of(name)]]}) imports {target} ({names[where[entry_of(target)]]})"
        for name, targets in sorted(GRAPH.items())
        for target in sorted(targets)
        if where[entry_of(target)] > where[entry_of(name)]
    ]
    assert upward == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.endswith("__main__")))
def test_no_public_name_shadows_a_module(name: str) -> None:
    module = __import__(name, fromlist=["_"])
    package = name.rpartition(".")[0]
    if package:
        parent = __import__(package, fromlist=["_"])
        assert getattr(parent, name.rpartition(".")[2]) is module, (
            f"{package}.{name.rpartition('.')[2]} is not the module {name}"
        )
