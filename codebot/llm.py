"""`OpenAIModel`: the only module that imports openai. Any OpenAI-compatible endpoint works.

Transport faults (429, 5xx, timeouts, dropped connections) are retried by the SDK with its
own backoff, which honours retry-after(-ms). A reply that arrives but is unusable (not JSON,
no choices, empty content) is retried here, because the SDK has already accepted it. Every
failure leaves as a one-line `ModelError` that never contains the API key. Just over 400
lines: the SDK is imported here only, so every translation of its errors is here too.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from codebot.config import ModelConfig
from codebot.errors import ModelError
from codebot.prose import well_formed
from codebot.records import Completion, Message, Usage
from codebot.redact import Redactor
from codebot.text import clip
from codebot.tokens import estimate_tokens

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletionMessageParam

DEFAULT_BASE_URL = "https://api.openai.com/v1"
SEED = 0  # honoured by OpenAI, vLLM, llama.cpp and Ollama; makes reruns comparable
# Best-of-N (codebot.candidates): candidate k > 0 is sampled at this temperature with seed
# SEED + k, so the candidates differ and a rerun still draws the same ones.
CANDIDATE_TEMPERATURE = 0.8

# List prices in USD per million tokens (input, output) at the time of writing (2025).
# They change: CODEBOT_PRICE_INPUT / CODEBOT_PRICE_OUTPUT override them.
LIST_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
}
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
# How vLLM, llama.cpp, OpenAI and others word "the prompt is longer than the model's context".
_CONTEXT_HINTS = ("context length", "context window", "context size", "prompt is too long")


class EndpointUnavailable(ModelError):
    """The endpoint cannot serve the model now: down, rate-limited past its retries, or it
    has no such model. Another provider of the same model may (codebot.ladder falls back)."""


def cost_usd(usage: Usage, config: ModelConfig) -> float | None:
    """Configured prices win; otherwise the list price of a known model; else unknown."""
    listed = LIST_PRICES.get(_SNAPSHOT.sub("", config.name))
    price_in = config.price_input_per_mtok
    price_out = config.price_output_per_mtok
    if listed is not None:
        price_in = listed[0] if price_in is None else price_in
        price_out = listed[1] if price_out is None else price_out
    if price_in is None or price_out is None:
        return None
    return (usage.prompt_tokens * price_in + usage.completion_tokens * price_out) / 1e6


@cache
def sdk() -> ModuleType:
    """The openai package, imported on first use: it takes ~0.5 s, which `codebot --help`, a
    refused event and every stage before the first model call should not pay."""
    import openai

    return openai


class OpenAIModel:
    """`Model` over the chat completions API of any OpenAI-compatible server."""

    def __init__(self, config: ModelConfig) -> None:
        self.name = config.name
        self._config = config
        self._redact = Redactor.of([config.api_key])
        self._base_url = config.base_url or DEFAULT_BASE_URL
        # Request options; a model that refuses one (OpenAI's reasoning models refuse
        # max_tokens and a temperature other than 1) gets the request again without it.
        self._options: dict[str, Any] = {
            "temperature": config.temperature,
            "max_tokens": config.max_output_tokens,
            "seed": SEED,
        }
        self.adjustments: list[str] = []
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()
        # The SDK's import and the client take ~0.6 s: made in the background while the run
        # starts its sandbox, ready (or waited for) at the first call.
        threading.Thread(target=lambda: self.client, daemon=True, name="codebot-llm").start()

    def worst_case_usd(self, prompt_tokens: int) -> float | None:
        """The most the next call can cost: `prompt_tokens` in, the whole `max_tokens` out, at
        this model's price; None without a price, or when the endpoint refused max_tokens
        (then nothing bounds the completion)."""
        bound = self._options.get("max_tokens", self._options.get("max_completion_tokens"))
        if not isinstance(bound, int):
            return None
        return cost_usd(Usage(prompt_tokens, bound), self._config)

    @property
    def client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                self._client = _new_client(self._config, self._base_url)
            return self._client

    @property
    def url(self) -> str:
        """The endpoint as messages show it: no credentials, no query."""
        return self._url()

    def models(self) -> list[str] | None:
        """The model ids the endpoint lists (`GET /models`, for `codebot doctor`); None when
        it has no such listing (404), as Azure's deployment URLs have none."""
        try:
            return [m.id for m in self.client.models.list()]
        except sdk().NotFoundError:
            return None
        except sdk().OpenAIError as exc:
            failure = self._translate(exc, 1)
        raise failure  # outside `except`, like `_post`: the SDK error may quote the key

    def complete(self, messages: Sequence[Message], variant: int = 0) -> Completion:
        """One reply; `variant` k > 0 asks for the k-th independent candidate (best-of-N):
        sampled, with its own seed, unless the model refused those options."""
        started = time.monotonic()
        params = [_param(m) for m in messages]
        spent = Usage()
        sent = 0
        problem = ""
        for attempt in range(1, self._config.max_retries + 2):
            body, sent = self._post(params, sent, variant)
            try:
                text, usage = _parse_reply(body)
            except _MalformedReply as exc:
                problem, spent = exc.reason, spent + exc.usage
                continue
            if usage is None:
                prompt = estimate_tokens("".join(m.content for m in messages))
                usage = Usage(prompt, estimate_tokens(text))
            usage = spent + usage
            return Completion(
                text=text,
                usage=usage,
                model=self.name,
                latency_s=time.monotonic() - started,
                cost_usd=cost_usd(usage, self._config),
                attempts=attempt,
            )
        raise ModelError(
            f"the LLM endpoint at {self._url()} sent {self._config.max_retries + 1} unusable "
            f"replies (last: {problem})",
            f"check that it serves an OpenAI-compatible chat API for model '{self.name}'",
        )

    def _post(
        self, params: list[ChatCompletionMessageParam], sent: int, variant: int = 0
    ) -> tuple[bytes, int]:
        """One SDK call (with its own retries): the raw reply body and requests sent so far.
        A 400 that refuses one of the request options is sent again without it."""
        for _ in range(len(self._options) + 1):
            try:
                raw = self.client.chat.completions.with_raw_response.create(
                    model=self.name, messages=params, **self._varied(variant)
                )
                return raw.http_response.content, sent + raw.retries_taken + 1
            except sdk().OpenAIError as exc:
                sent += _requests_made(exc, self._config)
                if isinstance(exc, sdk().BadRequestError) and self._adjust(exc):
                    continue
                failure = self._translate(exc, sent)
            # Raised outside `except` so the SDK error, which may quote the key, is not chained.
            raise failure
        raise ModelError(f"the LLM endpoint at {self._url()} refused every request option")

    def _varied(self, variant: int) -> dict[str, Any]:
        """The request options for candidate `variant` (0: as configured)."""
        options = dict(self._options)
        if variant and "seed" in options:
            options["seed"] = SEED + variant
        if variant and "temperature" in options:
            options["temperature"] = max(self._config.temperature, CANDIDATE_TEMPERATURE)
        return options

    def _adjust(self, exc: openai.BadRequestError) -> bool:
        """Drop (or, for max_tokens, rename) the option the server says it does not support."""
        detail, param = self._detail(exc), str(getattr(exc, "param", None) or "")
        refused = "unsupported" in detail.lower() or "not supported" in detail.lower()
        for name in list(self._options):
            if param != name and not (refused and f"'{name}'" in detail):
                continue
            value = self._options.pop(name)
            if name == "max_tokens":  # "Use 'max_completion_tokens' instead."
                self._options["max_completion_tokens"] = value
                self.adjustments.append("max_tokens sent as max_completion_tokens")
            else:
                self.adjustments.append(f"{name} left out (the model refused {value!r})")
            return True
        return False

    def _translate(self, exc: openai.OpenAIError, attempts: int) -> ModelError:
        url = self._url()
        openai_ = sdk()
        if isinstance(exc, openai_.APITimeoutError):
            return ModelError(
                f"no reply from the LLM endpoint at {url} within {self._config.timeout_s:g}s "
                f"({_plural(attempts, 'attempt')})",
                "raise CODEBOT_MODEL_TIMEOUT or use a faster model",
            )
        if isinstance(exc, openai_.APIConnectionError):
            return EndpointUnavailable(
                f"cannot reach the LLM endpoint at {url}",
                "check OPENAI_BASE_URL / --base-url and that the server is running",
            )
        if isinstance(exc, openai_.APIStatusError):
            return self._translate_status(exc, attempts)
        return ModelError(f"the LLM request failed: {self._detail(exc)}")

    def _translate_status(self, exc: openai.APIStatusError, attempts: int) -> ModelError:
        status, url, detail = exc.status_code, self._url(), self._detail(exc)
        if status in (401, 403):
            return ModelError(
                f"the endpoint rejected the API key ({status})", "check OPENAI_API_KEY"
            )
        if status == 404 and (exc.code == "model_not_found" or "model" in detail.lower()):
            return EndpointUnavailable(
                f"model '{self.name}' not found at {url}", "check CODEBOT_MODEL / --model"
            )
        if status == 404:
            return ModelError(
                f"{url}/chat/completions not found (404)",
                "check OPENAI_BASE_URL / --base-url (it usually ends in /v1)",
            )
        if status == 429 and exc.code == "insufficient_quota":
            return EndpointUnavailable(
                "the API key has no quota left (429)", "check the account's plan and billing"
            )
        if status == 429:
            return EndpointUnavailable(
                f"rate limited by the LLM endpoint at {url} after {_plural(attempts, 'attempt')}",
                "lower concurrency or raise the limit",
            )
        if status == 400 and (
            exc.code == "context_length_exceeded"
            or any(hint in detail.lower() for hint in _CONTEXT_HINTS)
        ):
            return ModelError(
                f"the prompt does not fit the context window of model '{self.name}' (400)",
                "lower `context.tokens` in .codebot.yml or use a model with a longer context",
            )
        if status >= 500:
            return ModelError(
                f"the LLM endpoint at {url} failed with HTTP {status} after "
                f"{_plural(attempts, 'attempt')}: {detail}",
                "the server is failing; check its logs or try again later",
            )
        return ModelError(
            f"the LLM endpoint at {url} refused the request (HTTP {status}): {detail}",
            f"check that model '{self.name}' accepts temperature, max_tokens and seed",
        )

    def _detail(self, exc: openai.OpenAIError) -> str:
        """The server's own message on one short line, with the API key masked."""
        body = getattr(exc, "body", None)
        message = body.get("message") if isinstance(body, dict) else body
        text = message if isinstance(message, str) and message else str(exc)
        text = self._redact(" ".join(text.split()))
        return clip(text, 200)

    def _url(self) -> str:
        """The base URL without any user:password part."""
        parts = urlsplit(self._base_url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=host, query="")).rstrip("/")


