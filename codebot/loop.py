"""The agent loop as a small state machine: `Loop.step(state, reply) -> (decision, state)`.

A decision is `Green`, `Retry(feedback)` or `Stop(reason, detail)` and carries what the reply
did (edit outcomes, checks). Every rule that ends a run short of green is data in `StopRules`.
`run_loop` is the thin driver that does the I/O: ask the model, step, report. The model, the
sandbox and the work tree come in through codebot.protocols: no SDK, no concrete class. The
decisions, the state and the stop rules are data in codebot.decisions.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from codebot import context, prompts
from codebot.candidates import best_of
from codebot.checks import Expectation, run_checks
from codebot.decisions import END, Decision, Green, LoopState, Retry, Stop, StopRules
from codebot.edits import ParsedReply, parse_edits
from codebot.errors import ModelError, SandboxError, WorkspaceError
from codebot.feedback import feedback_for_model
from codebot.protocols import Lanes, ManyModel, Model, Recall, Sandbox, Verifier, Worktree
from codebot.records import (
    Completion,
    Edit,
    EditOutcome,
    GroundingPassage,
    Iteration,
    Message,
    Usage,
)
from codebot.spec import TaskSpec
from codebot.stops import StopReason
from codebot.text import clip

# A reply may say the task is already done instead of sending edits (see system.md).
NOTHING_TO_DO = re.compile(r"(?im)^\s*NOTHING TO CHANGE\s*:\s*(.*)$")


@dataclass(frozen=True)
class LoopResult:
    iterations: tuple[Iteration, ...]
    stop_reason: StopReason
    stop_detail: str
    usage: Usage
    cost_usd: float | None
    changed: tuple[str, ...]
    grounding: tuple[GroundingPassage, ...] = ()

    @classmethod
    def of(cls, state: LoopState, end: Green | Stop, max_iterations: int) -> LoopResult:
        reason: StopReason = "passed" if isinstance(end, Green) else end.reason
        detail = (
            f"in iteration {len(state.iterations)} of {max_iterations}"
            if isinstance(end, Green)
            else end.detail
        )
        return cls(
            iterations=state.iterations,
            stop_reason=reason,
            stop_detail=detail,
            usage=state.usage,
            cost_usd=state.cost_usd,
            changed=tuple(sorted(state.changed)),
            grounding=state.grounding,
        )


@dataclass(frozen=True)
class Loop:
    """What a step needs: the task, the rules, and the world behind its protocols.
    `started` is when the run began, on `clock` (the wall-time budget counts from it)."""

    spec: TaskSpec
    rules: StopRules
    tree: Worktree
    sandbox: Sandbox
    python_repo: bool
    expect: Expectation = field(default_factory=Expectation)
    baseline_green: bool = False  # every check passed before any change
    continued: bool = False  # the branch already holds codebot's commits (a rerun)
    tracked: tuple[str, ...] = ()  # the files of the repository (for SHOW and tracebacks)
    model: str | None = None  # the model's name, to count its tokens exactly when known
    show_tokens: int = 4_000  # the most an answer to SHOW requests may take
    feedback_tokens: int = 2_000
    recall: Recall | None = None  # team knowledge for the feedback on failing checks
    candidates: int = 1  # replies asked per iteration (best-of-N, codebot.candidates)
    lanes: Lanes | None = None  # where else candidates are checked, side by side
    verifier: Verifier | None = None  # the verification, checked beside each iteration's
    clock: Callable[[], float] = time.monotonic
    started: float = field(default_factory=time.monotonic)

    def step(self, state: LoopState, reply: Completion) -> tuple[Decision, LoopState]:
        """Judge one reply: apply its edits, run the checks if a file changed, decide."""
        began = self.clock()
        number = state.next_number
        parsed = parse_edits(reply.text)
        key = _fingerprint(parsed.edits)
        earlier = state.tried.get(key) if parsed.edits else None
        asked = context.requests(reply.text)
        fresh = {repr(r) for r in asked} - state.asked
        decision: Decision
        originals = state.originals
        if not parsed.edits and asked:
            decision = Retry(prompts.render("show_answer.md", shown=self._answer(asked)))
        elif not parsed.edits:
            decision = self._without_edits(reply.text, parsed)
        elif earlier is not None:
            decision = Retry(prompts.snippet("repeated_edits.md", earlier=earlier))
        else:
            decision, originals = self._attempt(number, parsed, state)
        if asked and parsed.edits and isinstance(decision, Retry):
            decision = replace(decision, feedback=f"{decision.feedback}\n{self._answer(asked)}")
        applied = {o.path for o in decision.outcomes if o.status == "applied"}
        looked = bool(fresh) and not parsed.edits  # asking for new code is not idling
        state = replace(
            state,
            tried={**state.tried, key: number} if parsed.edits and earlier is None else state.tried,
            changed=state.changed | applied,
            originals=originals,
            asked=state.asked | fresh,
            idle=0 if applied else state.idle + (0 if looked else 1),
            repeats=state.repeats + 1 if earlier is not None else 0,
            grounding=(*state.grounding, *decision.grounding)
            if isinstance(decision, Retry)
            else state.grounding,
        )
        if isinstance(decision, Retry) and (stop := self.rules.after_reply(state)):
            decision = Stop(stop.reason, stop.detail, decision.outcomes, decision.checks)
        return decision, _recorded(state, reply, decision, self.clock() - began)

    def resume(self, state: LoopState, prior: Sequence[Iteration]) -> LoopState:
        """Replay an interrupted run's iterations from their recorded replies (no model call,
        no checks); their edits must land exactly as they did."""
        for it in prior:
            parsed = parse_edits(it.reply)
            before = {e.block: self.tree.read(e.path) for e in parsed.edits}
            outcomes = self.tree.apply(parsed.edits) if parsed.edits else ()
            if [o.status for o in outcomes] != [e.status for e in it.edits]:
                raise WorkspaceError(
                    f"cannot resume: the edits of iteration {it.number} no longer apply as "
                    "recorded",
                    "start a new run",
                )
            state = replace(
                state,
                history=(
                    *state.history,
                    Message("assistant", it.reply),
                    Message("user", it.feedback),
                ),
                iterations=(*state.iterations, it),
                usage=state.usage + it.usage,
                cost_usd=_add(state.cost_usd, it.cost_usd),
                tried={**state.tried, _fingerprint(parsed.edits): it.number}
                if parsed.edits
                else state.tried,
                changed=state.changed | {o.path for o in outcomes if o.status == "applied"},
                originals=_firsts(state.originals, before, outcomes),
            )
        if state.changed:
            self.sandbox.sync(self.tree.root, sorted(state.changed))
        return state

    def elapsed(self) -> float:
        return self.clock() - self.started

    def _without_edits(self, text: str, parsed: ParsedReply) -> Decision:
        """A reply with no edit: a claim that nothing is left to do (taken only when every
        check passed before any change), or a reply to teach the edit format to."""
        claim = NOTHING_TO_DO.search(text)
        if claim and self.baseline_green:
            return Stop("nothing_to_do", clip(claim.group(1).strip() or "no reason given", 300))
        if self.baseline_green and self.continued and not claim:
            # A rerun on a branch that already passes, and a reply that proposes nothing.
            said = " ".join(text.split())
            return Stop("nothing_to_do", clip(f"the branch already passes its checks; {said}", 300))
        if claim:
            return Retry(prompts.snippet("checks_fail_so_work_left.md"))
        problems = "".join(f"\n- {p}" for p in parsed.problems)
        return Retry(prompts.snippet("no_edits.md", problems=problems))

    def _attempt(
        self, number: int, parsed: ParsedReply, state: LoopState
    ) -> tuple[Decision, Mapping[str, str | None]]:
        """Apply, sync, check; and the text each file had before the run first changed it."""
        before = {e.block: self.tree.read(e.path) for e in parsed.edits}
        outcomes = self.tree.apply(parsed.edits)
        originals = _firsts(state.originals, before, outcomes)
        touched = sorted({o.path for o in outcomes if o.status == "applied"})
        if touched:  # synced now, so a file applied beside a refused block is never stale
            self.sandbox.sync(self.tree.root, touched)
        edited = {o.path: before.get(o.block) or "" for o in outcomes if o.status == "applied"}
        changes = {p: (text, self.tree.read(p) or "") for p, text in edited.items()}
        unread = "".join(f"\n- {p}" for p in parsed.problems)
        notes = [prompts.snippet("unreadable_parts.md", problems=unread)] if unread else []
        refused = any(o.status == "refused" for o in outcomes)
        if refused or not touched:
            notes.append(prompts.snippet("refused_blocks.md" if refused else "changed_nothing.md"))
            said = self._feedback(number, outcomes, "\n".join(notes), changes, "")
            return Retry(said, outcomes), originals
        changed = sorted(state.changed | set(touched))
        existing = [p for p in changed if self.tree.exists(p)]
        if self.verifier is not None:
            self.verifier.start(changed)
        checks = self.verifier.instead() if self.verifier is not None else None
        if checks is None:  # the loop's own checks, in its long-lived sandbox
            checks = run_checks(
                self.sandbox, self.spec, existing, python_repo=self.python_repo, expect=self.expect
            )
        if all(c.passed for c in checks):
            if any(self.tree.read(p) != originals.get(p) for p in changed):
                return Green(outcomes, checks), originals
            notes.append(prompts.snippet("no_net_change.md"))
        if self.verifier is not None:
            self.verifier.cancel()
        failing = feedback_for_model(checks, self.feedback_tokens)
        failures = context.check_output(failing)
        text = "\n".join([*notes, failures]) if notes else failures
        said = self._feedback(number, outcomes, text, changes, failing)
        grounding: tuple[GroundingPassage, ...] = ()
        if self.recall is not None:  # new passages only: what was shown is in the history
            shown = {g.source for g in state.grounding}
            passages = tuple(self.recall(changed, failing, shown))
            if passages:
                said = f"{said}\n\n{context.render_knowledge(passages).rstrip()}"
                grounding = GroundingPassage.shown(passages, number)
        return Retry(said, outcomes, checks, grounding), originals

    def _feedback(
        self,
        number: int,
        outcomes: Sequence[EditOutcome],
        checks: str,
        changes: Mapping[str, tuple[str, str]],
        failing: str,
    ) -> str:
        """The next message: what each edit did, what failed, and the changed regions and
        failing frames of the code as it is now (never whole files)."""
        shown = context.feedback_excerpts(
            changes, failing, self.tree.read, self.tracked, self.feedback_tokens, model=self.model
        )
        return context.render_feedback(
            number, self.spec.max_iterations, outcomes, checks, (), shown=shown
        )

    def _answer(self, asked: Sequence[context.Request]) -> str:
        return context.render_requests(
            asked, self.tree.read, self.show_tokens, self.tracked, model=self.model
        )


def run_loop(
    loop: Loop,
    model: Model,
    state: LoopState,
    on_iteration: Callable[[tuple[Iteration, ...]], None] = lambda _: None,
) -> LoopResult:
    """Ask, step, repeat until a decision ends the run. A failing endpoint, a failing sandbox
    and Ctrl-C end it too, as a Stop; a reply already paid for stays in the record."""
    end: Green | Stop
    while True:
        if stop := loop.rules.before_call(state, loop.elapsed(), model, loop.model):
            end = stop
            break
        try:
            replies = _ask(model, state.history, loop.candidates)
        except ModelError as exc:
            end = Stop("model_error", exc.one_line())
            break
        except KeyboardInterrupt:
            end = Stop("interrupted", f"interrupted during iteration {state.next_number}")
            break
        reply = next(r for r in replies if isinstance(r, Completion))
        try:
            if len(replies) == 1:
                decision, state = loop.step(state, reply)
            else:
                decision, state = best_of(loop, state, replies)
        except (SandboxError, KeyboardInterrupt) as exc:
            end = _cut_short(exc, state.next_number)
            state = _recorded(state, reply, end, 0.0)
            break
        on_iteration(state.iterations)
        if not isinstance(decision, Retry):
            end = decision
            break
    return LoopResult.of(state, end, loop.rules.max_iterations)


def _ask(model: Model, history: Sequence[Message], n: int) -> list[Completion | ModelError]:
    """The iteration's replies: one, or `n` candidates from a model that can give several."""
    if n > 1 and isinstance(model, ManyModel):
        return model.complete_many(history, n)
    return [model.complete(history)]


