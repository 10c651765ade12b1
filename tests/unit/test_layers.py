"""Dependency direction: no import cycle among our modules, no inner layer importing an outer.

Read from the source with `ast`, nothing imported. Every import counts, module-level or inside
a function (a lazy import that dodges a cycle at run time is still a cycle in the design),
except those under `if TYPE_CHECKING:` (type hints only, never executed).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Inner to outer: a layer may import its own and inner layers only. The server is the first
# four; `testkit` (the client and process manager shared by the tests and the benchmark) and
# `loadtests` drive it from outside, so the server never imports them.
LAYERS = ("market", "storage", "actors", "gateway", "testkit", "loadtests")
SERVER = LAYERS[:4]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names each import asks for: `from a import b` is a.b (a module or not)."""
    names: list[str] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            names.extend(f"{base}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The most specific module of ours a dotted name lies in (`storage.Conflict` -> storage)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imported_names() -> dict[str, list[str]]:
    """Our module -> every dotted name it imports (ours or not)."""
    return {module: _imported_names(ast.parse(path.read_text(encoding="utf-8"),
                                              filename=str(path)),
                                    module, path.name == "__init__.py")
            for module, path in _sources().items()}


def import_graph() -> dict[str, set[str]]:
    """Our module -> the modules of ours it imports."""
    sources = _sources()
    return {module: {owner for name in names
                     if (owner := _owner(name, sources)) not in (None, module)}
            for module, names in imported_names().items()}


def tangles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each tangle: a -> b -> ... -> a."""
    return [_cycle_in(graph, set(component)) for component in tangles(graph)]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A path start -> ... -> start inside one strongly connected component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                frontier.append(nxt)
    raise AssertionError("not a cycle")  # pragma: no cover


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    return [f"{module} imports {target}"
            for module, targets in sorted(graph.items())
            for target in sorted(targets)
            if rank[target.split(".")[0]] > rank[module.split(".")[0]]]


def test_every_layer_is_parsed() -> None:
    graph = import_graph()
    assert {m.split(".")[0] for m in graph} == set(LAYERS)
    assert "gateway.app" in graph and "market.errors" in graph


def test_no_import_cycle() -> None:
    graph = import_graph()
    found = [(_cycle_in(graph, set(t)), _edges(graph, set(t))) for t in tangles(graph)]
    assert not found, "import cycles:\n" + "\n".join(
        f"{' -> '.join(cycle)}\n  all imports among these modules: {edges}"
        for cycle, edges in found)


def _edges(graph: dict[str, set[str]], modules: set[str]) -> str:
    return ", ".join(f"{a} -> {b}" for a in sorted(modules) for b in sorted(graph[a] & modules))


def test_no_inner_layer_imports_an_outer_one() -> None:
    found = layer_violations(import_graph())
    assert not found, ("layer violations (market <- storage <- actors <- gateway <- testkit "
                       "<- loadtests):\n" + "\n".join(found))


def test_the_server_never_imports_test_code() -> None:
    found = [f"{module} imports {name}" for module, names in sorted(imported_names().items())
             if module.split(".")[0] in SERVER for name in names
             if name.split(".")[0] in ("tests", "testkit", "loadtests")]
    assert not found, "\n".join(found)


def test_the_checks_catch_what_they_should() -> None:
    graph = {"gateway.app": {"gateway.rest"}, "gateway.rest": {"gateway.app"},
             "market.x": {"storage.y"}, "storage.y": set()}
    assert cycles(graph) == [["gateway.app", "gateway.rest", "gateway.app"]]
    assert layer_violations(graph) == ["market.x imports storage.y"]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    import gateway.app\ndef f():\n    from . import rest\n")
    assert sorted(_imported_names(tree, "gateway.ws", False)) == ["gateway.rest",
                                                                  "typing.TYPE_CHECKING"]
