"""Writes the 120 route modules of this task's repository (deterministic, stdlib only).

    python3 generate.py REPO_DIR

The repository is large on purpose (about 18,000 lines), so that what the bot shows the
model has to be chosen within its context budget. Every module is built from the same
template with seeded variations; route 83 carries the bug the task is about.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROUTES = 120
BUGGY = 83
CITIES = (
    "Aarhus", "Bergen", "Bilbao", "Bremen", "Brno", "Cork", "Dijon", "Gdansk", "Genoa",
    "Ghent", "Graz", "Leipzig", "Lille", "Linz", "Lyon", "Malmo", "Nantes", "Porto", "Poznan",
    "Riga", "Seville", "Tartu", "Turin", "Utrecht", "Valencia", "Vilnius", "Zagreb",
)  # fmt: skip
HEAVY = "    if weight_kg > HEAVY_FROM_KG:\n        price *= HEAVY_FACTOR\n"
HEAVY_BUG = "    if weight_kg < HEAVY_FROM_KG:\n        price *= HEAVY_FACTOR\n"

TEMPLATE = '''"""Route {n:03d}: {origin} to {destination}, {distance} km, {len_stops} stops.

Timetable, stops and prices of one scheduled freight route. Generated from the network
plan; edit the plan, not this file, for timetable changes. Prices are maintained by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

ROUTE_ID = {n}
ORIGIN = "{origin}"
DESTINATION = "{destination}"
DISTANCE_KM = {distance}
BASE_FEE = {base_fee:.2f}
PER_KG = {per_kg:.2f}
HEAVY_FROM_KG = {heavy}
HEAVY_FACTOR = {factor:.2f}
MAX_WEIGHT_KG = {max_weight}
CRUISE_KMH = {speed}


@dataclass(frozen=True)
class Stop:
    name: str
    km: int
    dwell_minutes: int


STOPS = (
{stops})

DEPARTURES = (
{departures})

# Postcode prefixes served without a surcharge along this route.
SERVED_PREFIXES = frozenset({{{prefixes}}})


def stops() -> tuple[Stop, ...]:
    """The stops in travel order, origin first."""
    return STOPS


def leg_lengths() -> list[int]:
    """Kilometres between consecutive stops."""
    return [b.km - a.km for a, b in zip(STOPS, STOPS[1:])]


def eta_minutes(speed_kmh: float = CRUISE_KMH) -> int:
    """Door-to-door minutes: driving at `speed_kmh` plus the dwell time at every stop."""
    if speed_kmh <= 0:
        raise ValueError("speed must be positive")
    driving = DISTANCE_KM / speed_kmh * 60
    dwell = sum(stop.dwell_minutes for stop in STOPS)
    return round(driving + dwell)


def next_departure(hhmm: str) -> str | None:
    """The first departure at or after `hhmm` (same day), or None."""
    for departure in DEPARTURES:
        if departure >= hhmm:
            return departure
    return None


def departures_between(start: str, end: str) -> list[str]:
    """Departures from `start` up to, not including, `end` (both HH:MM)."""
    return [d for d in DEPARTURES if start <= d < end]


def stop_named(name: str) -> Stop:
    """The stop called `name`; KeyError when the route does not call there."""
    for stop in STOPS:
        if stop.name == name:
            return stop
    raise KeyError(f"route {{ROUTE_ID}} does not stop at {{name}}")


def serves(postcode: str) -> bool:
    """Whether a postcode is on the route without a detour surcharge."""
    return postcode[:2] in SERVED_PREFIXES


def quote(weight_kg: float) -> float:
    """The price of one parcel: base fee plus a price per kg; heavy parcels cost more."""
    if weight_kg <= 0:
        raise ValueError("a parcel must weigh something")
    if weight_kg > MAX_WEIGHT_KG:
        raise ValueError(f"route {{ROUTE_ID}} takes parcels up to {{MAX_WEIGHT_KG}} kg")
    price = BASE_FEE + PER_KG * weight_kg
{heavy_rule}    return round(price, 2)


def quote_many(weights: list[float]) -> float:
    """The price of a consignment of parcels."""
    return round(sum(quote(w) for w in weights), 2)


def capacity_left(booked_kg: float, truck_kg: float = 12_000) -> float:
    """Kilograms still bookable on one truck."""
    return max(0.0, truck_kg - booked_kg)


def describe() -> str:
    """One line for the network overview page."""
    return (
        f"Route {{ROUTE_ID:03d}} {{ORIGIN}}-{{DESTINATION}}: {{DISTANCE_KM}} km, "
        f"{{len(STOPS)}} stops, {{len(DEPARTURES)}} departures a day, "
        f"about {{eta_minutes() // 60}} h {{eta_minutes() % 60}} min"
    )


def validate() -> list[str]:
    """Problems in this module's data; an empty list when it is consistent."""
    problems = []
    if STOPS[0].name != ORIGIN or STOPS[-1].name != DESTINATION:
        problems.append("first and last stop must be origin and destination")
    if any(length <= 0 for length in leg_lengths()):
        problems.append("stops must be in travel order")
    if STOPS[-1].km != DISTANCE_KM:
        problems.append("the last stop must be at DISTANCE_KM")
    if list(DEPARTURES) != sorted(DEPARTURES):
        problems.append("departures must be sorted")
    if not 0 < HEAVY_FROM_KG < MAX_WEIGHT_KG:
        problems.append("HEAVY_FROM_KG must be below MAX_WEIGHT_KG")
    return problems
'''


def module(n: int) -> str:
    rng = random.Random(n)
    origin, destination = rng.sample(CITIES, 2)
    distance = rng.randrange(120, 1400)
    between = sorted(rng.sample(range(10, distance - 10), rng.randrange(8, 14)))
    stops = [(origin, 0, 0)]
    stops += [(f"{rng.choice(CITIES)} depot {i + 1}", km, rng.choice((10, 15, 20, 30)))
              for i, km in enumerate(between)]  # fmt: skip
    stops.append((destination, distance, 0))
    hours = sorted(rng.sample(range(4, 23), rng.randrange(6, 10)))
    departures = [f"{h:02d}:{rng.choice((0, 15, 30, 45)):02d}" for h in hours]
    prefixes = sorted({f"{rng.randrange(10, 99)}" for _ in range(12)})
    return TEMPLATE.format(
        n=n,
        origin=origin,
        destination=destination,
        distance=distance,
        len_stops=len(stops),
        base_fee=rng.randrange(400, 1200) / 100,
        per_kg=rng.randrange(20, 90) / 100,
        heavy=rng.choice((20, 25, 30)),
        factor=rng.choice((1.25, 1.4, 1.5)),
        max_weight=rng.choice((60, 80, 100)),
        speed=rng.choice((65, 70, 75)),
        stops="".join(f'    Stop("{s}", {km}, {dwell}),\n' for s, km, dwell in stops),
        departures="".join(f'    "{d}",\n' for d in departures),
        prefixes=", ".join(f'"{p}"' for p in prefixes),
        heavy_rule=HEAVY_BUG if n == BUGGY else HEAVY,
    )


def main(target: Path) -> None:
    routes = target / "depot" / "routes"
    routes.mkdir(parents=True, exist_ok=True)
    (routes / "__init__.py").write_text('"""One module per scheduled route: route_NNN.py."""\n')
    for n in range(1, ROUTES + 1):
        (routes / f"route_{n:03d}.py").write_text(module(n))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
