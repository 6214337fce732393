"""Money as integer cents: parsing, formatting and applying rates.

Every amount is an int of cents, so sums are exact; rounding happens only where a rate
is applied, in one place.
"""

from __future__ import annotations

from decimal import Decimal


def to_cents(amount: str) -> int:
    """Parse "19.99" into 1999. More than two decimals is an error, not a rounding."""
    value = Decimal(amount)
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount!r} has more than two decimals")
    return int(cents)


def format_cents(cents: int) -> str:
    """1999 -> "19.99", -5 -> "-0.05"."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def apply_rate(cents: int, rate: str) -> int:
    """`cents` times a rate given as a decimal string ("0.075" for 7.5%), in whole cents."""
    return int(Decimal(cents) * Decimal(rate))


def percent(rate: str) -> str:
    """"0.075" -> "7.5%"."""
    return f"{(Decimal(rate) * 100).normalize():f}%"
