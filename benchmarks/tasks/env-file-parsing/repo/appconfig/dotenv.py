"""Parse `.env` files: KEY=value lines, comments, `export`, quoted values.

Supported, as in docker compose and most shells:
- blank lines and lines starting with `#` are ignored;
- an optional leading `export `;
- a value may be wrapped in single or double quotes, which are removed; inside quotes a `#`
  is part of the value;
- an unquoted value ends at ` #` (an inline comment) and is stripped of blanks.
"""

from __future__ import annotations

import re

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DotenvError(ValueError):
    def __init__(self, line_number: int, message: str) -> None:
        super().__init__(f"line {line_number}: {message}")
        self.line_number = line_number


def parse(text: str) -> dict[str, str]:
    """The variables in a .env file's text, later lines winning."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()  # comments, whole-line or inline
        if not line:
            continue
        key, value = _split(line, number)
        values[key] = value
    return values


def _split(line: str, number: int) -> tuple[str, str]:
    if line.startswith("export "):
        line = line[len("export ") :].lstrip()
    if "=" not in line:
        raise DotenvError(number, "expected KEY=value")
    key, value = line.split("=")
    key = key.strip()
    if not _KEY.match(key):
        raise DotenvError(number, f"invalid variable name {key!r}")
    return key, _value(value.strip())


def _value(value: str) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        if end < 0:
            raise ValueError("unterminated quote")
        return value[1:end]
    return value
