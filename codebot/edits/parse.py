"""Read the model's reply into edits: SEARCH/REPLACE blocks and fenced unified diffs.

Pure text in, dataclasses out, no I/O: the formats can be tested without a file system, and this
is the one module that imports unidiff, so its quirks (and its exceptions) stay here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk, PatchSet

from codebot.records import Edit

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FENCE = re.compile(r"^\s*```\s*([\w+-]*)")
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")
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
    in_fence = False
    while i < len(lines):
        diff = _diff_span(lines, i, in_fence)
        if diff is not None:
            found, problem = _diff_to_edits("\n".join(lines[diff[0] : diff[1]]), block)
            edits += found
            block += len(found) or 1
            problems += [problem] if problem else []
            i = floor = diff[1] + 1
        elif _SEARCH.match(lines[i]):
            block += 1
            path = _path_before(lines, floor, i) or path
            end, problem = _read_block(lines, i, block, path, edits)
            problems += [problem] if problem else []
            i = floor = end + 1
        else:
            fence = _FENCE.match(lines[i])
            # A tagged fence (```python) always opens, so one unclosed fence cannot hide the rest.
            in_fence = (bool(fence.group(1)) or not in_fence) if fence else in_fence
            i += 1
    return ParsedReply(tuple(edits), tuple(problems))


def _diff_span(lines: list[str], i: int, in_fence: bool) -> tuple[int, int] | None:
    """(first, closing) line of a fenced diff opening at `i`; a fence holding SEARCH is not one."""
    fence = _FENCE.match(lines[i])
    if not fence or (in_fence and not fence.group(1)):
        return None
    end = next((j for j in range(i + 1, len(lines)) if _FENCE.match(lines[j])), len(lines))
    body = [x for x in lines[i + 1 : end] if x.strip()]
    if not body or any(_SEARCH.match(x) for x in body):
        return None
    diff_tag = fence.group(1).lower() in ("diff", "patch", "udiff")
    header = body[0].startswith(("--- ", "diff --git "))
    return (i + 1, end) if diff_tag or header else None


def _path_before(lines: list[str], floor: int, at: int) -> str | None:
    """The path named on one of the few lines before a SEARCH marker, skipping fence lines."""
    seen = 0
    for j in range(at - 1, floor - 1, -1):
        if not lines[j].strip() or _FENCE.match(lines[j]):
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


def _diff_to_edits(body: str, block: int) -> tuple[list[Edit], str | None]:
    """One edit per hunk (or per deleted file); bad hunk counts are recounted, not rejected."""
    try:
        patch = PatchSet(_recount_hunks(body))
    except UnidiffParseError as exc:
        return [], f"diff block {block + 1}: cannot parse: {exc}"
    edits: list[Edit] = []
    for pfile in patch:
        source, target = _strip_prefixes(pfile.source_file or "", pfile.target_file or "")
        if pfile.is_removed_file:
            edits.append(Edit(source, "", "", "diff", block + len(edits) + 1, delete=True))
            continue
        for hunk in pfile:
            search, replace = _hunk_sides(hunk)
            hint = int(hunk.source_start) or None
            edits.append(Edit(target, search, replace, "diff", block + len(edits) + 1, hint))
    problem = f"diff block {block + 1}: cannot parse: no `--- a/path`, `+++ b/path` and @@ hunk"
    return edits, (None if edits else problem)


def _recount_hunks(body: str) -> str:
    """Rewrite every @@ header from its body: models miscount, and unidiff truncates silently."""
    lines = body.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = lines[i]
        i += 1
        if not header.startswith("@@"):
            out.append(header)
            continue
        start = i
        while i < len(lines) and _in_hunk(lines, i):
            i += 1
        end = i
        while end > start and not lines[end - 1]:  # blank lines after the hunk, not in it
            end -= 1
        hunk = [line or " " for line in lines[start:end]]
        numbers = _HUNK.match(header)
        src, dst, tail = numbers.groups() if numbers else ("0", "0", "")
        old = sum(1 for x in hunk if x[:1] in (" ", "-"))
        new = sum(1 for x in hunk if x[:1] in (" ", "+"))
        out += [f"@@ -{src},{old} +{dst},{new} @@{tail}", *hunk]
    return "\n".join(out) + "\n"


def _in_hunk(lines: list[str], i: int) -> bool:
    line = lines[i]
    if line.startswith(("@@", "diff ")):
        return False
    if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
        return False
    return line == "" or line[:1] in (" ", "+", "-", "\\")


def _strip_prefixes(source: str, target: str) -> tuple[str, str]:
    """Drop git's a/ and b/ only when both sides use them (a real dir could be named `a`)."""
    if source.startswith(("a/", "/dev/null")) and target.startswith(("b/", "/dev/null")):
        source = source[2:] if source.startswith("a/") else source
        target = target[2:] if target.startswith("b/") else target
    return source, (source if target == "/dev/null" else target)


def _hunk_sides(hunk: Hunk) -> tuple[str, str]:
    old: list[str] = []
    new: list[str] = []
    last: list[list[str]] = []
    for line in hunk:
        sides = {" ": [old, new], "-": [old], "+": [new]}.get(line.line_type)
        if sides is None:  # "\ No newline at end of file" belongs to the line before it
            for side in last:
                side[-1] = side[-1].rstrip("\n")
            continue
        for side in sides:
            side.append(line.value if line.value.endswith("\n") else line.value + "\n")
        last = sides
    return "".join(old), "".join(new)
