"""Typed records exchanged between pipeline stages.

Library objects (feedparser dicts, icalendar components, soup tags) never
leave ``parse/``; every stage after it sees only these frozen dataclasses.
Datetimes are always timezone-aware; a plain ``date`` means all-day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

__all__ = [
    "Enclosure",
    "EventRecord",
    "EventStatus",
    "Explanation",
    "NewsRecord",
    "ParseResult",
    "Problem",
    "Record",
    "RecordKind",
    "SourceState",
    "Strategy",
    "Validators",
]


class RecordKind(StrEnum):
    NEWS = "news"
    EVENT = "event"


class EventStatus(StrEnum):
    CONFIRMED = "confirmed"
    TENTATIVE = "tentative"
    CANCELLED = "cancelled"


class Strategy(StrEnum):
    """How a record was obtained; shown by ``preview`` as ``strategy``."""

    FEED = "feed"
    ICAL = "ical"
    SELECTORS = "selectors"
    DISCOVERED_FEED = "discovered-feed"
    JSON_LD = "json-ld"
    MICRODATA = "microdata"
    RDFA = "rdfa"
    MICROFORMATS = "microformats"
    LISTING = "listing"
    TITLE_TEXT = "title-text"
    DETAIL_PAGE = "detail-page"


@dataclass(frozen=True, slots=True)
class Enclosure:
    url: str
    media_type: str | None = None
    length: int | None = None


@dataclass(frozen=True, slots=True)
class NewsRecord:
    """One news item. ``id`` is stable across fetches of the same source."""

    id: str
    source: str
    title: str
    link: str | None
    summary: str = ""  # sanitised HTML
    published: datetime | None = None
    updated: datetime | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    strategy: Strategy = Strategy.FEED
    # Other sources that carried the same story (filled by de-duplication).
    also_from: tuple[str, ...] = ()

    @property
    def kind(self) -> RecordKind:
        return RecordKind.NEWS

    @property
    def key(self) -> str:
        """Identity within its source: what the store upserts on."""
        return self.id


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One calendar event, or one overridden instance of a recurring one.

    ``start``/``end`` are aware datetimes in the event's own IANA zone, or
    dates for all-day events; an all-day ``end`` is exclusive (RFC 5545).
    """

    uid: str
    source: str
    title: str
    start: datetime | date
    end: datetime | date | None = None
    timezone: str | None = None  # IANA name of start/end, None for all-day
    location: str | None = None
    link: str | None = None
    description: str = ""  # sanitised HTML
    status: EventStatus = EventStatus.CONFIRMED
    rrule: str | None = None  # RRULE value as written, e.g. "FREQ=WEEKLY;COUNT=10"
    rdates: tuple[datetime | date, ...] = ()
    exdates: tuple[datetime | date, ...] = ()
    recurrence_id: datetime | date | None = None
    last_modified: datetime | None = None
    sequence: int = 0  # the source's SEQUENCE, if it gave one
    tags: tuple[str, ...] = ()
    strategy: Strategy = Strategy.ICAL
    announced_by: str | None = None  # id of the news record that announced it
    also_from: tuple[str, ...] = ()

    @property
    def kind(self) -> RecordKind:
        return RecordKind.EVENT

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    @property
    def key(self) -> str:
        """Identity within its source: UID plus RECURRENCE-ID for overrides."""
        if self.recurrence_id is None:
            return self.uid
        return f"{self.uid}#{self.recurrence_id.isoformat()}"


Record = NewsRecord | EventRecord


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one part of a document; the rest of it is kept."""

    source: str
    message: str
    where: str | None = None  # e.g. "item 3", "VEVENT uid=..."

    def __str__(self) -> str:
        where = f" ({self.where})" if self.where else ""
        return f"source '{self.source}'{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a candidate block on a page was taken or rejected (``preview --explain``)."""

    candidate: str
    accepted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ParseResult:
    records: tuple[Record, ...] = ()
    problems: tuple[Problem, ...] = ()
    # The feed or calendar a page pointed at, when auto-discovery used one.
    discovered_url: str | None = None
    explanations: tuple[Explanation, ...] = ()
    # (record key, url) pairs whose detail page would fill a missing date, place or summary.
    detail_links: tuple[tuple[str, str], ...] = ()

    @property
    def news(self) -> list[NewsRecord]:
        return [r for r in self.records if isinstance(r, NewsRecord)]

    @property
    def events(self) -> list[EventRecord]:
        return [r for r in self.records if isinstance(r, EventRecord)]


@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators sent back on the next fetch (conditional GET)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers about one source between runs."""

    name: str
    validators: Validators = field(default_factory=Validators)
    body_hash: str | None = None
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    items: int = 0
    last_yield: int | None = None  # records the last successful parse produced
    # Highest recent yield, decaying slowly: a page yielding far fewer than this has probably changed.
    yield_baseline: float | None = None
    failing_since: datetime | None = None  # first failure of the current run of failures
    next_run: datetime | None = None
    dormant: bool = False
    redirected_to: str | None = None  # permanent redirect target to put in sources.toml
    discovered_url: str | None = None
    source_url: str | None = None  # the configured URL the validators and body hash belong to

    @property
    def shrunk(self) -> bool:
        """The last parse yielded under a third of what this source usually yields."""
        return (
            self.last_yield is not None
            and self.yield_baseline is not None
            and self.yield_baseline >= 6
            and self.last_yield < self.yield_baseline / 3
        )
