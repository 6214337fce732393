"""The repository's files parsed for the ranking (codebot.repomap), and parsed ahead.

On a large repository, parsing every file is most of the time the first prompt takes, and
the baseline's result is not needed for it: `Ahead` reads and parses in the background while
the sandbox starts and the baseline runs. The ranking uses what was parsed only for files
whose text is unchanged, so the prompt is the same with it or without it.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from codebot.outline import Symbol, outline, python_symbols


def parse(path: str, text: str) -> ast.Module | None:
    """A Python file's syntax tree; None for other files and for what does not parse."""
    if PurePosixPath(path).suffix not in (".py", ".pyi"):
        return None
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


@dataclass(frozen=True)
class Parsed:
    """Files parsed ahead of the ranking: by path, the text parsed, its syntax tree (None:
    not Python, or not parsable) and its definitions."""

    files: Mapping[str, tuple[str, ast.Module | None, tuple[Symbol, ...]]]

    def get(self, path: str, text: str) -> tuple[ast.Module | None, tuple[Symbol, ...]] | None:
        """What was parsed for `path`, if it was parsed from exactly `text`."""
        found = self.files.get(path)
        return (found[1], found[2]) if found is not None and found[0] == text else None


def parse_all(texts: Mapping[str, str]) -> Parsed:
    """Every file of `texts` parsed, as the ranking would."""
    files = {}
    for path, text in texts.items():
        tree = parse(path, text)
        files[path] = (text, tree, python_symbols(tree) if tree else outline(path, text))
    return Parsed(files)


class Ahead:
    """The files `read` returns, parsed in a background thread from now on."""

    def __init__(self, read: Callable[[], Mapping[str, str]]) -> None:
        self._parsed: Parsed | None = None
        self._thread = threading.Thread(
            target=self._parse, args=(read,), daemon=True, name="codebot-parse-ahead"
        )
        self._thread.start()

    def _parse(self, read: Callable[[], Mapping[str, str]]) -> None:
        self._parsed = parse_all(read())

    def parsed(self) -> Parsed | None:
        """What was parsed, once it is; None if parsing failed (the ranking then parses)."""
        self._thread.join()
        return self._parsed
