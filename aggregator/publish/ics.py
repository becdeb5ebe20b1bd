"""iCalendar renderer (RFC 5545), written by hand: events -> bytes.

Hand-written because the rules that matter to clients are few and strict:
CRLF line ends, TEXT escaping (3.3.11), folding at 75 octets without splitting
a UTF-8 sequence (3.1), one RDATE/EXDATE value per line, times with a TZID
(and its VTIMEZONE) or in UTC, never floating. Each event is rendered once and
cached, so the merged, per-source and per-tag calendars share the work.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aggregator.fragments import Fragment, fragment_bytes, fragment_tail, joined
from aggregator.fragments import fragment as stored_fragment
from aggregator.publish._common import memoized, plain_lines, plain_text, plain_title, safe_html, safe_url
from aggregator.publish.vtimezone import vtimezone_lines
from aggregator.records import EventRecord, EventStatus
from aggregator.sanitize import clean_text
from aggregator.store.base import StoredEvent

__all__ = [
    "CANCELLED_PREFIX",
    "ICS_FOOT",
    "PRODID",
    "Moved",
    "RenderedEvent",
    "calendar_entries",
    "current_events",
    "current_until",
    "escape_lines",
    "escape_text",
    "event_zone",
    "fold",
    "ics_duration",
    "ics_event",
    "ics_head",
    "ics_parts",
    "is_current",
    "leaves_window_at",
    "moved_occurrences",
    "published_vevents",
    "render_ics",
    "rrule_value",
    "unique_uids",
    "vevent_variant",
    "widened",
]

PRODID = "-//clusterfeeds//clusterfeeds 0.1//EN"
_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/GMT", "GMT", "Etc/Zulu", "Zulu", "Universal", "Etc/Universal"}
_RRULE = re.compile(r"[A-Z0-9=;,+:-]+")
_UNTIL = re.compile(r"UNTIL=(\d{8})(?:T(\d{6})(Z?))?")
_UID_SAFE = "@.-_~:/+=!$&'()*[]#%"


@dataclass(frozen=True, slots=True)
class RenderedEvent:
    text: Fragment  # folded lines, CRLF-terminated, UTF-8 (joined into the calendar without a str copy)
    tzid: str | None
    years: tuple[int, ...]


def escape_text(value: str) -> str:
    """TEXT value (RFC 5545 3.3.11): control characters and line breaks gone, ``\\ ; ,`` escaped."""
    return clean_text(value).replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")


def escape_lines(value: str) -> str:
    """Lines of TEXT: each escaped as ``escape_text``, the breaks between them written ``\\n`` (RFC 5545 3.3.11)."""
    return "\\n".join(escape_text(line) for line in value.split("\n"))


def fold(line: str) -> str:
    """One content line folded at 75 octets (continuations start with a space), CRLF-terminated.

    Breaks fall between characters, never inside a multi-byte UTF-8 sequence.
    """
    if len(line) <= 75 // 4:
        return line + "\r\n"
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line + "\r\n"
    chunks = []
    start, limit = 0, 75
    while len(data) - start > limit:
        end = start + limit
        while data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte: cut before its character
            end -= 1
        chunks.append(data[start:end])
        start, limit = end, 74  # continuation lines carry a leading space
    chunks.append(data[start:])
    return b"\r\n ".join(chunks).decode("utf-8") + "\r\n"


def ics_duration(value: timedelta) -> str:
    """DURATION value (RFC 5545 3.3.6), at least one minute."""
    minutes = max(int(value.total_seconds() // 60), 1)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    out = "P" + (f"{days}D" if days else "")
    if hours or minutes:
        out += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return out


def _utc(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    if utc.year < 1000:  # strftime's own (platform) spelling of a short year
        return utc.strftime("%Y%m%dT%H%M%SZ")
    return f"{utc.year:04d}{utc.month:02d}{utc.day:02d}T{utc.hour:02d}{utc.minute:02d}{utc.second:02d}Z"


def event_zone(record: EventRecord) -> ZoneInfo | None:
    """The event's IANA zone, or None for UTC (and for a zone name we cannot resolve)."""
    if record.all_day:
        return None
    name = record.timezone
    if not name and isinstance(record.start, datetime) and isinstance(record.start.tzinfo, ZoneInfo):
        name = record.start.tzinfo.key
    if not name or name in _UTC_NAMES:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _as_datetime(value: datetime | date, zone: ZoneInfo | None, at: time) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone or UTC)
    return datetime.combine(value, at, tzinfo=zone or UTC)


