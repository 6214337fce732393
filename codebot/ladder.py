"""The model ladder: cheap models first, stronger ones when the cheap ones have had their turn.

The operator lists rungs in `CODEBOT_LADDER` (never in the repository's .codebot.yml: it
chooses endpoints and keys). `LadderModel` is one `Model` over them, so the loop still sees
one model per call. A rung is spent after its `iterations` calls, or when its next call could
cost more than is left of its own `max_cost_usd`; the call then goes to the next rung, which
is sent the task and one summary of what failed so far instead of the earlier replies
(`summarise`): the failed diffs' full text stays out of its prompt. A provider that is down,
rate-limited past its retries or without the model hands the call to the rung's next
provider (`fallbacks`). Escalations and fallbacks are kept in `notes` for the run record.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from codebot import prompts
from codebot.config import ModelConfig
from codebot.errors import ConfigError, ModelError
from codebot.llm import EndpointUnavailable, OpenAIModel, cost_usd
from codebot.protocols import Model, PricedModel
from codebot.records import Completion, Message, RungUsage, Usage
from codebot.redact import RedactingModel, Redactor
from codebot.render import untrusted
from codebot.report import explanation
from codebot.text import clip
from codebot.tokens import count_tokens

ENV = "CODEBOT_LADDER"
_PROVIDER_KEYS = {"model", "base_url", "key_env", "price_input", "price_output", "max_tokens"}
_RUNG_KEYS = _PROVIDER_KEYS | {"name", "iterations", "max_cost_usd", "fallbacks"}
_HELP = "see README 'Model ladder'"
_NUMBERS: dict[str, type] = {
    "iterations": int, "max_tokens": int, "max_cost_usd": float, "price_input": float,
    "price_output": float,
}  # fmt: skip


@dataclass(frozen=True)
class RungConfig:
    """One rung as configured: its providers (the first, then its fallbacks in order), the
    calls it gets (0: no limit but the run's) and its own dollar cap (None: none)."""

    name: str
    providers: tuple[ModelConfig, ...]
    iterations: int = 0
    max_cost_usd: float | None = None


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


def parse_ladder(text: str, base: ModelConfig, env: Mapping[str, str]) -> tuple[RungConfig, ...]:
    """`CODEBOT_LADDER`: a JSON list of rung objects, or the compact form
    `model key=value ...; model ...` (no fallbacks). Unset fields come from `base`."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{ENV} is not valid JSON ({exc})", _HELP) from None
    else:
        items = [_compact(part) for part in text.split(";") if part.strip()]
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{ENV} must list at least one rung", _HELP)
    rungs = tuple(_rung(item, n, base, env) for n, item in enumerate(items, 1))
    names = [r.name for r in rungs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{ENV}: two rungs are called `{twice[0]}`", "give them a `name`")
    return rungs


def _compact(part: str) -> dict[str, Any]:
    """One rung of the compact form, as the JSON form would give it."""
    model, *pairs = part.split()
    item: dict[str, Any] = {"model": model}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"{ENV}: `{pair}` is not key=value", _HELP)
        kind = _NUMBERS.get(key, str)
        try:
            item[key] = kind(value)
        except ValueError:
            raise ConfigError(f"{ENV}: `{pair}` is not a number", _HELP) from None
    return item


def _rung(item: Any, n: int, base: ModelConfig, env: Mapping[str, str]) -> RungConfig:
    where = f"{ENV} rung {n}"
    _check(item, _RUNG_KEYS, where)
    primary = _provider(item, None, base, env, where)
    more = []
    for i, fallback in enumerate(_get(item, "fallbacks", list, where) or [], 1):
        at = f"{where} fallback {i}"
        more.append(_provider(_check(fallback, _PROVIDER_KEYS, at), primary, base, env, at))
    iterations = _get(item, "iterations", int, where) or 0
    cap = _get(item, "max_cost_usd", float, where) or None
    if iterations < 0 or (cap is not None and cap < 0):
        raise ConfigError(f"{where}: `iterations` and `max_cost_usd` cannot be negative", _HELP)
    providers = (primary, *more)
    if cap is not None and any(cost_usd(Usage(1, 1), p) is None for p in providers):
        raise ConfigError(
            f"{where}: a cost cap needs a price for every provider",
            "set `price_input` and `price_output` (USD per million tokens; 0 for a local model)",
        )
    name = _get(item, "name", str, where) or primary.name
    return RungConfig(name, providers, iterations, cap)


def _provider(
    item: dict[str, Any],
    primary: ModelConfig | None,
    base: ModelConfig,
    env: Mapping[str, str],
    where: str,
) -> ModelConfig:
    """A provider's settings; a fallback's model, prices and max_tokens default to its rung's
    `primary`. The key: from `key_env` when given ("" for none); without it, a provider on
    its own `base_url` gets none, so OPENAI_API_KEY never goes to another host."""
    name = _get(item, "model", str, where) or (primary.name if primary else "")
    if not name:
        raise ConfigError(f"{where}: no `model`", _HELP)
    base_url = _get(item, "base_url", str, where) or ""
    key_env = _get(item, "key_env", str, where)
    if key_env:
        key = env.get(key_env, "")
        if not key:
            raise ConfigError(f"{where}: `key_env` {key_env} is not set", f"export {key_env}")
        if not Redactor.from_env({key_env: "x" * 8}).secrets:
            raise ConfigError(
                f"{where}: `key_env` {key_env} is not a name codebot redacts",
                "use a name ending in _KEY, _TOKEN, _SECRET or starting with CODEBOT_SECRET_",
            )
    else:
        key = "" if key_env is not None or base_url else base.api_key
    # CODEBOT_PRICE_* are the prices of CODEBOT_MODEL, not of every model on the ladder.
    parent = primary or base
    inherited = parent if name == parent.name else ModelConfig()
    price_in = _get(item, "price_input", float, where)
    price_out = _get(item, "price_output", float, where)
    return replace(
        base,
        name=name,
        base_url=base_url or base.base_url,
        api_key=key,
        max_output_tokens=_get(item, "max_tokens", int, where) or parent.max_output_tokens,
        price_input_per_mtok=inherited.price_input_per_mtok if price_in is None else price_in,
        price_output_per_mtok=inherited.price_output_per_mtok if price_out is None else price_out,
    )


def _check(item: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """`item` when it is an object with no key outside `allowed`."""
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be an object", _HELP)
    unknown = sorted(set(item) - allowed)
    if unknown:
        keys = ", ".join(sorted(allowed))
        raise ConfigError(f"{where}: unknown key `{unknown[0]}`", f"allowed: {keys}")
    return item


def _get(item: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = item.get(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ConfigError(f"{where}: `{key}` must be {kind.__name__} (got {value!r})", _HELP)
    return value


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
        still in line, so a fallback cannot pass the cap either)."""
        index, _ = self._choose(prompt_tokens)
        return None if index is None else self._rung_worst(index, prompt_tokens)

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
        if n == 1:
            replies: list[Completion | ModelError] = [self._ask(index, said)]
        else:
            with ThreadPoolExecutor(max_workers=n, thread_name_prefix="codebot-ask") as pool:
                asked = [pool.submit(self._ask_or_error, index, said, k) for k in range(n)]
                replies = [f.result() for f in asked]
        tally = self._tallies[index]
        tally.rounds += 1
        for reply in replies:
            if isinstance(reply, Completion):
                tally.calls += 1
                tally.usage += reply.usage
                tally.cost = None if tally.cost is None or reply.cost_usd is None else (
                    tally.cost + reply.cost_usd
                )  # fmt: skip
        if all(isinstance(r, ModelError) for r in replies):
            raise next(r for r in replies if isinstance(r, ModelError))
        name = self.rungs[index].name
        return [r if isinstance(r, ModelError) else replace(r, rung=name) for r in replies]

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
        worst = []
        for model in self.rungs[index].models[self._tallies[index].active :]:
            usd = model.worst_case_usd(prompt_tokens) if isinstance(model, PricedModel) else None
            if usd is None:
                return None
            worst.append(usd)
        return max(worst) * self.candidates

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
