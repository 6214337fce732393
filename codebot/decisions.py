"""The loop's vocabulary: the decisions a step can take (`Green`, `Retry`, `Stop`), the state
the loop carries between replies (`LoopState`), and every rule that stops a run short of green
(`StopRules`). Data and pure rules only; codebot.loop does the stepping and the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from codebot.protocols import Model, PricedModel
from codebot.records import (
    CheckResult,
    EditOutcome,
    GroundingPassage,
    Iteration,
    IterationEnd,
    Message,
    Usage,
)
from codebot.spec import TaskSpec
from codebot.stops import StopReason
from codebot.tokens import count_tokens, estimate_tokens


@dataclass(frozen=True)
class Green:
    """Every check passed after this reply's edits."""

    outcomes: tuple[EditOutcome, ...]
    checks: tuple[CheckResult, ...]


@dataclass(frozen=True)
class Retry:
    """Not done: `feedback` goes back to the model as the next user message; `grounding`
    names the team knowledge it carries (codebot.knowledge)."""

    feedback: str
    outcomes: tuple[EditOutcome, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    grounding: tuple[GroundingPassage, ...] = ()


@dataclass(frozen=True)
class Stop:
    """The run ends short of green, for `reason` (see codebot.stops)."""

    reason: StopReason
    detail: str
    outcomes: tuple[EditOutcome, ...] = ()
    checks: tuple[CheckResult, ...] = ()


Decision = Green | Retry | Stop
END: dict[type, IterationEnd] = {Green: "green", Retry: "retry", Stop: "stop"}


@dataclass(frozen=True)
class LoopState:
    """What the loop knows between replies. `originals`: each changed file's text before the
    run first changed it (None: it did not exist); `idle`: replies in a row that changed no
    file; `repeats`: replies in a row that resent edits already tried."""

    history: tuple[Message, ...]
    iterations: tuple[Iteration, ...] = ()
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    tried: Mapping[str, int] = field(default_factory=dict)
    changed: frozenset[str] = frozenset()
    originals: Mapping[str, str | None] = field(default_factory=dict)
    asked: frozenset[str] = frozenset()  # SHOW requests already answered
    idle: int = 0
    repeats: int = 0
    grounding: tuple[GroundingPassage, ...] = ()  # team knowledge shown so far, in order

    @property
    def next_number(self) -> int:
        return len(self.iterations) + 1


@dataclass(frozen=True)
class StopRules:
    """Every rule that stops a run short of green (README "Stop rules"). The budgets are
    checked before each model call, so no call is made that would pass one; the progress
    caps after each reply. `max_idle` 3 follows Aider, which stops after three reflections."""

    max_iterations: int
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None
    max_idle: int = 3  # replies in a row that changed no file (no edits, refused, no-op)
    max_repeats: int = 2  # replies in a row that resent edits already tried

    @classmethod
    def of(cls, spec: TaskSpec) -> StopRules:
        minutes = spec.budget.max_minutes
        return cls(
            max_iterations=spec.max_iterations,
            max_tokens=spec.budget.max_tokens,
            max_cost_usd=spec.budget.max_cost_usd,
            max_seconds=None if minutes is None else minutes * 60,
        )

    def before_call(
        self,
        state: LoopState,
        elapsed_s: float,
        model: Model | None = None,
        tokenizer: str | None = None,
    ) -> Stop | None:
        """Why the next model call must not be made, if it must not. A `model` that knows its
        price makes the cost cap hard: its worst case is checked, not an estimate."""
        done = len(state.iterations)
        if done >= self.max_iterations:
            last = next((i.checks for i in reversed(state.iterations) if i.checks), ())
            if last and all(c.passed for c in last):  # green, but no change to show for it
                return Stop("max_iterations", f"no change that passes after {done} iterations")
            return Stop("max_iterations", f"checks still failing after {done} iterations")
        next_prompt = sum(estimate_tokens(m.content) for m in state.history)
        used = state.usage.total_tokens
        if self.max_tokens is not None and used + next_prompt > self.max_tokens:
            return Stop(
                "token_budget",
                f"{used} tokens used; the next call (~{next_prompt} prompt tokens) would pass "
                f"the budget of {self.max_tokens}",
            )
        priced = self._worst_case(state, model, tokenizer)
        return self._cost(state, next_prompt, priced) or self._time(state, elapsed_s)

    def after_reply(self, state: LoopState) -> Stop | None:
        """Why the run must stop although the model could be asked again."""
        if state.repeats >= self.max_repeats:
            return Stop(
                "no_progress", f"the model resent edits it had already tried {state.repeats} times"
            )
        if state.idle >= self.max_idle:
            return Stop("no_progress", f"{state.idle} replies in a row changed no file")
        return None

    def _worst_case(
        self, state: LoopState, model: Model | None, tokenizer: str | None
    ) -> tuple[int, float] | None:
        """The next call's prompt tokens and the most it can cost (its whole `max_tokens` as
        the reply, at the price of whoever answers: PricedModel); None without a price."""
        if self.max_cost_usd is None or not isinstance(model, PricedModel):
            return None
        prompt = count_tokens("".join(m.content for m in state.history), tokenizer)
        worst = model.worst_case_usd(prompt)
        return None if worst is None else (prompt, worst)

    def _cost(
        self, state: LoopState, next_prompt: int, priced: tuple[int, float] | None
    ) -> Stop | None:
        """A hard cap when the next call's worst case is known (`priced`); else an estimate
        of the next call at the price per token paid so far."""
        spent, budget = state.cost_usd, self.max_cost_usd
        if budget is None or spent is None:
            return None
        if spent >= budget:
            return Stop("cost_budget", f"${spent:.4f} spent of ${budget:.4f}")
        if priced is not None:
            prompt, worst = priced
            if spent + worst <= budget:
                return None
            return Stop(
                "cost_budget",
                f"${spent:.4f} spent; the next call could cost up to ${worst:.4f} ({prompt:,} "
                f"prompt tokens and a max_tokens reply), past the cap of ${budget:.4f}",
            )
        # The next call at the price per token paid so far (its reply tokens not yet known).
        tokens = state.usage.total_tokens
        estimate = spent / tokens * next_prompt if tokens else 0.0
        if spent + estimate > budget:
            return Stop(
                "cost_budget",
                f"${spent:.4f} spent; the next call (~${estimate:.4f}) would pass the budget "
                f"of ${budget:.4f}",
            )
        return None

    def _time(self, state: LoopState, elapsed_s: float) -> Stop | None:
        if self.max_seconds is None:
            return None
        last = state.iterations[-1].duration_s if state.iterations else 0.0
        if elapsed_s + last > self.max_seconds:
            return Stop(
                "time_budget",
                f"{elapsed_s:.0f}s of {self.max_seconds:.0f}s used; another iteration "
                f"(~{last:.0f}s, like the last) would pass the budget",
            )
        return None
