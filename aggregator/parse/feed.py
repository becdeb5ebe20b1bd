"""RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and JSON Feed 1.0/1.1 bytes -> ``NewsRecord``s.

Steps: decode the bytes ourselves (BOM, declared charset, UTF-8 with stray
Windows-1252 bytes), remove any DOCTYPE so no entity is ever expanded (billion
laughs, XXE), let feedparser read the XML (strict, then lenient), map its
entries to a small wire shape (``_Item``), then to records. JSON Feed, which
feedparser 6 does not read, is mapped to the same wire shape from ``json``.

Stable ids (``_assign_ids``): the item's guid/id when it is unique in the
document and is the item's permalink (it names the same canonical URL as the
link) or the item has no link; else the canonical link when no other item has
it; else a hash of (canonical link, title, published). GUIDs regenerated on
every fetch therefore never change an id while the link stays the same.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax import SAXParseException

import feedparser

from aggregator.config import SourceConfig
from aggregator.parse._common import (
    UNTITLED,
    bounded_html,
    hash_id,
    merge_tags,
    read_feed_date,
    split_author,
    text_to_html,
    title_from_summary,
)
from aggregator.records import Enclosure, NewsRecord, ParseResult, Problem, Strategy
from aggregator.sanitize import clean_text, html_to_text
from aggregator.urls import absolute_url, canonical_url

__all__ = ["parse_feed"]

_CP1252_FALLBACK = "clusterfeeds-cp1252"
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']")
# Prolog up to a DOCTYPE: comments and processing instructions only (the DOCTYPE must precede the root).
_PROLOG = re.compile(r"\A\s*(?:<\?xml[^>]*\?>\s*)?(?:(?:<!--.*?-->|<\?.*?\?>)\s*)*(?=<!DOCTYPE)", re.S | re.I)
_DOCTYPE = re.compile(r"<!DOCTYPE\s[^\[>]*(?:\[(?:[^\]\"']|\"[^\"]*\"|'[^']*')*\]\s*)?>", re.I)
_ROOT = re.compile(r"<[A-Za-z_]")
_LATIN1_NAMES = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii", "iso_8859-1"}
_UTF8_NAMES = {"utf-8", "utf8"}
_JSON_FEED_VERSION = "https://jsonfeed.org/version/"
_CHARACTER_REFERENCE = re.compile(r"&#([xX][0-9a-fA-F]+|[0-9]+);")


def _sync_author_detail(self: Any, key: str = "author") -> None:
    """feedparser 6.0's ``_sync_author_detail`` with ``split_author`` for the address.

    Its own pattern cuts an address after four letters of top-level domain and backtracks
    for seconds on a crafted author string (see ``split_author``); the rest is unchanged.
    """
    context = self._get_context()
    detail = context.get(f"{key}s", [feedparser.FeedParserDict()])[-1]
    if detail:
        name, email = detail.get("name"), detail.get("email")
        if name and email:
            context[key] = f"{name} ({email})"
        elif name:
            context[key] = name
        elif email:
            context[key] = email
        return
    author = context.get(key)
    if not author:
        return
    name, email = split_author(author)
    if name or email:
        context.setdefault(f"{key}_detail", detail)
    if name:
        detail["name"] = name
    if email:
        detail["email"] = email


# Every feedparser parser (strict and lenient) inherits this method from the mixin.
feedparser.mixin._FeedParserMixin._sync_author_detail = _sync_author_detail


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    """Decode error handler: a byte that is not UTF-8 is read as Windows-1252 (mixed-encoding feeds)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start : error.end]
    return bad.decode("cp1252", errors="replace"), error.end


codecs.register_error(_CP1252_FALLBACK, _cp1252_fallback)


@dataclass(frozen=True, slots=True)
class _Item:
    """One entry as the document gave it, before ids and fallbacks (the wire shape)."""

    guid: str | None
    link: str | None  # absolute
    title: str  # plain text, may be empty
    summary: str  # sanitised, bounded HTML
    published: datetime | None
    updated: datetime | None
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    enclosures: tuple[Enclosure, ...]
    notes: tuple[str, ...]  # problems with this item


