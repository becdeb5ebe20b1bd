"""A fast path for well-formed RSS 2.0 and Atom 1.0 feeds: lxml instead of feedparser's SAX machinery.

feedparser spends most of its time in Python callbacks for every element and
in two sgmllib passes (URI resolution, sanitiser) over every HTML field, the
full ``content:encoded`` bodies we never read included. This module reads the
same elements with one lxml parse and reproduces, field by field, what
feedparser (strict parser, ``resolve_relative_uris`` and ``sanitize_html`` on)
hands to ``feed._item_from_feedparser``: its whitespace stripping, guid and
link resolution, "looks like HTML" guess, latin-1/cp1252 repairs, author and
tag bookkeeping. The HTML fields we keep still go through feedparser's own
resolver and sanitiser functions, so they are equal by construction.

Anything outside that subset declines (``None``), and feedparser reads the
document as before: a DOCTYPE, XML lxml refuses (ill-formed, too deep, an
undefined entity), a root other than ``<rss version="2.x">`` or Atom 1.0's
``<feed>``, ``xml:base``, an entry element or attribute we do not map, a
repeated single-valued element, markup nested inside a text element, base64
content, or an XHTML/"src" content that would become the summary.
``tests/parse/test_fastfeed_differential.py`` and ``bench/differential.py``
check the promise: equal ``ParseResult``s with the path on and off.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.sanitizer import _sanitize_html
from feedparser.urls import _urljoin, make_safe_absolute_uri, resolve_relative_uris
from lxml import etree

from aggregator.config import SourceConfig
from aggregator.parse._common import bounded_html, read_feed_date, split_author, text_to_html
from aggregator.records import Enclosure
from aggregator.sanitize import clean_text, html_to_text
from aggregator.urls import absolute_url

if TYPE_CHECKING:
    from aggregator.parse.feed import _Item

__all__ = ["ENABLED", "decline_reason", "read_items"]

# Tests and bench/differential.py switch the fast path off to compare with feedparser alone.
ENABLED = True

_ATOM = "http://www.w3.org/2005/Atom"
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_DC = "http://purl.org/dc/elements/1.1/"
_XML = "http://www.w3.org/XML/1998/namespace"
_XML_LANG = f"{{{_XML}}}lang"
_XML_BASE = f"{{{_XML}}}base"
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Namespaces whose declaration makes feedparser take the document for RSS 0.90 or 1.0.
_RDF_VERSIONS = frozenset({"http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/"})
# Entry children feedparser stores under keys we never read (no side effect on the ones we do).
_IGNORED = frozenset(
    {
        "comments",
        "{http://wellformedweb.org/CommentAPI/}commentRss",
        "{http://wellformedweb.org/CommentAPI/}comment",
        "{http://purl.org/rss/1.0/modules/slash/}comments",
        f"{{{_ATOM}}}rights",
    }
)
# Namespaced entry elements and the feedparser handler they share.
_NAMESPACED = {f"{{{_CONTENT}}}encoded": "content", f"{{{_DC}}}creator": "author", f"{{{_DC}}}date": "updated"}
# Markup that feedparser's URI resolver and sanitiser both give back unchanged: these tags without
# attributes, and text without "<", ">", "&" or CR (tests/parse/test_fastfeed.py checks it against
# them). Such a fragment skips their two sgmllib passes, the largest cost left on this path.
_PLAIN_TAGS = "p|strong|em|b|i|u|ul|ol|li|h2|h3|h4|blockquote|div|span|small|sub|sup"
_PLAIN_MARKUP = re.compile(rf"(?:[^<>&\r]|</?(?:{_PLAIN_TAGS})>)*")
_C1 = re.compile("[\x80-\x9f]")  # what feedparser's cp1252 table maps
_DECLARATION = re.compile(r"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*(["'])(.*?)\2""")
# feedparser's own prefix for each namespace it knows, by lower-cased URI.
_KNOWN_PREFIXES: dict[str, str] = {str(uri).lower(): str(p) for uri, p in _FeedParserMixin.namespaces.items()}
_LINK_REFERENCE = re.compile("&([A-Za-z0-9_]+);")
_looks_like_html: Callable[[str], bool] = _FeedParserMixin.looks_like_html


class _Decline(Exception):
    """The document is outside the subset this module reproduces exactly; the reason says where."""


@dataclass(frozen=True, slots=True)
class _Text:
    """A text-bearing element as feedparser's ``push_content`` sees it (``kind`` None: not content)."""

    element: etree._Element
    name: str  # feedparser's element name: title, description, summary, content, ...
    kind: str | None