def _date_value(name: str, value: datetime | date, zone: ZoneInfo | None, all_day: bool, at: time) -> str:
    """``NAME;…:VALUE`` of a date property in the event's own form: DATE, TZID local time, or UTC."""
    if all_day:
        day = value.date() if isinstance(value, datetime) else value
        return f"{name};VALUE=DATE:{day.strftime('%Y%m%d')}"
    moment = _as_datetime(value, zone, at)
    if zone is None:
        return f"{name}:{_utc(moment)}"
    return f"{name};TZID={zone.key}:{moment.astimezone(zone).strftime('%Y%m%dT%H%M%S')}"


def rrule_value(value: str, all_day: bool, zone: ZoneInfo | None) -> str | None:
    """The stored RRULE, with UNTIL in the form RFC 5545 3.3.10 demands (UTC for zoned starts); None if unusable."""
    rule = clean_text(value).upper().removeprefix("RRULE:").replace(" ", "")
    if not rule or not _RRULE.fullmatch(rule) or "FREQ=" not in rule:
        return None

    def until(match: re.Match[str]) -> str:
        day, clock, zulu = match.group(1), match.group(2), match.group(3)
        if all_day:
            return f"UNTIL={day}"
        if zulu:
            return match.group(0)
        try:
            local = datetime.strptime(day + (clock or "235959"), "%Y%m%d%H%M%S")
        except ValueError:
            return match.group(0)
        return "UNTIL=" + _utc(local.replace(tzinfo=zone or UTC))

    return _UNTIL.sub(until, rule)


def _uid(value: str) -> str:
    """UIDs go out verbatim unless they hold characters that would need TEXT escaping."""
    return quote(clean_text(value), safe=_UID_SAFE) or "event"


def _years(record: EventRecord) -> tuple[int, ...]:
    values: Iterable[datetime | date | None] = (
        record.start,
        record.end,
        record.recurrence_id,
        *record.rdates,
        *record.exdates,
    )
    return tuple(sorted({v.year for v in values if v is not None}))


def ics_event(item: StoredEvent, uid: str) -> RenderedEvent:
    """One VEVENT, rendered once per publish for the merged, per-source and per-tag calendars."""
    by_uid: dict[str, RenderedEvent] = memoized("vevent", item, dict)
    rendered = by_uid.get(uid)
    if rendered is None:
        rendered = by_uid[uid] = _stored_event(item, uid)
    return rendered


def vevent_variant(item: StoredEvent, uid: str) -> str:
    """What a VEVENT's bytes depend on beside its stored row: its UID, and its EXDATEs (a series
    skips the occurrences its overrides replace, which are other rows)."""
    exdates = item.record.exdates
    if not exdates:
        return uid
    return uid + "\x1f" + ",".join(value.isoformat() for value in exdates)


def _stored_event(item: StoredEvent, uid: str) -> RenderedEvent:
    """The VEVENT from the fragment cache (zone and years in a first line before the text), else rendered."""

    def render() -> bytes:
        text, tzid, years = _render_event(item, uid)
        return f"{tzid or ''}\t{','.join(map(str, years))}\n".encode() + text

    stored = stored_fragment("vevent", item, vevent_variant(item, uid), render)
    whole = fragment_bytes(stored)  # the first line is needed here
    end = whole.index(b"\n")
    tzid, _, years = whole[:end].decode().partition("\t")
    text = fragment_tail(stored, end + 1)
    return RenderedEvent(text, tzid or None, tuple(int(y) for y in years.split(",") if y))


