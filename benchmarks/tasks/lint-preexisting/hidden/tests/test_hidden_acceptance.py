import pytest

from shop.pricing import Line, line_total, order_total


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(1, 2.00), (9, 18.00), (10, 18.00), (11, 19.80), (25, 45.00)],
)
def test_bulk_discount_applies_from_ten_items(quantity, expected):
    assert line_total(Line("mug", 2.00, quantity)) == expected


def test_order_of_exactly_ten_gets_the_discount_and_free_shipping():
    assert order_total([Line("mug", 6.00, 10)], 4.0) == 54.00
