"""Best-of-N: several independent replies to one iteration's prompt, and the one whose work
goes on.

Each candidate is tried in turn on the run's work tree and sandbox (`Loop.step`: apply,
sync, check, the cheapest check first), and its files are put back as they were before the
next one is tried, so a loser's edits never reach the branch. The first candidate that
passes every check wins and the rest are not checked; when none does, the most promising
failure goes on: one whose checks ran, with the fewest failing checks, then the fewest
failing tests, then the earliest. Every candidate's tokens, cost and outcome are recorded on
the iteration (records.Candidate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from codebot.decisions import Decision, Green, LoopState, Retry, Stop
from codebot.edits import parse_edits
from codebot.edits.paths import normalise
from codebot.errors import ModelError
from codebot.records import Candidate, CandidateOutcome, CheckResult, Completion, Usage
from codebot.text import clip

if TYPE_CHECKING:
    from codebot.loop import Loop  # which steps each candidate


@dataclass(frozen=True)
class _Tried:
    """A candidate that was stepped: its decision, the state after it, and its files before
    and after (to undo it, and to redo it if it is chosen)."""

    index: int
    reply: Completion
    decision: Decision
    state: LoopState
    after: dict[str, bytes | None]


def best_of(
    loop: Loop, state: LoopState, replies: Sequence[Completion | ModelError]
) -> tuple[Decision, LoopState]:
    """The iteration's decision and the state it leads to, from `replies` (at least one of
    them a Completion)."""
    tried: list[_Tried] = []
    winner: _Tried | None = None
    for index, reply in enumerate(replies, 1):
        if isinstance(reply, ModelError):
            continue
        paths = sorted({normalise(e.path) for e in parse_edits(reply.text).edits})
        before = loop.tree.snapshot(paths)
        decision, after = loop.step(state, reply)
        attempt = _Tried(index, reply, decision, after, loop.tree.snapshot(paths))
        tried.append(attempt)
        if isinstance(decision, Green):
            winner = attempt
            break
        _put(loop, attempt.after, before)  # undone: the next candidate starts where this did
    if winner is None:
        winner = min(tried, key=_promise)
        _put(loop, loop.tree.snapshot(list(winner.after)), winner.after)
    return winner.decision, _merged(state, winner, tried, replies)


def _put(loop: Loop, now: dict[str, bytes | None], wanted: dict[str, bytes | None]) -> None:
    """Files from `now` to `wanted`, on the host and in the sandbox."""
    moved = sorted(p for p in wanted if now.get(p) != wanted[p])
    if moved:
        loop.tree.restore({p: wanted[p] for p in moved})
        loop.sandbox.sync(loop.tree.root, moved)


def _promise(t: _Tried) -> tuple[int, int, int, int]:
    """Lower is more promising: checks that ran beat none, then fewer failing checks, then
    fewer failing tests, then the earlier candidate."""
    checks = t.decision.checks
    if isinstance(t.decision, Stop) or not checks:
        return (1 if isinstance(t.decision, Retry) else 2, 0, 0, t.index)
    return (0, sum(not c.passed for c in checks), _failing(checks) or 0, t.index)


def _failing(checks: Sequence[CheckResult]) -> int | None:
    counts = [(c.tests_failed or 0) + (c.tests_errors or 0) for c in checks if c.name == "test"]
    counts += [1 for c in checks if c.name == "test" and not c.passed and c.tests_failed is None]
    return sum(counts) if counts else None


def _merged(
    state: LoopState,
    winner: _Tried,
    tried: list[_Tried],
    replies: Sequence[Completion | ModelError],
) -> LoopState:
    """The winner's state, with every candidate's tokens and cost counted and recorded."""
    done = {t.index: t for t in tried}
    records = []
    for index, reply in enumerate(replies, 1):
        if index in done:
            records.append(_record(done[index], chosen=done[index] is winner))
        elif isinstance(reply, ModelError):
            records.append(
                Candidate(index, "error", reply.one_line(), None, Usage(), 0.0, 0.0, False, "")
            )
        else:  # asked and paid for; an earlier candidate passed, so it was never tried
            records.append(
                Candidate(index, "not checked", "an earlier candidate passed every check",
                          None, reply.usage, reply.cost_usd, round(reply.latency_s, 3), False,
                          reply.text)
            )  # fmt: skip
    usage = sum((c.usage for c in records), Usage())
    cost: float | None = 0.0
    for c in records:
        cost = None if cost is None or c.cost_usd is None else cost + c.cost_usd
    last = winner.state.iterations[-1]
    model_s = max((c.model_s for c in records), default=last.model_s)  # asked at once
    iteration = replace(
        last,
        usage=usage,
        cost_usd=cost,
        model_s=model_s,
        duration_s=round(last.duration_s - last.model_s + model_s, 3),
        candidates=tuple(records),
    )
    return replace(
        winner.state,
        iterations=(*state.iterations, iteration),
        usage=state.usage + usage,
        cost_usd=None if state.cost_usd is None or cost is None else state.cost_usd + cost,
    )


def _record(t: _Tried, chosen: bool) -> Candidate:
    d = t.decision
    outcome: CandidateOutcome = "green" if isinstance(d, Green) else (
        "stop" if isinstance(d, Stop) else "retry"
    )  # fmt: skip
    if isinstance(d, Stop):
        detail = f"{d.reason}: {d.detail}"
    elif d.checks:
        detail = ", ".join(
            f"{c.name} {'passed' if c.passed else 'failed'}"
            + (f" ({c.tests_failed} failing)" if c.tests_failed else "")
            for c in d.checks
        )
    else:
        refused = sum(o.status == "refused" for o in d.outcomes)
        detail = f"checks not run ({refused} edit(s) refused)" if refused else "checks not run"
    return Candidate(
        index=t.index,
        outcome=outcome,
        detail=clip(detail, 300),
        failing_tests=_failing(d.checks),
        usage=t.reply.usage,
        cost_usd=t.reply.cost_usd,
        model_s=round(t.reply.latency_s, 3),
        chosen=chosen,
        reply=t.reply.text,
    )
