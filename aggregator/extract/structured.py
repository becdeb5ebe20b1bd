"""Structured data on a page (JSON-LD, microdata, RDFa, microformats) -> records.

Each syntax is first brought to one shape, a JSON-LD-like node (``@type`` plus
schema.org property names, nested nodes for places and addresses), and one
converter turns schema.org ``Event`` (and subtypes) into ``EventRecord`` and
``NewsArticle``/``BlogPosting``/``Article`` into ``NewsRecord``. Syntaxes are
only run when a cheap byte sniff shows them on the page: most pages carry
none, and RDFa and microformats cost a second parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from lxml.html import HtmlElement

from aggregator.config import SourceConfig
from aggregator.extract import dates
from aggregator.extract.dates import When
from aggregator.extract.listing import iso_value, make_event, news_id, to_aware
from aggregator.records import EventRecord, EventStatus, NewsRecord, Problem, Record, Strategy
from aggregator.sanitize import clean_text, html_to_text, sanitize_html
from aggregator.urls import absolute_url

__all__ = ["StructuredResult", "extract_structured", "record_from_node", "sniff_syntaxes"]

Node = Mapping[str, Any]

_EVENT_EXTRA = frozenset({"Festival", "Hackathon", "CourseInstance"})
_NEWS_TYPES = frozenset(
    {"NewsArticle", "BlogPosting", "Article", "Report", "ScholarlyArticle", "AnalysisNewsArticle", "PressRelease"}
)
_STATUS = {
    "EventCancelled": EventStatus.CANCELLED,
    "EventPostponed": EventStatus.TENTATIVE,
    "EventScheduled": EventStatus.CONFIRMED,
    "EventRescheduled": EventStatus.CONFIRMED,
    "EventMovedOnline": EventStatus.CONFIRMED,
}
_SCHEMA_PREFIXES = ("https://schema.org/", "http://schema.org/", "schema:")


@dataclass(frozen=True, slots=True)
class StructuredResult:
    records: tuple[Record, ...] = ()
    problems: tuple[Problem, ...] = ()
    syntaxes: tuple[str, ...] = ()  # the syntaxes that were present and run


def sniff_syntaxes(body: bytes) -> tuple[Strategy, ...]:
    """Which syntaxes a page may carry, by substring: a false positive costs one extractor run."""
    lowered = body.lower()
    found: list[Strategy] = []
    if b"application/ld+json" in lowered:
        found.append(Strategy.JSON_LD)
    if b"itemscope" in lowered:
        found.append(Strategy.MICRODATA)
    if b"typeof=" in lowered or b"vocab=" in lowered:
        found.append(Strategy.RDFA)
    if b"h-event" in lowered or b"h-entry" in lowered:
        found.append(Strategy.MICROFORMATS)
    return tuple(found)


def extract_structured(
    tree: HtmlElement, body: bytes, *, text: str, source: SourceConfig, base_url: str, fetched_at: datetime
) -> StructuredResult:
    """Records from every structured syntax present on the page, in syntax order (JSON-LD first)."""
    records: list[Record] = []
    problems: list[Problem] = []
    syntaxes = sniff_syntaxes(body)
    for syntax in syntaxes:
        nodes: list[Node] = []
        if syntax is Strategy.JSON_LD:
            nodes = list(_jsonld_nodes(tree, source, problems))
        elif syntax is Strategy.MICRODATA:
            nodes = _microdata_nodes(tree, base_url)
        elif syntax is Strategy.RDFA:
            nodes = _rdfa_nodes(text, base_url, source, problems)
        elif syntax is Strategy.MICROFORMATS:
            try:
                nodes = _microformat_nodes(text, base_url)
            except RecursionError:  # mf2py walks the tree recursively, without lxml's depth limit
                problems.append(Problem(source.name, "microformats nested too deeply to read; skipped"))
        for index, node in enumerate(nodes):
            record, problem = record_from_node(
                node,
                source=source,
                base_url=base_url,
                strategy=syntax,
                where=f"{syntax.value} item {index + 1}",
                reference=fetched_at,
            )
            if problem is not None:
                problems.append(problem)
            if record is not None:
                records.append(record)
    return StructuredResult(tuple(records), tuple(problems), tuple(s.value for s in syntaxes))


# ---------------------------------------------------------------------------
# Syntax -> nodes


def _jsonld_nodes(tree: HtmlElement, source: SourceConfig, problems: list[Problem]) -> Iterator[Node]:
    for index, script in enumerate(tree.iter("script")):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        raw = (script.text or "").strip()
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(
                Problem(source.name, f"invalid JSON-LD: {exc.msg} at line {exc.lineno}", f"script {index + 1}")
            )
            continue
        yield from _flatten(data)


def _flatten(data: Any) -> Iterator[Node]:
    """Top-level lists, ``@graph`` and ItemList entries, down to the typed nodes."""
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    elif isinstance(data, dict):
        if "@graph" in data:
            yield from _flatten(data["@graph"])
            return
        types = _types(data)
        if "ItemList" in types:
            for element in _as_list(data.get("itemListElement")):
                if isinstance(element, dict) and "item" in element:
                    yield from _flatten(element["item"])
                else:
                    yield from _flatten(element)
            return
        if types:
            yield data


def _microdata_nodes(tree: HtmlElement, base_url: str) -> list[Node]:
    from extruct.w3cmicrodata import MicrodataExtractor

    items = MicrodataExtractor().extract_items(tree, base_url=base_url)
    return [_from_microdata(item) for item in items]


def _from_microdata(item: Any) -> Any:
    if isinstance(item, dict) and "properties" in item:
        node: dict[str, Any] = {"@type": item.get("type")}
        for key, value in item["properties"].items():
            node[key] = [_from_microdata(v) for v in value] if isinstance(value, list) else _from_microdata(value)
        return node
    return item


def _rdfa_nodes(text: str, base_url: str, source: SourceConfig, problems: list[Problem]) -> list[Node]:
    from extruct.rdfa import RDFaExtractor
    from extruct.utils import parse_xmldom_html

    dom = parse_xmldom_html(text, encoding="utf-8")
    expanded = RDFaExtractor().extract_items(dom, base_url=base_url)
    by_id = {n["@id"]: n for n in expanded if isinstance(n, dict) and "@id" in n}
    referenced = {
        v["@id"]
        for n in expanded
        for vs in n.values()
        if isinstance(vs, list)
        for v in vs
        if isinstance(v, dict) and "@id" in v
    }
    return [_from_rdfa(n, by_id, 0) for n in expanded if "@type" in n and n.get("@id") not in referenced]


def _from_rdfa(node: Mapping[str, Any], by_id: Mapping[str, Any], depth: int) -> dict[str, Any]:
    """Expanded RDFa JSON-LD (full IRIs, value lists, blank-node references) -> compact node."""
    out: dict[str, Any] = {"@type": node.get("@type")}
    for key, values in node.items():
        if key.startswith("@") or not isinstance(values, list):
            continue
        name = _strip_prefix(key)
        converted: list[Any] = []
        for value in values:
            if "@value" in value:
                converted.append(value["@value"])
            elif "@id" in value and value["@id"] in by_id and depth < 4:
                converted.append(_from_rdfa(by_id[value["@id"]], by_id, depth + 1))
            elif "@id" in value:
                converted.append(value["@id"])
        out[name] = converted[0] if len(converted) == 1 else converted
    return out


def _microformat_nodes(text: str, base_url: str) -> list[Node]:
    import mf2py

    parsed = mf2py.parse(doc=text, url=base_url, html_parser="lxml")
    nodes: list[Node] = []
    for item in _mf_items(parsed.get("items", [])):
        types = item.get("type", [])
        props = item.get("properties", {})
        if "h-event" in types:
            nodes.append(
                {
                    "@type": "Event",
                    "name": _mf_first(props, "name"),
                    "startDate": _mf_first(props, "start"),
                    "endDate": _mf_first(props, "end"),
                    "url": _mf_first(props, "url"),
                    "description": _mf_first(props, "summary") or _mf_first(props, "description"),
                    "location": [_mf_location(v) for v in props.get("location", [])],
                }
            )
        elif "h-entry" in types:
            nodes.append(
                {
                    "@type": "BlogPosting",
                    "headline": _mf_first(props, "name"),
                    "url": _mf_first(props, "url"),
                    "datePublished": _mf_first(props, "published"),
                    "dateModified": _mf_first(props, "updated"),
                    "description": _mf_first(props, "summary"),
                    "author": [_mf_name(v) for v in props.get("author", [])],
                }
            )
    return nodes


def _mf_items(items: list[Any]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _mf_items(item.get("children", []))


def _mf_first(props: Mapping[str, Any], key: str) -> Any:
    values = props.get(key) or [None]
    value = values[0]
    if isinstance(value, dict):
        return value.get("value") or value.get("html")
    return value


def _mf_name(value: Any) -> str:
    if isinstance(value, dict):
        return str(_mf_first(value.get("properties", {}), "name") or value.get("value") or "")
    return str(value)


def _mf_location(value: Any) -> Any:
    """An h-card/h-adr location becomes a schema.org Place; plain text stays text."""
    if not isinstance(value, dict):
        return value
    props = value.get("properties", {})
    return {
        "@type": "Place",
        "name": _mf_first(props, "name"),
        "address": {
            "@type": "PostalAddress",
            "streetAddress": _mf_first(props, "street-address"),
            "postalCode": _mf_first(props, "postal-code"),
            "addressLocality": _mf_first(props, "locality"),
            "addressCountry": _mf_first(props, "country-name"),
        },
    }


# ---------------------------------------------------------------------------
# Node -> record


def _strip_prefix(value: str) -> str:
    for prefix in _SCHEMA_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def _types(node: Mapping[str, Any]) -> set[str]:
    return {_strip_prefix(t) for t in _as_list(node.get("@type")) if isinstance(t, str)}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    """A property as plain text (first of a list; ``name`` of a node; HTML tags removed)."""
    for item in _as_list(value):
        if isinstance(item, dict):
            item = item.get("name") or item.get("@value")
        if isinstance(item, (str, int, float)) and (text := html_to_text(str(item))):
            return text
    return ""


def _url(value: Any, base_url: str) -> str | None:
    for item in _as_list(value):
        if isinstance(item, dict):
            item = item.get("url") or item.get("@id")
        if isinstance(item, str) and (url := absolute_url(item, base_url)):
            return url
    return None


def is_event(node: Node) -> bool:
    types = _types(node)
    return any(t.endswith("Event") and t != "EventSeries" for t in types) or bool(types & _EVENT_EXTRA)


def is_news(node: Node) -> bool:
    return bool(_types(node) & _NEWS_TYPES)


def place_text(value: Any, base_url: str) -> str | None:
    """Place -> "Name, street, postcode locality, country"; VirtualLocation -> "Online: URL"; lists -> both."""
    parts: list[str] = []
    for item in _as_list(value):
        if isinstance(item, str):
            text = clean_text(item)
        elif isinstance(item, dict) and "VirtualLocation" in _types(item):
            url = _url(item.get("url"), base_url)
            text = f"Online: {url}" if url else "Online"
        elif isinstance(item, dict):
            text = ", ".join(p for p in (_text(item.get("name")), _address(item.get("address"))) if p)
        else:
            text = ""
        if text and text not in parts:
            parts.append(text)
    return "; ".join(parts) or None


def _address(value: Any) -> str:
    for item in _as_list(value):
        if isinstance(item, str):
            return clean_text(item)
        if isinstance(item, dict):
            town = " ".join(p for p in (_text(item.get("postalCode")), _text(item.get("addressLocality"))) if p)
            parts = (_text(item.get("streetAddress")), town, _text(item.get("addressCountry")))
            return ", ".join(p for p in parts if p)
    return ""


def record_from_node(
    node: Node,
    *,
    source: SourceConfig,
    base_url: str,
    strategy: Strategy,
    where: str,
    reference: datetime | None = None,
) -> tuple[Record | None, Problem | None]:
    """An event or news record from one schema.org node; other types give (None, None).

    ``reference`` (the page's date or fetch time) lets dates written as text
    rather than ISO 8601 be read too, as RDFa and microdata pages often do.
    """
    if is_event(node):
        return _event(node, source=source, base_url=base_url, strategy=strategy, where=where, reference=reference)
    if is_news(node):
        return _news(node, source=source, base_url=base_url, strategy=strategy), None
    return None, None


def _text_date(text: str, source: SourceConfig, reference: datetime | None) -> datetime | date | None:
    """A date written for people ("21. Jänner 2027, 17:30 Uhr"), read by the multilingual reader."""
    if not text or reference is None:
        return None
    return dates.read_date(text, tz=source.timezone, reference=reference)


def _end_text_date(
    text: str, start: datetime | date, source: SourceConfig, reference: datetime | None
) -> datetime | date | None:
    """An end written as text, possibly only a time ("20:00 Uhr") on the start's day."""
    end = _text_date(text, source, reference)
    if end is None and isinstance(start, datetime) and reference is not None and text:
        when = dates.read_when(
            f"{start.date().isoformat()}, {start.strftime('%H:%M')} – {text}", tz=source.timezone, reference=reference
        )
        end = when.end if when is not None else None
    return end


def _event(
    node: Node,
    *,
    source: SourceConfig,
    base_url: str,
    strategy: Strategy,
    where: str,
    reference: datetime | None = None,
) -> tuple[EventRecord | None, Problem | None]:
    title = _text(node.get("name"))
    if not title:
        return None, Problem(source.name, "event without a name", where)
    start_text = _text(node.get("startDate"))
    start = iso_value(start_text, source.timezone) or _text_date(start_text, source, reference)
    if start is None:
        message = f"unreadable startDate {start_text!r}" if start_text else "event without a startDate"
        return None, Problem(source.name, f"{message}: {title!r}", where)
    end_text = _text(node.get("endDate"))
    end = iso_value(end_text, source.timezone) or _end_text_date(end_text, start, source, reference)
    problem: Problem | None = None
    if end_text and end is None:
        problem = Problem(source.name, f"unreadable endDate {end_text!r}: {title!r}", where)
    when = _when(start, end)
    status_name = _strip_prefix(_text(node.get("eventStatus")))
    status = _STATUS.get(status_name, EventStatus.CONFIRMED)
    description = _text(node.get("description"))
    if status_name == "EventPostponed":
        description = f"Postponed. {description}".strip()
    event = make_event(
        title=title,
        link=_url(node.get("url"), base_url) or _url(node.get("@id"), base_url),
        when=when,
        location=place_text(node.get("location"), base_url),
        description=sanitize_html(description),
        status=status,
        source=source,
        strategy=strategy,
    )
    return event, problem


def _when(start: datetime | date, end: datetime | date | None) -> When:
    """schema.org ends are inclusive; an all-day end becomes exclusive (RFC 5545)."""
    if not isinstance(start, datetime):
        last = end if isinstance(end, date) and not isinstance(end, datetime) and end >= start else start
        return When(start=start, end=last + timedelta(days=1))
    if isinstance(end, datetime) and end >= start:
        return When(start=start, end=end)
    return When(start=start, end=None)


def _news(node: Node, *, source: SourceConfig, base_url: str, strategy: Strategy) -> NewsRecord | None:
    title = _text(node.get("headline")) or _text(node.get("name"))
    if not title:
        return None
    link = _url(node.get("url"), base_url) or _url(node.get("mainEntityOfPage"), base_url)
    published = iso_value(_text(node.get("datePublished")), source.timezone)
    updated = iso_value(_text(node.get("dateModified")), source.timezone)
    authors = tuple(a for a in (_text(v) for v in _as_list(node.get("author"))) if a)
    return NewsRecord(
        id=news_id(link, title, _text(node.get("datePublished"))),
        source=source.name,
        title=title,
        link=link,
        summary=sanitize_html(_text(node.get("description"))),
        published=to_aware(published, source.timezone) if published is not None else None,
        updated=to_aware(updated, source.timezone) if updated is not None else None,
        authors=authors,
        strategy=strategy,
    )
