"""Every codebot run on one pull request, kept in the PR body itself.

A second run on an issue, or a `/codebot` follow-up, re-renders the PR body from its own run
record; without this, what earlier runs did and cost would vanish from the PR. The body ends
with a hidden `<!-- codebot:runs [...] -->` line holding one summary per run; the next run
reads it back, adds itself, and shows them all as a table.

The body is editable by anyone with write access, so what is read back is data: parsed as
JSON, every field type-checked, anything else dropped, and only the newest runs kept. Only
the body's last line is read: codebot writes its list there, and text the model or an issue
wrote sits above it, so a list planted in that text is never taken for codebot's own.

CI follow-ups (codebot.ci_followup) are counted here too, not in memory, because every
workflow job starts from nothing: a CI follow-up run's own summary names the CI run it
answered (its kind is "ci-follow-up"), and bookkeeping entries, never shown in the table,
record an attempt *before* it runs and the stop once the cap is reached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from codebot.prose import neutralise
from codebot.records import RunRecord
from codebot.text import clip

MAX_RUNS = 30
_MARK = re.compile(r"<!-- codebot:runs (\[.*\]) -->")
CI_FOLLOW_UP = "ci-follow-up"  # a run that answered a CI failure
CI_ATTEMPT = "ci-attempt"  # an automatic CI follow-up, recorded as it starts
CI_STOPPED = "ci-stopped"  # the attempt cap was reached and the PR was told so
_BOOKKEEPING = frozenset({CI_ATTEMPT, CI_STOPPED})
_CI_KEY = re.compile(r"(?:run|suite):[0-9]{1,19}")
# How a CI follow-up's request begins (prompts/followup.md, then prompts/ci_failure.md).
_CI_REQUEST = re.compile(r"Follow-up requested on the pull request:\nCI follow-up \((\S+)\)")


MAX_EXPLANATION = 300  # characters of a run's explanation kept for later bodies


@dataclass(frozen=True)
class BaseCheck:
    """One check on the base branch, as the PR body shows it."""

    name: str
    passed: bool
    reason: str
    tests_passed: int | None
    tests_failed: int | None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    finished_at: str
    kind: str  # "task" or "follow-up"
    stop_reason: str
    iterations: int
    tokens: int
    cost_usd: float | None
    explanation: str = ""  # what the model said it changed (redacted, cut)
    base: tuple[BaseCheck, ...] = ()  # the checks on the base branch, from a run that began there
    ci: str = ""  # the CI run a CI entry answers: "run:<workflow run id>" or "suite:<id>"

    @property
    def bookkeeping(self) -> bool:
        """An entry that records a CI decision rather than a run: kept, never tabled."""
        return self.kind in _BOOKKEEPING


def ci_entry(kind: str, ci: str, at: str) -> RunSummary:
    """A bookkeeping entry (CI_ATTEMPT or CI_STOPPED) for CI run `ci`, made at `at`."""
    if kind not in _BOOKKEEPING or not _CI_KEY.fullmatch(ci):
        raise ValueError(f"not a CI entry: {kind} {ci}")
    return RunSummary(f"{kind}-{ci}", at, kind, "started" if kind == CI_ATTEMPT else "stopped",
                      0, 0, None, ci=ci)  # fmt: skip


def ci_attempts(runs: Sequence[RunSummary]) -> tuple[str, ...]:
    """The CI runs a PR had automatic follow-ups for, oldest first, each once: an attempt is
    recorded as it starts and again by its run. One whose key an edit mangled still counts."""
    keys: list[str] = []
    for run in runs:
        if run.kind in (CI_ATTEMPT, CI_FOLLOW_UP) and not (run.ci and run.ci in keys):
            keys.append(run.ci)
    return tuple(keys)


def handled_ci(runs: Sequence[RunSummary]) -> frozenset[str]:
    """The CI runs codebot already answered (with an attempt, its run, or its stop)."""
    kinds = (*_BOOKKEEPING, CI_FOLLOW_UP)
    return frozenset(r.ci for r in runs if r.kind in kinds and r.ci)


def with_entry(body: str | None, entry: RunSummary) -> str:
    """`body` with `entry` added to its hidden list and every other line as it was: how a CI
    follow-up records itself before its run (or instead of one) rewrites the body."""
    lines = (body or "").rstrip().splitlines()
    if lines and _MARK.fullmatch(lines[-1].strip()):
        lines = lines[:-1]
    return "\n".join([*lines, render(earlier_runs(body), entry)[-1]]) + "\n"


def summary_of(record: RunRecord, explanation: str = "") -> RunSummary:
    description = str(record.spec.get("description", ""))
    kind = "follow-up" if description.startswith("Follow-up requested") else "task"
    found = _CI_REQUEST.match(description)
    ci = found[1] if found and _CI_KEY.fullmatch(found[1]) else ""
    kind = CI_FOLLOW_UP if ci else kind
    base = () if record.continued else tuple(
        BaseCheck(c.name, c.passed, clip(neutralise(c.reason), 80), c.tests_passed,
                  None if c.tests_failed is None else c.tests_failed + (c.tests_errors or 0))
        for c in record.baseline
    )  # fmt: skip
    return RunSummary(
        record.run_id,
        record.finished_at,
        kind,
        record.stop_reason,
        len(record.iterations),
        record.usage.total_tokens,
        record.cost_usd,
        clip(neutralise(" ".join(explanation.split())), MAX_EXPLANATION),
        base,
        ci,
    )


def base_checks(runs: Sequence[RunSummary]) -> tuple[str, tuple[BaseCheck, ...]]:
    """The base branch's checks from the earliest run that began on it (its id too)."""
    first = next((r for r in runs if r.base), None)
    return (first.run_id, first.base) if first else ("", ())


