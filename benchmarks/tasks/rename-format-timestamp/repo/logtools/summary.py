"""A short summary of a job's log: duration, counts per level, first error."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from logtools import timefmt


def summarise(records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return "empty log"
    times = [float(r["t"]) for r in records]
    levels = Counter(str(r.get("level", "info")).lower() for r in records)
    counts = ", ".join(f"{n} {level}" for level, n in sorted(levels.items()))
    lines = [f"duration {timefmt.fmt_ts(max(times) - min(times))}; {counts}"]
    errors = [r for r in records if str(r.get("level", "")).lower() == "error"]
    if errors:
        first = errors[0]
        lines.append(f"first error at {timefmt.fmt_ts(float(first['t']))}: {first.get('msg', '')}")
    return "\n".join(lines)
