"""Bytes of one fetch -> ``ParseResult``: a short dispatcher on the source's kind.

Everything under ``parse/`` is pure (no I/O, no clock: ``fetched_at`` is
passed in). Each format module is imported when first used, so a page
source never loads the calendar stack and the other way round.
"""

from __future__ import annotations

from datetime import datetime

from aggregator.config import SourceConfig, SourceKind
from aggregator.records import ParseResult

__all__ = ["parse_document"]


def parse_document(
    body: bytes,
    *,
    source: SourceConfig,
    url: str,
    content_type: str | None,
    fetched_at: datetime,
    explain: bool = False,
) -> ParseResult:
    """Records of one document, read as ``source.kind`` says (``auto`` sniffs; see ``parse/auto.py``)."""
    if source.kind is SourceKind.FEED:
        from aggregator.parse.feed import parse_feed

        return parse_feed(body, source=source, url=url, fetched_at=fetched_at)
    if source.kind is SourceKind.ICAL:
        from aggregator.parse.ical import parse_ical

        return parse_ical(body, source=source, url=url, fetched_at=fetched_at)
    if source.kind is SourceKind.HTML:
        from aggregator.parse.html import parse_selectors

        return parse_selectors(body, source=source, url=url, fetched_at=fetched_at)
    from aggregator.parse.auto import parse_auto

    return parse_auto(body, source=source, url=url, content_type=content_type, fetched_at=fetched_at, explain=explain)
