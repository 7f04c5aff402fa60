"""The architecture holds: no import circles among hyperim's modules (deferred imports inside
functions count; ``TYPE_CHECKING`` blocks do not), and the layers point one way."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "hyperim"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``path`` imports anywhere (functions included: a deferred
    import is a dependency too), ``TYPE_CHECKING`` blocks excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()

    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in known:
                out.add(node.module)
            for a in node.names:  # from package import submodule
                if f"{node.module}.{a.name}" in known:
                    out.add(f"{node.module}.{a.name}")
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    known = set(files)
    # a module importing a package it lives in (``from hyperim import __version__``) finds it
    # already initialised: no edge
    g = {
        m: {x for x in imports(p, known) if not m.startswith(x + ".")} - {m}
        for m, p in files.items()
    }
    # importing a.b.c runs a/__init__ and a/b/__init__ first (unless the importer is inside
    # that package, whose __init__ is already running: the usual re-export pattern)
    for m in list(g):
        g[m] |= {
            p
            for x in g[m]
            for p in parents(x)
            if p in known and p != m and not m.startswith(p + ".")
        }
    return g


def parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    colour: dict[str, int] = {}
    stack: list[str] = []

    def dfs(u: str) -> list[str] | None:
        colour[u] = 1
        stack.append(u)
        for v in sorted(g.get(u, ())):
            if colour.get(v) == 1:
                return [*stack[stack.index(v) :], v]
            if colour.get(v) is None and (found := dfs(v)):
                return found
        stack.pop()
        colour[u] = 2
        return None

    for u in sorted(g):
        if colour.get(u) is None and (found := dfs(u)):
            return found
    return None


def test_no_import_circles() -> None:
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()) or [])


def test_the_checker_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_layers_point_one_way() -> None:
    """geometry <- nn <- models <- train/inference <- cli: a lower layer never imports a
    higher one at module level."""
    order = ["geometry", "nn", "models", "train", "cli"]
    layer = {name: i for i, name in enumerate(order)}
    g = graph()
    for mod, deps in g.items():
        part = mod.split(".")[1] if mod.count(".") else ""
        if part not in layer:
            continue
        for dep in deps:
            dpart = dep.split(".")[1] if dep.count(".") else ""
            if dpart in layer:
                assert layer[dpart] <= layer[part], f"{mod} imports {dep}"
