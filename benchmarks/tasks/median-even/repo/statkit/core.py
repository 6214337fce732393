"""Descriptive statistics over plain sequences of numbers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean."""
    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / len(values)


def median(values: Sequence[float]) -> float:
    """The middle value of the sorted data."""
    if not values:
        raise ValueError("median() of an empty sequence")
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle]


def mode(values: Sequence[float]) -> float:
    """The most common value; the smallest one when several are equally common."""
    if not values:
        raise ValueError("mode() of an empty sequence")
    counts = Counter(values)
    best = max(counts.values())
    return min(v for v, n in counts.items() if n == best)


def spread(values: Sequence[float]) -> float:
    """The distance between the largest and the smallest value."""
    if not values:
        raise ValueError("spread() of an empty sequence")
    return max(values) - min(values)
