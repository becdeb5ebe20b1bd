"""Record-by-record check of published feeds against the corpus's ``truth.jsonl`` (pure helpers).

Counting published items only says how many; this says which. News are matched by
canonical link (tracking parameters and fragments stripped, as our de-duplication
does), events by (title ignoring case and spacing, start instant), so a re-post
published twice, a missed story or an event read at the wrong time all show up.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aggregator.urls import canonical_url

__all__ = ["Check", "check_events", "check_news", "event_key", "truth_event_keys", "truth_news_links"]

EventKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Check:
    """How a published set compares with the ground truth."""

    truth: int  # unique records the corpus holds
    published: int  # records in the published file
    matched: int  # truth records found
    missing: int  # truth records not published
    duplicated: int  # published more than once (a de-duplication miss)
    unknown: int  # published records matching no truth record

    def as_dict(self) -> dict[str, int]:
        return {
            "truth": self.truth,
            "published": self.published,
            "matched": self.matched,
            "missing": self.missing,
            "duplicated": self.duplicated,
            "unknown": self.unknown,
        }


def _link(url: str | None) -> str | None:
    return canonical_url(url) if url else None


def _title(title: str) -> str:
    return " ".join(title.replace("\u00a0", " ").split()).casefold()


def event_key(title: str, start: datetime | date) -> EventKey:
    """(normalised title, start): a timed start as its UTC instant, an all-day start as its date."""
    if isinstance(start, datetime):
        return _title(title), start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _title(title), start.isoformat()


def _parse_start(value: str) -> datetime | date:
    return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value.replace("Z", "+00:00"))


def truth_news_links(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """Canonical links of the unique news (re-posts, ``dup_of`` set, are the same story)."""
    links = set()
    for row in rows:
        if row.get("type") == "news" and row.get("dup_of") is None and (link := _link(row.get("canonical"))):
            links.add(link)
    return links


def truth_event_keys(rows: Iterable[Mapping[str, Any]]) -> set[EventKey]:
    """Keys of the unique events, plus the events that news titles announce (an extractor adds those)."""
    keys = set()
    for row in rows:
        if row.get("type") == "event" and row.get("dup_of") is None:
            keys.add(event_key(row["title"], _parse_start(row["start"])))
        elif row.get("type") == "news" and row.get("dup_of") is None and row.get("announces"):
            announced = row["announces"]
            keys.add(event_key(announced["title"], _parse_start(announced["start"])))
    return keys


def _compare(truth: set[Any], published: list[Any]) -> Check:
    counts = Counter(published)
    matched = sum(1 for key in counts if key in truth)
    return Check(
        truth=len(truth),
        published=len(published),
        matched=matched,
        missing=len(truth) - matched,
        duplicated=sum(n - 1 for n in counts.values() if n > 1),
        unknown=sum(n for key, n in counts.items() if key not in truth),
    )


def check_news(truth_rows: Iterable[Mapping[str, Any]], json_feed: str) -> Check:
    """Published JSON Feed items (their ``url``) against the unique news of the truth."""
    items = json.loads(json_feed).get("items", [])
    published = [_link(item.get("url")) or f"no-link:{item.get('id')}" for item in items]
    return _compare(truth_news_links(truth_rows), published)


def check_events(truth_rows: Iterable[Mapping[str, Any]], calendar: bytes) -> Check:
    """Published VEVENTs (series counted once: overrides with RECURRENCE-ID are skipped) against the truth."""
    from icalendar import Calendar  # the harness runs in the project's venv

    from aggregator.publish.ics import CANCELLED_PREFIX

    published = []
    for component in Calendar.from_ical(calendar).walk("VEVENT"):
        if component.get("RECURRENCE-ID") is not None:
            continue
        title = str(component.get("SUMMARY", ""))
        if str(component.get("STATUS", "")) == "CANCELLED":  # the mark every client shows, not the title
            title = title.removeprefix(CANCELLED_PREFIX)
        published.append(event_key(title, component.decoded("DTSTART")))
    return _compare(truth_event_keys(truth_rows), published)
