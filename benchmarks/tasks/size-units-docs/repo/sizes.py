"""Human-readable byte sizes: "10KB" -> 10240 and back."""

from __future__ import annotations

import re

UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """A size with an optional unit suffix, in bytes (rounded down to a whole byte)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    factor = UNITS.get(unit.upper())
    if factor is None:
        raise ValueError(f"unknown unit {unit!r} in {text!r}")
    return int(float(number) * factor)


def format_size(size: int) -> str:
    """The size in the largest unit that keeps the number at or above 1."""
    if size < 0:
        raise ValueError("a size cannot be negative")
    for unit in ("TB", "GB", "MB", "KB"):
        if size >= UNITS[unit]:
            return f"{size / UNITS[unit]:.1f} {unit}"
    return f"{size} B"
