"""Team documents cut into passages, each under its heading path, with its first line.

Pure: text in, `Chunk`s out. A passage is a few paragraphs of one section, small enough that
BM25 scores it on what it says rather than on how long the file is, and that a handful fit
in a prompt. Markdown (ATX and setext headings, fenced code kept whole), reStructuredText
(underlined and overlined titles, levels in order of first use, as docutils decides), plain
text (paragraphs), and Python (the docstrings of the module, its classes and functions).
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

MAX_CHARS = 1_200  # a passage's text at most (about 300 tokens); longer paragraphs are cut
PACK_CHARS = 500  # paragraphs of a section are joined while the passage stays under this
SEPARATOR = " › "  # between the parts of a heading path

KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".rst": "rst",
    ".txt": "text",
    ".text": "text",
    ".py": "python",
}

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")


@dataclass(frozen=True)
class Chunk:
    """One passage: `heading` is the path of section titles above it (outermost first)."""

    heading: tuple[str, ...]
    text: str
    line: int


@dataclass(frozen=True)
class _Block:
    """A paragraph (or a whole fenced block) under its heading path."""

    heading: tuple[str, ...]
    lines: tuple[str, ...]
    line: int


def kind_of(path: str) -> str | None:
    """The splitter for a file name, None for a type the index does not read."""
    return KINDS.get(PurePosixPath(path).suffix.lower())


def split(kind: str, text: str) -> tuple[Chunk, ...]:
    """`text` as passages. Raises ValueError for Python that does not parse."""
    if kind == "python":
        return _python(text)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks = {"markdown": _markdown, "rst": _rst}.get(kind, _paragraphs)(lines)
    return tuple(_pack(blocks))


def heading_text(heading: Sequence[str]) -> str:
    return SEPARATOR.join(heading)


def _markdown(lines: list[str]) -> Iterator[_Block]:
    """Paragraphs under their headings; a fenced block stays one paragraph, and nothing in
    it is a heading. Front matter (a leading `---` block) is left out."""
    start = _front_matter_end(lines)
    stack: list[str] = []
    para: list[str] = []
    first = 0
    fence = ""
    for number in range(start, len(lines)):
        line = lines[number]
        if fence:
            para.append(line)
            fence = "" if line.strip().startswith(fence) else fence
            continue
        opened = _FENCE.match(line)
        atx = _ATX.match(line)
        setext = _SETEXT.match(line) if len(para) == 1 and para[0].strip() else None
        if setext:
            title, para = para[0].strip(), []
            stack = _push(stack, 1 if setext.group(1)[0] == "=" else 2, title)
        elif atx:
            yield from _flush(stack, para, first)
            para = []
            stack = _push(stack, len(atx.group(1)), (atx.group(2) or "").strip())
        elif not line.strip() or (not para and _RULE.match(line)):
            yield from _flush(stack, para, first)
            para = []
        else:
            if not para:
                first = number + 1
            para.append(line)
            fence = opened.group(1)[:3] if opened else ""
    yield from _flush(stack, para, first)


def _front_matter_end(lines: list[str]) -> int:
    if lines and lines[0].strip() == "---":
        for number in range(1, len(lines)):
            if lines[number].strip() in ("---", "..."):
                return number + 1
    return 0


def _rst(lines: list[str]) -> Iterator[_Block]:
    """Paragraphs under their titles: a title is a line underlined (and perhaps overlined)
    by a run of one punctuation character at least as long as the title."""
    styles: list[tuple[str, bool]] = []
    stack: list[str] = []
    para: list[str] = []
    first, number = 0, 0
    while number < len(lines):
        title = _rst_title(lines, number)
        if title is not None:
            text, style, used = title
            yield from _flush(stack, para, first)
            para = []
            if style not in styles:
                styles.append(style)
            stack = _push(stack, styles.index(style) + 1, text)
            number += used
            continue
        line = lines[number]
        if not line.strip():
            yield from _flush(stack, para, first)
            para = []
        else:
            if not para:
                first = number + 1
            para.append(line)
        number += 1
    yield from _flush(stack, para, first)


def _rst_title(lines: list[str], at: int) -> tuple[str, tuple[str, bool], int] | None:
    """(title, (character, overlined), lines used) when a title starts at line `at`."""
    over = _RST_ADORNMENT.match(lines[at])
    if over and at + 2 < len(lines):
        text, under = lines[at + 1].strip(), _RST_ADORNMENT.match(lines[at + 2])
        if text and under and under.group(1) == over.group(1) and not _RST_ADORNMENT.match(text):
            return text, (over.group(1), True), 3
    if at + 1 >= len(lines) or not lines[at].strip() or lines[at][0].isspace():
        return None
    under = _RST_ADORNMENT.match(lines[at + 1])
    text = lines[at].strip()
    if under and not over and len(lines[at + 1].rstrip()) >= len(text):
        return text, (under.group(1), False), 2
    return None


def _paragraphs(lines: list[str]) -> Iterator[_Block]:
    para: list[str] = []
    first = 0
    for number, line in enumerate(lines):
        if line.strip():
            if not para:
                first = number + 1
            para.append(line)
        else:
            yield from _flush([], para, first)
            para = []
    yield from _flush([], para, first)


def _python(text: str) -> tuple[Chunk, ...]:
    """The docstrings of a module: each under the dotted name of what it documents."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ValueError(f"not valid Python (line {exc.lineno}: {exc.msg})") from None
    blocks: list[_Block] = []
    _docstrings(tree, (), blocks)
    return tuple(_pack(blocks))