def _render_event(item: StoredEvent, uid: str) -> tuple[bytes, str | None, tuple[int, ...]]:
    """The VEVENT's folded lines, its TZID (None: UTC or all-day) and the years its dates fall in."""
    record = item.record
    zone = event_zone(record)
    all_day = record.all_day
    start_time = record.start.astimezone(zone or UTC).time() if isinstance(record.start, datetime) else time(0)
    lines = [
        "BEGIN:VEVENT",
        f"UID:{_uid(uid)}",
        f"DTSTAMP:{_utc(item.changed_at)}",
        f"CREATED:{_utc(item.first_seen)}",
        f"LAST-MODIFIED:{_utc(item.changed_at)}",
        f"SEQUENCE:{max(item.sequence, 0)}",
        f"STATUS:{record.status.value.upper()}",
    ]
    if record.recurrence_id is not None:
        lines.append(_date_value("RECURRENCE-ID", record.recurrence_id, zone, all_day, start_time))
    lines.append(_date_value("DTSTART", record.start, zone, all_day, start_time))
    end = _end(record)
    if end is not None:
        lines.append(_date_value("DTEND", end, zone, all_day, start_time))
    rule = rrule_value(record.rrule, all_day, zone) if record.rrule else None
    if rule:
        lines.append(f"RRULE:{rule}")
    # RDATEs and RECURRENCE-IDs never reach this point (see published_vevents).
    lines += [_date_value("EXDATE", v, zone, all_day, start_time) for v in record.exdates]
    lines.append(f"SUMMARY:{escape_text(_summary(record))}")
    if record.location and (location := escape_text(plain_text(record.location))):
        lines.append(f"LOCATION:{location}")
    link = safe_url(record.link)
    description = _description(plain_lines(safe_html(record.description)), link)
    if description:
        lines.append(f"DESCRIPTION:{escape_lines(description)}")
    if link:
        lines.append(f"URL:{link}")
    categories = [escape_text(plain_text(t)) for t in record.tags if plain_text(t)]
    if categories:
        lines.append("CATEGORIES:" + ",".join(categories))
    lines.append("END:VEVENT")
    body = "".join([fold(line) for line in lines]).encode("utf-8")
    return body, zone.key if zone else None, _years(record)


CANCELLED_PREFIX = "Cancelled: "
# A title that says so itself, in the languages of the clusters (cancel(l)ed, abgesagt, annulé/annullato...).
_SAYS_CANCELLED = re.compile(r"cancel|abgesagt|annul|geannuleerd|odwo[lł]an|zrušen|peruttu|inställ|aflyst|avlyst", re.I)


def _summary(record: EventRecord) -> str:
    """The title, marked when the event is cancelled and the title does not say so.

    Outlook shows a subscribed calendar's STATUS:CANCELLED event like any other, and Google
    Calendar may not show it at all: the title is what every client shows.
    """
    title = plain_title(record.title)
    if record.status is EventStatus.CANCELLED and not _SAYS_CANCELLED.search(title):
        return CANCELLED_PREFIX + title
    return title


def _description(text: str, link: str | None) -> str:
    """The event's text, ending with its page's address unless the text already gives it.

    Google Calendar and Outlook show no URL property: the description is the only place
    where their users find the link to the event's page (and they make it clickable).
    """
    if not link or link in text:
        return text
    return f"{text}\n\n{link}" if text else link


def _end(record: EventRecord) -> datetime | date | None:
    """A DTEND that is valid for the start: all-day ends are exclusive and after the start; else none."""
    start, end = record.start, record.end
    if record.all_day:
        assert not isinstance(start, datetime)
        day = end.date() if isinstance(end, datetime) else end
        if day is None or day <= start:
            return start + timedelta(days=1)
        return day
    if isinstance(end, datetime) and isinstance(start, datetime):
        aware_end = end if end.tzinfo else end.replace(tzinfo=start.tzinfo)
        if aware_end > start:
            return aware_end
    return None  # a timed event without a (valid) end has no DTEND


def _last_instant(record: EventRecord) -> datetime:
    value = record.end or record.start
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def is_current(record: EventRecord, series: Collection[tuple[str, str]], cutoff: datetime) -> bool:
    """Whether ``current_events`` keeps the event: a series (``series``: its (source, UID)s) is kept whole."""
    return bool(
        record.rrule
        or record.rdates
        or (record.recurrence_id is not None and (record.source, record.uid) in series)
        or _last_instant(record) >= cutoff
    )


def leaves_window_at(record: EventRecord, now: datetime, past_days: int) -> datetime | None:
    """When a current one-off event drops out of the past window (None: part of a series, or already out)."""
    if record.rrule or record.rdates or record.recurrence_id is not None:
        return None
    window = timedelta(days=past_days)
    last = _last_instant(record)
    return last + window if last >= now - window else None


