"""Rows (dicts) to CSV text. Missing values become empty cells; extra keys are dropped."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any


def read_jsonl(lines: Iterable[str]) -> list[dict[str, Any]]:
    """One JSON object per non-blank line."""
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        value = json.loads(line)
        if not isinstance(value, dict):
            raise ValueError(f"line {number}: expected a JSON object")
        rows.append(value)
    return rows


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A header line, then one line per row, in the order of `columns`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue()
