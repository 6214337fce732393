"""Parse human-friendly durations such as "1h30m" or "45s" into seconds."""

import re

_UNITS = {"h": 3600, "s": 1}


def parse_duration(text: str) -> int:
    """Return the number of seconds in `text`, e.g. "1h30m" -> 5400."""
    total = 0
    for amount, unit in re.findall(r"(\d+)([a-z])", text.strip().lower()):
        total += int(amount) * _UNITS[unit]
    return total
