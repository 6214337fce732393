import pytest

from catalog.api import listing
from catalog.pagination import paginate

PRODUCTS = [{"sku": f"P{i:03d}"} for i in range(25)]


@pytest.mark.parametrize(
    ("total", "per_page", "pages"),
    [(0, 10, 1), (1, 10, 1), (10, 10, 1), (11, 10, 2), (25, 10, 3), (30, 10, 3), (99, 100, 1)],
)
def test_page_count(total, per_page, pages):
    assert paginate(list(range(total)), 1, per_page).pages == pages


def test_the_partial_last_page_can_be_requested():
    page = paginate(PRODUCTS, 3, 10)
    assert [p["sku"] for p in page.items] == ["P020", "P021", "P022", "P023", "P024"]
    assert page.has_previous and not page.has_next


def test_listing_of_the_last_page():
    body = listing(PRODUCTS, "/products", page=3, per_page=10)
    assert (body["pages"], len(body["items"])) == (3, 5)
    assert body["links"] == {"prev": "/products?page=2&per_page=10"}


def test_past_the_end_is_still_an_error():
    with pytest.raises(LookupError):
        paginate(PRODUCTS, 4, 10)
