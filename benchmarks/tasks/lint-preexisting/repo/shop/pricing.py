"""Order pricing: line totals with the bulk discount, shipping, order totals."""

import json
import math
from dataclasses import dataclass

BULK_FROM = 10  # items of one product; at this quantity and above the discount applies
BULK_DISCOUNT = 0.10
FREE_SHIPPING_FROM = 50.00
SHIPPING_BASE = 4.95
SHIPPING_PER_KG = 1.20

to_cents = lambda amount: int(round(amount * 100))


@dataclass(frozen=True)
class Line:
    sku: str
    unit_price: float
    quantity: int


def line_total(line: Line) -> float:
    """Price of one order line, with the bulk discount when it applies."""
    total = line.unit_price * line.quantity
    if line.quantity > BULK_FROM:
        total *= 1 - BULK_DISCOUNT
    return round(total, 2)


def shipping(subtotal: float, weight_kg: float) -> float:
    """Free above the threshold; otherwise a base fee plus a fee per started kilogram."""
    if subtotal >= FREE_SHIPPING_FROM:
        return 0.0
    return round(SHIPPING_BASE + math.ceil(weight_kg) * SHIPPING_PER_KG, 2)


def order_total(lines: list[Line], weight_kg: float) -> float:
    subtotal = round(sum(line_total(line) for line in lines), 2)
    return round(subtotal + shipping(subtotal, weight_kg), 2)


def order_total_cents(lines: list[Line], weight_kg: float) -> int:
    """What the payment provider is sent."""
    return to_cents(order_total(lines, weight_kg))
