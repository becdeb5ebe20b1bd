"""Listing heuristics: repeated blocks on a page without structured data -> records.

A cluster site's news page is a column of teasers (title, date, "more" link)
and a sidebar box of upcoming events (title, date, place). Both are runs of
sibling elements with the same tag and class; we find such runs, read the
fields of each block, and keep the runs that look like content (dated, or
with headings and real titles) rather than navigation. Pure: a parsed tree
in, records out.

The record-building half (``BlockFields`` -> ``NewsRecord``/``EventRecord``,
ids and uids) is shared with the CSS-selector parser in ``parse/html.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from lxml.html import HtmlElement

from aggregator.config import SourceConfig
from aggregator.extract import dates
from aggregator.extract.dates import When
from aggregator.records import (
    EventRecord,
    EventStatus,
    Explanation,
    NewsRecord,
    Problem,
    Record,
    RecordKind,
    Strategy,
)
from aggregator.sanitize import clean_text
from aggregator.urls import absolute_url, canonical_url

__all__ = [
    "BlockFields",
    "ListingResult",
    "event_from_fields",
    "event_uid",
    "find_listings",
    "iso_value",
    "news_from_fields",
    "news_id",
    "normalised_title",
    "to_aware",
]

# "Read more" links in the languages of European cluster sites (compared casefolded, punctuation stripped).
MORE_WORDS = frozenset(
    {
        "more", "read more", "more info", "more information", "learn more", "continue reading", "details",
        "view", "see more", "find out more", "full story", "read the full article", "mehr", "weiterlesen",
        "mehr erfahren", "mehr lesen", "zum artikel", "details ansehen", "plus", "lire la suite",
        "en savoir plus", "suite", "voir plus", "leggi tutto", "leggi di più", "scopri di più", "approfondisci",
        "meer", "lees meer", "więcej", "czytaj więcej", "více", "läs mer", "lue lisää", "preberi več",
    }
)  # fmt: skip
CANCELLED_WORDS = frozenset(
    {"cancelled", "canceled", "abgesagt", "entfällt", "annulé", "annulée", "annullato", "annullata", "geannuleerd"}
)
# Words that mark a box of events rather than news (heading text, class or id).
_EVENT_CONTEXT = re.compile(
    r"event|agenda|termin|veranstaltung|calendar|kalender|[ée]v[ée]nement|manifestation|eventi|evenementen",
    re.IGNORECASE,
)
_INLINE = frozenset(
    {"b", "i", "em", "strong", "u", "small", "sup", "sub", "abbr", "mark", "font", "bdi", "q", "cite", "s", "wbr"}
)
_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "select", "option", "button", "form", "iframe"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_STATE_CLASSES = frozenset(
    {"first", "last", "odd", "even", "active", "current", "featured", "sticky", "cancelled", "canceled", "clearfix"}
)
_DIGIT = re.compile(r"\d")
# Author, category and tag lines around a teaser are not its text.
_BYLINE = re.compile(r"byline|author|categor|tags|entry-footer", re.IGNORECASE)
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)
_SEPARATORS = " \t,;:|–—-·•/()[]"
# A date line is short; longer text is a sentence that merely mentions a date.
_MAX_DATE_TEXT = 90
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


# The heuristics test a text for a date, then build the record from the same text: read it once.
@lru_cache(maxsize=4096)
def read_date(text: str, *, tz: ZoneInfo, reference: datetime) -> datetime | date | None:
    return dates.read_date(text, tz=tz, reference=reference)


@lru_cache(maxsize=4096)
def read_when(text: str, *, tz: ZoneInfo, reference: datetime) -> When | None:
    return dates.read_when(text, tz=tz, reference=reference)


@lru_cache(maxsize=4096)
def find_when(text: str, *, tz: ZoneInfo, reference: datetime) -> tuple[When, str] | None:
    return dates.find_when(text, tz=tz, reference=reference)


# A record's link is canonicalised for its id or uid and again for the uid-by-link pass.
_canonical_url = lru_cache(maxsize=4096)(canonical_url)


# ---------------------------------------------------------------------------
# Fields of one block -> a record (shared with the selectors parser)


@dataclass(frozen=True, slots=True)
class BlockFields:
    """What one listing block says, as text: the input of record building."""

    title: str
    link: str | None = None  # absolute
    date_text: str | None = None
    date_attr: str | None = None  # a <time datetime> value, ISO 8601
    summary: str = ""  # plain text
    location: str | None = None
    cancelled: bool = False
    where: str | None = None  # "item 3", for problems


def news_id(link: str | None, title: str, date_text: str | None) -> str:
    """The canonical link, else a stable hash of title and date text."""
    canonical = _canonical_url(link)
    if canonical:
        return canonical
    digest = hashlib.sha256(f"{title}\x1f{date_text or ''}".encode()).hexdigest()[:32]
    return f"urn:clusterfeeds:{digest}"


def event_uid(source: str, link: str | None, title: str, start: datetime | date) -> str:
    """Stable uid from (source, canonical link or title, start): the same event keeps its uid across fetches."""
    anchor = _canonical_url(link) or title
    digest = hashlib.sha256(f"{source}\x1f{anchor}\x1f{start.isoformat()}".encode()).hexdigest()[:32]
    return f"{digest}@clusterfeeds"


_PAGE_STRATEGIES = frozenset(
    {Strategy.SELECTORS, Strategy.LISTING, Strategy.JSON_LD, Strategy.MICRODATA, Strategy.RDFA,
     Strategy.MICROFORMATS, Strategy.TITLE_TEXT, Strategy.DETAIL_PAGE}
)  # fmt: skip


def with_link_uids(found: Sequence[Record], *, page_url: str) -> list[Record]:
    """Page events whose own link is unique on the page take their uid from (source, link) alone.

    An event's page is its identity: when the organiser moves it to another day,
    the same uid (with a higher SEQUENCE) moves it in every subscribed calendar
    instead of leaving the old date behind as a second event. Links shared by
    several events on the page (a generic "events" page), or pointing back at
    the page itself, keep the uid that includes the start.
    """
    own_page = _canonical_url(page_url)
    links: dict[str, int] = {}
    for record in found:
        if isinstance(record, EventRecord) and record.strategy in _PAGE_STRATEGIES and record.link:
            key = _canonical_url(record.link)
            if key is not None:
                links[key] = links.get(key, 0) + 1
    if not links:
        return list(found)
    records: list[Record] = []
    for record in found:
        key = _canonical_url(record.link) if isinstance(record, EventRecord) and record.link else None
        if (
            isinstance(record, EventRecord)
            and record.strategy in _PAGE_STRATEGIES
            and key is not None
            and key != own_page
            and links.get(key) == 1
        ):
            digest = hashlib.sha256(f"{record.source}\x1f{key}".encode()).hexdigest()[:32]
            record = dataclasses.replace(record, uid=f"{digest}@clusterfeeds")
        records.append(record)
    return records


@lru_cache(maxsize=4096)
def normalised_title(title: str) -> str:
    """Case, accents-as-written, punctuation and spacing ignored: the key that merges strategies."""
    return _PUNCT.sub(" ", title.casefold()).strip()


def to_aware(value: datetime | date, tz: ZoneInfo) -> datetime:
    """A publication moment: a plain date becomes midnight in the source's zone."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return datetime.combine(value, time(0, 0), tzinfo=tz)


