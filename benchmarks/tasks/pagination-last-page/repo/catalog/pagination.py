"""Pages of a list: which items, how many pages, and whether there is a next one.

Page numbers start at 1. An empty list still has one (empty) page, so the first page of
any listing can always be requested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages the whole listing has."""
        return max(1, self.total // self.per_page)

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def paginate(items: Sequence[T], number: int, per_page: int = 20) -> Page[T]:
    """Page `number` of `items`; a number past the last page is an error."""
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")
    if number < 1:
        raise ValueError("page numbers start at 1")
    start = (number - 1) * per_page
    page = Page(items[start : start + per_page], number, per_page, len(items))
    if number > page.pages:
        raise LookupError(f"page {number} of {page.pages} does not exist")
    return page
