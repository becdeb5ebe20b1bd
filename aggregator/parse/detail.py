"""Detail pages: fill a listing record's missing date, place or summary from the page it links to.

The pipeline fetches the links in ``ParseResult.detail_links`` (at most
``max_detail_pages`` per run) and hands each page here with its record. The
page's own structured data is the best witness, then ``<time datetime>``,
then the ``article:published_time`` and ``og:description`` meta tags, then
the first real paragraph. Only empty fields are filled; a field the listing
already had is never overwritten.
"""

from __future__ import annotations

import dataclasses
import html
from datetime import datetime

from lxml.html import HtmlElement

from aggregator.config import SourceConfig
from aggregator.extract.listing import iso_value, to_aware
from aggregator.extract.structured import extract_structured
from aggregator.parse.auto import load_page
from aggregator.records import EventRecord, NewsRecord, Record, Strategy
from aggregator.sanitize import clean_text

__all__ = ["enrich_from_detail"]

# A paragraph shorter than this is a caption, a byline or a cookie notice, not the story's lead.
_MIN_PARAGRAPH = 60
_LOCATION_HINTS = ("location", "venue", "place", "ort", "lieu", "luogo")


def _meta(tree: HtmlElement, *names: str) -> str | None:
    for meta in tree.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").lower()
        if key in names and (content := clean_text(meta.get("content"))):
            return content
    return None


def _first_paragraph(tree: HtmlElement) -> str | None:
    roots = list(tree.iter("article", "main")) or [tree]
    for root in roots:
        for p in root.iter("p"):
            if any(a.tag in ("footer", "nav", "header", "aside") for a in p.iterancestors()):
                continue
            text = clean_text(p.text_content())
            if len(text) >= _MIN_PARAGRAPH:
                return text
    return None


def _time_attr(tree: HtmlElement) -> str | None:
    for element in tree.iter("time"):
        if value := element.get("datetime"):
            return str(value)
    return None


def _location_text(tree: HtmlElement) -> str | None:
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        label = f"{element.get('class') or ''} {element.get('itemprop') or ''}".lower()
        if any(hint in label.split() or f"event-{hint}" in label for hint in _LOCATION_HINTS):
            text = clean_text(element.text_content())
            if 0 < len(text) <= 200:
                return text
    return None


def _same(record: Record, candidate: Record) -> bool:
    return type(record) is type(candidate)


def enrich_from_detail(record: Record, body: bytes, *, source: SourceConfig, url: str, fetched_at: datetime) -> Record:
    """``record`` with empty date, place or summary filled from its detail page; strategy "detail-page" if any was."""
    page = load_page(body, source=source, url=url)
    structured = extract_structured(
        page.tree, body, text=page.text, source=source, base_url=page.base_url, fetched_at=fetched_at
    )
    match = next((r for r in structured.records if _same(record, r)), None)
    changes: dict[str, object] = {}
    if isinstance(record, NewsRecord):
        found = match if isinstance(match, NewsRecord) else None
        if record.published is None:
            published = found.published if found else None
            if published is None:
                value = iso_value(_time_attr(page.tree), source.timezone) or iso_value(
                    _meta(page.tree, "article:published_time"), source.timezone
                )
                published = to_aware(value, source.timezone) if value is not None else None
            if published is not None:
                changes["published"] = published
        if not record.summary:
            summary = found.summary if found and found.summary else None
            if summary is None:
                text = _meta(page.tree, "og:description", "description") or _first_paragraph(page.tree)
                summary = html.escape(text, quote=False) if text else None
            if summary:
                changes["summary"] = summary
    elif isinstance(record, EventRecord):
        found_event = match if isinstance(match, EventRecord) else None
        if record.location is None:
            location = (found_event.location if found_event else None) or _location_text(page.tree)
            if location:
                changes["location"] = location
        if not record.description:
            text = (found_event.description if found_event else "") or html.escape(
                _meta(page.tree, "og:description", "description") or _first_paragraph(page.tree) or "", quote=False
            )
            if text:
                changes["description"] = text
    if not changes:
        return record
    return dataclasses.replace(record, strategy=Strategy.DETAIL_PAGE, **changes)  # type: ignore[arg-type]
