"""The model ladder as the operator configures it (`CODEBOT_LADDER`, README "Model ladder"):
JSON or the compact form, parsed and checked into `RungConfig`s before any call, each
problem a ConfigError naming the rung and the field. codebot.ladder runs them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from codebot.config import ModelConfig
from codebot.errors import ConfigError
from codebot.llm import cost_usd
from codebot.records import Usage
from codebot.redact import Redactor

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
