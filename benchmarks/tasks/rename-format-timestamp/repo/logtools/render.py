"""One log record per line: `00:00:01.250 WARN  worker-2  disk almost full`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from logtools.timefmt import fmt_ts

LEVEL_WIDTH = 5


def render_line(record: Mapping[str, Any]) -> str:
    when = fmt_ts(float(record["t"]))
    level = str(record.get("level", "info")).upper().ljust(LEVEL_WIDTH)
    source = record.get("source", "-")
    return f"{when} {level} {source}  {record.get('msg', '')}".rstrip()


def render_log(records: Iterable[Mapping[str, Any]]) -> str:
    return "".join(render_line(r) + "\n" for r in records)