@dataclass(slots=True)
class _Entry:
    """The part of feedparser's entry dict we read, built in document order (working state)."""

    title: str | None = None
    title_kind: str | None = None
    summary: str | _Text | None = None  # a _Text: content copied over, evaluated only if used
    summary_kind: str | None = None  # summary_detail["type"]; None when no summary element
    contents: list[_Text] = field(default_factory=list)
    link: str | None = None
    links: list[dict[str, str]] = field(default_factory=list)
    guid: str | None = None
    published: str | None = None
    updated: str | None = None
    author: str | None = None
    authors: list[dict[str, str]] = field(default_factory=list)
    tags: list[dict[str, str | None]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


def _map_content_type(kind: str) -> str:
    kind = kind.lower()
    return {"text": "text/plain", "plain": "text/plain", "html": "text/html", "xhtml": "application/xhtml+xml"}.get(
        kind, kind
    )


def _base_for(url: str) -> str:
    """The base feedparser resolves against: the content-location as every start tag re-derives it."""

    def step(base: str) -> str:
        if base:
            return str(make_safe_absolute_uri(base, base) or base)
        return str(_urljoin(base, base))

    first = step(str(make_safe_absolute_uri("", url) or make_safe_absolute_uri(url) or ""))
    if step(first) != first:
        raise _Decline("base URI not stable under feedparser's re-resolution")
    return first


def _attributes(element: etree._Element) -> dict[str, str]:
    """Attributes as feedparser normalises them: names and ``rel``/``type`` values lower-cased."""
    attributes: dict[str, str] = {}
    for name, value in element.attrib.items():
        key = str(name)
        if key.startswith("{"):
            if key == _XML_LANG:
                continue
            raise _Decline(f"namespaced attribute {key} on <{etree.QName(element).localname}>")
        key = key.lower()
        if key in attributes or key == "base":
            raise _Decline(f"attribute {key!r} on <{etree.QName(element).localname}>")
        attributes[key] = str(value).lower() if key in ("rel", "type") and value else str(value)
    return attributes


def _own_text(element: etree._Element) -> str:
    """Text of an element without child elements (comments and PIs are already gone)."""
    if len(element):
        raise _Decline(f"markup inside <{etree.QName(element).localname}>")
    return element.text or ""


def _processed(raw: str, name: str, kind: str | None, base: str, *, atom: bool, guid_is_link: bool = False) -> str:
    """feedparser's ``pop``: strip, resolve, guess HTML, resolve and sanitise markup, repair encodings."""
    output = raw.strip()
    if name in ("id", "link", "href") and output and (name != "id" or guid_is_link):
        output = _urljoin(base, output)
    if not atom and kind == "text/plain" and _looks_like_html(output):
        kind = "text/html"
    if (
        name in ("title", "description", "summary", "content")
        and _map_content_type(kind or "text/html") in _HTML_TYPES
        and not _PLAIN_MARKUP.fullmatch(output)
    ):
        output = resolve_relative_uris(output, base, "utf-8", kind or "text/html")
        output = _sanitize_html(output, "utf-8", kind or "text/html")
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):  # UTF-8 read as latin-1 upstream
        output = output.encode("iso-8859-1").decode("utf-8")
    return str(output.translate(_cp1252)) if _C1.search(output) else output


def _content_kind(element: etree._Element, default: str) -> str:
    attributes = _attributes(element)
    if "mode" in attributes or "src" in attributes:
        raise _Decline("content with mode or src")
    kind = _map_content_type(attributes.get("type", default))
    if not (kind.startswith("text/") or kind.endswith("+xml") or kind.endswith("/xml")):
        raise _Decline(f"base64 content ({kind})")
    return kind


def _text_kind(text: _Text, base: str, *, atom: bool) -> tuple[str, str]:
    """Value and (possibly re-guessed) type of a title, summary or content element."""
    if text.kind == "application/xhtml+xml" or len(text.element):
        raise _Decline("XHTML or nested markup in a field that is used")
    raw = text.element.text or ""
    kind = text.kind or "text/html"
    if not atom and kind == "text/plain" and _looks_like_html(raw.strip()):
        kind = "text/html"
    return _processed(raw, text.name, text.kind, base, atom=atom), kind


