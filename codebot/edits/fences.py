"""Markdown code fences as CommonMark reads them.

A reply that edits a README carries ``` lines inside its fenced edits. CommonMark closes a fence
only with a line of the same character, at least as long as the opening one, indented at most
three spaces, with nothing after it; so a model can wrap such an edit in a longer fence (````)
or a tilde fence (~~~), and a fence line that does not qualify is content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPENING = re.compile(r"^( *)(`{3,}|~{3,})(.*)$")
_CLOSING = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")


@dataclass(frozen=True)
class Fence:
    """An opening fence line: its character, length, indentation and first info word."""

    char: str
    length: int
    indent: int
    info: str

    @classmethod
    def opening(cls, line: str) -> Fence | None:
        """Any indentation is accepted (CommonMark allows three) because models indent fences
        in list items; the content is then read relative to it (`dedent`)."""
        found = _OPENING.match(line)
        if not found:
            return None
        marks, rest = found.group(2), found.group(3)
        if marks[0] == "`" and "`" in rest:  # inline code such as ```x```, not a fence
            return None
        words = rest.split()
        return cls(marks[0], len(marks), len(found.group(1)), words[0] if words else "")

    def closes(self, line: str) -> bool:
        found = _CLOSING.match(dedent(line, self.indent))
        return (
            found is not None
            and found.group(1)[0] == self.char
            and (len(found.group(1)) >= self.length)
        )

    def __str__(self) -> str:
        return self.char * self.length + self.info


def dedent(line: str, columns: int) -> str:
    """`line` without up to `columns` leading spaces, as CommonMark reads a fence's content."""
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, columns) :]
