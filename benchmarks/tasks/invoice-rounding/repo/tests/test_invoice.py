from billing.invoice import Item, render, totals


def test_invoice_lists_items_and_totals():
    text = render([Item("Notebook", "2.50", 2)], "0.2")
    assert "2 x Notebook" in text
    assert text.splitlines()[-1].endswith("6.00")


def test_tax_is_rounded_to_the_nearest_cent():
    # 19.99 * 7.5% = 1.49925, which is 1.50 to the cent
    t = totals([Item("Desk lamp", "19.99")], "0.075")
    assert (t.subtotal, t.tax, t.total) == (1999, 150, 2149)


def test_rendered_invoice_shows_the_rounded_tax():
    text = render([Item("Desk lamp", "19.99")], "0.075")
    assert "Tax 7.5%" in text
    assert text.splitlines()[-2].endswith("1.50")
    assert text.splitlines()[-1].endswith("21.49")
