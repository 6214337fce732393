"""Looking up routes by number and quoting across the network."""

from __future__ import annotations

import importlib
from types import ModuleType

ROUTE_COUNT = 120


def route(number: int) -> ModuleType:
    """The module of route `number` (1-based)."""
    if not 1 <= number <= ROUTE_COUNT:
        raise KeyError(f"no route {number}")
    return importlib.import_module(f"depot.routes.route_{number:03d}")


def quote(number: int, weight_kg: float) -> float:
    """The price of one parcel on route `number`."""
    return float(route(number).quote(weight_kg))


def cheapest(numbers: list[int], weight_kg: float) -> int:
    """Which of these routes is cheapest for a parcel of this weight."""
    return min(numbers, key=lambda n: (quote(n, weight_kg), n))


def inconsistent_routes() -> dict[int, list[str]]:
    """Routes whose data do not add up, with what is wrong."""
    found = {}
    for number in range(1, ROUTE_COUNT + 1):
        problems = route(number).validate()
        if problems:
            found[number] = problems
    return found
