"""The label hierarchy: a DAG of ``(parent, child)`` edges read from a tab-separated file."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from hyperim.data.lines import DataReport, decode_line, iter_raw_lines
from hyperim.errors import DataError

ROOT = "Root"


@dataclass
class Hierarchy:
    """A label DAG.

    Labels missing from the hierarchy are treated as isolated top-level labels: they have no
    parents, children or ancestors, and depth 0.

    Attributes
    ----------
    labels : list of str
        All labels named in the file, sorted, without ``"Root"``.
    edges : list of (str, str)
        Unique ``(parent, child)`` edges, sorted, without those from ``"Root"``.
    roots : list of str
        Labels with no parent, sorted.
    """

    labels: list[str]
    edges: list[tuple[str, str]]
    roots: list[str]
    _parents: dict[str, list[str]] = field(init=False, repr=False, compare=False)
    _children: dict[str, list[str]] = field(init=False, repr=False, compare=False)
    _depth: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._parents, self._children = {}, {}
        for parent, child in sorted(self.edges):
            self._parents.setdefault(child, []).append(parent)
            self._children.setdefault(parent, []).append(child)
        self._depth = dict.fromkeys(self.roots, 0)
        queue = deque(self.roots)
        while queue:
            label = queue.popleft()
            for child in self._children.get(label, []):
                if child not in self._depth:
                    self._depth[child] = self._depth[label] + 1
                    queue.append(child)

    def parents(self, label: str) -> list[str]:
        """The direct parents of ``label``, sorted."""
        return list(self._parents.get(label, []))

    def children(self, label: str) -> list[str]:
        """The direct children of ``label``, sorted."""
        return list(self._children.get(label, []))

    def depth(self, label: str) -> int:
        """Length of the shortest path from a root to ``label`` (0 for roots)."""
        return self._depth.get(label, 0)

    def ancestors(self, label: str) -> set[str]:
        """All labels from which ``label`` can be reached (excluding itself)."""
        found: set[str] = set()
        stack = list(self._parents.get(label, []))
        while stack:
            parent = stack.pop()
            if parent not in found:
                found.add(parent)
                stack.extend(self._parents.get(parent, []))
        return found

    def universal_ancestors(self) -> set[str]:
        """Labels that are an ancestor of every other label (a single explicit root of
        everything, such as ``mammal.n.01`` in WordNet's mammal closure); empty for a forest."""
        nodes = set(self.labels) | {n for edge in self.edges for n in edge}
        if len(nodes) < 2:
            return set()
        common: set[str] | None = None
        for label in sorted(nodes):
            line = self.ancestors(label) | {label}
            common = line if common is None else common & line
            if not common:
                return set()
        return common or set()

    def transitive_closure(self) -> list[tuple[str, str]]:
        """All ``(ancestor, descendant)`` pairs, sorted."""
        return sorted((a, label) for label in self.labels for a in self.ancestors(label))


def _find_cycle(children: dict[str, list[str]]) -> tuple[list[str], tuple[str, str]] | None:
    """Depth-first search in insertion order; return a cycle and the edge closing it."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start, kids in children.items():
        if start in state:
            continue
        path, stack = [start], [iter(kids)]
        state[start] = 1
        while stack:
            for child in stack[-1]:
                if state.get(child) == 1:
                    return [*path[path.index(child) :], child], (path[-1], child)
                if child not in state:
                    state[child] = 1
                    path.append(child)
                    stack.append(iter(children.get(child, [])))
                    break
            else:
                state[path.pop()] = 2
                stack.pop()
    return None


def read_hierarchy(path: Path, report: DataReport | None = None) -> Hierarchy:
    """Read a hierarchy file.

    Each non-blank line is a parent followed by one or more children, tab-separated; the
    parent ``Root`` marks its children as top-level labels.

    Parameters
    ----------
    path : Path
    report : DataReport, optional
        Receives the count of duplicate edges.

    Raises
    ------
    DataError
        For a line with fewer than two fields, ``Root`` as a child, bad bytes, or a cycle
        (reported at the line of an edge that closes it).
    """
    path = Path(path)
    report = report if report is not None else DataReport()
    labels: set[str] = set()
    edge_line: dict[tuple[str, str], int] = {}
    children: dict[str, list[str]] = {}
    for lineno, raw in iter_raw_lines(path):
        fields = [f.strip() for f in decode_line(path, lineno, raw).split("\t")]
        fields = [f for f in fields if f]
        if not fields:
            continue
        if len(fields) < 2:
            raise DataError(path, lineno, "expected a parent and at least one child, tab-separated")
        parent, *kids = fields
        if ROOT in kids:
            raise DataError(path, lineno, f"'{ROOT}' cannot be a child")
        for child in kids:
            if (parent, child) in edge_line:
                report.duplicate_edges += 1
                continue
            edge_line[parent, child] = lineno
            children.setdefault(parent, []).append(child)
        labels.update(fields)
    labels.discard(ROOT)
    cycle = _find_cycle(children)
    if cycle:
        names, closing = cycle
        raise DataError(path, edge_line[closing], "cycle in hierarchy: " + " -> ".join(names))
    edges = sorted(e for e in edge_line if e[0] != ROOT)
    has_parent = {child for _, child in edges}
    return Hierarchy(sorted(labels), edges, sorted(labels - has_parent))
