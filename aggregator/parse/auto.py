"""``kind = "auto"``: whatever a URL serves, get the news and events out of it.

Order of strategies (first that applies wins, later ones only add):

0. The body is a feed or a calendar (by content type or by its first bytes):
   read it as one, whatever the URL looks like.
1. The page links a feed (``<link rel="alternate">``): return it as
   ``discovered_url`` and no page records, because the pipeline fetches the
   feed and it is the better source for the same items. Structured events
   on the page (JSON-LD, microdata, RDFa, microformats) are still kept: a
   news feed rarely carries the events a page marks up. RSS/Atom links are
   preferred over JSON Feed, and both over an iCalendar link; among equals
   the first in the page wins (WordPress lists the posts feed before the
   comments feed, which is skipped anyway).
2. Structured data (``extract/structured.py``).
3. Listing heuristics (``extract/listing.py``).
4. Events announced in news titles (``extract/announce.py``).

Records of several strategies describing the same thing are merged by
(normalised title, start date) for events and by id for news, keeping the
structured record and filling its gaps from the others.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import lxml.etree
import lxml.html
from lxml.html import HtmlElement

from aggregator.config import SourceConfig
from aggregator.errors import ParseError
from aggregator.extract.announce import announced_events
from aggregator.extract.listing import find_listings, normalised_title, with_link_uids
from aggregator.extract.structured import extract_structured
from aggregator.records import EventRecord, Explanation, NewsRecord, ParseResult, Problem, Record, Strategy
from aggregator.urls import absolute_url

__all__ = ["Page", "load_page", "parse_auto", "sniff_format"]

_FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json"}
_ICAL_TYPES = {"text/calendar"}
_ALTERNATE_RANK = {
    "application/rss+xml": 0,
    "application/atom+xml": 0,
    "application/feed+json": 1,
    "application/json": 1,
    "text/calendar": 2,
}
# A DOCTYPE may carry an internal subset ("[ <!ENTITY ...> ]") whose declarations contain ">".
_PROLOG = re.compile(rb"\s*(<\?[^>]*\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[[^\]]*\])?\s*>)", re.DOTALL | re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_STRUCTURED = (Strategy.JSON_LD, Strategy.MICRODATA, Strategy.RDFA, Strategy.MICROFORMATS)


def sniff_format(body: bytes, content_type: str | None) -> str:
    """ "feed", "ical" or "html": the content type when it is specific, else the first bytes.

    Servers send feeds as text/html or text/plain often enough that the bytes
    decide whenever the type is generic.
    """
    if content_type in _FEED_TYPES:
        return "feed"
    if content_type in _ICAL_TYPES:
        return "ical"
    head = body[:4096]
    for bom, _ in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    head = head.lstrip()
    if head[:15].upper().startswith(b"BEGIN:VCALENDAR"):
        return "ical"
    if head.startswith(b"{") and _is_json_feed(body):
        return "feed"
    position = 0
    while match := _PROLOG.match(head, position):
        position = match.end()
    rest = head[position:].lstrip()
    if rest.startswith((b"<rss", b"<feed", b"<rdf:RDF", b"<RDF")):
        return "feed"
    return "html"


def _is_json_feed(body: bytes) -> bool:
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    version = data.get("version") if isinstance(data, dict) else None
    return isinstance(version, str) and version.startswith(
        ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
    )


@dataclass(frozen=True, slots=True)
class Page:
    """A parsed HTML page and the URL its relative links resolve against."""

    tree: HtmlElement
    text: str
    base_url: str
    # Why part of the page is missing from ``tree`` (libxml2 stops at 256 levels of nesting).
    damage: str | None = None


def _encoding(body: bytes) -> str:
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    match = _META_CHARSET.search(body[:2048])
    if match:
        name = match.group(1).decode("ascii", "replace").lower()
        try:
            "".encode(name)
        except LookupError:
            pass
        else:
            return "utf-8" if name in ("utf8", "unicode") else name
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "windows-1252"
    return "utf-8"


def load_page(body: bytes, *, source: SourceConfig, url: str) -> Page:
    """Decode (BOM, meta charset, else UTF-8 with a Windows-1252 fallback) and parse once with lxml."""
    text = body.decode(_encoding(body), errors="replace")
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    if not text.strip():
        raise ParseError(source.name, "empty page")
    parser = lxml.html.HTMLParser()
    try:
        tree = lxml.html.document_fromstring(text, parser=parser)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise ParseError(source.name, f"unreadable HTML: {exc}") from exc
    damage = None
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        # Deeper trees would also overflow the recursive walkers downstream: keep the limit, say so.
        damage = "elements nested more than 255 levels deep; the page was read only up to that point"
    base_url = url
    for base in tree.iter("base"):
        if resolved := absolute_url(base.get("href"), url):
            base_url = resolved
        break
    return Page(tree=tree, text=text, base_url=base_url, damage=damage)


def discover_feed(page: Page) -> str | None:
    """The page's preferred alternate feed or calendar (see the module docstring), absolute."""
    best: tuple[int, str] | None = None
    for link in page.tree.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        media_type = (link.get("type") or "").split(";")[0].strip().lower()
        if "alternate" not in rel or media_type not in _ALTERNATE_RANK:
            continue
        href = absolute_url(link.get("href"), page.base_url)
        title = (link.get("title") or "").lower()
        if href is None or "comment" in title or "/comments/" in href:
            continue
        rank = _ALTERNATE_RANK[media_type]
        if best is None or rank < best[0]:
            best = (rank, href)
    return best[1] if best else None


