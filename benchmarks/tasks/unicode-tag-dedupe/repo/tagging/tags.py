"""Tag normalisation: one spelling per tag, so search and dedupe can compare strings.

A normalised tag is trimmed, has single spaces between words, and is lower case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_LENGTH = 40
_SPACES = re.compile(r"\s+")


def normalise(tag: str) -> str:
    """The stored form of a tag."""
    text = _SPACES.sub(" ", tag).strip().lower()
    if not text:
        raise ValueError("a tag cannot be empty")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"tag longer than {MAX_LENGTH} characters: {text[:20]}...")
    return text


def dedupe(tags: Iterable[str]) -> list[str]:
    """Normalised tags, first occurrence kept, in the order given; blank entries dropped."""
    seen: dict[str, None] = {}
    for tag in tags:
        if tag.strip():
            seen.setdefault(normalise(tag), None)
    return list(seen)


def matches(query: str, tag: str) -> bool:
    """Whether a search query finds a tag: the normalised query is part of the tag."""
    return normalise(query) in normalise(tag)


def parse_list(text: str) -> list[str]:
    """Tags pasted as a comma- or semicolon-separated list."""
    return dedupe(re.split(r"[,;]", text))
