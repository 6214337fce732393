"""The lint check judged against the baseline: only what a change introduced fails it.

A fix must not be blamed for findings that were in a file before it was touched. Each finding
gets a key that survives line shifts (its file, code and message, with line numbers and other
numbers blanked), so the findings before and after a change compare as multisets: a key
whose count grew is new. Ruff (the default lint) is read from its JSON; a configured lint
command from its text. Pure apart from reading the baseline's ruff findings from the sandbox.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from codebot.errors import FileTooLarge
from codebot.records import CheckResult, ExecResult
from codebot.text import tail

# --force-exclude: a file the project excludes from lint stays excluded when named, as it
# was when the baseline linted the whole repo.
DEFAULT_LINT = "ruff check --no-cache --force-exclude --output-format=json-lines --"
# The whole repo's findings before any change (which files will change is not known yet),
# written to a file: stdout is capped, and a legacy repo can report more than the cap holds
# (CPython's stdlib: 14,000 findings, ~5 MB). Removed first, so no earlier command's file is read.
BASELINE_LINT_FILE = "/tmp/codebot-lint-baseline.jsonl"
BASELINE_LINT = (
    f"rm -f {BASELINE_LINT_FILE}; ruff check --no-cache --exit-zero --output-format=json-lines "
    f"--output-file={BASELINE_LINT_FILE} ."
)
MAX_LINT_BYTES = 32 << 20  # ~90,000 findings; more, and lint is judged as if none were known

# `path:12:5:` or `path:12` (then a space) in a line of lint output: the position to drop. A
# path has a slash or an extension, so a time of day or `host:port` is left alone.
_PATH = r"(?P<path>[^\s:'\"()]*/[^\s:'\"()]+|[^\s:'\"()]+\.[A-Za-z]\w*)"
_POSITION = re.compile(_PATH + r":\d+(?::\d+)?(?::|(?=[\s,]|$))")
# Other numbers in a message move with the code too ("from line 3", "(12 > 10)", a snippet's
# gutter); a rule code (E501) is one word and keeps its digits.
_NUMBER = re.compile(r"\b\d+\b")
_SPACE = re.compile(r"\s+")
# What is left of a line that only points at a place (rustc, ruff's full format: ` --> a.py:1:8`).
_POINTER = re.compile(r"^[\s\-=>|:]*$")


@dataclass(frozen=True)
class Finding:
    """One thing a lint reported: `key` stays the same when lines shift above it; `text` is
    what people and the model are shown."""

    key: str
    text: str


@dataclass(frozen=True)
class LintBaseline:
    """What the lint reported before any change: how many findings had each key, and the
    exit code it reported them with (a lint clean then may not fail now on old findings)."""

    findings: Mapping[str, int] = field(default_factory=dict)
    exit_code: int = 0


@dataclass(frozen=True)
class LintDiff:
    """`new`: findings beyond those of the same key before; `preexisting`: findings still
    there from before, left alone; `shown`: the new findings' text, in the lint's order."""

    new: int
    preexisting: int
    shown: str


def lint_command(
    lint: str | bool | None, changed: Sequence[str], *, python_repo: bool
) -> str | None:
    """The spec's lint command; or ruff on the changed Python files."""
    if isinstance(lint, str):
        return lint
    if lint is False or not python_repo:
        return None
    files = [path for path in dict.fromkeys(changed) if path.endswith((".py", ".pyi"))]
    if not files:
        return None
    return f"{DEFAULT_LINT} {' '.join(shlex.quote(f) for f in files)}"


def ruff_baseline(
    result: ExecResult, data: bytes | FileTooLarge | None, workdir: str
) -> LintBaseline | None:
    """Every ruff finding in the repo, from `BASELINE_LINT`'s run and the file it wrote
    (`BASELINE_LINT_FILE`, read back); None when ruff could not say. Once per run, measured
    in the sandbox (1 CPU) with the read-back: ~0.2 s for 70-300 files, 1.4 s for CPython's
    1,790-file stdlib (14,000 findings)."""
    if result.exit_code != 0 or result.timed_out or not isinstance(data, bytes):
        return None
    return LintBaseline(counts(ruff_findings(data.decode("utf-8", "replace"), workdir)))


def text_baseline(result: ExecResult) -> LintBaseline | None:
    """What a configured lint said before any change; None when its output was cut short."""
    if not _whole(result):
        return None
    return LintBaseline(counts(text_findings(result.output)), result.exit_code)


def judge_ruff(
    plain: CheckResult,
    result: ExecResult,
    before: LintBaseline | None,
    *,
    workdir: str,
    limit: int,
) -> CheckResult:
    """`plain` (the check judged by exit code) judged by ruff's findings instead: only new
    ones fail it, and its output is those (in at most `limit` characters). Ruff exits 1 for
    findings and 2 when it cannot lint, which stays a failure."""
    if not _whole(result) or result.exit_code not in (0, 1):
        return plain
    findings = ruff_findings(result.output, workdir)
    if result.exit_code and not findings:  # findings it could not say in JSON: not judged
        return plain
    diff = compare(before.findings if before else {}, findings)
    return replace(
        plain,
        passed=not diff.new,
        output=tail(diff.shown, limit),
        reason=lint_reason(diff, known=before is not None),
        preexisting=diff.preexisting,
    )


