"""Money helpers shared by pricing, refunds and invoices.

Amounts are Decimal throughout; this module is the only place that rounds.
"""

from decimal import ROUND_HALF_UP, Decimal


def round_money(amount: Decimal) -> Decimal:
    """Round to cents, half up, once at the end of a calculation.

    Callers must not round intermediate results: rounding twice loses a cent on some
    discount and tax combinations.
    """
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def split_evenly(amount: Decimal, parts: int) -> list[Decimal]:
    """Split an amount into parts that add up exactly: the remainder cents go to the first
    parts, so no cent is created or lost when an order total is divided among payments."""
    cents = int(amount * 100)
    base, extra = divmod(cents, parts)
    return [Decimal(base + (1 if i < extra else 0)) / 100 for i in range(parts)]
