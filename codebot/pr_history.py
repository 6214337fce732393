"""Every codebot run on one pull request, kept in the PR body itself.

A second run on an issue, or a `/codebot` follow-up, re-renders the PR body from its own run
record; without this, what earlier runs did and cost would vanish from the PR. The body ends
with a hidden `<!-- codebot:runs [...] -->` line holding one summary per run; the next run
reads it back, adds itself, and shows them all as a table.

The body is editable by anyone with write access, so what is read back is data: parsed as
JSON, every field type-checked, anything else dropped, and only the newest runs kept. Only
the body's last line is read: codebot writes its list there, and text the model or an issue
wrote sits above it, so a list planted in that text is never taken for codebot's own.
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


def summary_of(record: RunRecord, explanation: str = "") -> RunSummary:
    description = str(record.spec.get("description", ""))
    kind = "follow-up" if description.startswith("Follow-up requested") else "task"
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
    payload = json.dumps([_plain(r) for r in runs], separators=(",", ":"))
    # Model prose travels inside an HTML comment: no `<`, `>` or `&` may appear raw in it.
    payload = payload.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return [*lines, f"<!-- codebot:runs {payload} -->"]


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
    return RunSummary(run_id, finished_at, kind, stop_reason, counts[0], counts[1],
                      None if cost is None else float(cost),
                      clip(neutralise(explanation), MAX_EXPLANATION),
                      _base(item.get("base", [])))  # fmt: skip


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
    }