def _decode(body: bytes) -> tuple[str, str | None]:
    """Text of the document and, when its declared charset was wrong or mixed, a Problem message.

    Valid UTF-8 with non-ASCII bytes is UTF-8 whatever the declaration says; a
    latin-1 declaration is read as Windows-1252 (a superset, as browsers do);
    stray non-UTF-8 bytes in a UTF-8 document are read as Windows-1252.
    """
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace"), None
    if body[:2] in (b"\x00<", b"<\x00"):
        return body.decode("utf-16-be" if body[0] == 0 else "utf-16-le", errors="replace"), None
    match = _DECLARED_ENCODING.match(body[:200])
    declared = match.group(1).decode("ascii").lower() if match else None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        if declared and declared not in _UTF8_NAMES:
            codec = "cp1252" if declared in _LATIN1_NAMES else declared
            try:
                return body.decode(codec, errors=_CP1252_FALLBACK if codec == "cp1252" else "strict"), None
            except (LookupError, UnicodeDecodeError):
                pass
        text = body.decode("utf-8", errors=_CP1252_FALLBACK)
        return text, f"not valid UTF-8 ({error.reason} at byte {error.start}); such bytes read as Windows-1252"
    if declared and declared not in _UTF8_NAMES and not body.isascii():
        return text, f"declared as {declared} but is UTF-8; read as UTF-8"
    return text, None


def _without_doctype(text: str) -> tuple[str, bool]:
    """``text`` with its DOCTYPE blanked out (line numbers kept); True when it declared entities."""
    prolog = _PROLOG.match(text)
    if prolog is None:
        return text, False
    doctype = _DOCTYPE.match(text, prolog.end())
    if doctype is not None:
        end = doctype.end()
    else:  # unterminated or odd DOCTYPE: drop everything up to the root element
        root = _ROOT.search(text, prolog.end() + len("<!DOCTYPE"))
        end = root.start() if root else len(text)
    removed = text[prolog.end() : end]
    return text[: prolog.end()] + "\n" * removed.count("\n") + text[end:], "<!ENTITY" in removed.upper()


def _with_utf8_declaration(text: str) -> bytes:
    """UTF-8 bytes whose XML declaration says so (replaced in place, so line numbers hold)."""
    declaration = '<?xml version="1.0" encoding="utf-8"?>'
    text, replaced = _XML_DECLARATION.subn(declaration, text, count=1)
    return (text if replaced else declaration + text).encode("utf-8")


def _get(mapping: Any, key: str) -> Any:
    """A feedparser value by its real key: FeedParserDict.get aliases keys and warns (``updated``)."""
    return dict.get(mapping, key)


def _bozo_message(exception: Any) -> str:
    if isinstance(exception, SAXParseException):
        where = f"line {exception.getLineNumber()}, column {exception.getColumnNumber()}"
        return f"ill-formed XML at {where}: {exception.getMessage()}; kept what the lenient parser recovered"
    return f"ill-formed feed: {exception}; kept what the lenient parser recovered"


def _feedparser_date(entry: Any, key: str, tz: Any) -> tuple[datetime | None, str | None]:
    """The raw date re-read with its offset; feedparser's UTC reading as a fallback; else a note."""
    raw = _get(entry, key)
    if not raw:
        return None, None
    value, _reader = read_feed_date(str(raw), tz)
    if value is not None:
        return value, None
    parsed = _get(entry, f"{key}_parsed")
    if parsed is not None:
        return datetime(*parsed[:6]).replace(tzinfo=UTC), None
    return None, f"unreadable date {clean_text(str(raw))!r}"