def judge_text(
    plain: CheckResult, result: ExecResult, before: LintBaseline | None, *, limit: int
) -> CheckResult:
    """A configured lint that failed passes if its output only repeats what it said before,
    and it failed before too: a lint clean then has no old findings to leave alone. Its
    output is then the new findings (in at most `limit` characters)."""
    if before is None or plain.passed or not _whole(result):
        return plain
    diff = compare(before.findings, text_findings(result.output))
    passed = not diff.new and before.exit_code != 0
    if not (diff.new or passed):
        return replace(plain, preexisting=diff.preexisting)
    return replace(
        plain,
        passed=passed,
        output=tail(diff.shown, limit),
        reason=lint_reason(diff, known=True),
        preexisting=diff.preexisting,
    )


def counts(findings: Sequence[Finding]) -> dict[str, int]:
    return dict(Counter(f.key for f in findings))


def ruff_findings(output: str, workdir: str) -> tuple[Finding, ...]:
    """The findings in ruff's `--output-format=json-lines` output. Lines that are not a
    finding (warnings on stderr, which shares the stream) are skipped; paths are made
    relative to `workdir`, as the changed files are named."""
    found: list[Finding] = []
    for line in output.splitlines():
        record = _json_object(line)
        if record is None or not isinstance(record.get("message"), str):
            continue
        path = _relative(str(record.get("filename", "")), workdir)
        location = record.get("location")
        row, column = _place(location if isinstance(location, dict) else {})
        code = record.get("code") or ""
        message = f"{code} {record['message']}".strip()
        found.append(Finding(_blank(f"{path}:: {message}"), f"{path}:{row}:{column}: {message}"))
    return tuple(found)


def text_findings(output: str) -> tuple[Finding, ...]:
    """The findings in any lint's text output: the lines that name a place (`path:line`),
    or, when no line does (`black --check`), every non-blank line. Summaries, ratings and
    code snippets around positioned findings change with every run and are not findings;
    a line that only points at a place takes the message line above it as its own."""
    lines = [line.rstrip() for line in output.splitlines()]
    placed = [i for i, line in enumerate(lines) if _POSITION.search(line)]
    if not placed:
        return tuple(Finding(_key(line), line) for line in lines if line.strip())
    found: list[Finding] = []
    for i in placed:
        head = _header(lines, i) if _POINTER.match(_POSITION.sub("", lines[i])) else None
        if head is None:
            found.append(Finding(_key(lines[i]), lines[i]))
        else:
            found.append(Finding(f"{_key(head)} @ {_key(lines[i])}", f"{head}\n{lines[i]}"))
    return tuple(found)


def compare(before: Mapping[str, int], after: Sequence[Finding]) -> LintDiff:
    """Which of `after` are new against the `before` multiset. When a key's count grew, every
    finding of that key is shown, with how many of them were there before: which one is new
    cannot be known once lines moved."""
    now = Counter(f.key for f in after)
    grown = {key for key, n in now.items() if n > before.get(key, 0)}
    groups: dict[str, list[str]] = {}
    for finding in after:
        if finding.key in grown:
            groups.setdefault(finding.key, []).append(finding.text)
    shown: list[str] = []
    for key, texts in groups.items():
        shown += texts
        old = before.get(key, 0)
        if old:
            was = "was" if old == 1 else "were"
            shown.append(f"  ({old} of these {len(texts)} {was} there before the change)")
    return LintDiff(
        new=sum(now[key] - before.get(key, 0) for key in grown),
        preexisting=sum(min(n, before.get(key, 0)) for key, n in now.items()),
        shown="\n".join(shown),
    )


def lint_reason(diff: LintDiff, *, known: bool) -> str:
    """E.g. "2 new findings (3 pre-existing left alone)"; "" for a clean pass. `known`: a
    baseline was there to compare with (without one, no finding can be called new)."""
    left = f" ({diff.preexisting} pre-existing left alone)" if diff.preexisting else ""
    if not diff.new:
        return f"no new findings{left}" if left else ""
    kind = "new finding" if known else "finding"
    return f"{diff.new} {kind}{'' if diff.new == 1 else 's'}{left}"


def _whole(result: ExecResult) -> bool:
    """Whether the output is all the command had to say: not cut short by the time or
    memory limit, nor by the sandbox's output cap."""
    return not (result.timed_out or result.oom_killed or result.truncated)


def _key(line: str) -> str:
    return _blank(_POSITION.sub(r"\g<path>::", line))


def _blank(text: str) -> str:
    return _SPACE.sub(" ", _NUMBER.sub("#", text)).strip()


def _header(lines: Sequence[str], index: int) -> str | None:
    """The nearest non-blank line above `index` that names no place itself."""
    for line in reversed(lines[:index]):
        if line.strip():
            return None if _POSITION.search(line) else line.strip()
    return None


def _place(location: Mapping[str, Any]) -> tuple[int, int]:
    row, column = location.get("row"), location.get("column")
    return (row if isinstance(row, int) else 0, column if isinstance(column, int) else 0)


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _relative(path: str, workdir: str) -> str:
    root = workdir.rstrip("/") + "/"
    return path[len(root) :] if path.startswith(root) else posixpath.normpath(path)