def iso_value(text: str | None, tz: ZoneInfo) -> datetime | date | None:
    """An ISO 8601 date or date-time (schema.org, <time datetime>); naive times are in ``tz``.

    A time whose offset is the source zone's offset at that instant is put in
    the source zone (so the event keeps its IANA name); any other offset stays
    a fixed offset.
    """
    if not text:
        return None
    text = text.strip()
    if not _ISO.match(text):
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=tz)
    local = value.astimezone(tz)
    return local if local.utcoffset() == value.utcoffset() else value


def news_from_fields(
    fields: BlockFields, *, source: SourceConfig, strategy: Strategy, reference: datetime
) -> tuple[NewsRecord, Problem | None]:
    """A news record; a missing or unreadable date leaves ``published`` None and adds a Problem."""
    tz = source.timezone
    published: datetime | None = None
    problem: Problem | None = None
    value = iso_value(fields.date_attr, tz)
    if value is None and fields.date_text:
        value = read_date(fields.date_text, tz=tz, reference=reference)
    if value is not None:
        published = to_aware(value, tz)
    elif fields.date_text:
        problem = Problem(source.name, f"unreadable date {fields.date_text!r}", fields.where)
    else:
        problem = Problem(source.name, "no date found", fields.where)
    record = NewsRecord(
        id=news_id(fields.link, fields.title, fields.date_text),
        source=source.name,
        title=fields.title,
        link=fields.link,
        summary=html.escape(fields.summary, quote=False),
        published=published,
        strategy=strategy,
    )
    return record, problem