def _sync_author(entry: _Entry) -> None:
    """feedparser's ``_sync_author_detail`` (as patched in ``parse/feed.py``): author string from the last author, or the other way round."""
    detail = entry.authors[-1] if entry.authors else {}
    if detail:
        name, email = detail.get("name"), detail.get("email")
        if name and email:
            entry.author = f"{name} ({email})"
        elif name:
            entry.author = name
        elif email:
            entry.author = email
        return
    if not entry.author:
        return
    author, email = split_author(entry.author)
    if author:
        detail["name"] = author
    if email:
        detail["email"] = email


def _save_author(entry: _Entry, key: str, value: str) -> None:
    _sync_author(entry)
    if not entry.authors:
        entry.authors.append({})
    entry.authors[-1][key] = value


def _author(entry: _Entry, element: etree._Element, base: str, *, atom: bool) -> None:
    """``<author>`` (RSS text or Atom person) and ``dc:creator``."""
    _attributes(element)
    entry.authors.append({})
    pieces = [element.text or ""]
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        local = tag.rpartition("}")[2]
        if tag not in (local, f"{{{_ATOM}}}{local}") or local not in ("name", "email", "uri"):
            raise _Decline(f"<{local}> inside an author")
        _attributes(child)
        if local == "uri":
            _save_author(entry, "href", _processed(_own_text(child), "href", None, base, atom=atom))
        else:
            _save_author(entry, local, _own_text(child).strip())
        pieces.append(child.tail or "")
    entry.author = _processed("".join(pieces), "author", None, base, atom=atom)
    _sync_author(entry)


def _category(entry: _Entry, element: etree._Element, base: str, *, atom: bool) -> None:
    """feedparser's ``_start_category``/``_end_category``, including its de-duplication and term filling."""
    attributes = _attributes(element)

    def add(term: str | None, scheme: str | None, label: str | None) -> None:
        if not term and not scheme and not label:
            return
        tag = {"term": term, "scheme": scheme, "label": label}
        if tag not in entry.tags:
            entry.tags.append(tag)

    add(attributes.get("term"), attributes.get("scheme", attributes.get("domain")), attributes.get("label"))
    value = _processed(_own_text(element), "category", None, base, atom=atom)
    if not value:
        return
    if entry.tags and not entry.tags[-1]["term"]:
        entry.tags[-1]["term"] = value
    else:
        add(value, None, None)


def _enforce_href(attributes: dict[str, str]) -> dict[str, str]:
    href = attributes.get("url", attributes.get("uri", attributes.get("href")))
    if href:
        attributes.pop("url", None)
        attributes.pop("uri", None)
        attributes["href"] = href
    return attributes


def _link(entry: _Entry, element: etree._Element, base: str, *, atom: bool) -> None:
    """feedparser's ``_start_link``: an Atom link by attributes, or an RSS link by its text."""
    attributes = _attributes(element)
    attributes.setdefault("rel", "alternate")
    attributes.setdefault("type", "application/atom+xml" if attributes["rel"] == "self" else "text/html")
    attributes = _enforce_href(attributes)
    if "href" in attributes:
        _own_text(element)
        attributes["href"] = _urljoin(base, attributes["href"])
        entry.links.append(attributes)
        if attributes["rel"] == "alternate" and _map_content_type(attributes["type"]) in _HTML_TYPES:
            entry.link = attributes["href"]
        return
    entry.links.append(attributes)
    output = _processed(_own_text(element), "link", None, base, atom=atom)
    output = _LINK_REFERENCE.sub(r"&\g<1>", output.replace("&amp;", "&"))
    entry.link = output
    if output:
        entry.links[-1]["href"] = output


def _once(entry: _Entry, key: str) -> None:
    if key in entry.seen:
        raise _Decline(f"repeated <{key}> in an entry")
    entry.seen.add(key)