def current_events(events: Iterable[StoredEvent], now: datetime, past_days: int) -> list[StoredEvent]:
    """Events not older than ``past_days``: a series is kept whole, with its overrides."""
    cutoff = now - timedelta(days=past_days)
    series = {(e.record.source, e.record.uid) for e in events if e.record.rrule or e.record.rdates}
    return [item for item in events if is_current(item.record, series, cutoff)]


def current_until(events: Iterable[StoredEvent], now: datetime, past_days: int) -> datetime | None:
    """When the first of ``events`` that ``current_events`` keeps today would drop out (None: never)."""
    edges = (leaves_window_at(item.record, now, past_days) for item in events)
    return min((edge for edge in edges if edge is not None), default=None)


def unique_uids(events: Sequence[StoredEvent]) -> list[tuple[StoredEvent, str]]:
    """Each event with the UID it is published under: a UID two sources use is suffixed with the source.

    The source that first used the UID (earliest first_seen) keeps it plain, so
    its subscribers' calendars do not see the event replaced.
    """
    owners: dict[str, tuple[datetime, str]] = {}
    for item in events:
        claim = (item.first_seen, item.record.source)
        current = owners.get(item.record.uid)
        if current is None or claim < current:
            owners[item.record.uid] = claim
    out = []
    for item in events:
        uid = item.record.uid
        if owners[uid][1] != item.record.source:
            uid = f"{uid}-{item.record.source}"
        out.append((item, uid))
    return out


Moved = Mapping[tuple[str, str], tuple[datetime | date, ...]]


def moved_occurrences(events: Iterable[EventRecord]) -> dict[tuple[str, str], tuple[datetime | date, ...]]:
    """(source, UID) of each event with overrides -> their RECURRENCE-IDs, in time order.

    Taken from all of a publish's events, not from one calendar's: a de-duplicated calendar
    may show another source's copy of an override, and the series must skip it all the same.
    """
    moved: dict[tuple[str, str], set[datetime | date]] = {}
    for record in events:
        if record.recurrence_id is not None:
            moved.setdefault((record.source, record.uid), set()).add(record.recurrence_id)
    return {series: tuple(sorted(ids, key=_last_instant_start)) for series, ids in moved.items()}


def published_vevents(item: StoredEvent, uid: str, moved: Moved) -> list[tuple[StoredEvent, str]]:
    """The VEVENTs one event is published as, each with its UID: no RDATE and no RECURRENCE-ID.

    RFC 5545 allows both, but clients read them differently:
      * node-ical (and the clients built on it) ignores RDATE: each RDATE is an event of its
        own (UID ``UID-rdate-STAMP``), with the series' title, place and length;
      * ical.js (Thunderbird's parser) relates every RECURRENCE-ID in a calendar to every
        series, whatever its UID: an override moved any other series' occurrence at the same
        local time as well. So an override is an event of its own (``UID-occurrence-STAMP``,
        STAMP its RECURRENCE-ID) and its series skips that occurrence (EXDATE; an RDATE-only
        series drops its RDATE, or its own event if the first one moved).
    Plain events read the same everywhere.
    """
    record = item.record
    if record.recurrence_id is None and not record.rdates and (record.source, record.uid) not in moved:
        return [(item, uid)]  # most events
    # Made once per publish: the calendars (merged, the source's, its tags') then share the objects,
    # and so their rendered VEVENTs.
    made: dict[str, list[tuple[StoredEvent, str]]] = memoized("vevents", item, dict)
    vevents = made.get(uid)
    if vevents is None:
        vevents = made[uid] = _published_vevents(item, uid, moved)
    return vevents


def _published_vevents(item: StoredEvent, uid: str, moved: Moved) -> list[tuple[StoredEvent, str]]:
    record = item.record
    if record.recurrence_id is not None:
        uid = f"{uid}-occurrence-{_stamp(record.recurrence_id)}"
        record = replace(record, recurrence_id=None)
        item = replace(item, record=record)
        skipped: tuple[datetime | date, ...] = ()
    else:
        skipped = moved.get((record.source, record.uid), ()) if record.rrule or record.rdates else ()
        if record.rrule and skipped:
            timed = isinstance(record.start, datetime)
            new = [v for v in skipped if isinstance(v, datetime) == timed and v not in record.exdates]
            if new:
                record = replace(record, exdates=(*record.exdates, *new))
                item = replace(item, record=record)
    if not record.rdates:
        return [(item, uid)]
    out: list[tuple[StoredEvent, str]] = []
    if record.rrule or record.start not in skipped:
        out.append((replace(item, record=replace(record, rdates=())), uid))
    length = _length(record)
    passed = {*record.exdates, *skipped}
    for when in record.rdates:
        if when in passed or isinstance(when, datetime) != isinstance(record.start, datetime):
            continue
        instance = replace(
            record,
            start=when,
            end=when + length if length is not None else None,
            rrule=None,
            rdates=(),
            exdates=(),
            recurrence_id=None,
        )
        out.append((replace(item, record=instance), f"{uid}-rdate-{_stamp(when)}"))
    return out