def earlier_runs(body: str | None) -> tuple[RunSummary, ...]:
    """The run summaries a PR body carries (none if its last line is no readable list)."""
    lines = (body or "").rstrip().splitlines()
    found = _MARK.fullmatch(lines[-1].strip()) if lines else None
    if found is None:
        return ()
    try:
        items = json.loads(found[1])
    except ValueError:
        return ()
    runs = (
        [run for item in items if (run := _read(item)) is not None]
        if isinstance(items, list)
        else []
    )
    return tuple(runs[-MAX_RUNS:])


def render(earlier: Sequence[RunSummary], current: RunSummary) -> list[str]:
    """Markdown lines: the table of all runs (when there was an earlier one) and the hidden
    list the next run reads."""
    others = [r for r in earlier if r.run_id != current.run_id]
    runs = [*others[len(others) - (MAX_RUNS - 1) :], current]
    lines = _table([r for r in runs if not r.bookkeeping])
    payload = json.dumps([_plain(r) for r in runs], separators=(",", ":"))
    # Model prose travels inside an HTML comment: no `<`, `>` or `&` may appear raw in it.
    payload = payload.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return [*lines, f"<!-- codebot:runs {payload} -->"]


def _table(runs: Sequence[RunSummary]) -> list[str]:
    """The table of runs people read, when there is more than one."""
    lines: list[str] = []
    if len(runs) > 1:
        lines += [
            "### All codebot runs on this pull request",
            "",
            "| run id | finished | kind | stopped | iterations | tokens | cost |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| `{r.run_id}` | {r.finished_at} | {r.kind} | {r.stop_reason} | {r.iterations} "
            f"| {r.tokens:,} | {'unknown' if r.cost_usd is None else f'${r.cost_usd:.4f}'} |"
            for r in runs
        ]
        known = [r.cost_usd for r in runs if r.cost_usd is not None]
        total = f"${sum(known):.4f}" + (" (some unknown)" if len(known) < len(runs) else "")
        lines += ["", f"Total: {sum(r.tokens for r in runs):,} tokens, {total}.", ""]
    return lines


_SAFE = re.compile(r"[A-Za-z0-9:+._ -]{1,40}")


def _read(item: object) -> RunSummary | None:
    if not isinstance(item, dict):
        return None
    texts = [item.get(k) for k in ("run_id", "finished_at", "kind", "stop_reason")]
    numbers = [item.get(k) for k in ("iterations", "tokens")]
    cost = item.get("cost_usd")
    if not all(isinstance(t, str) and _SAFE.fullmatch(t) for t in texts):
        return None
    counts = [n for n in numbers if type(n) is int and n >= 0]
    if len(counts) != len(numbers):
        return None
    if cost is not None and (type(cost) not in (int, float) or not 0 <= cost < 1e6):
        return None
    run_id, finished_at, kind, stop_reason = (str(t) for t in texts)
    explanation = item.get("explanation", "")
    if not isinstance(explanation, str):
        return None
    ci = item.get("ci", "")
    # A mangled key is dropped but its entry kept: a CI attempt still counts towards the cap.
    ci = ci if isinstance(ci, str) and _CI_KEY.fullmatch(ci) else ""
    return RunSummary(run_id, finished_at, kind, stop_reason, counts[0], counts[1],
                      None if cost is None else float(cost),
                      clip(neutralise(explanation), MAX_EXPLANATION),
                      _base(item.get("base", [])), ci)  # fmt: skip


def _base(raw: object) -> tuple[BaseCheck, ...]:
    """Base checks read back from a body anyone with write access can edit: each field
    type-checked, anything else dropped."""
    if not isinstance(raw, list):
        return ()
    checks = []
    for entry in raw[:8]:
        if not (isinstance(entry, list) and len(entry) == 5):
            continue
        name, passed, reason, ok, failed = entry
        counts_ok = all(n is None or (type(n) is int and n >= 0) for n in (ok, failed))
        if (
            isinstance(name, str)
            and _SAFE.fullmatch(name)
            and type(passed) is bool
            and (isinstance(reason, str) and counts_ok)
        ):
            checks.append(BaseCheck(name, passed, clip(neutralise(reason), 80), ok, failed))
    return tuple(checks)


def _plain(run: RunSummary) -> dict[str, object]:
    ci = {"ci": run.ci} if run.ci else {}  # bodies of PRs without CI follow-ups stay as before
    return {
        "run_id": run.run_id,
        "finished_at": run.finished_at,
        "kind": run.kind,
        "stop_reason": run.stop_reason,
        "iterations": run.iterations,
        "tokens": run.tokens,
        "cost_usd": run.cost_usd,
        "explanation": run.explanation,
        "base": [[c.name, c.passed, c.reason, c.tests_passed, c.tests_failed] for c in run.base],
        **ci,
    }
