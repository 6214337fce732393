"""Elapsed time as people read it in logs: 01:02:03.456."""

from __future__ import annotations

import re

_TS = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)(?:\.(\d{1,3}))?$")


def fmt_ts(seconds: float) -> str:
    """Seconds since the start of the job as HH:MM:SS.mmm (hours may exceed 99)."""
    if seconds < 0:
        raise ValueError(f"negative elapsed time: {seconds}")
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def parse_ts(text: str) -> float:
    """The inverse of fmt_ts; the milliseconds are optional."""
    match = _TS.match(text.strip())
    if not match:
        raise ValueError(f"not a timestamp: {text!r}")
    hours, minutes, secs, millis = match.groups()
    fraction = int((millis or "0").ljust(3, "0")) / 1000
    return int(hours) * 3600 + int(minutes) * 60 + int(secs) + fraction
