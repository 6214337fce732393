"""The model ladder: cheap models first, stronger ones when the cheap ones have had their turn.

The operator lists rungs in `CODEBOT_LADDER` (never in the repository's .codebot.yml: it
chooses endpoints and keys). `LadderModel` is one `Model` over them, so the loop still sees
one model per call. A rung is spent after its `iterations` calls, or when its next call could
cost more than is left of its own `max_cost_usd`; the call then goes to the next rung, which
is sent the task and one summary of what failed so far instead of the earlier replies
(`summarise`): the failed diffs' full text stays out of its prompt. A provider that is down,
rate-limited past its retries or without the model hands the call to the rung's next
provider (`fallbacks`). Escalations and fallbacks are kept in `notes` for the run record.
Best-of-N candidates are samples of the rung that takes the iteration, or, `across_rungs`,
one reply from each rung not spent from that one on (then samples of them, in turn).
Parsing and checking the configuration is codebot.ladder_config.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from codebot import prompts
from codebot.config import ModelConfig
from codebot.errors import ModelError
from codebot.ladder_config import ENV, RungConfig, parse_ladder
from codebot.llm import EndpointUnavailable, OpenAIModel
from codebot.protocols import Model, PricedModel
from codebot.records import Completion, Message, RungUsage, Usage
from codebot.redact import RedactingModel, Redactor
from codebot.render import untrusted
from codebot.report import explanation
from codebot.text import clip
from codebot.tokens import count_tokens


@dataclass(frozen=True)
class Rung:
    """A rung at run time: the models of its providers, in the order they are tried."""

    name: str
    models: tuple[Model, ...]
    iterations: int = 0
    max_cost_usd: float | None = None


@dataclass
class _Tally:
    """What one rung has done so far; `active` is the provider that takes its calls."""

    calls: int = 0  # replies paid for (with best-of-N, several per iteration)
    rounds: int = 0  # iterations answered: what a rung's `iterations` counts
    usage: Usage = field(default_factory=Usage)
    cost: float | None = 0.0
    active: int = 0
    served: list[str] = field(default_factory=list)


class LadderModel:
    """`Model` over the rungs: each call goes to the first rung not spent, from the current one
    on. It is also the run's one `PricedModel`: the loop's cost cap reads the worst case of
    whoever would answer. Prompts pass the redactor before they reach any provider."""

    def __init__(
        self, rungs: Sequence[Rung], redact: Redactor | None = None, tokenizer: str | None = None
    ) -> None:
        if not rungs or not all(r.models for r in rungs):
            raise ValueError("a ladder needs at least one rung, each with a model")
        self.rungs = tuple(rungs)
        self.name = " → ".join(r.models[0].name for r in self.rungs)
        self.notes: list[str] = []
        self._redact = redact or Redactor()
        self._tokenizer = tokenizer  # the loop's, so both count a prompt alike
        self._tallies = [_Tally() for _ in self.rungs]
        self._at = 0
        self._task = 0  # leading messages that are the task
        self._cut = 0  # messages of the loop's history the summary stands for
        self._summary: Message | None = None
        self.candidates = 1  # replies asked per iteration (best-of-N); worst cases scale by it
        self.across_rungs = False  # candidates from several rungs at once, not one's samples
        self._lock = threading.Lock()

    @classmethod
    def of(
        cls, configs: Sequence[RungConfig], redact: Redactor, tokenizer: str | None = None
    ) -> LadderModel:
        rungs = [
            Rung(c.name, tuple(OpenAIModel(p) for p in c.providers), c.iterations, c.max_cost_usd)
            for c in configs
        ]
        return cls(rungs, redact, tokenizer)

    @property
    def adjustments(self) -> Sequence[str]:
        """The providers' refused request options, each under its rung's name on a ladder."""
        several = len(self.rungs) > 1
        return [
            f"rung `{r.name}`: {a}" if several else a
            for r in self.rungs
            for m in r.models
            for a in m.adjustments
        ]

    def worst_case_usd(self, prompt_tokens: int) -> float | None:
        """At the price of the rung that would take the call (the dearest of its providers
        still in line, so a fallback cannot pass the cap either), for every candidate; across
        rungs, each candidate at its own rung's price."""
        index, _ = self._choose(prompt_tokens)
        if index is None:
            return None
        total = 0.0
        for rung, _variant in self._plan(index, self.candidates, prompt_tokens):
            usd = self._one_worst(rung, prompt_tokens)
            if usd is None:
                return None
            total += usd
        return total

    def complete(self, messages: Sequence[Message]) -> Completion:
        (reply,) = self.complete_many(messages, 1)
        if isinstance(reply, ModelError):
            raise reply
        return reply

    def complete_many(self, messages: Sequence[Message], n: int) -> list[Completion | ModelError]:
        """`n` independent replies from the rung that takes this iteration, asked at once:
        the first as configured, the others sampled with their own seeds (OpenAIModel
        `variant`). A candidate whose call failed is its error; when all fail, the first
        error is raised."""
        prompt = count_tokens("".join(m.content for m in messages), self._tokenizer)
        index, why = self._choose(prompt)
        if index is None:
            raise ModelError(
                f"the model ladder is spent: {why}",
                f"raise a rung's `iterations` or `max_cost_usd` in {ENV}, or add a rung",
            )
        if index != self._at:
            self._escalate(index, messages, why)
        said = self._conversation(messages)
        plan = self._plan(index, n, prompt)
        if n == 1:
            replies: list[Completion | ModelError] = [self._ask(index, said)]
        else:
            with ThreadPoolExecutor(max_workers=n, thread_name_prefix="codebot-ask") as pool:
                asked = [pool.submit(self._ask_or_error, i, said, k) for i, k in plan]
                replies = [f.result() for f in asked]
        for rung in dict.fromkeys(i for i, _ in plan):
            self._tallies[rung].rounds += 1
        for (rung, _), reply in zip(plan, replies, strict=True):
            if isinstance(reply, Completion):
                tally = self._tallies[rung]
                tally.calls += 1
                tally.usage += reply.usage
                tally.cost = None if tally.cost is None or reply.cost_usd is None else (
                    tally.cost + reply.cost_usd
                )  # fmt: skip
        if all(isinstance(r, ModelError) for r in replies):
            raise next(r for r in replies if isinstance(r, ModelError))
        return [
            r if isinstance(r, ModelError) else replace(r, rung=self.rungs[i].name)
            for (i, _), r in zip(plan, replies, strict=True)
        ]

    def _plan(self, index: int, n: int, prompt_tokens: int) -> list[tuple[int, int]]:
        """Who answers each of `n` candidates, as (rung, variant): rung `index`'s samples; or,
        across rungs, each rung not spent from `index` on in turn, a rung's second candidate
        being its first sample (variant 1), and so on."""
        if not self.across_rungs or n == 1:
            return [(index, k) for k in range(n)]
        rungs = [index] + [
            i for i in range(index + 1, len(self.rungs)) if self._spent(i, prompt_tokens) is None
        ]
        return [(rungs[k % len(rungs)], k // len(rungs)) for k in range(n)]

    def _ask_or_error(
        self, index: int, messages: Sequence[Message], variant: int
    ) -> Completion | ModelError:
        try:
            return self._ask(index, messages, variant)
        except ModelError as exc:
            return exc

    def rung_usage(self) -> tuple[RungUsage, ...]:
        """What each rung spent, for the run record."""
        return tuple(
            RungUsage(
                r.name, ", ".join(dict.fromkeys(t.served)) or r.models[0].name, t.calls,
                t.usage, t.cost, r.max_cost_usd,
            )
            for r, t in zip(self.rungs, self._tallies, strict=True)
        )  # fmt: skip

    def _choose(self, prompt_tokens: int) -> tuple[int | None, str]:
        """The first rung from the current one that may take a call of `prompt_tokens`, and
        why the ones before it may not (None: no rung may)."""
        reasons: list[str] = []
        for index in range(self._at, len(self.rungs)):
            reason = self._spent(index, prompt_tokens)
            if reason is None:
                return index, "; ".join(reasons)
            reasons.append(reason)
        return None, "; ".join(reasons)

    def _spent(self, index: int, prompt_tokens: int) -> str | None:
        rung, tally = self.rungs[index], self._tallies[index]
        if rung.iterations and tally.rounds >= rung.iterations:
            return f"rung `{rung.name}` had its {rung.iterations} call(s)"
        cap = rung.max_cost_usd
        if cap is None:
            return None
        spent = tally.cost or 0.0
        worst = self._rung_worst(index, prompt_tokens)
        if spent >= cap or (worst is not None and spent + worst > cap):
            could = "" if worst is None else f"; its next call could cost up to ${worst:.4f}"
            return f"rung `{rung.name}` spent ${spent:.4f} of its ${cap:.4f} cap{could}"
        return None

    def _rung_worst(self, index: int, prompt_tokens: int) -> float | None:
        """The most rung `index` can spend on one iteration: a call for every candidate (so
        across rungs, a rung is held to more than its share: never less)."""
        one = self._one_worst(index, prompt_tokens)
        return None if one is None else one * self.candidates

    def _one_worst(self, index: int, prompt_tokens: int) -> float | None:
        """One call's worst case on rung `index`: its dearest provider still in line."""
        worst = []
        for model in self.rungs[index].models[self._tallies[index].active :]:
            usd = model.worst_case_usd(prompt_tokens) if isinstance(model, PricedModel) else None
            if usd is None:
                return None
            worst.append(usd)
        return max(worst)

    def _escalate(self, index: int, messages: Sequence[Message], why: str) -> None:
        """Move to rung `index`; from now on the replies so far reach it as one summary."""
        self.notes.append(f"{why}: escalated to rung `{self.rungs[index].name}`")
        self._at = index
        summary = summarise(messages)
        if summary is not None:
            self._task, self._summary = summary
            self._cut = len(messages)

    def _conversation(self, messages: Sequence[Message]) -> Sequence[Message]:
        """What the current rung is sent: the loop's history, or since an escalation the
        task, the summary and what came after it."""
        if self._summary is None or len(messages) < self._cut:
            return messages
        return [*messages[: self._task], self._summary, *messages[self._cut :]]

    def _ask(self, index: int, messages: Sequence[Message], variant: int = 0) -> Completion:
        """The call on the rung's active provider; one that cannot serve hands it (and the
        rung's later calls) to the next provider, never back."""
        rung, tally = self.rungs[index], self._tallies[index]
        while True:
            active = tally.active
            model = rung.models[active]
            try:
                reply = RedactingModel(model, self._redact).complete(messages, variant)
            except EndpointUnavailable as exc:
                with self._lock:  # candidates asked at once fall back once, together
                    if tally.active == active:
                        if active + 1 >= len(rung.models):
                            raise
                        tally.active += 1
                        self.notes.append(
                            f"rung `{rung.name}`: {exc.cause}; the call went to its provider "
                            f"{tally.active + 1} of {len(rung.models)} "
                            f"(`{rung.models[tally.active].name}`)"
                        )
                continue
            with self._lock:
                tally.served.append(model.name)
            return reply


def engine(
    given: Model | None, config: ModelConfig, env: Mapping[str, str], redact: Redactor
) -> LadderModel:
    """The model a run asks: `given` (tests, benchmarks), else the operator's ladder, else the
    configured model; always a LadderModel, so the loop's hard cost cap sees a price."""
    tokenizer = config.name or None
    text = env.get(ENV, "").strip()
    if given is not None or not text:
        only = given or OpenAIModel(config)
        return LadderModel([Rung(only.name, (only,))], redact, tokenizer)
    return LadderModel.of(parse_ladder(text, config, env), redact, tokenizer)


# The parts of a feedback message (codebot.context.render_feedback) a summary keeps.
_RESULT_LINE = re.compile(r"^(- block \d+ .*|#{2,3} .*)$", re.MULTILINE)
_REPOSITORY = re.compile(r'<untrusted source="repository">\n.*?</untrusted>\n', re.DOTALL)


def summarise(messages: Sequence[Message]) -> tuple[int, Message] | None:
    """The replies in `messages` and their results as one user message, and how many leading
    messages are the task; None before any reply. Each reply keeps its own explanation and
    the first line of each edit result and failing check, never its edits; the last result is
    kept whole, with the code as it stands (from the latest result that showed it)."""
    task = next((i for i, m in enumerate(messages) if m.role == "assistant"), None)
    if task is None:
        return None
    turns = [
        (m.content, messages[i + 1].content if i + 1 < len(messages) else "")
        for i, m in enumerate(messages)
        if i >= task and m.role == "assistant"
    ]
    earlier = "".join(_attempt(n, reply, said) for n, (reply, said) in enumerate(turns[:-1], 1))
    reply, last = turns[-1]
    shown = [b for _, said in turns[:-1] for b in _REPOSITORY.findall(said)]
    code = ""
    if shown and not _REPOSITORY.search(last):
        code = "The code as the last result that showed it:\n" + shown[-1]
    text = prompts.render(
        "escalation.md",
        count=len(turns),
        earlier=earlier,
        said=_said(reply),
        last=last.strip() + "\n",
        code=code,
    )
    return task, Message("user", text)


def _attempt(number: int, reply: str, said: str) -> str:
    results = [clip(line, 200) for line in _RESULT_LINE.findall(said)]
    if not results:
        lines = (line for line in said.splitlines() if line.strip()[:1] not in ("", "#", "<"))
        first = next(lines, "")
        results = [clip(first, 200)] if first else []
    body = "".join(f"  {untrusted(line)}\n" for line in results)
    wrapped = f'<untrusted source="earlier results">\n{body}</untrusted>\n' if body else ""
    return f"Reply {number}: {_said(reply)}\n{wrapped}\n"


def _said(reply: str) -> str:
    """A reply's own explanation, on one line, without its edits."""
    words = " ".join(explanation(reply, 300).split())
    return untrusted(words) or "(no explanation)"