def event_from_fields(
    fields: BlockFields, *, source: SourceConfig, strategy: Strategy, reference: datetime
) -> tuple[EventRecord | None, Problem | None]:
    """An event record, or a Problem when its date cannot be read (an event without a start is no event)."""
    tz = source.timezone
    when: When | None = None
    location = fields.location
    if fields.date_text:
        when = read_when(fields.date_text, tz=tz, reference=reference)
        if when is None:
            found = find_when(fields.date_text, tz=tz, reference=reference)
            if found is not None:
                when, matched = found
                rest = _after(fields.date_text, matched)
                if rest and not location:
                    location = rest
    if when is None and fields.date_attr:
        value = iso_value(fields.date_attr, tz)
        if value is not None:
            when = When(start=value, end=None)
    if when is None:
        message = f"unreadable date {fields.date_text!r}" if fields.date_text else "no date found"
        return None, Problem(source.name, message, fields.where)
    return make_event(
        title=fields.title,
        link=fields.link,
        when=when,
        location=location,
        description=html.escape(fields.summary, quote=False),
        status=EventStatus.CANCELLED if fields.cancelled else EventStatus.CONFIRMED,
        source=source,
        strategy=strategy,
    ), None


def make_event(
    *,
    title: str,
    link: str | None,
    when: When,
    location: str | None,
    description: str,
    status: EventStatus,
    source: SourceConfig,
    strategy: Strategy,
    announced_by: str | None = None,
) -> EventRecord:
    """An EventRecord with its stable uid; timed events carry the zone name of their start."""
    zone = getattr(when.start, "tzinfo", None)
    return EventRecord(
        uid=event_uid(source.name, link, title, when.start),
        source=source.name,
        title=title,
        start=when.start,
        end=when.end,
        timezone=getattr(zone, "key", None) if isinstance(when.start, datetime) else None,
        location=location or None,
        link=link,
        description=description,
        status=status,
        strategy=strategy,
        announced_by=announced_by,
    )


def _after(text: str, matched: str) -> str:
    """The text after the matched date, trimmed of separators."""
    at = text.find(matched)
    if at < 0:
        return ""
    return text[at + len(matched) :].strip(_SEPARATORS)


# ---------------------------------------------------------------------------
# Finding repeated blocks in a tree


@dataclass(frozen=True, slots=True)
class ListingResult:
    records: tuple[Record, ...] = ()
    problems: tuple[Problem, ...] = ()
    explanations: tuple[Explanation, ...] = ()


@dataclass(slots=True)
class _Segment:
    """A run of visible text inside one element (inline formatting does not split it)."""

    text: str
    owner: HtmlElement
    link: HtmlElement | None
    heading: bool


