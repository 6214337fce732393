"""The listing endpoint's response body, minus the HTTP framework."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from catalog.pagination import paginate


def listing(
    products: Sequence[dict[str, Any]], base_url: str, page: int = 1, per_page: int = 20
) -> dict[str, Any]:
    result = paginate(products, page, per_page)
    links = {}
    if result.has_next:
        links["next"] = _url(base_url, page + 1, per_page)
    if result.has_previous:
        links["prev"] = _url(base_url, page - 1, per_page)
    return {
        "items": list(result.items),
        "page": result.number,
        "pages": result.pages,
        "total": result.total,
        "links": links,
    }


def _url(base_url: str, page: int, per_page: int) -> str:
    return f"{base_url}?{urlencode({'page': page, 'per_page': per_page})}"
