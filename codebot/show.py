"""What the model asks to see: SHOW lines in its reply, and the answer to them.

The first prompt cannot hold a whole repository, so the model may ask for a file, a range
of lines or a definition by name (codebot/prompts/show_help.md tells it how). The answer
is numbered like edit refusals, wrapped as untrusted, and always within its token budget;
what cannot be shown is said plainly, with the closest names, so the next request lands.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codebot import repomap as rm
from codebot.outline import find_symbol, outline, source_lines
from codebot.render import (
    Excerpt,
    Outline,
    entry_outline,
    make_excerpt,
    render_excerpt,
    render_outline,
    repository,
    shown_names,
    shown_path,
    untrusted,
)
from codebot.tokens import count_tokens

MAX_REQUESTS = 8
_SHOW = re.compile(r"^SHOW[ \t]+`?(?P<target>[^\s`]+?)`?[ \t]*$")
_TARGET = re.compile(r"^(?P<path>.+?)(?:::(?P<symbol>[\w.]+)|:(?P<start>\d+)(?:-(?P<end>\d+))?)?$")


@dataclass(frozen=True)
class Request:
    """One SHOW line: a file, its lines `start`..`end`, or one of its definitions."""

    path: str
    start: int | None = None
    end: int | None = None
    symbol: str | None = None


def requests(reply: str) -> tuple[Request, ...]:
    """The SHOW lines of a reply, in order, once each; lines inside SEARCH/REPLACE blocks and
    ```diff fences are edit content and never requests."""
    found: list[Request] = []
    in_block = in_diff = False
    for line in reply.splitlines():
        stripped = line.strip()
        if stripped.startswith("<<<<<<< SEARCH"):
            in_block = True
        elif stripped.startswith(">>>>>>> REPLACE"):
            in_block = False
        elif stripped.startswith("```") and not in_block:
            in_diff = not in_diff and stripped[3:].strip().lower() in ("diff", "patch", "udiff")
        elif not in_block and not in_diff and (m := _SHOW.match(line)):
            request = _request(m.group("target"))
            if request is not None:
                found.append(request)
    return tuple(dict.fromkeys(found))


def _request(target: str) -> Request | None:
    m = _TARGET.match(target)
    if m is None:
        return None
    path = m.group("path").removeprefix("./")
    if m.group("symbol"):
        return Request(path, symbol=m.group("symbol"))
    if m.group("start"):
        start = int(m.group("start"))
        return Request(path, start, int(m.group("end") or start))
    return Request(path)


def render_requests(
    reqs: Sequence[Request],
    read: Callable[[str], str | None],
    budget_tokens: int,
    tracked: Sequence[str] = (),
    *,
    model: str | None = None,
) -> str:
    """The answer to SHOW lines, within `budget_tokens`: each region by name with numbered
    lines inside the repository wrapper; what cannot be shown is said plainly, with the
    closest names in `tracked` (or among the file's definitions)."""
    notes = [f"only the first {MAX_REQUESTS} SHOW lines are answered"] * (len(reqs) > MAX_REQUESTS)
    found: list[Excerpt] = []
    for req in reqs[:MAX_REQUESTS]:
        answer = _resolve(req, read, tracked)
        if isinstance(answer, str):
            notes.append(answer)
        else:
            found.append(answer)
    frame = _answer([], notes) + _REQUESTED + repository(["x"])
    said = "".join(
        f"- {e.path} is too large to show whole: ask for a range or a definition\n" for e in found
    )
    left = budget_tokens - count_tokens(frame + said, model)  # said: what _fit may add
    shown: list[Excerpt | Outline] = []
    for k, excerpt in enumerate(found):
        piece, note = _fit(excerpt, read, left // (len(found) - k), model)
        notes += [note] if note else []
        if piece is not None:
            shown.append(piece)
            left -= count_tokens(_render_piece(piece), model) + 1
    text = _answer(shown, notes)
    while shown and count_tokens(text, model) > budget_tokens:
        notes.append(f"{shown_names([shown.pop().path])[0]}: not shown for space")
        text = _answer(shown, notes)
    return text if count_tokens(text, model) <= budget_tokens else ""


def _resolve(
    req: Request, read: Callable[[str], str | None], tracked: Sequence[str]
) -> Excerpt | str:
    """The region a request names, or why there is none (with close matches)."""
    name = shown_names([req.path])[0]
    parts = req.path.split("/")
    text = None if req.path.startswith("/") or {"..", ".git"} & set(parts) else read(req.path)
    if text is None:
        return f"SHOW {name}: no such file" + _did_you_mean(rm.close_matches(req.path, tracked))
    source = source_lines(text)
    start, end = 1, len(source)
    if req.symbol is not None:
        symbols = outline(req.path, text)
        found = find_symbol(symbols, req.symbol)
        if found is None:
            close = rm.close_matches(req.symbol, [s.name for s in symbols], sep=".")
            what = f"{name}::{untrusted(shown_path(req.symbol))}"
            return f"SHOW {what}: no such definition" + _did_you_mean(close)
        start, end = found.line, found.end
    elif req.start is not None:
        start, end = sorted((req.start, req.end or req.start))
        if start > len(source):
            return f"SHOW {name}:{start}-{end}: the file has {len(source)} lines"
    return make_excerpt(req.path, source, [rm.Region(start, min(end, len(source)))])


def _did_you_mean(close: Sequence[str]) -> str:
    return f"; did you mean {', '.join(shown_names(close))}?" if close else ""


def _fit(
    ex: Excerpt, read: Callable[[str], str | None], limit: int, model: str | None
) -> tuple[Excerpt | Outline | None, str]:
    """`ex` if it fits `limit`; else a whole file by its outline, a region cut short."""
    name = shown_names([ex.path])[0]
    cost = count_tokens(_render_piece(ex), model)
    if cost < limit:
        return ex, ""
    first, text = ex.parts[0] if ex.parts else (1, "")
    lines = source_lines(text)
    if first == 1 and len(lines) == ex.lines:
        entry = rm.Entry(ex.path, 0.0, ex.lines, outline(ex.path, read(ex.path) or ""), ())
        for most in (200, 100, 50, 25):
            short = entry_outline(entry, most)
            if short.symbols and count_tokens(_render_piece(short), model) < limit:
                return (
                    short,
                    f"{name} is too large to show whole: ask for a range or a definition",
                )
    keep = len(lines) * limit // max(1, cost)
    while keep > 0:
        cut = Excerpt(ex.path, ex.lines, ((first, "\n".join(lines[:keep]) + "\n"),))
        if count_tokens(_render_piece(cut), model) < limit:
            last = first + keep - 1
            return cut, f"{name} cut at line {last}: ask for {last + 1}-{first + len(lines) - 1}"
        keep = keep * 9 // 10
    return None, f"{name}: not shown for space"


def _render_piece(piece: Excerpt | Outline) -> str:
    return render_excerpt(piece) if isinstance(piece, Excerpt) else render_outline(piece)


_REQUESTED = "Requested code (line numbers are not part of the files):\n"


def _answer(shown: Sequence[Excerpt | Outline], notes: Sequence[str]) -> str:
    head = _REQUESTED if shown else ""
    body = repository([_render_piece(p) for p in shown])
    return head + body + "".join(f"- {n}\n" for n in notes)
