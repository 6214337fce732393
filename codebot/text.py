"""Cutting text to a size: the one home of how codebot shortens what it shows or sends.

`clip` keeps the start (a message, a title), `tail` keeps the end (a log, a traceback, where
the failing assertion is); both say that they cut.
"""

from __future__ import annotations

CUT = "[...]\n"
ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """At most `limit` characters from the start, ending in an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))].rstrip() + ELLIPSIS


def tail(text: str, limit: int) -> str:
    """The end of `text` in at most `limit` chars, starting at a line when that is cheap."""
    if len(text) <= limit:
        return text
    if limit <= len(CUT):
        return text[len(text) - limit :] if limit > 0 else ""
    kept = text[len(text) - (limit - len(CUT)) :]
    newline = kept.find("\n")
    if 0 <= newline < len(kept) // 4:
        kept = kept[newline + 1 :]
    return CUT + kept
