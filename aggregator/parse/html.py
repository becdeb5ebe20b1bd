"""``kind = "html"``: records picked from a page by the CSS selectors in sources.toml.

One ``item`` element per record; ``title``, ``link``, ``date``, ``summary`` and
``location`` are selectors inside it. The selected text goes through the same
record building as the listing heuristics (``extract/listing.py``), so a
configured source and an auto-detected one give identical records.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bs4 import BeautifulSoup, Tag

from aggregator.config import SourceConfig
from aggregator.errors import ParseError
from aggregator.extract.listing import MORE_WORDS, BlockFields, event_from_fields, news_from_fields, with_link_uids
from aggregator.records import ParseResult, Problem, Record, RecordKind, Strategy
from aggregator.sanitize import clean_text
from aggregator.urls import absolute_url

if TYPE_CHECKING:
    from soupsieve import SoupSieve

__all__ = ["page_base_url", "parse_selectors"]


def page_base_url(soup: BeautifulSoup, url: str) -> str:
    """The URL relative links resolve against: ``<base href>`` (itself relative to the page) or the page."""
    base = soup.find("base", href=True)
    if isinstance(base, Tag):
        resolved = absolute_url(str(base["href"]), url)
        if resolved:
            return resolved
    return url


def _text(element: Tag | None) -> str:
    return clean_text(element.get_text(" ")) if element is not None else ""


def _summary(element: Tag | None) -> str:
    """Teaser text without its "more" link: the link is how to get there, not what it says."""
    if element is None:
        return ""
    parts: list[str] = []
    for text in element.find_all(string=True):
        parent = text.find_parent("a")
        if parent is not None and clean_text(parent.get_text(" ")).casefold().strip(" .…»›→") in MORE_WORDS:
            continue
        parts.append(str(text))
    return clean_text("".join(parts))


# Compiled selectors by (selector, the tag's namespace prefixes): ``Tag.select_one`` compiles on
# every call, i.e. for every field of every item.
_COMPILED: dict[tuple[str, tuple[tuple[str, str], ...]], SoupSieve] = {}


def _select(item: Tag, selector: str | None) -> Tag | None:
    """``item.select_one(selector)``, with the compiled selector reused."""
    if not selector:
        return None
    key = (selector, tuple(sorted(item._namespaces.items())))
    pattern = _COMPILED.get(key)
    if pattern is None:
        if len(_COMPILED) >= 256:
            _COMPILED.clear()
        pattern = _COMPILED[key] = item.css.compile(selector)
    return pattern.select_one(item)


def _href(item: Tag, selector: str | None) -> str | None:
    """The link of the selected element: itself if it is an <a>, else the first <a href> inside it."""
    element = _select(item, selector) if selector else item
    if element is None:
        return None
    if element.name == "a" and element.get("href"):
        return str(element["href"])
    inner = element.find("a", href=True)
    if isinstance(inner, Tag):
        return str(inner["href"])
    if selector is None and element.name != "a":
        return None
    parent = element.find_parent("a", href=True)
    return str(parent["href"]) if parent is not None else None


def _date(item: Tag, selector: str | None) -> tuple[str | None, str | None]:
    """(visible date text, <time datetime> value) of the date element."""
    element = _select(item, selector)
    if element is None:
        return None, None
    time_el = element if element.name == "time" else element.find("time")
    attr = str(time_el["datetime"]) if isinstance(time_el, Tag) and time_el.get("datetime") else None
    return _text(element) or None, attr


def _soup(body: bytes) -> BeautifulSoup:
    """The page parsed by lxml, its encoding sniffed by bs4.

    A ``<meta charset>`` holding control characters makes lxml refuse the encoding name bs4
    hands it (ValueError, found by fuzzing): the page is then read as UTF-8, else Windows-1252,
    as auto-detection reads undeclared pages.
    """
    try:
        return BeautifulSoup(body, "lxml")
    except ValueError:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = body.decode("windows-1252", errors="replace")
        return BeautifulSoup(text, "lxml")


def parse_selectors(body: bytes, *, source: SourceConfig, url: str, fetched_at: datetime) -> ParseResult:
    """Records of the page's ``item`` elements; an item without a title or date becomes a Problem."""
    selectors = source.selectors
    if selectors is None:
        raise ParseError(source.name, 'kind = "html" needs selectors (item, title, link, date ...)')
    if not body.strip():
        raise ParseError(source.name, "empty page")
    soup = _soup(body)
    base_url = page_base_url(soup, url)
    records: list[Record] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    items = soup.select(selectors.item)
    if not items:
        problems.append(Problem(source.name, f"no element matches item selector {selectors.item!r}"))
    for index, item in enumerate(items):
        where = f"item {index + 1}"
        title_el = _select(item, selectors.title) if selectors.title else item.find("a")
        title = _text(title_el if isinstance(title_el, Tag) else None)
        if not title:
            problems.append(Problem(source.name, "no title", where))
            continue
        date_text, date_attr = _date(item, selectors.date)
        location = _text(_select(item, selectors.location)) or None
        fields = BlockFields(
            title=title,
            link=absolute_url(_href(item, selectors.link), base_url),
            date_text=date_text,
            date_attr=date_attr,
            summary=_summary(_select(item, selectors.summary)),
            location=location,
            where=where,
        )
        record: Record | None
        if selectors.record is RecordKind.EVENT:
            record, problem = event_from_fields(
                fields, source=source, strategy=Strategy.SELECTORS, reference=fetched_at
            )
        else:
            record, problem = news_from_fields(fields, source=source, strategy=Strategy.SELECTORS, reference=fetched_at)
        if problem is not None:
            problems.append(problem)
        if record is not None and record.key not in seen:
            seen.add(record.key)
            records.append(record)
    return ParseResult(records=tuple(with_link_uids(records, page_url=url)), problems=tuple(problems))
