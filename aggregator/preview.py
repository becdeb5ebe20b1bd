"""The stable ``preview --json`` shape: one JSON object per record (a contract for scripts)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aggregator.records import EventRecord, NewsRecord, Record

__all__ = ["record_to_json", "when_to_json"]


def when_to_json(value: datetime | date | None) -> str | None:
    """Timed values as ISO 8601 with their UTC offset; all-day values as ISO dates."""
    if value is None:
        return None
    return value.isoformat()


def record_to_json(record: Record) -> dict[str, Any]:
    common: dict[str, Any] = {
        "type": str(record.kind),
        "id": record.key,
        "source": record.source,
        "title": record.title,
        "link": record.link,
        "tags": list(record.tags),
        "strategy": str(record.strategy),
    }
    if isinstance(record, NewsRecord):
        return common | {
            "summary": record.summary,
            "published": when_to_json(record.published),
            "updated": when_to_json(record.updated),
            "authors": list(record.authors),
            "enclosures": [{"url": e.url, "type": e.media_type, "length": e.length} for e in record.enclosures],
            "also_from": list(record.also_from),
        }
    assert isinstance(record, EventRecord)
    return common | {
        "uid": record.uid,
        "description": record.description,
        "start": when_to_json(record.start),
        "end": when_to_json(record.end),
        "all_day": record.all_day,
        "timezone": record.timezone,
        "location": record.location,
        "status": str(record.status),
        "rrule": record.rrule,
        "rdates": [when_to_json(d) for d in record.rdates],
        "exdates": [when_to_json(d) for d in record.exdates],
        "recurrence_id": when_to_json(record.recurrence_id),
        "last_modified": when_to_json(record.last_modified),
        "announced_by": record.announced_by,
    }
