"""A bounded in-memory cache of detail pages, so repeated runs ask with conditional GET.

Detail pages (a listing record's own page, followed for a missing date,
place or summary) rarely change; the daemon keeps their validators and
bodies for the life of the process, so a re-run costs a 304 per page.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from aggregator.records import Validators

__all__ = ["CachedPage", "DetailCache"]


@dataclass(frozen=True, slots=True)
class CachedPage:
    url: str  # final URL after redirects: the base for relative links
    body: bytes
    validators: Validators


class DetailCache:
    """Least-recently-used pages up to a byte budget."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._pages: OrderedDict[str, CachedPage] = OrderedDict()
        self._size = 0

    def get(self, url: str) -> CachedPage | None:
        page = self._pages.get(url)
        if page is not None:
            self._pages.move_to_end(url)
        return page

    def put(self, url: str, page: CachedPage) -> None:
        if len(page.body) > self.max_bytes // 8:
            return  # one huge page must not evict everything else
        old = self._pages.pop(url, None)
        if old is not None:
            self._size -= len(old.body)
        self._pages[url] = page
        self._size += len(page.body)
        while self._size > self.max_bytes and self._pages:
            _, evicted = self._pages.popitem(last=False)
            self._size -= len(evicted.body)

    def __len__(self) -> int:
        return len(self._pages)