def _summary_from_feedparser(entry: Any, base: str) -> str:
    """Summary if there is one, else the first content; text/plain is escaped, HTML sanitised."""
    detail = _get(entry, "summary_detail") or {}
    value, kind = _get(entry, "summary"), detail.get("type", "text/html")
    if not value and _get(entry, "content"):
        first = _get(entry, "content")[0]
        value, kind = first.get("value"), first.get("type", "text/html")
    if not value:
        return ""
    html = text_to_html(str(value)) if kind == "text/plain" else str(value)
    return bounded_html(html, base_url=base)


def _category_name(tag: Any) -> str:
    """An Atom category's ``label`` (RFC 4287: "for display"), else its ``term`` (RSS: the element's text)."""
    return str(tag.get("label") or "").strip() or str(tag.get("term") or "")


def _item_from_feedparser(entry: Any, base: str, source: SourceConfig) -> _Item:
    notes: list[str] = []
    title_detail = _get(entry, "title_detail") or {}
    raw_title = str(_get(entry, "title") or "")
    title = clean_text(raw_title) if title_detail.get("type") == "text/plain" else html_to_text(raw_title)
    published, note = _feedparser_date(entry, "published", source.timezone)
    notes.extend([note] if note else [])
    if published is None and not note:
        published, note = _feedparser_date(entry, "created", source.timezone)
        notes.extend([note] if note else [])
    updated, note = _feedparser_date(entry, "updated", source.timezone)
    notes.extend([note] if note else [])
    authors = [a.get("name") or a.get("email") or "" for a in _get(entry, "authors") or []]
    if not any(authors) and _get(entry, "author"):
        authors = [str(_get(entry, "author"))]
    enclosures = []
    for link in _get(entry, "links") or []:
        href = absolute_url(link.get("href"), base)
        if link.get("rel") == "enclosure" and href:
            length = str(link.get("length") or "").strip()
            enclosures.append(Enclosure(href, link.get("type") or None, int(length) if length.isdigit() else None))
    guid = clean_text(str(_get(entry, "id") or "")) or None
    return _Item(
        guid=guid,
        link=absolute_url(_get(entry, "link"), base),
        title=title,
        summary=_summary_from_feedparser(entry, base),
        # The earliest date the item carries stands in for publication (RSS 1.0 has only dc:date).
        published=published or updated,
        updated=updated,
        authors=tuple(dict.fromkeys(clean_text(a) for a in authors if clean_text(a))),
        categories=tuple(_category_name(t) for t in _get(entry, "tags") or []),
        enclosures=tuple(dict.fromkeys(enclosures)),
        notes=tuple(notes),
    )


def _in_range_reference(match: re.Match[str]) -> str:
    number = match.group(1).lstrip("xX0") if match.group(1)[0] in "xX" else match.group(1).lstrip("0")
    hexadecimal = match.group(1)[0] in "xX"
    if len(number) > 8:  # far out of range (and int() refuses numbers of thousands of digits)
        return "\ufffd"
    value = int(number or "0", 16 if hexadecimal else 10)
    return match.group(0) if value <= 0x10FFFF else "\ufffd"


