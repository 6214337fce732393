"""The Python import graph among a repository's own files: which file imports which.

Pure: parsed modules in, edges out. repomap.py passes a file's relevance on along these
edges, so a module importing the failing one is ranked near it. Imports are resolved
by dotted name against every suffix of each file's path, so `src/` layouts resolve too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Graph:
    """Who imports whom among the repository's own Python files."""

    imports: Mapping[str, frozenset[str]]  # path -> in-repo files it imports
    importers: Mapping[str, frozenset[str]]  # path -> in-repo files importing it


def import_graph(trees: Mapping[str, ast.Module]) -> Graph:
    index = _module_index(trees)
    imports = {p: _resolved(p, tree, index) for p, tree in trees.items()}
    importers: dict[str, set[str]] = {}
    for path, targets in imports.items():
        for target in targets:
            importers.setdefault(target, set()).add(path)
    return Graph(imports, {p: frozenset(s) for p, s in importers.items()})


def _module_parts(path: str) -> list[str]:
    parts = list(PurePosixPath(path).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _module_index(paths: Iterable[str]) -> dict[str, str]:
    """Dotted name -> file, for every suffix of each file's dotted path (so `src/pkg/a.py`
    answers to `pkg.a`); the longest dotted path wins a shared name, then the first path."""
    best: dict[str, tuple[int, str]] = {}
    for path in sorted(paths):
        parts = _module_parts(path)
        for k in range(len(parts)):
            key = ".".join(parts[k:])
            if key not in best or (k, path) < best[key]:
                best[key] = (k, path)
    return {key: path for key, (_, path) in best.items()}


def _resolved(path: str, tree: ast.Module, index: Mapping[str, str]) -> frozenset[str]:
    package = _module_parts(path)
    if not path.endswith("__init__.py"):
        package = package[:-1]
    found: set[str] = set()
    for node in _statements(tree.body):
        groups: list[list[str]] = []
        if isinstance(node, ast.Import):
            groups = [_prefixes(alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            groups = [[".".join([*module, a.name]), *_prefixes(module)] for a in node.names]
        for group in groups:
            hit = next((index[c] for c in group if c in index), None)
            if hit is not None and hit != path:
                found.add(hit)
    return frozenset(found)


def _statements(body: Sequence[ast.stmt]) -> Iterable[ast.stmt]:
    """Every statement, nested ones too, without walking expressions (imports are statements)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from _statements(getattr(node, field, None) or [])


def _prefixes(parts: Sequence[str]) -> list[str]:
    return [".".join(parts[:k]) for k in range(len(parts), 0, -1)]