@dataclass(slots=True)
class _Group:
    parent: HtmlElement
    blocks: list[HtmlElement]
    depth: int
    fields: list[BlockFields] = field(default_factory=list)


def _signature(element: HtmlElement) -> str:
    """Tag plus first stable class: what makes siblings 'the same kind of block'."""
    return _signature_of(str(element.tag), element.get("class"))


@lru_cache(maxsize=1024)
def _signature_of(tag: str, class_attr: str | None) -> str:
    classes = [c for c in (class_attr or "").split() if c.casefold() not in _STATE_CLASSES and not _DIGIT.search(c)]
    return f"{tag}.{classes[0]}" if classes else tag


def _candidate_groups(root: HtmlElement) -> Iterator[_Group]:
    """Runs of >= 2 same-signature siblings that contain a link: one pass over the tree."""
    stack: list[tuple[HtmlElement, int]] = [(root, 0)]
    while stack:
        parent, depth = stack.pop()
        buckets: dict[str, list[HtmlElement]] = {}
        for child in parent:
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIP:
                continue
            stack.append((child, depth + 1))
            buckets.setdefault(_signature_of(tag, child.get("class")), []).append(child)
        for blocks in buckets.values():
            if len(blocks) >= 2:
                yield _Group(parent, blocks, depth + 1)


def _segments(block: HtmlElement) -> list[_Segment]:
    out: list[_Segment] = []
    buf: list[str] = []
    current_owner: HtmlElement | None = None
    current_link: HtmlElement | None = None
    current_heading = False

    def flush() -> None:
        if buf:  # nothing buffered cleans to "": no segment either way
            text = clean_text("".join(buf))
            buf.clear()
            if text:
                out.append(_Segment(text, current_owner, current_link, current_heading))

    def add(text: str, owner: HtmlElement, link: HtmlElement | None, heading: bool) -> None:
        nonlocal current_owner, current_link, current_heading
        if owner is not current_owner or link is not current_link:
            flush()
            current_owner, current_link, current_heading = owner, link, heading
        buf.append(text)

    def walk(element: HtmlElement, tag: str, owner: HtmlElement, link: HtmlElement | None, heading: bool) -> None:
        if tag not in _INLINE:
            owner = element
        if tag == "a" and element.get("href"):
            link = element
        heading = heading or tag in _HEADINGS
        text = element.text
        if text:
            add(text, owner, link, heading)
        for child in element:
            child_tag = child.tag
            if not isinstance(child_tag, str) or child_tag in _SKIP:
                pass
            elif child_tag == "br":
                flush()
            else:
                walk(child, child_tag, owner, link, heading)
            tail = child.tail
            if tail:
                add(tail, owner, link, heading)
        flush()

    walk(block, block.tag, block, None, False)
    flush()
    return out


def _is_more(text: str) -> bool:
    return normalised_title(text) in MORE_WORDS


def _is_badge(text: str) -> bool:
    return normalised_title(text) in CANCELLED_WORDS


def _heading_link(heading: HtmlElement) -> HtmlElement | None:
    for a in heading.iter("a"):
        if a.get("href"):
            return a
    parent = heading.getparent()
    while parent is not None:
        if parent.tag == "a" and parent.get("href"):
            return parent
        parent = parent.getparent()
    return None