def _cut_short(exc: BaseException, number: int) -> Stop:
    if isinstance(exc, SandboxError):
        return Stop("sandbox_error", exc.one_line())
    return Stop("interrupted", f"interrupted during iteration {number}")


def _recorded(state: LoopState, reply: Completion, decision: Decision, step_s: float) -> LoopState:
    """`state` with the reply's iteration recorded, its cost counted and, on a Retry, the
    reply and the feedback added to the conversation."""
    iteration = Iteration(
        number=state.next_number,
        prompt_chars=sum(len(m.content) for m in state.history),
        reply=reply.text,
        usage=reply.usage,
        cost_usd=reply.cost_usd,
        model_s=round(reply.latency_s, 3),
        edits=decision.outcomes,
        checks=decision.checks,
        decision=END[type(decision)],
        feedback=decision.feedback if isinstance(decision, Retry) else "",
        duration_s=round(reply.latency_s + step_s, 3),
        rung=reply.rung,
    )
    history = state.history
    if isinstance(decision, Retry):
        history = (*history, Message("assistant", reply.text), Message("user", decision.feedback))
    return replace(
        state,
        history=history,
        iterations=(*state.iterations, iteration),
        usage=state.usage + reply.usage,
        cost_usd=_add(state.cost_usd, reply.cost_usd),
    )


def _firsts(
    known: Mapping[str, str | None],
    before: Mapping[int, str | None],
    outcomes: Sequence[EditOutcome],
) -> Mapping[str, str | None]:
    """`known` plus, for each file an outcome changed for the first time, its text before."""
    new = {o.path: before.get(o.block) for o in outcomes if o.status == "applied"}
    return {**new, **known}


def _add(total: float | None, cost: float | None) -> float | None:
    return None if total is None or cost is None else total + cost


def _fingerprint(edits: Sequence[Edit]) -> str:
    """Edits are the same attempt when they change the same text, whatever their numbering."""
    content = tuple((e.path, e.search, e.replace, e.delete) for e in edits)
    return hashlib.sha256(repr(content).encode()).hexdigest()
