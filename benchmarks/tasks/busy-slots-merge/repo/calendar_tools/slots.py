"""Busy and free slots for one day, in minutes since midnight.

Slots are half-open: (540, 600) is 09:00 up to, but not including, 10:00. Two slots that
touch, like (540, 600) and (600, 660), leave no free time between them.
"""

from __future__ import annotations

Slot = tuple[int, int]
DAY_MINUTES = 24 * 60


def merge(slots: list[Slot]) -> list[Slot]:
    """The fewest slots covering the same time, sorted by start."""
    merged: list[Slot] = []
    for start, end in sorted(slots):
        if not 0 <= start < end <= DAY_MINUTES:
            raise ValueError(f"not a slot within one day: ({start}, {end})")
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def free(busy: list[Slot], day_start: int, day_end: int) -> list[Slot]:
    """The free slots between day_start and day_end, around the busy ones."""
    gaps: list[Slot] = []
    cursor = day_start
    for start, end in merge(busy):
        if start > cursor:
            gaps.append((cursor, min(start, day_end)))
        cursor = max(cursor, end)
        if cursor >= day_end:
            break
    if cursor < day_end:
        gaps.append((cursor, day_end))
    return [g for g in gaps if g[0] < g[1]]


def busy_minutes(busy: list[Slot]) -> int:
    """Minutes covered by at least one busy slot."""
    return sum(end - start for start, end in merge(busy))


def label(slot: Slot) -> str:
    """A slot as people read it: 09:00-10:30."""
    start, end = slot
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
