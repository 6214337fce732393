"""The invoice as text: one line per item, then subtotal, tax and total."""

from __future__ import annotations

from dataclasses import dataclass

from billing.money import apply_rate, format_cents, percent, to_cents

WIDTH = 40


@dataclass(frozen=True)
class Item:
    description: str
    unit_price: str  # in currency units, e.g. "19.99"
    quantity: int = 1

    @property
    def cents(self) -> int:
        return to_cents(self.unit_price) * self.quantity


@dataclass(frozen=True)
class Totals:
    subtotal: int
    tax: int

    @property
    def total(self) -> int:
        return self.subtotal + self.tax


def totals(items: list[Item], tax_rate: str) -> Totals:
    subtotal = sum(item.cents for item in items)
    return Totals(subtotal, apply_rate(subtotal, tax_rate))


def render(items: list[Item], tax_rate: str) -> str:
    lines = [_row(f"{i.quantity} x {i.description}", i.cents) for i in items]
    t = totals(items, tax_rate)
    lines += [
        "-" * WIDTH,
        _row("Subtotal", t.subtotal),
        _row(f"Tax {percent(tax_rate)}", t.tax),
        _row("Total", t.total),
    ]
    return "\n".join(lines) + "\n"


def _row(label: str, cents: int) -> str:
    amount = format_cents(cents)
    return f"{label}{' ' * max(1, WIDTH - len(label) - len(amount))}{amount}"
