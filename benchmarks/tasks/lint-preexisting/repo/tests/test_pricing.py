from shop.pricing import Line, line_total, order_total, order_total_cents, shipping


def test_small_quantities_pay_full_price():
    assert line_total(Line("pen", 1.50, 4)) == 6.00


def test_bulk_discount_starts_at_ten_items():
    assert line_total(Line("pen", 1.50, 10)) == 13.50


def test_bulk_discount_above_ten_items():
    assert line_total(Line("pen", 1.50, 20)) == 27.00


def test_shipping_is_charged_per_started_kilogram():
    assert shipping(20.00, 1.2) == 7.35


def test_free_shipping_from_fifty():
    assert shipping(50.00, 3.0) == 0.0


def test_order_total_in_cents():
    lines = [Line("pen", 1.50, 4), Line("pad", 3.25, 2)]
    assert order_total(lines, 0.5) == 18.65
    assert order_total_cents(lines, 0.5) == 1865