def parse_auto(
    body: bytes,
    *,
    source: SourceConfig,
    url: str,
    content_type: str | None,
    fetched_at: datetime,
    explain: bool,
) -> ParseResult:
    """Feed, calendar or page: records by the first strategies that apply (module docstring)."""
    kind = sniff_format(body, content_type)
    if kind == "feed":
        from aggregator.parse.feed import parse_feed

        return parse_feed(body, source=source, url=url, fetched_at=fetched_at)
    if kind == "ical":
        from aggregator.parse.ical import parse_ical

        return parse_ical(body, source=source, url=url, fetched_at=fetched_at)
    page = load_page(body, source=source, url=url)
    damage = (Problem(source.name, page.damage),) if page.damage else ()
    structured = extract_structured(
        page.tree, body, text=page.text, source=source, base_url=page.base_url, fetched_at=fetched_at
    )
    explanations: list[Explanation] = []
    if explain:
        for syntax in structured.syntaxes:
            count = sum(1 for r in structured.records if r.strategy.value == syntax)
            explanations.append(Explanation(syntax, count > 0, f"{count} records from {syntax}"))
    discovered = discover_feed(page)
    if discovered is not None:
        events = [r for r in structured.records if isinstance(r, EventRecord)]
        if explain:
            explanations.append(
                Explanation(f"link rel=alternate {discovered}", True, "feed discovered: page listings not used")
            )
        return ParseResult(
            records=tuple(with_link_uids(merge_records(events), page_url=url)),
            problems=(*damage, *structured.problems),
            discovered_url=discovered,
            explanations=tuple(explanations),
        )
    listing = find_listings(page.tree, source=source, base_url=page.base_url, fetched_at=fetched_at, explain=explain)
    explanations.extend(listing.explanations)
    page_records = [*structured.records, *listing.records]
    news = [r for r in page_records if isinstance(r, NewsRecord)]
    announced = announced_events(news, source=source, reference=fetched_at)
    records = with_link_uids(merge_records([*page_records, *announced]), page_url=url)
    return ParseResult(
        records=tuple(records),
        problems=(*damage, *structured.problems, *listing.problems),
        explanations=tuple(explanations),
        detail_links=detail_links(records, limit=source.max_detail_pages),
    )


# ---------------------------------------------------------------------------
# Merging what several strategies found


def _start_day(event: EventRecord) -> date:
    return event.start.date() if isinstance(event.start, datetime) else event.start


def _rank(record: Record) -> int:
    """Structured data first, then the visible listing, then announcements in titles."""
    return (
        _STRUCTURED.index(record.strategy)
        if record.strategy in _STRUCTURED
        else len(_STRUCTURED) + (1 if record.strategy is Strategy.TITLE_TEXT else 0)
    )


def _fill(kept: Record, other: Record) -> Record:
    """``kept`` with its empty fields taken from ``other`` (same kind)."""
    changes: dict[str, object] = {}
    names: Sequence[str]
    if isinstance(kept, EventRecord):
        names = ("location", "link", "description", "end")
    else:
        names = ("link", "summary", "published", "updated")
    for name in names:
        if not getattr(kept, name) and getattr(other, name):
            changes[name] = getattr(other, name)
    return dataclasses.replace(kept, **changes) if changes else kept  # type: ignore[arg-type]


def merge_records(records: Sequence[Record]) -> list[Record]:
    """One record per thing: events by (normalised title, start day), news by id; structured data wins."""
    order: list[tuple[str, object]] = []
    best: dict[tuple[str, object], Record] = {}
    for record in sorted(records, key=_rank):
        key: tuple[str, object]
        if isinstance(record, EventRecord):
            key = ("event", (normalised_title(record.title), _start_day(record)))
        else:
            key = ("news", record.id)
        if key in best:
            best[key] = _fill(best[key], record)
        else:
            best[key] = record
            order.append(key)
    merged = [best[k] for k in order]
    merged.sort(key=lambda r: isinstance(r, EventRecord))
    return merged


def detail_links(records: Sequence[Record], *, limit: int) -> tuple[tuple[str, str], ...]:
    """(key, link) of listing records missing a date, place or summary: at most ``limit`` pages."""
    if limit <= 0:
        return ()
    wanted: list[tuple[str, str]] = []
    for record in records:
        if record.strategy is not Strategy.LISTING or not record.link:
            continue
        missing = (
            (record.published is None or not record.summary)
            if isinstance(record, NewsRecord)
            else (record.location is None)
        )
        if missing:
            wanted.append((record.key, record.link))
        if len(wanted) >= limit:
            break
    return tuple(wanted)