def _block_fields(
    block: HtmlElement,
    *,
    kind: RecordKind,
    base_url: str,
    tz: ZoneInfo,
    reference: datetime,
    where: str,
) -> BlockFields | None:
    """Title, link, date, place and teaser of one block; None when it has no title."""
    segments = _segments(block)
    heading = next((e for e in block.iter(*_HEADINGS)), None)
    more = next((s.link for s in segments if s.link is not None and _is_more(s.text)), None)
    title = ""
    link_el: HtmlElement | None = None
    if heading is not None:
        title = clean_text(heading.text_content())
        link_el = _heading_link(heading)
        if link_el is None:
            link_el = more
    if not title:
        candidates = [s for s in segments if s.link is not None and not _is_more(s.text) and not _is_badge(s.text)]
        # A date inside the link ("<a><span>December 2, 2026</span> Cluster Day</a>") is not the title.
        undated = [s for s in candidates if not _looks_dated(s.text, kind=kind, tz=tz, reference=reference)]
        best = max(undated or candidates, key=lambda s: len(s.text), default=None)
        if best is None:
            return None
        title, link_el = best.text, best.link
    if link_el is None:
        link_el = more if more is not None else next((s.link for s in segments if s.link is not None), None)
    if link_el is None:
        link_el = next((a for a in block.iter("a") if a.get("href")), None)
    link = absolute_url(link_el.get("href"), base_url) if link_el is not None else None

    time_el = next((t for t in block.iter("time") if t.get("datetime")), None)
    date_attr = time_el.get("datetime") if time_el is not None else None
    cancelled = False
    date_index: int | None = None
    rest: list[tuple[int, _Segment]] = []
    for index, seg in enumerate(segments):
        if seg.heading or seg.text == title:
            continue
        if date_index is None and _looks_dated(seg.text, kind=kind, tz=tz, reference=reference):
            date_index = index
            continue
        if seg.link is not None and seg.link is link_el and seg.link is not more:
            continue
        if _is_more(seg.text) and seg.link is not None:
            continue
        if _is_badge(seg.text):
            cancelled = True
            continue
        if _BYLINE.search(seg.owner.get("class") or ""):
            continue
        rest.append((index, seg))
    date_text = segments[date_index].text if date_index is not None else None
    if date_text is None and time_el is not None:
        date_text = clean_text(time_el.text_content()) or None
    location: str | None = None
    summary = ""
    if kind is RecordKind.EVENT:
        after = [s.text for i, s in rest if date_index is not None and i > date_index and s.link is None]
        location = ", ".join(after) or None
    else:
        summary = " ".join(s.text for _, s in rest)
    return BlockFields(
        title=title,
        link=link,
        date_text=date_text,
        date_attr=date_attr,
        summary=summary,
        location=location,
        cancelled=cancelled,
        where=where,
    )


def _looks_dated(text: str, *, kind: RecordKind, tz: ZoneInfo, reference: datetime) -> bool:
    """A short text with a digit that the date reader takes as a whole (events: with a place after it)."""
    if len(text) > _MAX_DATE_TEXT or not _DIGIT.search(text):
        return False
    if kind is RecordKind.NEWS:
        return read_date(text, tz=tz, reference=reference) is not None
    if read_when(text, tz=tz, reference=reference) is not None:
        return True
    found = find_when(text, tz=tz, reference=reference)
    # "March 18, 2015 Strasbourg, European Parliament": the date opens the line.
    return found is not None and text.find(found[1]) == 0


def _describe(group: _Group) -> str:
    def name(element: HtmlElement) -> str:
        classes = ".".join((element.get("class") or "").split())
        ident = f"#{element.get('id')}" if element.get("id") else ""
        return f"{element.tag}{ident}{'.' + classes if classes else ''}"

    return f"{name(group.parent)} > {_signature(group.blocks[0])} ({len(group.blocks)} blocks)"


def _context_kind(parent: HtmlElement, block: HtmlElement) -> RecordKind:
    """Events when the blocks or the box around them are labelled as events (class, id or heading), else news."""
    if _EVENT_CONTEXT.search(f"{block.get('class') or ''} {block.get('itemtype') or ''}"):
        return RecordKind.EVENT
    element: HtmlElement | None = parent
    for _ in range(4):
        if element is None or element.tag in ("body", "html", "main"):
            break
        label = f"{element.get('class') or ''} {element.get('id') or ''}"
        if _EVENT_CONTEXT.search(label):
            return RecordKind.EVENT
        for sibling in (element, *element.itersiblings(preceding=True)):
            if sibling is element:
                heading = next((h for h in element if isinstance(h.tag, str) and h.tag in _HEADINGS), None)
            else:
                heading = sibling if sibling.tag in _HEADINGS else None
            if heading is not None:
                if _EVENT_CONTEXT.search(heading.text_content()):
                    return RecordKind.EVENT
                break
        element = element.getparent()
    return RecordKind.NEWS


