import pytest

from billing.invoice import Item, render, totals
from billing.money import apply_rate


@pytest.mark.parametrize(
    ("cents", "rate", "expected"),
    [
        (1999, "0.075", 150),  # 149.925
        (10, "0.05", 1),  # 0.5 rounds half up
        (1000, "0.2", 200),
        (1, "0.4", 0),
        (333, "0.1", 33),  # 33.3
        (-1999, "0.075", -150),  # credit notes mirror invoices
    ],
)
def test_apply_rate_rounds_half_up_to_the_cent(cents, rate, expected):
    assert apply_rate(cents, rate) == expected


def test_invoice_total_matches_the_accountants_figure():
    t = totals([Item("Desk lamp", "19.99")], "0.075")
    assert (t.tax, t.total) == (150, 2149)
    assert render([Item("Desk lamp", "19.99")], "0.075").splitlines()[-1].endswith("21.49")