def _stamp(when: datetime | date) -> str:
    """A moment as written into a UID: local time of its zone, or the date."""
    return when.strftime("%Y%m%dT%H%M%S") if isinstance(when, datetime) else when.strftime("%Y%m%d")


def _length(record: EventRecord) -> timedelta | None:
    start, end = record.start, record.end
    if end is None or isinstance(start, datetime) != isinstance(end, datetime):
        return None
    length = end - start
    return length if length > timedelta(0) else None


def _order(pair: tuple[StoredEvent, str]) -> str:
    return pair[1]


def _last_instant_start(value: datetime | date) -> datetime:
    return _as_datetime(value, None, time(0))


def render_ics(
    events: Sequence[StoredEvent],
    *,
    name: str,
    refresh: timedelta,
    fallback_zone: str,
    year: int,
) -> bytes:
    """A VCALENDAR of ``events`` (already filtered and de-duplicated), VTIMEZONEs for every TZID used."""
    return joined(ics_parts(events, name=name, refresh=refresh, fallback_zone=fallback_zone, year=year))


def ics_parts(
    events: Sequence[StoredEvent],
    *,
    name: str,
    refresh: timedelta,
    fallback_zone: str,
    year: int,
    moved: Moved | None = None,
) -> list[Fragment]:
    """``render_ics`` as the pieces it joins (``moved``: see ``calendar_entries``)."""
    rendered = [ics_event(item, uid) for item, uid in calendar_entries(events, moved)]
    zones: dict[str, tuple[int, int]] = {}
    for part in rendered:
        if part.tzid:
            zones[part.tzid] = widened(zones.get(part.tzid), part.years)
    head = ics_head(name=name, refresh=refresh, zones=zones, fallback_zone=fallback_zone, year=year, empty=not rendered)
    return [head, *[part.text for part in rendered], ICS_FOOT]


def calendar_entries(events: Sequence[StoredEvent], moved: Moved | None = None) -> list[tuple[StoredEvent, str]]:
    """The VEVENTs of a calendar of ``events``, in order, each with the UID it is published under.

    ``moved``: ``moved_occurrences`` of all the publish's events (default: of ``events``).
    """
    if moved is None:
        moved = moved_occurrences(item.record for item in events)
    pairs = [vevent for item, uid in unique_uids(events) for vevent in published_vevents(item, uid, moved)]
    return sorted(pairs, key=_order)


def widened(span: tuple[int, int] | None, years: Sequence[int]) -> tuple[int, int]:
    """The first and last year of ``span`` and ``years`` (what a zone's VTIMEZONE must cover)."""
    low, high = min(years), max(years)
    return (low, high) if span is None else (min(span[0], low), max(span[1], high))


ICS_FOOT = b"END:VCALENDAR\r\n"


def ics_head(
    *,
    name: str,
    refresh: timedelta,
    zones: dict[str, tuple[int, int]],
    fallback_zone: str,
    year: int,
    empty: bool,
) -> bytes:
    """Everything before the first VEVENT: ``zones`` are the TZIDs used with their first and last year."""
    head = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape_text(name)}",
        f"REFRESH-INTERVAL;VALUE=DURATION:{ics_duration(refresh)}",
        f"X-PUBLISHED-TTL:{ics_duration(refresh)}",
    ]
    if empty:
        # RFC 5545 3.6: a calendar holds at least one component; an empty one carries its zone.
        zones = {**zones, fallback_zone: (year, year)}
    for tzid in sorted(zones):
        first, last = zones[tzid]
        head += vtimezone_lines(tzid, first, last)
    return "".join(fold(line) for line in head).encode("utf-8")
