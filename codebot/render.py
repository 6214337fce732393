"""How repository text reaches the model: wrapped as untrusted, fenced, numbered.

Shared by the first prompt (context.py), SHOW answers (show.py) and feedback excerpts
(excerpts.py), so all three quote the repository the same way and none can be tricked
into closing the <untrusted> wrapper. Pure string building; no budgets here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from codebot import repomap as rm
from codebot.outline import source_lines

AROUND = 3  # lines of context around a region
# Anything a model could read as the wrapper's tag: any case, blanks on either side of `/`.
_TAG = re.compile(r"(?i)<\s*/?\s*untrusted")


@dataclass(frozen=True)
class Excerpt:
    """Parts of one file: (first line number, text) each, in file order."""

    path: str
    lines: int
    parts: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Outline:
    """A file of the repository map: its definitions as (line, depth, signature)."""

    path: str
    lines: int
    symbols: tuple[tuple[int, int, str], ...]
    more: int = 0


def untrusted(text: str) -> str:
    """Neutralise anything in untrusted text that could close the <untrusted> wrapper."""
    return _TAG.sub(lambda m: "&lt;" + m.group(0)[1:], text)


def shown_path(path: str) -> str:
    """A file name as the model may see it: control and format characters (newlines, escape
    sequences, bidi overrides) spelled out as escapes, so a name cannot forge lines."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Cf")
        else ch
        for ch in path
    )


def shown_names(paths: Sequence[str]) -> list[str]:
    """File names (or signatures) safe to show: escaped, then neutralised."""
    return [untrusted(shown_path(p)) for p in paths]


def repository(blocks: Sequence[str]) -> str:
    """`blocks` of repository content inside the one repository wrapper."""
    if not blocks:
        return ""
    return '<untrusted source="repository">\n' + "\n".join(blocks) + "</untrusted>\n"


def file_block(path: str, text: str, head: str = "") -> str:
    """A file under its name, in a fence longer than any backtick run it holds."""
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{shown_names([path])[0]}{head}\n{fence}\n{untrusted(body)}{fence}\n"


def _longest_backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


def numbered(parts: Sequence[tuple[int, str]], lines: int) -> str:
    """Parts of a file with their line numbers (as edit refusals show them); `⋮` marks a gap."""
    width = max(5, len(str(lines)))
    out: list[str] = []
    for k, (first, text) in enumerate(parts):
        if k or first > 1:
            out.append("⋮")
        out += [f"{first + n:>{width}} | {line}" for n, line in enumerate(source_lines(text))]
    if parts and parts[-1][0] + len(source_lines(parts[-1][1])) <= lines:
        out.append("⋮")
    return "\n".join(out) + "\n"


def _span(parts: Sequence[tuple[int, str]]) -> str:
    return ", ".join(f"{first}-{first + len(source_lines(t)) - 1}" for first, t in parts)


def render_excerpt(ex: Excerpt) -> str:
    head = f" (lines {_span(ex.parts)} of {ex.lines})"
    return file_block(ex.path, numbered(ex.parts, ex.lines), head)


def render_outline(o: Outline) -> str:
    rows = [f"{line:>6}  {'  ' * depth}{shown_names([sig])[0]}" for line, depth, sig in o.symbols]
    rows += [f"        … {o.more} more definitions"] if o.more else []
    return "\n".join([f"{shown_names([o.path])[0]} ({o.lines} lines)", *rows]) + "\n"


def make_excerpt(path: str, source: Sequence[str], parts: Sequence[rm.Region]) -> Excerpt:
    """The `parts` of a file's lines `source`, merged where they touch."""
    regions = rm.merged(parts)
    texts = tuple((r.start, "\n".join(source[r.start - 1 : r.end]) + "\n") for r in regions)
    return Excerpt(path, len(source), texts)


def entry_outline(entry: rm.Entry, limit: int) -> Outline:
    """A map entry's outline: the definitions the task names, then the first up to `limit`."""
    keep = [s for s in entry.symbols if s.name in entry.named]
    keep += [s for s in entry.symbols if s.name not in entry.named][: max(0, limit - len(keep))]
    keep.sort(key=lambda s: (s.line, s.depth))
    symbols = tuple((s.line, s.depth, s.signature) for s in keep)
    return Outline(entry.path, entry.lines, symbols, len(entry.symbols) - len(keep))