def _read_xml(text: str, url: str, source: SourceConfig) -> tuple[list[_Item], list[str], str | None]:
    """Items, document-level problem messages, and why it is not a feed (None when it is one)."""
    from aggregator.parse import fastfeed  # imported here: it builds this module's _Item

    fast = fastfeed.read_items(text, url, source)  # well-formed RSS 2.0/Atom 1.0 without feedparser
    if fast is not None:
        return fast, [], None
    notes: list[str] = []
    text, had_entities = _without_doctype(text)
    if had_entities:
        notes.append("DOCTYPE with entity declarations removed; entities are never expanded")
    # feedparser raises on a character reference beyond U+10FFFF; such a reference stands for nothing.
    text = _CHARACTER_REFERENCE.sub(_in_range_reference, text)
    parsed = feedparser.parse(
        io.BytesIO(_with_utf8_declaration(text)),
        response_headers={"content-type": "application/xml; charset=utf-8", "content-location": url},
        resolve_relative_uris=True,
        sanitize_html=True,
    )
    if not _get(parsed, "version") and not parsed.entries:
        if re.search(r"<html[\s>]|<!doctype\s+html", text[:2000], re.I):
            return [], notes, "an HTML page"
        if _get(parsed, "bozo"):
            return [], notes, _bozo_message(_get(parsed, "bozo_exception")).split(";")[0]
        return [], notes, "no RSS, Atom or JSON Feed root element"
    if _get(parsed, "bozo"):
        notes.append(_bozo_message(_get(parsed, "bozo_exception")))
    return [_item_from_feedparser(entry, url, source) for entry in parsed.entries], notes, None


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _item_from_json(entry: dict[str, Any], url: str, source: SourceConfig) -> _Item:
    """A JSON Feed 1.0/1.1 item (``author`` of 1.0 and ``authors`` of 1.1 both read)."""
    notes: list[str] = []
    dates: list[datetime | None] = []
    for key in ("date_published", "date_modified"):
        raw = _json_text(_get(entry, key))
        value, _reader = read_feed_date(raw, source.timezone)
        if raw and value is None:
            notes.append(f"unreadable date {clean_text(raw)!r}")
        dates.append(value)
    if _json_text(_get(entry, "summary")):
        summary = text_to_html(entry["summary"])  # JSON Feed summaries are plain text
    elif _json_text(_get(entry, "content_html")):
        summary = entry["content_html"]
    else:
        summary = text_to_html(_json_text(_get(entry, "content_text")))
    people = _get(entry, "authors") if isinstance(_get(entry, "authors"), list) else [_get(entry, "author")]
    authors = [clean_text(_json_text(p.get("name"))) for p in people if isinstance(p, dict)]
    enclosures = []
    for attachment in _get(entry, "attachments") or []:
        href = absolute_url(_json_text(attachment.get("url")), url) if isinstance(attachment, dict) else None
        if href:
            size = attachment.get("size_in_bytes")
            length = size if isinstance(size, int) and not isinstance(size, bool) else None
            enclosures.append(Enclosure(href, _json_text(attachment.get("mime_type")) or None, length))
    guid = _get(entry, "id")
    tags = _get(entry, "tags") if isinstance(_get(entry, "tags"), list) else []
    return _Item(
        guid=clean_text(str(guid)) or None if isinstance(guid, str | int) and not isinstance(guid, bool) else None,
        link=absolute_url(_json_text(_get(entry, "url")) or _json_text(_get(entry, "external_url")), url),
        title=clean_text(_json_text(_get(entry, "title"))),
        summary=bounded_html(summary, base_url=url),
        published=dates[0] or dates[1],
        updated=dates[1],
        authors=tuple(dict.fromkeys(a for a in authors if a)),
        categories=tuple(t for t in tags if isinstance(t, str)),
        enclosures=tuple(dict.fromkeys(enclosures)),
        notes=tuple(notes),
    )


def _read_json(text: str, url: str, source: SourceConfig) -> tuple[list[_Item], list[str], str | None]:
    try:
        document = json.loads(text)
    except ValueError as error:
        return [], [], f"JSON that cannot be read ({error})"
    if not isinstance(document, dict) or not _json_text(document.get("version")).startswith(_JSON_FEED_VERSION):
        return [], [], "JSON without a JSON Feed version"
    items = document.get("items")
    if not isinstance(items, list):
        return [], [], "JSON Feed without an items list"
    notes = [f"item {n} is not an object; skipped" for n, entry in enumerate(items, 1) if not isinstance(entry, dict)]
    return [_item_from_json(e, url, source) for e in items if isinstance(e, dict)], notes, None


def _assign_ids(items: list[_Item]) -> list[str]:
    """The stable id of each item (rule in the module docstring)."""
    guids = Counter(item.guid for item in items if item.guid)
    canonical = [canonical_url(item.link) for item in items]
    links = Counter(link for link in canonical if link)
    ids = []
    for item, link in zip(items, canonical, strict=True):
        if item.guid and guids[item.guid] == 1 and (link is None or canonical_url(item.guid) == link):
            ids.append(item.guid)
        elif link and links[link] == 1:
            ids.append(link)
        else:
            published = item.published.isoformat() if item.published else ""
            ids.append(hash_id(link, item.title, published))
    return ids


