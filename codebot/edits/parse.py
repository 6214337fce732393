"""Read the model's reply into edits: SEARCH/REPLACE blocks and fenced unified diffs.

Pure text in, dataclasses out, no I/O: the formats can be tested without a file system. This
module finds the blocks; `udiff` reads the diffs and `fences` the Markdown fences around them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from codebot.edits.fences import Fence
from codebot.edits.udiff import DiffBlock, diff_to_edits, read_diff
from codebot.records import Edit

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_PATH_LIKE = re.compile(r"^[\w.~][\w.\-/+@~]*$")
_PATH_LABEL = re.compile(r"^(?:file|filename|path)\s*:\s*", re.IGNORECASE)
_BARE_NAMES = {"Makefile", "Dockerfile", "LICENSE", "README", "Procfile", "Gemfile", "Justfile"}


@dataclass(frozen=True)
class ParsedReply:
    """Every edit found in a reply, plus what could not be read (sent back to the model).

    Blocks are numbered from 1 in order of appearance; each diff hunk (or deleted file)
    counts as one block, so every edit, and every outcome, has a number of its own.
    """

    edits: tuple[Edit, ...]
    problems: tuple[str, ...]


def parse_edits(reply: str) -> ParsedReply:
    """Accept both formats wherever they appear: models drift from the format they were told."""
    lines = reply.replace("\r\n", "\n").split("\n")
    edits: list[Edit] = []
    problems: list[str] = []
    path: str | None = None
    block = floor = i = 0
    fence: Fence | None = None  # the open fence around prose, code or SEARCH blocks
    while i < len(lines):
        diff = _diff_at(lines, i, fence)
        if diff is not None:
            cut = diff.ending == "cut"  # half a diff is never applied
            found, problem = ([], None) if cut else diff_to_edits("\n".join(diff.body), block)
            edits += found
            problems += [p for p in (problem, diff.problem(block + 1)) if p]
            block += len(found) or 1
            i = floor = diff.after
            fence = None
        elif _SEARCH.match(lines[i]):
            block += 1
            path = _path_before(lines, floor, i) or path
            end, problem = _read_block(lines, i, block, path, edits)
            problems += [problem] if problem else []
            i = floor = end + 1
        else:
            fence = _fence_after(fence, lines[i])
            i += 1
    return ParsedReply(tuple(edits), tuple(problems))


def _diff_at(lines: list[str], i: int, fence: Fence | None) -> DiffBlock | None:
    """The fenced diff opening at `i`; a fence holding SEARCH blocks is not one."""
    diff = read_diff(lines, i, fence)
    if diff is None or any(_SEARCH.match(x) for x in diff.body):
        return None
    return diff


def _fence_after(fence: Fence | None, line: str) -> Fence | None:
    """The fence open after `line` (CommonMark): a fence line that cannot close it is content."""
    if fence is None:
        return Fence.opening(line)
    return None if fence.closes(line) else fence


def _path_before(lines: list[str], floor: int, at: int) -> str | None:
    """The path named on one of the few lines before a SEARCH marker, skipping fence lines."""
    seen = 0
    for j in range(at - 1, floor - 1, -1):
        if not lines[j].strip() or Fence.opening(lines[j]):
            continue
        path = _as_path(lines[j])
        if path or seen >= 2:
            return path
        seen += 1
    return None


def _as_path(line: str) -> str | None:
    """A line that is a path (maybe in backticks, bold, a heading); or prose ending in ':'
    that names one in backticks, as in "Update `src/calc.py`:"."""
    text = _PATH_LABEL.sub("", line.strip().lstrip("#").strip("*`'\": \t")).strip("*`'\": \t")
    if _is_path(text):
        return text
    quoted = [q for q in re.findall(r"`([^`\s]+)`", line) if _is_path(q)]
    return quoted[-1] if quoted and line.rstrip().endswith(":") else None


def _is_path(text: str) -> bool:
    if not _PATH_LIKE.match(text) or set(text) <= {".", "/"}:
        return False
    return "." in text or "/" in text or text in _BARE_NAMES


def _read_block(
    lines: list[str], at: int, block: int, path: str | None, out: list[Edit]
) -> tuple[int, str | None]:
    """Read one SEARCH/REPLACE block from `at`; append its edit or return why it is unusable."""
    divider = _next(lines, at + 1, _DIVIDER)
    end = _next(lines, divider + 1, _REPLACE) if divider is not None else None
    if divider is None or end is None:
        missing = "=======" if divider is None else ">>>>>>> REPLACE"
        return at, f"block {block}: SEARCH section has no closing `{missing}` line"
    if path is None:
        return end, (
            f"block {block}: SEARCH without a file path; put the path alone on the line "
            "just before <<<<<<< SEARCH"
        )
    search, replace = _join(lines[at + 1 : divider]), _join(lines[divider + 1 : end])
    out.append(Edit(path, search, replace, "search_replace", block))
    return end, None


def _next(lines: list[str], start: int, marker: re.Pattern[str]) -> int | None:
    """Index of the next `marker` line, or None if another SEARCH (or the end) comes first."""
    for j in range(start, len(lines)):
        if marker.match(lines[j]):
            return j
        if _SEARCH.match(lines[j]):
            return None
    return None


def _join(lines: Sequence[str]) -> str:
    return "".join(line + "\n" for line in lines)