def _docstrings(node: ast.AST, name: tuple[str, ...], out: list[_Block]) -> None:
    body = getattr(node, "body", None)
    if not isinstance(body, list):
        return
    doc = ast.get_docstring(node, clean=False) if isinstance(node, _DOCUMENTED) else None
    if doc and body and isinstance(body[0], ast.Expr):
        lines = inspect.cleandoc(doc).split("\n")
        out.extend(_paragraph_blocks(name, lines, body[0].lineno))
    for child in body:
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            _docstrings(child, (*name, child.name), out)


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _paragraph_blocks(heading: tuple[str, ...], lines: list[str], line: int) -> list[_Block]:
    """A docstring's paragraphs; their lines count from the docstring's first line."""
    return [_Block(heading, b.lines, line + b.line - 1) for b in _paragraphs(lines)]


def _push(stack: list[str], level: int, title: str) -> list[str]:
    kept = stack[: level - 1]
    return [*kept, *[""] * (level - 1 - len(kept)), title]


def _flush(stack: Sequence[str], para: Sequence[str], first: int) -> Iterator[_Block]:
    if any(line.strip() for line in para):
        yield _Block(tuple(t for t in stack if t), tuple(para), first)


def _pack(blocks: Iterable[_Block]) -> Iterator[Chunk]:
    """Consecutive paragraphs of one section joined while under PACK_CHARS (a passage about
    one thing scores on it); a paragraph over MAX_CHARS is cut at line ends (a line longer
    still, at MAX_CHARS)."""
    heading: tuple[str, ...] | None = None
    parts: list[str] = []
    line = size = 0
    for block in (piece for b in blocks for piece in _cut(b)):
        text = "\n".join(block.lines).strip("\n")
        if parts and (block.heading != heading or size + len(text) + 2 > PACK_CHARS):
            yield Chunk(heading or (), "\n\n".join(parts), line)
            parts = []
        if not parts:
            heading, line, size = block.heading, block.line, 0
        parts.append(text)
        size += len(text) + 2
    if parts:
        yield Chunk(heading or (), "\n\n".join(parts), line)


def _cut(block: _Block) -> Iterator[_Block]:
    lines: list[str] = []
    first, size = block.line, 0
    for offset, raw in enumerate(block.lines):
        for piece in [raw[i : i + MAX_CHARS] for i in range(0, max(len(raw), 1), MAX_CHARS)]:
            if lines and size + len(piece) + 1 > MAX_CHARS:
                yield _Block(block.heading, tuple(lines), first)
                lines, first, size = [], block.line + offset, 0
            lines.append(piece)
            size += len(piece) + 1
    if lines:
        yield _Block(block.heading, tuple(lines), first)
