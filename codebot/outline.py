"""A file's definitions (`Symbol`s) with their lines: what the map lists and SHOW finds by name.

Pure: a path and its text in, definitions out. `ast` for Python, where the parse is exact;
line patterns for other languages and for Python that does not parse, so every file gets
an outline. repomap.py ranks files by these definitions; SHOW answers find code by them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

_NEWLINE = re.compile(r"\r\n|\r|\n")
_DEF = re.compile(
    r"^(?P<indent>[ \t]*)(?:(?:export|default|public|private|protected|static|async|abstract"
    r"|final|inline|unsafe|extern|pub(?:\([\w ]*\))?)\s+)*(?P<kind>def|function|class|func|fn"
    r"|interface|struct|trait|impl|enum|module)\s+(?:\([^)]*\)\s*)?(?P<name>[A-Za-z_$][\w$]*)",
    re.M,
)


@dataclass(frozen=True)
class Symbol:
    """A definition: `name` qualified by its class ("Parser.feed"), lines 1-based inclusive."""

    name: str
    kind: str
    line: int
    end: int
    signature: str

    @property
    def depth(self) -> int:
        return self.name.count(".")


def source_lines(text: str) -> list[str]:
    """The lines of a file as tracebacks and editors number them: split at \\n, \\r\\n and \\r
    only (str.splitlines also splits at form feeds and other separators)."""
    lines = _NEWLINE.split(text)
    return lines[:-1] if lines[-1] == "" else lines


def outline(path: str, text: str) -> tuple[Symbol, ...]:
    """Top-level definitions and class methods: `ast` for Python, line patterns otherwise."""
    if PurePosixPath(path).suffix in (".py", ".pyi"):
        try:
            return python_symbols(ast.parse(text))
        except (SyntaxError, ValueError, RecursionError):
            pass
    return _pattern_symbols(text)


def python_symbols(tree: ast.Module) -> tuple[Symbol, ...]:
    """The outline of a parsed module (public so a caller that parsed it already reuses it)."""
    found: list[Symbol] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(_symbol(node, ""))
        if isinstance(node, ast.ClassDef):
            found += [
                _symbol(child, node.name + ".")
                for child in node.body
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            ]
    return tuple(found)


def _symbol(node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef, prefix: str) -> Symbol:
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    end = node.end_lineno or node.lineno
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in (*node.bases, *node.keywords))
        return Symbol(prefix + node.name, "class", start, end, f"class {node.name}({bases})")
    head = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    signature = f"{head} {node.name}({ast.unparse(node.args)}){returns}"
    return Symbol(prefix + node.name, "def", start, end, _clip(signature))


def _pattern_symbols(text: str) -> tuple[Symbol, ...]:
    """Definitions by their opening line, nested by indentation; each ends where the next
    definition at its depth or shallower begins."""
    lines = source_lines(text)
    open_: list[tuple[int, str, int, str, str]] = []  # indent, name, line, kind, signature
    found: list[Symbol] = []

    def close(indent: int, next_line: int) -> None:
        while open_ and open_[-1][0] >= indent:
            _, name, line, kind, signature = open_.pop()
            end = next_line - 1
            while end > line and not lines[end - 1].strip():
                end -= 1
            found.append(Symbol(name, kind, line, end, signature))

    line, seen = 1, 0
    for m in _DEF.finditer(text):
        line, seen = line + text.count("\n", seen, m.start()), m.start()
        indent = len(m.group("indent").expandtabs())
        close(indent, line)
        name = ".".join([*(o[1].rsplit(".", 1)[-1] for o in open_[-1:]), m.group("name")])
        open_.append((indent, name, line, m.group("kind"), _clip(lines[line - 1].strip())))
    close(-1, len(lines) + 1)
    return tuple(sorted(found, key=lambda s: (s.line, s.depth)))


def _clip(signature: str, limit: int = 160) -> str:
    return signature if len(signature) <= limit else signature[: limit - 1] + "…"


def named_symbols(symbols: Sequence[Symbol], names: Iterable[str]) -> frozenset[str]:
    """The qualified names of `symbols` that `names` mention, fully or by their last part."""
    wanted = set(names)
    return frozenset(
        s.name for s in symbols if s.name in wanted or s.name.rsplit(".", 1)[-1] in wanted
    )


def find_symbol(symbols: Sequence[Symbol], name: str) -> Symbol | None:
    """The definition `name` names: its qualified name, else a unique last part."""
    exact = [s for s in symbols if s.name == name]
    if exact:
        return exact[0]
    by_last = [s for s in symbols if s.name.rsplit(".", 1)[-1] == name]
    return by_last[0] if len(by_last) == 1 else None