def _new_client(config: ModelConfig, base_url: str) -> openai.OpenAI:
    """The SDK client for `base_url`. A query in it is sent with every request (the SDK would
    otherwise paste it into the path); an `api-version` in it means Azure OpenAI's
    deployment URLs, whose client sends the key as an `api-key` header instead."""
    parts = urlsplit(base_url)
    query = dict(parse_qsl(parts.query))
    version = query.pop("api-version", None)
    common: dict[str, Any] = {
        "base_url": urlunsplit(parts._replace(query="")),
        "api_key": config.api_key or "not-needed",
        "timeout": config.timeout_s,
        "max_retries": config.max_retries,
        "default_query": query or None,
    }
    if version is not None:
        return sdk().AzureOpenAI(api_version=version, **common)  # type: ignore[no-any-return]
    return sdk().OpenAI(**common)  # type: ignore[no-any-return]


def embed(config: ModelConfig, model: str, texts: Sequence[str]) -> list[list[float]]:
    """One vector per text from the endpoint's /embeddings (codebot.knowledge), asked as
    floats (not every compatible server speaks base64). A failure is a one-line ModelError
    that never carries the key, as for chat completions."""
    base_url = config.base_url or DEFAULT_BASE_URL
    host = urlsplit(base_url).netloc.rpartition("@")[2]
    client = _embeddings_client(base_url, config.api_key, config.timeout_s, config.max_retries)
    failure: ModelError | None = None
    try:
        reply = client.embeddings.create(model=model, input=list(texts), encoding_format="float")
        data = sorted(reply.data, key=lambda d: d.index)
    except sdk().OpenAIError as exc:
        status = getattr(exc, "status_code", None)
        said = Redactor.of([config.api_key])(" ".join(str(exc).split()))
        failure = ModelError(
            f"embeddings from {host} for model '{model}' failed"
            + (f" (HTTP {status})" if status else "")
            + f": {clip(said, 200)}",
            "check CODEBOT_EMBEDDINGS_MODEL and OPENAI_BASE_URL, or unset the model",
        )
    if failure is not None:  # raised outside `except`: the SDK error may quote the key
        raise failure
    if len(data) != len(texts) or not all(d.embedding for d in data):
        raise ModelError(
            f"embeddings from {host} answered {len(data)} vectors for {len(texts)} texts"
        )
    return [[float(x) for x in d.embedding] for d in data]


