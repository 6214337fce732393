"""How many tokens a text costs: the one home of every count a budget uses.

Exact when the model's tokenizer is known and the optional `bpe-openai` package is installed
(`pip install 'codebot[tokens]'`): the estimate was within 1% on codebot's own source but
31% low on number-heavy code, enough to overrun a budget. Otherwise the estimate, so codebot
runs the same without the extra.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from functools import cache
from typing import Protocol

CHARS_PER_TOKEN = 4  # a model-independent average for code and English
_CHUNK_CHARS = 200_000  # bpe-openai refuses inputs of 1,000,000 characters and more
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")
# Model-name prefixes by encoding (OpenAI's own mapping, as of 2025).
_O200K = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")
_CL100K = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def estimate_tokens(text: str) -> int:
    """A cheap, model-independent estimate (about four characters per token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def chars_for(tokens: int) -> int:
    """The characters a budget of `tokens` allows, by the same estimate."""
    return tokens * CHARS_PER_TOKEN


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens in `text` for `model`: exact when its tokenizer is available, else the estimate."""
    encoding = _encoding(model) if model else None
    if encoding is None:
        return estimate_tokens(text)
    return sum(len(encoding.encode_ordinary(chunk)) for chunk in _chunks(text))


@cache
def _encoding(model: str) -> _Encoding | None:
    """The tokenizer of `model`, or None. Which encoding a model uses is decided here, before
    `bpe_openai` is imported: importing it loads every encoding (~1 s), which a run with a
    model it does not know must not pay."""
    name = encoding_name(model)
    if name is None:
        return None
    try:
        import bpe_openai
    except ImportError:
        return None
    try:
        encoding: _Encoding = bpe_openai.get_encoding(name)
    except (KeyError, ValueError, RuntimeError):  # an encoding this version does not ship
        return None
    return encoding


def encoding_name(model: str) -> str | None:
    """OpenAI's encoding for a model name or its family; None for any other model."""
    for name in _names(model):
        if name.startswith(_O200K):
            return "o200k_base"
        if name.startswith(_CL100K):
            return "cl100k_base"
    return None


def warm_up(model: str | None) -> None:
    """Load the model's tokenizer in the background, while the run starts its sandbox."""
    if model and encoding_name(model):
        threading.Thread(target=_encoding, args=(model,), daemon=True).start()


def _names(model: str) -> Iterator[str]:
    """`model`, then its family: "openai/gpt-4o-mini-2024-07-18" is counted as gpt-4o-mini,
    "gpt-4.1-nano" as gpt-4.1; a name with no known family stays unknown."""
    name = _DATED.sub("", model.rsplit("/", 1)[-1].lower())
    yield name
    while "-" in name:
        name = name.rsplit("-", 1)[0]
        if name in ("gpt", "text", "code"):
            return
        yield name


def _chunks(text: str) -> Iterator[str]:
    """`text` in pieces the tokenizer accepts, cut after a newline where there is one."""
    start = 0
    while start < len(text):
        end = min(len(text), start + _CHUNK_CHARS)
        if end < len(text):
            newline = text.rfind("\n", start, end)
            end = newline + 1 if newline > start else end
        yield text[start:end]
        start = end