def _without_repeats(items: list[_Item], source: SourceConfig) -> tuple[list[tuple[int, _Item]], list[Problem]]:
    """Items numbered from 1, minus repeats: a guid seen before with the same link is the same story.

    A repeated guid with another link is kept (its id then comes from the link);
    both cases are Problems, as is every note an item carried.
    """
    kept: list[tuple[int, _Item]] = []
    problems: list[Problem] = []
    first_with_guid: dict[str, tuple[int, str | None]] = {}
    for number, item in enumerate(items, start=1):
        where = f"item {number}"
        problems.extend(Problem(source.name, note, where) for note in item.notes)
        link = canonical_url(item.link)
        if item.guid and item.guid in first_with_guid:
            first, first_link = first_with_guid[item.guid]
            repeat = f"duplicate guid {item.guid!r} (first in item {first})"
            if link == first_link:
                problems.append(Problem(source.name, f"{repeat}; dropped", where))
                continue
            problems.append(Problem(source.name, f"{repeat} with another link; not used as its id", where))
        elif item.guid:
            first_with_guid[item.guid] = (number, link)
        kept.append((number, item))
    return kept, problems


def _records(items: list[_Item], source: SourceConfig) -> tuple[list[NewsRecord], list[Problem]]:
    """Records with ids, fallback titles and tags; a repeated item is dropped with a Problem."""
    numbered, problems = _without_repeats(items, source)
    records: list[NewsRecord] = []
    first_with_id: dict[str, int] = {}
    ids = _assign_ids([item for _, item in numbered])
    for (number, item), item_id in zip(numbered, ids, strict=True):
        where = f"item {number}"
        if not item.title and item.link is None and not html_to_text(item.summary):
            # Nothing a reader could use: typically the cut-off last item of a truncated download,
            # whose hash id would otherwise stay in the store as a permanent "(untitled)".
            problems.append(Problem(source.name, "empty item (no title, link or text); dropped", where))
            continue
        if item_id in first_with_id:
            problems.append(Problem(source.name, f"same item as item {first_with_id[item_id]}; dropped", where))
            continue
        first_with_id[item_id] = number
        title = item.title
        if not title:
            title = title_from_summary(item.summary)
            used = "" if title == UNTITLED else "; used the start of its summary"
            problems.append(Problem(source.name, f"no title{used}", where))
        records.append(
            NewsRecord(
                id=item_id,
                source=source.name,
                title=title,
                link=item.link,
                summary=item.summary,
                published=item.published,
                updated=item.updated,
                authors=item.authors,
                tags=merge_tags(source.tags, item.categories),
                enclosures=item.enclosures,
                strategy=Strategy.FEED,
            )
        )
    return records, problems


def parse_feed(body: bytes, *, source: SourceConfig, url: str, fetched_at: datetime) -> ParseResult:
    """Bytes of one feed fetch -> news records and problems. No I/O, never raises on bad input.

    A document that is no feed at all gives no records and a Problem "not a
    feed: ..."; an ill-formed one keeps what the lenient parser recovered and a
    Problem naming the cause. ``fetched_at`` is unused: feed dates need no reference.
    """
    del fetched_at
    if not body.strip():
        return ParseResult(problems=(Problem(source.name, "not a feed: empty body"),))
    text, decode_note = _decode(body)
    reader = _read_json if text.lstrip().startswith("{") else _read_xml
    items, notes, not_a_feed = reader(text, url, source)
    if not_a_feed is not None:
        return ParseResult(problems=(Problem(source.name, f"not a feed: {not_a_feed}"),))
    problems = [Problem(source.name, note) for note in ([decode_note] if decode_note else []) + notes]
    records, item_problems = _records(items, source)
    return ParseResult(records=tuple(records), problems=(*problems, *item_problems))