@cache
def _embeddings_client(base_url: str, key: str, timeout_s: float, retries: int) -> openai.OpenAI:
    """One client per endpoint: making one takes ~20 ms, ten times an embeddings request."""
    client: openai.OpenAI = sdk().OpenAI(
        base_url=base_url, api_key=key or "not-needed", timeout=timeout_s, max_retries=retries
    )
    return client


class _MalformedReply(Exception):
    """A reply that arrived but cannot be used; tokens it reports were still spent."""

    def __init__(self, reason: str, usage: Usage | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage or Usage()


def _parse_reply(body: bytes) -> tuple[str, Usage | None]:
    """The first choice's text and the reported usage, read defensively: compatible servers
    differ, and a proxy may answer with HTML. JSON may escape a lone surrogate, which no
    later request or file could encode, so the text is made well-formed here."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise _MalformedReply("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _MalformedReply("the body is not a JSON object")
    usage = _usage(data.get("usage"))
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _MalformedReply("no choices", usage)
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        finish = first.get("finish_reason")
        raise _MalformedReply(f"empty message content, finish_reason={finish}", usage)
    return well_formed(content), usage


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)


def _requests_made(exc: openai.OpenAIError, config: ModelConfig) -> int:
    """How many requests the SDK sent before giving up: it numbers its retries in a header."""
    request = getattr(exc, "request", None)
    count = request.headers.get("x-stainless-retry-count") if request is not None else None
    return int(count) + 1 if count is not None and count.isdigit() else config.max_retries + 1


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _param(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}