def _entry(item: etree._Element, base: str, *, atom: bool) -> _Entry:
    """One ``<item>``/``<entry>`` read the way feedparser fills its entry dict."""
    if _attributes(item):
        raise _Decline("attributes on an item or entry")  # rdf:about, lastmod, href all map to fields
    entry = _Entry()
    for child in item:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag.startswith(f"{{{_ATOM}}}"):
            if not atom and tag != f"{{{_ATOM}}}link":
                raise _Decline(f"Atom element {tag} in an RSS item")
            name = tag[len(_ATOM) + 2 :]
        elif tag.startswith("{"):
            name = _NAMESPACED.get(tag, tag)
            if name == tag and tag not in _IGNORED:
                raise _Decline(f"unmapped element {tag}")
        elif atom:
            raise _Decline(f"element <{tag}> outside the Atom namespace")
        else:
            name = {"description": "summary", "pubDate": "published"}.get(tag, tag)
            if name in ("id", "published", "updated", "content", "summary") and tag == name:
                raise _Decline(f"<{tag}> in an RSS item")
        if tag in _IGNORED:
            _attributes(child)
            _own_text(child)
        elif name == "title":
            _once(entry, name)
            kind = _content_kind(child, "text/plain")
            entry.title, entry.title_kind = _text_kind(_Text(child, "title", kind), base, atom=atom)
        elif name == "summary":
            _once(entry, name)
            kind = _content_kind(child, "text/plain" if atom else "text/html")
            text_name = "summary" if atom else "description"
            entry.summary, entry.summary_kind = _text_kind(_Text(child, text_name, kind), base, atom=atom)
        elif name == "content":
            _once(entry, name)
            text = _Text(child, "content", _content_kind(child, "text/plain" if atom else "text/html"))
            if len(child) and text.kind not in ("text/plain", *_HTML_TYPES):
                raise _Decline("markup inside a content element that is not text, HTML or XHTML")
            entry.contents.append(text)
            if entry.summary is None and text.kind in ("text/plain", *_HTML_TYPES):
                entry.summary = text
        elif name in ("published", "updated"):
            _once(entry, name)
            _attributes(child)
            setattr(entry, name, _processed(_own_text(child), name, None, base, atom=atom))
        elif name in ("guid", "id") and name == ("id" if atom else "guid"):
            _once(entry, "id")
            is_link = _attributes(child).get("ispermalink", "true") == "true"
            entry.guid = _processed(_own_text(child), "id", None, base, atom=atom, guid_is_link=is_link)
            if is_link and entry.link is None:
                entry.link = entry.guid
        elif name == "link":
            _link(entry, child, base, atom=atom)
        elif name == "author":
            _author(entry, child, base, atom=atom)
        elif name == "category":
            _category(entry, child, base, atom=atom)
        elif name == "enclosure" and not atom:
            attributes = _enforce_href(_attributes(child))
            _own_text(child)
            attributes["rel"] = "enclosure"
            entry.links.append(attributes)
        else:
            raise _Decline(f"unmapped element <{name}>")
    return entry


def _date(raw: str | None, source: SourceConfig) -> tuple[datetime | None, str | None]:
    """As ``feed._feedparser_date``: our reader keeps the offset, feedparser's UTC reading is the fallback."""
    if not raw:
        return None, None
    value, _reader = read_feed_date(raw, source.timezone)
    if value is not None:
        return value, None
    parsed = _parse_date(raw)
    if parsed is not None:
        return datetime(*parsed[:6]).replace(tzinfo=UTC), None
    return None, f"unreadable date {clean_text(raw)!r}"


def _summary(entry: _Entry, url: str, base: str, *, atom: bool) -> str:
    """As ``feed._summary_from_feedparser``; a content body is read only when it becomes the summary."""
    value, kind = entry.summary, entry.summary_kind or "text/html"
    if isinstance(value, _Text):
        value = _text_kind(value, base, atom=atom)[0]
    if not value and entry.contents:
        value, kind = _text_kind(entry.contents[0], base, atom=atom)
    if not value:
        return ""
    return bounded_html(text_to_html(value) if kind == "text/plain" else value, base_url=url)


def _item(entry: _Entry, url: str, base: str, source: SourceConfig, *, atom: bool) -> _Item:
    from aggregator.parse.feed import _Item  # feed.py imports this module lazily: no import cycle at load

    notes: list[str] = []
    title = entry.title or ""
    title = clean_text(title) if entry.title_kind == "text/plain" else html_to_text(title)
    published, note = _date(entry.published, source)
    notes.extend([note] if note else [])
    updated, note = _date(entry.updated, source)
    notes.extend([note] if note else [])
    authors = [a.get("name") or a.get("email") or "" for a in entry.authors]
    if not any(authors) and entry.author:
        authors = [entry.author]
    enclosures = []
    for link in entry.links:
        href = absolute_url(link.get("href"), url) if link.get("rel") == "enclosure" else None
        if href:
            length = (link.get("length") or "").strip()
            enclosures.append(Enclosure(href, link.get("type") or None, int(length) if length.isdigit() else None))
    return _Item(
        guid=clean_text(entry.guid) or None,
        link=absolute_url(entry.link, url),
        title=title,
        summary=_summary(entry, url, base, atom=atom),
        published=published or updated,
        updated=updated,
        authors=tuple(dict.fromkeys(clean_text(a) for a in authors if clean_text(a))),
        categories=tuple(str(t["label"] or "").strip() or str(t["term"] or "") for t in entry.tags),
        enclosures=tuple(dict.fromkeys(enclosures)),
        notes=tuple(notes),
    )


