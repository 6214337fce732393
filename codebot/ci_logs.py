"""What matters in a CI log, within a size budget: the failing tests, assertions, tracebacks
and error lines, not the thousands of lines of setup around them.

Pure: text in, text out. A GitHub Actions job log stamps every line with a time and marks
steps with `##[group]`; that noise goes first. Then the shapes failures take are kept
(pytest's failure sections and summary, tracebacks, jest and mocha blocks, go test failures,
`Error:` lines and compiler or linter diagnostics). When none is found, the end of the
failing step is kept: that is where a failure usually says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from codebot.text import CUT, clip, tail

DEFAULT_BUDGET = 6_000  # characters
GAP = "⋮"  # stands for the lines left out between two kept parts
_LINE_LIMIT = 400  # a minified bundle or a base64 blob is one "line" of megabytes

_STAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_DROPPED = re.compile(r"##\[(?:endgroup|debug)\]")
_MARKERS = (("##[group]", ""), ("##[error]", "Error: "), ("##[warning]", "Warning: "))
_STEP_END = re.compile(r"Error: Process completed with exit code \d+\.?$")

_PYTEST_START = re.compile(r"=+ (?:FAILURES|ERRORS|short test summary info) =+$")
_PYTEST_END = re.compile(r"=* ?\d+ (?:failed|passed|errors?)\b.* in [\d.]+m?s\b.*")
_JEST_START = re.compile(r"\s*FAIL\s+\S")
_JEST_END = re.compile(r"Tests:\s+.*\bfailed\b")
_MOCHA_START = re.compile(r"\s*\d+ failing$")
_GO_FAIL = re.compile(r"\s*--- FAIL: ")
_PANIC = re.compile(r"panic: ")
_TRACEBACK = re.compile(r"\s*Traceback \(most recent call last\):")
_LINES = re.compile(
    r"E\s{2,}\S"  # pytest's assertion detail
    r"|\s*(?:[\w.]+Error|[\w.]+Exception)(?::|$)"  # an exception line of any language
    r"|\s*(?:Error|ERROR|error|FATAL|fatal)(?:\[\w+\])?:\s"  # Error: / error[E0308]:
    r"|\S+?:\d+(?::\d+)?:\s*(?:error|[A-Z]{1,4}\d{2,5})\b"  # mypy, ruff, gcc, flake8
    r"|\S+\(\d+,\d+\): error TS\d+"  # tsc
    r"|Found \d+ errors?\b"  # ruff, mypy summaries
    r"|FAIL\t|FAIL\s+\S+\s+[\d.]+s$"  # go test's package summary
    r"|\s+\S+_test\.go:\d+: "  # go test's t.Errorf lines
    r"|\s+\d+:\d+\s+error\s"  # eslint
    r"|npm (?:ERR!|error) (?!code|errno|syscall|path|A complete log|Lifecycle)"
)
_ARROW = re.compile(r"\s*--> \S+:\d+:\d+")  # ruff's and rustc's "where", under the message
_STEP_TAIL = 8  # last lines of the failing step, always kept: most tools end with a summary


def failures(log: str, budget: int = DEFAULT_BUDGET) -> str:
    """The parts of `log` that say what failed, at most `budget` characters."""
    lines, steps = _read(log)
    start, end = _failing_step(lines, steps)
    spans = _spans(lines[:end])
    if not spans:
        return tail("\n".join(lines[start:end]).strip("\n"), budget)
    step_tail = (max(start, end - _STEP_TAIL), end)
    return _fit(_join(lines, _merge([*spans, step_tail])), budget)


def clean(log: str) -> list[str]:
    """The log's lines without timestamps, colour codes and GitHub's grouping markers."""
    return _read(log)[0]


def _read(log: str) -> tuple[list[str], list[int]]:
    """The clean lines, and where each step (a `##[group]Run ...` line) begins."""
    out: list[str] = []
    steps: list[int] = []
    for raw in log.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _ANSI.sub("", _STAMP.sub("", raw)).rstrip()
        if _DROPPED.match(line):
            continue
        if line.startswith("##[group]Run "):
            steps.append(len(out))
        for marker, replacement in _MARKERS:
            if line.startswith(marker):
                line = replacement + line[len(marker) :]
        out.append(clip(line, _LINE_LIMIT))
    return out, steps


def _failing_step(lines: Sequence[str], steps: Sequence[int]) -> tuple[int, int]:
    """The lines of the step that failed: up to GitHub's "Process completed with exit code"
    line (what follows is post-job cleanup), from the step's `Run` line before it. The
    whole log when it has no such markers."""
    ends = [i for i, line in enumerate(lines) if _STEP_END.match(line)]
    end = ends[-1] if ends else len(lines)
    return max((s for s in steps if s < end), default=0), end


Span = tuple[int, int]  # [start, end) line indexes
_Block = Callable[[Sequence[str], int], int]


def _spans(lines: Sequence[str]) -> list[Span]:
    """The line ranges worth keeping, merged and in order."""
    found: list[Span] = []
    i = 0
    while i < len(lines):
        block = _block_at(lines[i])
        end = block(lines, i) if block else i
        if end > i:
            found.append((i, end))
            i = end
            continue
        if _LINES.match(lines[i]):
            found.append((i, i + 1))
        elif _ARROW.match(lines[i]):
            found.append((max(0, i - 1), i + 1))
        i += 1
    return _merge(found)


def _block_at(line: str) -> _Block | None:
    """The reader of the multi-line block that starts at `line`, if one does."""
    if _PYTEST_START.match(line):
        return lambda ls, i: _until(ls, i, _PYTEST_END, 400)
    if _JEST_START.match(line):
        return lambda ls, i: _until(ls, i, _JEST_END, 200)
    if _MOCHA_START.match(line):
        return lambda ls, i: min(len(ls), i + 120)
    if _TRACEBACK.match(line):
        return _traceback
    if _PANIC.match(line):
        return lambda ls, i: min(len(ls), i + 30)  # the message and the first frames
    if _GO_FAIL.match(line):
        return _indented
    return None


def _until(lines: Sequence[str], start: int, end: re.Pattern[str], most: int) -> int:
    """From `start` through the first line matching `end` (at most `most` lines)."""
    for i in range(start + 1, min(len(lines), start + most)):
        if end.match(lines[i]):
            return i + 1
    return min(len(lines), start + most)


def _traceback(lines: Sequence[str], start: int) -> int:
    """A Python traceback: its indented frames, then the exception line that ends it."""
    for i in range(start + 1, min(len(lines), start + 200)):
        if lines[i] and not lines[i][0].isspace():
            return i + 1
    return min(len(lines), start + 200)


def _indented(lines: Sequence[str], start: int) -> int:
    """A go test failure: the `--- FAIL` line and the lines indented under it."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    i = start + 1
    while i < min(len(lines), start + 60):
        if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= indent:
            break
        i += 1
    return i


def _merge(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _join(lines: Sequence[str], spans: Sequence[Span]) -> str:
    parts = ["\n".join(lines[start:end]).strip("\n") for start, end in spans]
    return f"\n{GAP}\n".join(p for p in parts if p)


def _fit(text: str, budget: int) -> str:
    """`text` within `budget`: its start (the first failure in full) and its end (the
    summary), with what was cut between them marked."""
    if len(text) <= budget:
        return text
    head_size = budget * 2 // 5
    head = text[:head_size]
    head = head[: head.rfind("\n") + 1] if "\n" in head else head
    return head + CUT + tail(text, budget - len(head) - len(CUT)).removeprefix(CUT)