def _judge(fields: Sequence[BlockFields], blocks: int) -> tuple[bool, str]:
    """Accept a run of blocks as content, or say why it looks like navigation or decoration."""
    titled = [f for f in fields if f.link]
    if len(titled) < 2:
        return False, f"only {len(titled)} of {blocks} blocks have a title and a link"
    dated = sum(1 for f in titled if f.date_text or f.date_attr)
    words = sum(len(f.title.split()) for f in titled) / len(titled)
    if dated * 2 >= len(titled):
        return True, f"{dated} of {blocks} blocks dated"
    if words >= 4 and sum(1 for f in titled if f.summary) * 2 >= len(titled):
        return True, f"no dates, but titles of {words:.1f} words with teaser text"
    return False, f"{dated} of {blocks} blocks dated and titles of {words:.1f} words: navigation or link list"


def find_listings(
    root: HtmlElement, *, source: SourceConfig, base_url: str, fetched_at: datetime, explain: bool = False
) -> ListingResult:
    """News teasers and event rows found as repeated blocks of one page."""
    # Hold a Python proxy of every element for the whole walk: lxml.html otherwise builds (and runs its
    # class lookup for) a new proxy each time an element is visited again, several times per element.
    elements = list(root.iter())  # noqa: F841
    groups = [g for g in _candidate_groups(root) if _linked(g.blocks)]
    # Deepest runs first: a run inside a taken block, or containing one, is the same content again.
    groups.sort(key=lambda g: -g.depth)
    taken: set[HtmlElement] = set()
    found: list[tuple[int, int, int, Record]] = []
    problems: list[Problem] = []
    explanations: list[Explanation] = []
    seen: set[str] = set()
    for group in groups:
        label = _describe(group)
        if any(a in taken for a in group.parent.iterancestors()) or group.parent in taken:
            continue
        if any(d in taken for b in group.blocks for d in b.iterdescendants()):
            if explain:
                explanations.append(Explanation(label, False, "contains a run already taken"))
            continue
        kind = _context_kind(group.parent, group.blocks[0])
        fields = [
            f
            for i, b in enumerate(group.blocks)
            if (f := _block_fields(b, kind=kind, base_url=base_url, tz=source.timezone, reference=fetched_at,
                                   where=f"{label} block {i + 1}")) is not None
        ]  # fmt: skip
        accepted, reason = _judge(fields, len(group.blocks))
        if explain:
            explanations.append(Explanation(label, accepted, f"{kind.value}: {reason}"))
        if not accepted:
            continue
        taken.update(group.blocks)
        for f in fields:
            if not f.link:
                continue
            record: Record | None
            if kind is RecordKind.EVENT:
                record, problem = event_from_fields(f, source=source, strategy=Strategy.LISTING, reference=fetched_at)
            else:
                record, problem = news_from_fields(f, source=source, strategy=Strategy.LISTING, reference=fetched_at)
            if problem is not None:
                problems.append(problem)
            if record is not None and record.key not in seen:
                seen.add(record.key)
                # News before events, each in page order.
                found.append((int(kind is RecordKind.EVENT), group.blocks[0].sourceline or 0, len(found), record))
    found.sort(key=lambda item: item[:3])
    return ListingResult(tuple(item[3] for item in found), tuple(problems), tuple(explanations))


def _linked(blocks: Sequence[HtmlElement]) -> bool:
    with_link = sum(1 for b in blocks if next((a for a in b.iter("a") if a.get("href")), None) is not None)
    return with_link >= 2 and with_link * 2 >= len(blocks)
