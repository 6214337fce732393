"""Best-of-N: several independent replies to one iteration's prompt, and the one whose work
goes on.

Each candidate is stepped (`Loop.step`: apply, sync, check, the cheapest check first) in a
place of its own: the run's work tree and sandbox, or one of the run's lanes (protocols.Lanes:
a copy of the work tree with a sandbox of its own), one worker per place, so with W places W
candidates are checked at once. A place is brought to the run's files as the iteration began
before each candidate, and put back after, so a loser's edits never reach the branch. The
candidates are taken in order and none is started once one has passed every check, so the
winner is always the lowest-numbered candidate that passes, whatever the timing; when none
does, the most promising failure goes on: one whose checks ran, with the fewest failing
checks, then the fewest failing tests, then the earliest. Its files are then put into the
run's own tree and sandbox. Every candidate's tokens, cost, check time and outcome are
recorded on the iteration (records.Candidate).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from codebot.decisions import Decision, Green, LoopState, Retry, Stop
from codebot.edits import parse_edits
from codebot.edits.paths import normalise
from codebot.errors import ModelError, SandboxError
from codebot.records import Candidate, CandidateOutcome, CheckResult, Completion, Usage
from codebot.text import clip

if TYPE_CHECKING:
    from codebot.knowledge import Passage
    from codebot.loop import Loop  # which steps each candidate
    from codebot.protocols import Recall

Files = dict[str, bytes | None]


@dataclass(frozen=True)
class _Tried:
    """A candidate that was stepped: its decision, the state after it, its files after (to
    put them into the run's tree if it is chosen), and how long its step took."""

    index: int
    reply: Completion
    decision: Decision
    state: LoopState
    after: Files
    check_s: float


class _Queue:
    """The candidates in order, handed to the workers one at a time; none once one passed."""

    def __init__(self, order: Sequence[tuple[int, Completion]]) -> None:
        self._left = list(order)
        self._lock = threading.Lock()
        self.passed = False
        self.stopped = False  # Ctrl-C in the main thread: take no more

    def take(self) -> tuple[int, Completion] | None:
        with self._lock:
            if self.passed or self.stopped or not self._left:
                return None
            return self._left.pop(0)

    def give_back(self, item: tuple[int, Completion]) -> None:
        """A candidate taken by a worker that cannot check it, back at the front."""
        with self._lock:
            self._left.insert(0, item)

    def done(self, decision: Decision) -> None:
        if isinstance(decision, Green):
            with self._lock:
                self.passed = True


def best_of(
    loop: Loop, state: LoopState, replies: Sequence[Completion | ModelError]
) -> tuple[Decision, LoopState]:
    """The iteration's decision and the state it leads to, from `replies` (at least one of
    them a Completion)."""
    began = loop.clock()
    order = [(i, r) for i, r in enumerate(replies, 1) if isinstance(r, Completion)]
    paths = {i: _paths(r) for i, r in order}
    start = loop.tree.snapshot(sorted(set(state.changed).union(*paths.values())))
    queue = _Queue(order)
    workers = min(len(order), 1 + (loop.lanes.count if loop.lanes is not None else 0))
    tried: dict[int, _Tried] = {}
    if workers == 1:  # in this thread, as Ctrl-C and a sandbox fault expect
        _work(lambda: loop, queue, state, start, paths, tried, own=True)
    else:
        _at_once(loop, workers, queue, state, start, paths, tried)
    greens = [t for t in tried.values() if isinstance(t.decision, Green)]
    winner = min(greens, key=lambda t: t.index) if greens else min(tried.values(), key=_promise)
    wanted = {**start, **winner.after}
    _put(loop, loop.tree.snapshot(sorted(wanted)), wanted)  # the run's own place: the winner's
    wall = loop.clock() - began
    return winner.decision, _merged(state, winner, list(tried.values()), replies, wall)


def _at_once(
    loop: Loop,
    workers: int,
    queue: _Queue,
    state: LoopState,
    start: Files,
    paths: dict[int, frozenset[str]],
    tried: dict[int, _Tried],
) -> None:
    """One thread per place, each stepping candidates from `queue` until none is left. The
    first error by candidate number is raised once every thread has ended."""
    lanes = loop.lanes
    assert lanes is not None
    recall = _Locked(loop.recall) if loop.recall is not None else None
    shared = replace(loop, recall=recall)
    errors: dict[int, BaseException] = {}

    def place(k: int) -> Callable[[], Loop]:
        if k == 0:
            return lambda: shared

        def made() -> Loop:
            tree, sandbox = lanes.lane(k - 1)
            return replace(shared, tree=tree, sandbox=sandbox)

        return made

    def worker(k: int) -> None:
        try:
            _work(place(k), queue, state, start, paths, tried, own=k == 0)
        except _LaneUnavailable:
            pass  # its candidates go to the other places; the lane says why (lanes.notes)
        except BaseException as exc:  # raised in the main thread below
            queue.stopped = True
            errors[k] = exc

    threads = [
        threading.Thread(target=worker, args=(k,), name=f"codebot-candidate-{k}", daemon=True)
        for k in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        queue.stopped = True
        raise
    if errors:
        raise errors[min(errors)]


class _LaneUnavailable(Exception):
    """A lane could not be made; its worker takes no candidates."""


def _work(
    place: Callable[[], Loop],
    queue: _Queue,
    state: LoopState,
    start: Files,
    paths: dict[int, frozenset[str]],
    tried: dict[int, _Tried],
    own: bool,
) -> None:
    """Step candidates from `queue` in one place, each on the run's files as the iteration
    began; then put a lane back to them (the run's `own` place gets the winner's next)."""
    item = queue.take()
    if item is None:
        return
    try:
        here = place()
    except SandboxError as exc:
        queue.give_back(item)
        raise _LaneUnavailable(str(exc)) from exc
    dirty: set[str] = set()
    try:
        while item is not None:
            index, reply = item
            wanted = {p: start[p] for p in dirty | set(state.changed) | paths[index]}
            _put(here, here.tree.snapshot(sorted(wanted)), wanted)
            began = here.clock()
            decision, after = here.step(state, reply)
            taken = here.clock() - began
            files = here.tree.snapshot(sorted(paths[index]))
            tried[index] = _Tried(index, reply, decision, after, files, round(taken, 3))
            dirty |= paths[index]
            queue.done(decision)
            item = queue.take()
    finally:
        if not own:
            back = {p: start[p] for p in dirty}
            _put(here, here.tree.snapshot(sorted(back)), back)


class _Locked:
    """A Recall used by one worker at a time (it reads one SQLite connection)."""

    def __init__(self, recall: Recall) -> None:
        self._recall = recall
        self._lock = threading.Lock()

    def __call__(
        self, files: Sequence[str], failures: str, skip: Collection[str]
    ) -> Sequence[Passage]:
        with self._lock:
            return self._recall(files, failures, skip)


def _paths(reply: Completion) -> frozenset[str]:
    return frozenset(normalise(e.path) for e in parse_edits(reply.text).edits)


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
    wall_s: float,
) -> LoopState:
    """The winner's state, with every candidate's tokens and cost counted and recorded; the
    iteration took the slowest reply (asked at once) and the checks of all (`wall_s`)."""
    done = {t.index: t for t in tried}
    records = []
    for index, reply in enumerate(replies, 1):
        if index in done:
            records.append(_record(done[index], chosen=done[index] is winner))
        elif isinstance(reply, ModelError):
            records.append(
                Candidate(index, "error", reply.one_line(), None, Usage(), 0.0, 0.0, False, "")
            )  # a failed call: its cost is taken as nothing
        else:  # asked and paid for; an earlier candidate passed, so it was never tried
            records.append(
                Candidate(index, "not checked", "an earlier candidate passed every check",
                          None, reply.usage, reply.cost_usd, round(reply.latency_s, 3), False,
                          reply.text, rung=reply.rung)
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
        duration_s=round(model_s + wall_s, 3),
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
        check_s=t.check_s,
        rung=t.reply.rung,
    )
