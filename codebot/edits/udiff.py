"""Unified diffs in a reply: where a fenced diff ends, and its hunks as edits.

The one module that imports unidiff, so its quirks (and its exceptions) stay here. A diff is
read by its hunk headers: a hunk's lines are content even when they look like a fence (a README
edit has " ```" context lines), and only after a hunk ends can a fence close the block.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk, PatchSet

from codebot.edits.fences import Fence, dedent
from codebot.records import Edit

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_DIFF_TAGS = ("diff", "patch", "udiff")

Ending = Literal["closed", "unclosed", "cut"]


@dataclass(frozen=True)
class DiffBlock:
    """A fenced diff: its lines (relative to the fence's indentation) and how it ended."""

    fence: Fence
    body: tuple[str, ...]
    after: int  # the reply's first line after the block
    ending: Ending
    stop: str  # what ended an unclosed block: the next fence's line, or "" for the reply's end

    def problem(self, number: int) -> str | None:
        """What the model must hear about a block that was not closed: never a silent edit."""
        if self.ending == "closed":
            return None
        close = f"end every fence with a line of {self.fence.char * self.fence.length}"
        longer = "wrap a diff that has ``` lines in a longer fence such as ````diff"
        if self.ending == "cut":
            header = next(x for x in reversed(self.body) if x.startswith("@@"))
            return (
                f"diff block {number}: the reply ends inside the hunk `{header}`{_of(self.body)}"
                ", which has fewer lines than its header says, so the diff was cut off and none "
                f"of this block was applied; send it again in full, and {close}"
            )
        where = f"the next fence ({self.stop.strip()})" if self.stop else "the end of the reply"
        return (
            f"diff block {number}: its {self.fence} fence is never closed, so it was read up to "
            f"{where}; check that nothing is missing, {close}, and {longer}"
        )


def read_diff(lines: Sequence[str], at: int, open_fence: Fence | None) -> DiffBlock | None:
    """The diff whose fence opens at `at`, or None. Inside another open fence only a tagged
    fence (```diff) opens one, so an unclosed fence cannot hide the diffs after it."""
    fence = Fence.opening(lines[at])
    if fence is None or (open_fence is not None and not fence.info):
        return None
    first = next((x for x in lines[at + 1 :] if x.strip()), "")
    strip = min(fence.indent, len(first) - len(first.lstrip(" ")))
    starts = dedent(first, strip).startswith(("--- ", "diff --git "))
    if not starts and fence.info.lower() not in _DIFF_TAGS:
        return None
    body = [dedent(x, strip) for x in lines[at + 1 :]]
    end, ending = _extent(lines[at + 1 :], body, fence)
    if not any(x.strip() for x in body[:end]):
        return None
    stop = lines[at + 1 + end] if ending == "unclosed" and at + 1 + end < len(lines) else ""
    after = at + 1 + end + (ending == "closed")
    return DiffBlock(fence, tuple(body[:end]), after, ending, stop)


def _extent(raw: Sequence[str], body: Sequence[str], fence: Fence) -> tuple[int, Ending]:
    """Where the block ends (the closing fence's index, or where reading stopped)."""
    k, hunk = 0, (0, 0)  # the last hunk read: header index, end index
    while k < len(body):
        if fence.closes(raw[k]):
            return k, "closed"
        if body[k].startswith("@@"):
            hunk = (k, hunk_end(body, k + 1))
            k = hunk[1]
        elif (other := Fence.opening(raw[k])) and other.info:  # it forgot to close this one
            break
        else:
            k += 1
    return _unclosed(raw, body, fence, k, hunk)


def _unclosed(
    raw: Sequence[str], body: Sequence[str], fence: Fence, end: int, hunk: tuple[int, int]
) -> tuple[int, Ending]:
    """A block reading by hunks left open. Its last line, read as a context line, may be the
    closing fence indented after all, if the hunk is complete without it; a hunk the reply
    ends inside that is shorter than its header says (blank lines at the reply's end are not
    context) was cut off."""
    header, stop = hunk
    last = next((j for j in range(end - 1, -1, -1) if body[j].strip()), -1)
    if not header < last < stop:  # the block does not end inside a hunk
        return end, "unclosed"
    if fence.closes(raw[last]) and not _short(body[header], body[header + 1 : last]):
        return last, "closed"
    if end == len(body) and _short(body[header], body[header + 1 : last + 1]):
        return end, "cut"
    return end, "unclosed"


def _short(header: str, hunk: Sequence[str]) -> bool:
    numbers = _HUNK.match(header)
    if not numbers:  # "@@ ... @@": nothing to count against
        return False
    old, new = (int(n) if n is not None else 1 for n in numbers.group(2, 4))
    seen_old = sum(1 for x in hunk if x[:1] in (" ", "-", ""))
    seen_new = sum(1 for x in hunk if x[:1] in (" ", "+", ""))
    return seen_old < old or seen_new < new


def _of(body: Sequence[str]) -> str:
    target = next((x[4:] for x in reversed(body) if x.startswith("+++ ")), "")
    path = target.split("\t")[0].strip()
    return f" of {path[2:] if path.startswith('b/') else path}" if path else ""


def hunk_end(lines: Sequence[str], start: int) -> int:
    """The first line from `start` that cannot be hunk content: models miscount, so a hunk is
    read by its lines' prefixes, not by its header's numbers."""
    i = start
    while i < len(lines) and _in_hunk(lines, i):
        i += 1
    return i


def _in_hunk(lines: Sequence[str], i: int) -> bool:
    line = lines[i]
    if line.startswith(("@@", "diff ")):
        return False
    if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
        return False
    return line == "" or line[:1] in (" ", "+", "-", "\\")


def diff_to_edits(body: str, block: int) -> tuple[list[Edit], str | None]:
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
        start, i = i, hunk_end(lines, i)
        end = i
        while end > start and not lines[end - 1]:  # blank lines after the hunk, not in it
            end -= 1
        hunk = [line or " " for line in lines[start:end]]
        numbers = _HUNK.match(header)
        src, dst, tail = numbers.group(1, 3, 5) if numbers else ("0", "0", "")
        old = sum(1 for x in hunk if x[:1] in (" ", "-"))
        new = sum(1 for x in hunk if x[:1] in (" ", "+"))
        out += [f"@@ -{src},{old} +{dst},{new} @@{tail}", *hunk]
    return "\n".join(out) + "\n"


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
