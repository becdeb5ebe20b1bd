"""Injection from real feeds, calendars and pages: nothing active reaches any published file.

Each output is parsed the way its clients parse it (XML, JSON, iCalendar, HTML) and every HTML field
is parsed again with an HTML parser, so encoded and split vectors are judged as a browser would see them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import icalendar
import lxml.etree
import lxml.html

from .conftest import FIXTURES, Documents

# Elements that run code, load documents, submit data, or change how the rest of the page is read.
FORBIDDEN = frozenset(
    [
        "script",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "svg",
        "math",
        "form",
        "input",
        "button",
        "select",
        "textarea",
        "base",
        "meta",
        "link",
        "style",
        "template",
        "noscript",
        "details",
        "dialog",
        "audio",
        "video",
        "source",
        "track",
        "portal",
    ]
)
URL_ATTRIBUTES = frozenset(
    ["href", "src", "action", "formaction", "data", "xlink:href", "cite", "background", "poster", "srcset"]
)
SAFE_SCHEMES = ("http:", "https:", "mailto:", "webcal:")  # webcal: the subscribe links of index.html
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]+")


def unsafe_url(value: str) -> bool:
    """A URL a browser would run or load as something other than http(s)/mailto/webcal (relative is safe)."""
    squeezed = _INVISIBLE.sub("", value).lower()
    scheme = re.match(r"^([a-z][a-z0-9+.-]*):", squeezed)
    return scheme is not None and not squeezed.startswith(SAFE_SCHEMES)


def active_in_html(fragment: str, *, allow: frozenset[str] = frozenset()) -> list[str]:
    """Everything in ``fragment`` that a browser would execute, load or let restyle the page."""
    if not fragment.strip():
        return []
    root = lxml.html.fromstring(f"<div>{fragment}</div>")
    found = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.lower().split("}")[-1]
        if tag in FORBIDDEN and tag not in allow:
            found.append(f"<{tag}>")
        for name, value in element.attrib.items():
            lowered = name.lower()
            if lowered.startswith("on") or lowered == "style":
                found.append(f"<{tag} {name}>")
            elif lowered.split("}")[-1] in URL_ATTRIBUTES and unsafe_url(value):
                found.append(f"<{tag} {name}={value!r}>")
    return found


def tags_in_text(text: str) -> list[str]:
    """Elements a reader would create if it rendered a plain-text field (a title) as HTML."""
    root = lxml.html.fromstring(f"<div>{text}</div>")
    return [str(e.tag) for e in root.iter() if isinstance(e.tag, str) and e is not root]


def _xml_fields(path: Path) -> Iterator[tuple[str, str, str]]:
    """(kind, where, value) for every text and URL of an RSS, Atom or OPML file."""
    tree = lxml.etree.parse(str(path), lxml.etree.XMLParser(resolve_entities=False, no_network=True))
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        local = lxml.etree.QName(element).localname
        where = f"{path.name}:{local}"
        for name, value in element.attrib.items():
            if lxml.etree.QName(name).localname in ("href", "url", "xmlUrl", "htmlUrl", "src", "uri"):
                yield "url", where, value
        text = element.text or ""
        if local in ("description", "encoded", "content", "summary") or (
            local == "title" and element.get("type") == "html"
        ):
            if element.get("type") == "xhtml":
                yield "html", where, lxml.etree.tostring(element, encoding="unicode")
            else:
                yield "html", where, text
        elif local in ("title", "name", "category", "author"):
            yield "text", where, text
        elif local in ("link", "uri", "icon", "logo", "comments", "docs", "url") or (
            local == "guid" and element.get("isPermaLink") != "false"
        ):
            # Atom ids and non-permalink guids are opaque names (tag: URIs), never loaded.
            yield "url", where, text


def _json_fields(path: Path) -> Iterator[tuple[str, str, str]]:
    def walk(value: object, key: str) -> Iterator[tuple[str, str, str]]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield from walk(v, k)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v, key)
        elif isinstance(value, str):
            if key in ("content_html", "summary"):
                yield "html", f"{path.name}:{key}", value
            elif key in (
                "url",
                "external_url",
                "home_page_url",
                "feed_url",
                "image",
                "banner_image",
                "icon",
                "avatar",
                "favicon",
            ):
                yield "url", f"{path.name}:{key}", value
            else:
                yield "text", f"{path.name}:{key}", value

    yield from walk(json.loads(path.read_text(encoding="utf-8")), "")


def _ics_fields(path: Path) -> Iterator[tuple[str, str, str]]:
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    for component in calendar.walk():
        for name, value in component.property_items(recursive=False):
            where = f"{path.name}:{component.name}:{name}"
            if name in ("URL", "ATTACH", "TZURL", "SOURCE", "CONFERENCE", "IMAGE"):
                yield "url", where, str(value.to_ical().decode() if hasattr(value, "to_ical") else value)
            elif name == "X-ALT-DESC":
                yield "html", where, str(value)
            elif name in ("SUMMARY", "LOCATION", "DESCRIPTION", "COMMENT", "X-WR-CALNAME", "CATEGORIES"):
                yield "text", where, str(value.to_ical().decode() if name == "CATEGORIES" else value)


def published_fields(feeds: Path) -> Iterator[tuple[str, str, str]]:
    for path in sorted(feeds.rglob("*")):
        if path.suffix in (".xml", ".atom", ".opml"):
            yield from _xml_fields(path)
        elif path.suffix == ".json":
            yield from _json_fields(path)
        elif path.suffix == ".ics":
            yield from _ics_fields(path)


def _findings(kind: str, value: str) -> list[str]:
    if kind == "html":
        return active_in_html(value)
    if kind == "url":
        return [value] if unsafe_url(value) else []
    return tags_in_text(value)


def test_the_inspector_sees_the_vectors_in_the_hostile_sources_themselves() -> None:
    """Guard against a blind checker: read raw, the fixtures are full of active content."""
    raw_items = list(_xml_fields(FIXTURES / "xss_news.xml"))
    flagged = [where for kind, where, value in raw_items if _findings(kind, value)]
    descriptions = [v for kind, where, v in raw_items if kind == "html" and where.endswith(":description")]

    assert sum(1 for d in descriptions if active_in_html(d)) == 33
    assert sum(1 for kind, where, v in raw_items if kind == "url" and unsafe_url(v)) == 21
    assert len(flagged) == 89  # titles, descriptions and links together


def test_no_active_content_in_any_published_feed_or_calendar(documents: Documents) -> None:
    fields = list(published_fields(documents.cli.feeds))
    found = [(where, hit) for kind, where, value in fields for hit in _findings(kind, value)]

    assert found == []
    # The hostile sources are really in there: 36 vectors each in news, JSON Feed and calendar.
    files = {where.split(":")[0] for _kind, where, _value in fields}
    assert {
        "xss-news.xml",
        "xss-news.atom",
        "xss-news.json",
        "xss-json.json",
        "xss-events.ics",
        "xss-page.xml",
    } <= files


def test_index_html_has_only_its_own_head_and_escaped_titles(documents: Documents) -> None:
    page = lxml.html.parse(str(documents.cli.feeds / "index.html")).getroot()
    head, body = page.find("head"), page.find("body")
    head_tags = [str(e.tag) for e in head.iter() if isinstance(e.tag, str) and e is not head]
    body_html = lxml.html.tostring(body, encoding="unicode")

    assert head_tags == ["meta", "meta", "title", "link", "link", "link", "style"]
    assert [e.get("href") for e in head.iter("link")] == ["news.xml", "news.atom", "news.json"]
    assert active_in_html(body_html) == []
    assert page.xpath("//script|//base|//iframe|//object|//embed|//form|//svg|//math") == []
    shown = [" ".join(e.text_content().split()) for e in body.iter("a")]
    # Markup characters written as text stay text; the tag-shaped "</title>" is dropped with the markup.
    assert "Cluster R&D day: 3 < 5 && \"quotes\" & 'apostrophes'" in shown


def test_escaped_newlines_cannot_inject_calendar_properties_or_components(documents: Documents) -> None:
    calendar = icalendar.Calendar.from_ical((documents.cli.feeds / "sources" / "xss-events.ics").read_bytes())
    events = calendar.walk("VEVENT")
    target = [e for e in events if str(e["UID"]).startswith("crlf-injection")]

    assert len(events) == 37
    assert calendar.walk("VALARM") == []
    assert [e for e in events if "ATTACH" in e or "injected" in str(e["UID"])] == []
    assert len(target) == 1
    assert str(target[0]["SUMMARY"]) == (
        "Matchmaking END:VEVENT BEGIN:VEVENT UID:injected@evil.example SUMMARY:Injected event "
        "ATTACH:https://evil.example/x.exe"
    )
    assert str(target[0]["LOCATION"]) == "Linz BEGIN:VALARM ACTION:DISPLAY TRIGGER:-PT5M END:VALARM"
    assert "RRULE" not in target[0]
    # The description keeps its lines, as text (written \n), never as properties of the event.
    assert str(target[0]["DESCRIPTION"]) == "Day one\nDTSTART:19700101T000000Z\nRRULE:FREQ=SECONDLY"


def test_links_and_enclosures_from_hostile_items_are_http_or_absent(documents: Documents) -> None:
    news = json.loads((documents.cli.feeds / "sources" / "xss-news.json").read_text(encoding="utf-8"))
    links = {item["title"]: item.get("url") for item in news["items"]}
    enclosures = [a["url"] for item in news["items"] for a in item.get("attachments", [])]

    assert len(news["items"]) == 37
    assert links["Cluster news 3:"] is None  # javascript: link dropped, the item kept
    assert links["Cluster news 9: mixed case"] is None
    assert links["Cluster news 8: js link"] == "https://www.cluster-hostile.example.eu/news/item-8"
    assert len(enclosures) == 27  # 36 vectors, every fourth one's javascript: enclosure dropped
    assert all(url.startswith("https://www.cluster-hostile.example.eu/files/brochure-") for url in enclosures)
