"""The agent loop: ask the model, apply its edits, run the checks, decide, repeat.

Each step ends in one of three decisions (Green, Retry, GiveUp); every stop reason is data.
No SDK is imported here: the model and the sandbox come in through codebot.protocols.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codebot import context
from codebot.checks import feedback_for_model, run_checks
from codebot.edits import apply_edits, parse_edits
from codebot.errors import ModelError, SandboxError, WorkspaceError
from codebot.protocols import Model, Sandbox
from codebot.records import (
    CheckResult,
    Completion,
    Edit,
    EditOutcome,
    Iteration,
    Message,
    StopReason,
    Usage,
)
from codebot.spec import TaskSpec

NO_EDITS = (
    "Your reply contained no edits I could apply. Send SEARCH/REPLACE blocks (file path on its "
    "own line, then <<<<<<< SEARCH / ======= / >>>>>>> REPLACE) or a ```diff block."
)


@dataclass(frozen=True)
class Green:
    pass


@dataclass(frozen=True)
class Retry:
    feedback: str


@dataclass(frozen=True)
class GiveUp:
    reason: StopReason
    detail: str


Decision = Green | Retry | GiveUp


@dataclass(frozen=True)
class Limits:
    protected: tuple[str, ...]
    python_repo: bool
    feedback_tokens: int = 2_000


@dataclass(frozen=True)
class LoopResult:
    iterations: tuple[Iteration, ...]
    stop_reason: StopReason
    stop_detail: str
    usage: Usage
    cost_usd: float | None
    changed: tuple[str, ...]


@dataclass
class _State:
    """What the loop remembers between iterations."""

    usage: Usage
    cost: float | None
    tried: dict[str, int]
    changed: set[str]


def run_loop(
    spec: TaskSpec,
    model: Model,
    sandbox: Sandbox,
    root: Path,
    messages: Sequence[Message],
    limits: Limits,
    on_iteration: Callable[[Iteration], None] | None = None,
    prior: Sequence[Iteration] = (),
) -> LoopResult:
    """Iterate until green, a limit, or an error. `prior` iterations (from an interrupted
    run's record) are replayed from their recorded replies: no model call, no checks."""
    state = _State(Usage(), 0.0, {}, set())
    iterations: list[Iteration] = list(prior)
    history = list(messages)
    stop: GiveUp = GiveUp("max_iterations", f"checks still failing after {spec.max_iterations}")
    for it in prior:
        _replay(it, root, limits, state)
        history += [Message("assistant", it.reply), Message("user", it.feedback)]
    if state.changed:
        sandbox.sync(root, sorted(state.changed))
    number = len(prior) + 1
    try:
        for number in range(len(prior) + 1, spec.max_iterations + 1):
            if over := _over_budget(spec, state, history):
                stop = over
                break
            started = time.monotonic()
            completion = model.complete(history)
            state.usage += completion.usage
            state.cost = _add_cost(state.cost, completion.cost_usd)
            try:
                decision, outcomes, checks = _step(
                    number, completion.text, spec, sandbox, root, limits, state
                )
            except (SandboxError, KeyboardInterrupt) as exc:
                # Keep the reply that was paid for in the record, then stop as below.
                reason: StopReason = (
                    "sandbox_error" if isinstance(exc, SandboxError) else "interrupted"
                )
                cut = GiveUp(reason, "cut short")
                iterations.append(_record(number, history, completion, (), (), cut, started))
                raise
            iterations.append(
                _record(number, history, completion, outcomes, checks, decision, started)
            )
            if on_iteration:
                on_iteration(iterations[-1])
            if isinstance(decision, Green):
                stop = GiveUp("passed", f"in iteration {number} of {spec.max_iterations}")
                break
            if isinstance(decision, GiveUp):
                stop = decision
                break
            history += [Message("assistant", completion.text), Message("user", decision.feedback)]
    except ModelError as exc:
        stop = GiveUp("model_error", exc.one_line())
    except SandboxError as exc:
        stop = GiveUp("sandbox_error", exc.one_line())
    except KeyboardInterrupt:
        stop = GiveUp("interrupted", f"interrupted during iteration {number}")
    return LoopResult(
        tuple(iterations),
        stop.reason,
        stop.detail,
        state.usage,
        state.cost,
        tuple(sorted(state.changed)),
    )


def _step(
    number: int,
    reply: str,
    spec: TaskSpec,
    sandbox: Sandbox,
    root: Path,
    limits: Limits,
    state: _State,
) -> tuple[Decision, tuple[EditOutcome, ...], tuple[CheckResult, ...]]:
    parsed = parse_edits(reply)
    if not parsed.edits:
        problems = "".join(f"\n- {p}" for p in parsed.problems)
        return Retry(NO_EDITS + problems), (), ()
    key = _fingerprint(parsed.edits)
    if key in state.tried:
        earlier = state.tried[key]
        return (
            Retry(
                f"These edits are identical to iteration {earlier}, which failed. "
                "Do not resend them; try a different change."
            ),
            (),
            (),
        )
    state.tried[key] = number
    outcomes = apply_edits(root, parsed.edits, limits.protected)
    touched = sorted({o.path for o in outcomes if o.status == "applied"})
    state.changed.update(touched)
    shown = _current_files(root, {o.path for o in outcomes})
    unread = "".join(f"\n- {p}" for p in parsed.problems)
    if unread:
        unread = "Parts of your reply could not be read as edits:" + unread + "\n"
    if any(o.status == "refused" for o in outcomes):
        note = "Refused blocks were not applied and no checks were run; fix and resend only those."
        fb = context.render_feedback(number, spec.max_iterations, outcomes, unread + note, shown)
        return Retry(fb), outcomes, ()
    sandbox.sync(root, touched)
    existing = sorted(p for p in state.changed if (root / p).is_file())
    checks = run_checks(sandbox, spec, existing, python_repo=limits.python_repo)
    if all(c.passed for c in checks):
        return Green(), outcomes, checks
    failures = unread + context.check_output(feedback_for_model(checks, limits.feedback_tokens))
    return (
        Retry(context.render_feedback(number, spec.max_iterations, outcomes, failures, shown)),
        outcomes,
        checks,
    )


def _replay(it: Iteration, root: Path, limits: Limits, state: _State) -> None:
    """Re-apply a recorded iteration's edits; they must land exactly as they did."""
    parsed = parse_edits(it.reply)
    outcomes = apply_edits(root, parsed.edits, limits.protected) if parsed.edits else ()
    if [o.status for o in outcomes] != [e.status for e in it.edits]:
        raise WorkspaceError(
            f"cannot resume: the edits of iteration {it.number} no longer apply as recorded",
            "start a new run",
        )
    if parsed.edits:
        state.tried[_fingerprint(parsed.edits)] = it.number
    state.changed.update(o.path for o in outcomes if o.status == "applied")
    state.usage += it.usage
    state.cost = _add_cost(state.cost, it.cost_usd)


def _over_budget(spec: TaskSpec, state: _State, history: Sequence[Message]) -> GiveUp | None:
    budget = spec.budget
    if budget.max_tokens is not None:
        next_prompt = sum(context.estimate_tokens(m.content) for m in history)
        if state.usage.total_tokens + next_prompt > budget.max_tokens:
            return GiveUp(
                "token_budget",
                f"{state.usage.total_tokens} tokens used; the next call (~{next_prompt} prompt "
                f"tokens) would pass the budget of {budget.max_tokens}",
            )
    if (
        budget.max_cost_usd is not None
        and state.cost is not None
        and state.cost >= budget.max_cost_usd
    ):
        return GiveUp("cost_budget", f"${state.cost:.4f} spent of ${budget.max_cost_usd:.4f}")
    return None


def _add_cost(total: float | None, cost: float | None) -> float | None:
    return None if total is None or cost is None else total + cost


def _fingerprint(edits: Sequence[Edit]) -> str:
    """Edits are the same attempt when they change the same text, whatever their numbering."""
    content = tuple((e.path, e.search, e.replace, e.delete) for e in edits)
    return hashlib.sha256(repr(content).encode()).hexdigest()


def _current_files(root: Path, paths: set[str]) -> list[tuple[str, str]]:
    files = []
    for path in sorted(paths):
        full = root / path
        if (
            full.is_file()
            and not full.is_symlink()
            and full.resolve().is_relative_to(root.resolve())
        ):
            files.append((path, full.read_text(encoding="utf-8", errors="replace")))
    return files


def _record(
    number: int,
    history: Sequence[Message],
    completion: Completion,
    outcomes: tuple[EditOutcome, ...],
    checks: tuple[CheckResult, ...],
    decision: Decision,
    started: float,
) -> Iteration:
    return Iteration(
        number=number,
        prompt_chars=sum(len(m.content) for m in history),
        reply=completion.text,
        usage=completion.usage,
        cost_usd=completion.cost_usd,
        model_s=round(completion.latency_s, 3),
        edits=outcomes,
        checks=checks,
        decision="green"
        if isinstance(decision, Green)
        else "retry"
        if isinstance(decision, Retry)
        else "give_up",
        feedback=decision.feedback if isinstance(decision, Retry) else "",
        duration_s=round(time.monotonic() - started, 3),
    )
