import pytest

from catalog.api import listing
from catalog.pagination import paginate

PRODUCTS = [{"sku": f"P{i:03d}"} for i in range(25)]


def test_first_page():
    page = paginate(PRODUCTS, 1, 10)
    assert [p["sku"] for p in page.items] == [f"P{i:03d}" for i in range(10)]
    assert page.has_next and not page.has_previous


def test_a_partial_last_page_counts_as_a_page():
    assert paginate(PRODUCTS, 1, 10).pages == 3


def test_empty_listing_has_one_empty_page():
    page = paginate([], 1)
    assert (page.pages, list(page.items), page.has_next) == (1, [], False)


def test_listing_links():
    body = listing(PRODUCTS, "/products", page=2, per_page=10)
    assert body["links"] == {
        "next": "/products?page=3&per_page=10",
        "prev": "/products?page=1&per_page=10",
    }


def test_page_past_the_end_is_an_error():
    with pytest.raises(LookupError):
        paginate(PRODUCTS, 4, 10)
