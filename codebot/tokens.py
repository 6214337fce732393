"""How many tokens a text costs: the one home of the estimate every budget uses."""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 4  # a model-independent average for code and English


def estimate_tokens(text: str) -> int:
    """A cheap, model-independent estimate (about four characters per token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def chars_for(tokens: int) -> int:
    """The characters a budget of `tokens` allows, by the same estimate."""
    return tokens * CHARS_PER_TOKEN
