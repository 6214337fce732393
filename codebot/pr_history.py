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

from codebot.records import RunRecord

MAX_RUNS = 30
_MARK = re.compile(r"<!-- codebot:runs (\[.*\]) -->")


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    finished_at: str
    kind: str  # "task" or "follow-up"
    stop_reason: str
    iterations: int
    tokens: int
    cost_usd: float | None


def summary_of(record: RunRecord) -> RunSummary:
    description = str(record.spec.get("description", ""))
    kind = "follow-up" if description.startswith("Follow-up requested") else "task"
    return RunSummary(
        record.run_id,
        record.finished_at,
        kind,
        record.stop_reason,
        len(record.iterations),
        record.usage.total_tokens,
        record.cost_usd,
    )


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
    return RunSummary(run_id, finished_at, kind, stop_reason, counts[0], counts[1],
                      None if cost is None else float(cost))  # fmt: skip


def _plain(run: RunSummary) -> dict[str, object]:
    return {
        "run_id": run.run_id,
        "finished_at": run.finished_at,
        "kind": run.kind,
        "stop_reason": run.stop_reason,
        "iterations": run.iterations,
        "tokens": run.tokens,
        "cost_usd": run.cost_usd,
    }