def _check_outside(element: etree._Element) -> None:
    """Feed-level markup: no base URI change and nothing feedparser would take for an entry."""
    for node in element.iter():
        if not isinstance(node.tag, str):
            continue
        if node.get(_XML_BASE) is not None or any(str(k).lower() == "base" for k in node.attrib):
            raise _Decline("xml:base or base attribute")
        if etree.QName(node).localname.lower() in ("item", "entry"):
            raise _Decline("an item or entry outside the channel's or feed's direct children")


def _entries(root: etree._Element) -> tuple[list[etree._Element], bool]:
    """The document's items (in order) and whether it is Atom; declines any other shape."""
    if root.get(_XML_BASE) is not None:
        raise _Decline("xml:base on the root")
    if root.tag == f"{{{_ATOM}}}feed":
        if any(str(uri).lower() in _RDF_VERSIONS for uri in root.nsmap.values()):
            raise _Decline("RSS 1.0 namespace on an Atom root")
        parent, item_tag, atom = root, f"{{{_ATOM}}}entry", True
    elif root.tag == "rss" and (root.get("version") or "").startswith("2."):
        channels = [child for child in root if isinstance(child.tag, str)]
        if len(channels) != 1 or channels[0].tag != "channel":
            raise _Decline("an RSS root without exactly one channel")
        _check_outside_attributes(root)
        parent, item_tag, atom = channels[0], "item", False
    else:
        raise _Decline(f"root element {root.tag!r}")
    _check_outside_attributes(parent)
    items = []
    for child in parent:
        if child.tag == item_tag:
            items.append(child)
        elif isinstance(child.tag, str):
            _check_outside(child)
    return items, atom


def _check_outside_attributes(element: etree._Element) -> None:
    if element.get(_XML_BASE) is not None or any(str(k).lower() == "base" for k in element.attrib):
        raise _Decline("xml:base or base attribute")


def _check_prefixes(text: str) -> None:
    """Namespace prefixes feedparser would remap: a known namespace under another prefix, or a reused prefix.

    feedparser names elements by prefix and maps declared prefixes onto its own
    (``namespacemap``), so such declarations can route an element to another
    handler than its namespace says. Declarations are found by a plain scan, so
    ``xmlns:`` text inside content may decline a feed that would have been fine.
    """
    declared: dict[str, str] = {}
    for prefix, _quote, uri in _DECLARATION.findall(text):
        standard = _KNOWN_PREFIXES.get(uri.lower())
        if declared.setdefault(prefix, uri) != uri or (standard and standard != prefix):
            raise _Decline(f"namespace prefix {prefix!r} for {uri}")


def _parser() -> etree.XMLParser:
    """Hardened: no DTD, no entity expansion, no network, libxml2's default depth and size limits."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def _read(text: str, url: str, source: SourceConfig) -> list[_Item]:
    from aggregator.parse.feed import _PROLOG, _with_utf8_declaration

    if _PROLOG.match(text):
        raise _Decline("a DOCTYPE")
    _check_prefixes(text)
    try:
        root = etree.fromstring(_with_utf8_declaration(text), _parser())
    except (etree.XMLSyntaxError, ValueError) as error:
        raise _Decline(f"not well-formed for lxml: {error}") from None
    if root.getroottree().docinfo.doctype:
        raise _Decline("a DOCTYPE")
    base = _base_for(url)
    items, atom = _entries(root)
    return [_item(_entry(item, base, atom=atom), url, base, source, atom=atom) for item in items]


def read_items(text: str, url: str, source: SourceConfig) -> list[_Item] | None:
    """The ``feed._Item``s feedparser would give for ``text``, or None when the fast path declines."""
    if not ENABLED:
        return None
    try:
        return _read(text, url, source)
    except _Decline:
        return None


def decline_reason(text: str, url: str, source: SourceConfig) -> str | None:
    """Why the fast path would leave ``text`` to feedparser; None when it reads it (for tests and bench)."""
    try:
        _read(text, url, source)
    except _Decline as decline:
        return str(decline)
    return None
