"""iCalendar bytes -> ``EventRecord``s: icalendar 7 reads the lines, we resolve every zone.

Zones, in order: an IANA TZID; a Windows or Outlook display name (``tzmap``);
a "globally unique" ``/vendor/.../Europe/Berlin`` TZID; the file's VTIMEZONE
(its ``X-LIC-LOCATION``, else the zone among the source's and Europe's whose
winter and summer offsets equal the VTIMEZONE's); else the source's zone plus a
Problem. Floating times take ``X-WR-TIMEZONE`` or the source's zone; ``Z`` times
stay in UTC. Damaged lines and properties become Problems; the rest is kept.

Memory stays bounded by one event: the body is unfolded and decoded in pieces,
split into its calendar properties, VTIMEZONEs and VEVENTs by a small strict
splitter, and icalendar parses one VEVENT at a time (VTIMEZONEs and calendar
properties first, wherever they stand). A document the splitter does not
understand exactly goes through icalendar whole, as before (``_parse_whole``);
both paths give equal results, which tests/parse_feed/test_ical_stream.py checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Component
from icalendar.parser.content_line import NEWLINE, UFOLD, Contentline
from icalendar.parser.ical.component import ComponentIcalParser
from icalendar.parser.parameter import Parameters
from icalendar.prop import vBroken, vDDDTypes, vText, vUnknown

from aggregator.config import SourceConfig
from aggregator.parse._common import UNTITLED, bounded_html, hash_id, merge_tags, text_to_html
from aggregator.parse.tzmap import iana_for_windows, same_windows_zone
from aggregator.records import EventRecord, EventStatus, ParseResult, Problem, Strategy
from aggregator.sanitize import clean_text
from aggregator.urls import absolute_url

__all__ = ["parse_ical"]

_UTC = ZoneInfo("UTC")
_FOLD = re.compile(rb"\r?\n[ \t]")
_TEXT_ESCAPE = re.compile(r"\\([\\;,nN])")
_STATUS = {
    "CONFIRMED": EventStatus.CONFIRMED,
    "TENTATIVE": EventStatus.TENTATIVE,
    "CANCELLED": EventStatus.CANCELLED,
    "CANCELED": EventStatus.CANCELLED,
}
# Zones tried, after the source's own, when a VTIMEZONE is known only by its offsets.
_OFFSET_CANDIDATES = (
    "UTC", "Europe/London", "Europe/Berlin", "Europe/Bucharest", "Europe/Istanbul", "Europe/Moscow",
    "Atlantic/Azores", "Atlantic/Reykjavik", "Europe/Minsk", "Europe/Kaliningrad", "Europe/Samara",
)  # fmt: skip
_NOT_ZONES = {"localtime", "posixrules", "factory"}  # files in zoneinfo dirs that are not real zones

Moment = datetime | date


_PLAIN_NAME = re.compile(r"[A-Za-z0-9-]+")


class _Line(Contentline):
    """A content line split into name, parameters and value without a walk over its whole value.

    icalendar's ``raw_parts`` visits every character in Python, long DESCRIPTIONs
    included, though only the text before the first colon decides the split when
    that text holds no quote or backslash. Then only that prefix is split, by
    icalendar (once per distinct prefix: ``DTSTART;TZID=Europe/Berlin:`` recurs) or,
    for a plain ``NAME:``, directly with the result icalendar gives; a line
    icalendar rejects is split whole again, so its error quotes the whole line.
    """

    __slots__ = ()
    strict: bool  # Contentline's slot

    def raw_parts(self) -> tuple[str, Parameters, str]:
        colon = self.find(":")
        if colon > 0:
            head = self[:colon]
            if '"' not in head and "\\" not in head:
                if _PLAIN_NAME.fullmatch(head):
                    return head, Parameters(), self[colon + 1 :]
                split = _split_prefix(self[: colon + 1], self.strict)
                if split is not None:
                    name, params = split
                    return (
                        name,
                        Parameters((k, list(v) if isinstance(v, tuple) else v) for k, v in params),
                        self[colon + 1 :],
                    )
        return super().raw_parts()


@lru_cache(maxsize=1024)
def _split_prefix(prefix: str, strict: bool) -> tuple[str, tuple[tuple[str, str | tuple[str, ...]], ...]] | None:
    """icalendar's name and parameters of ``NAME;PARAMS:`` (lists kept as tuples), None when it rejects them."""
    try:
        name, params, _ = Contentline(prefix, strict=strict).raw_parts()  # type: ignore[no-untyped-call]
    except ValueError:
        return None
    return name, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())


class _WallClockParser(ComponentIcalParser):
    """icalendar's component parser without its process-wide time-zone machinery.

    With no ``datetime_names`` icalendar leaves TZID as a parameter and returns
    wall-clock values, which we place in zones ourselves; VTIMEZONEs are not put
    in icalendar's global cache (``tzp.cache_timezone_component``), so one
    source's custom zone never leaks into another source's calendar. Lines that
    icalendar would reject outside an event are skipped and recorded instead.
    """

    datetime_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data: str | list[Contentline]) -> None:
        super().__init__(data, Calendar._get_component_factory(), Calendar.types_factory)
        self.skipped: list[str] = []

    def handle_end_component(self, vals: str) -> None:
        if not self._stack:
            raise ValueError("END encountered without an accompanying BEGIN")
        component = self._stack.pop()
        if self._stack:
            self._stack[-1].add_component(component)
        else:
            self._components.append(component)

    def get_factory_for_property(self, name: str, params: Parameters) -> Any:
        value = params.get("VALUE")
        if isinstance(value, list):  # VALUE=DATE,DATE-TIME: icalendar's params.value fails on a list; the first counts
            return self._types_factory.for_property(name, str(value[0]).upper() if value else None)
        return super().get_factory_for_property(name, params)

    def handle_line_parse_error(self, exception: Exception) -> None:
        component = self.component
        if component is not None and component.ignore_exceptions:
            super().handle_line_parse_error(exception)
        else:
            self.skipped.append(f"unreadable line skipped: {exception}")

    def handle_property_parse_error(self, exception: Exception, name: str, params: Any, val: str, line: Any) -> None:
        component = self.component
        if component is not None and (component.ignore_exceptions or name.upper().startswith("X-")):
            super().handle_property_parse_error(exception, name, params, val, line)
        else:
            self.skipped.append(f"broken {name} skipped: {exception}")


@lru_cache(maxsize=512)
def _zone_named(name: str) -> ZoneInfo | None:
    """The zone an IANA, Windows, display or ``/vendor/.../Area/City`` name stands for."""
    cleaned = name.strip().strip('"').strip()
    if not cleaned:
        return None
    candidates = [cleaned]
    if windows := iana_for_windows(cleaned):
        candidates.insert(0, windows)
    if cleaned.startswith("/"):
        parts = cleaned.strip("/").split("/")
        candidates.extend("/".join(parts[i:]) for i in range(1, len(parts)))
    for candidate in candidates:
        if candidate.lower() in _NOT_ZONES:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a TZID too long for a file name
            continue
    return None


@dataclass(slots=True)
class _Zones:
    """Resolves the TZIDs of one calendar once each (a 50,000-event file names few zones)."""

    source_zone: ZoneInfo
    floating: ZoneInfo
    vtimezones: dict[str, Component]
    year: int
    resolved: dict[str, tuple[ZoneInfo, str | None]] = field(default_factory=dict)

    def resolve(self, tzid: str) -> tuple[ZoneInfo, str | None]:
        """The zone for ``tzid`` and, when it had to be guessed, a Problem message."""
        if tzid not in self.resolved:
            self.resolved[tzid] = self._resolve(tzid)
        return self.resolved[tzid]

    def _resolve(self, tzid: str) -> tuple[ZoneInfo, str | None]:
        if (zone := _zone_named(tzid)) is not None:
            return self.own_if_windows_twin(tzid, zone), None
        vtimezone = self.vtimezones.get(tzid)
        if vtimezone is not None:
            location = vtimezone.get("X-LIC-LOCATION")
            if location is not None and (zone := _zone_named(str(location))) is not None:
                return zone, None
            if (zone := self._by_offsets(vtimezone)) is not None:
                return zone, None
        return self.source_zone, f"unknown time zone {tzid!r}; times read in {self.source_zone.key}"

    def own_if_windows_twin(self, tzid: str, zone: ZoneInfo) -> ZoneInfo:
        """The source's own zone for a Windows name that covers it (else CLDR's default zone for that name).

        Same rules, so the same instants, but the calendar shows the zone the cluster is in:
        an Austrian cluster's "W. Europe Standard Time" meeting is in Europe/Vienna, not Berlin.
        An IANA TZID is taken as written.
        """
        own = self.source_zone
        if zone.key != own.key and iana_for_windows(tzid) == zone.key and same_windows_zone(zone.key, own.key):
            return own
        return zone

    def _by_offsets(self, vtimezone: Component) -> ZoneInfo | None:
        """The first candidate zone whose mid-winter and mid-summer offsets match the VTIMEZONE's."""
        standard = _latest_offset(vtimezone, "STANDARD")
        daylight = _latest_offset(vtimezone, "DAYLIGHT")
        if standard is None and daylight is None:
            return None
        winter_offset = standard if standard is not None else daylight
        summer_offset = daylight if daylight is not None else standard
        winter = datetime(self.year, 1, 15, 12, tzinfo=UTC)
        summer = datetime(self.year, 7, 15, 12, tzinfo=UTC)
        for zone in (self.source_zone, *(ZoneInfo(name) for name in _OFFSET_CANDIDATES)):
            if winter.astimezone(zone).utcoffset() == winter_offset and (
                summer.astimezone(zone).utcoffset() == summer_offset
            ):
                return zone
        return None


def _latest_offset(vtimezone: Component, kind: str) -> timedelta | None:
    """TZOFFSETTO of the most recent STANDARD or DAYLIGHT rule of a VTIMEZONE."""
    best: tuple[datetime, timedelta] | None = None
    for sub in vtimezone.subcomponents:
        if sub.name != kind:
            continue
        offset, start = _first(sub.get("TZOFFSETTO")), _first(sub.get("DTSTART"))
        if offset is None or isinstance(offset, vBroken):
            continue
        started = start.dt if start is not None and not isinstance(start, vBroken) else datetime.min
        started = started if isinstance(started, datetime) else datetime.min
        if best is None or started.replace(tzinfo=None) >= best[0]:
            best = (started.replace(tzinfo=None), offset.td)
    return best[1] if best else None


def _decode(body: bytes) -> tuple[str, str | None]:
    """Text of the calendar, unfolded before decoding so a fold inside a UTF-8 sequence heals."""
    unfolded = _FOLD.sub(b"", body.removeprefix(b"\xef\xbb\xbf"))
    try:
        return unfolded.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return unfolded.decode("utf-8", errors="replace"), f"not valid UTF-8 ({error.reason} at byte {error.start})"


def _first(value: Any) -> Any:
    """One value of a property that may be repeated (icalendar gives a list then)."""
    return value[0] if isinstance(value, list) and value else value


def _all(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _text(component: Component, name: str) -> str:
    value = _first(component.get(name))
    return "" if value is None else clean_text(str(value))


def _tzid(prop: Any) -> str | None:
    params = getattr(prop, "params", None)
    tzid = params.get("TZID") if params else None
    return str(tzid) if tzid else None


def _place(value: Any, tzid: str | None, zones: _Zones, notes: list[str]) -> tuple[Moment, str | None]:
    """A DATE stays a date; a date-time gets its zone: UTC, its TZID's, or the floating zone."""
    if isinstance(value, tuple):  # RDATE;VALUE=PERIOD: the period's start
        value = value[0]
    if not isinstance(value, datetime):
        return value, None
    if value.tzinfo is not None:
        return value.astimezone(_UTC), "UTC"
    if tzid:
        zone, problem = zones.resolve(tzid)
        if problem:
            notes.append(problem)
    else:
        zone = zones.floating
    return value.replace(tzinfo=zone), zone.key


def _moments(prop_value: Any, zones: _Zones, notes: list[str]) -> Iterator[Moment]:
    """Every date of RDATE/EXDATE properties (each may hold a list and its own TZID)."""
    for prop in _all(prop_value):
        if isinstance(prop, vBroken):
            continue
        tzid = _tzid(prop)
        for item in getattr(prop, "dts", []):
            yield _place(item.dt, tzid, zones, notes)[0]


def _plus_duration(start: Moment, duration: timedelta) -> Moment:
    """RFC 5545 3.3.6: days and weeks are nominal (wall clock), hours and less exact."""
    if not isinstance(start, datetime):
        return start + timedelta(days=duration.days)
    nominal = start + timedelta(days=duration.days)
    exact = timedelta(seconds=duration.seconds, microseconds=duration.microseconds)
    return (nominal.astimezone(UTC) + exact).astimezone(start.tzinfo) if exact else nominal


def _end(event: Component, start: Moment, start_zone: str | None, zones: _Zones, notes: list[str]) -> Moment | None:
    """DTEND (in the start's zone), else start + DURATION; an all-day event without either lasts one day."""
    end: Moment | None = None
    dtend, duration = _first(event.get("DTEND")), _first(event.get("DURATION"))
    if dtend is not None and not isinstance(dtend, vBroken):
        end, _ = _place(dtend.dt, _tzid(dtend), zones, notes)
        if isinstance(end, datetime) != isinstance(start, datetime):
            notes.append("DTEND and DTSTART differ in type (date vs date-time); end dropped")
            end = None
        elif isinstance(end, datetime) and start_zone:
            end = end.astimezone(ZoneInfo(start_zone))
    elif duration is not None and not isinstance(duration, vBroken) and isinstance(duration.dt, timedelta):
        end = _plus_duration(start, duration.dt)
    if end is not None and end < start:  # same type, checked above
        notes.append(f"DTEND {end.isoformat()} is before DTSTART {start.isoformat()}; end dropped")
        end = None
    if not isinstance(start, datetime) and (end is None or end == start):
        end = start + timedelta(days=1)
    return end


def _description(event: Component, base_url: str) -> str:
    """X-ALT-DESC (HTML) when given, else DESCRIPTION as escaped paragraphs; sanitised either way."""
    alt = _first(event.get("X-ALT-DESC"))
    if alt is not None and "html" in str(getattr(alt, "params", {}).get("FMTTYPE", "")).lower():
        # icalendar leaves X- properties escaped; X-ALT-DESC is TEXT all the same (RFC 5545 3.3.11).
        unescaped = _TEXT_ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), str(alt))
        return bounded_html(unescaped, base_url=base_url)
    description = _first(event.get("DESCRIPTION"))
    if description is None:
        return ""
    return bounded_html(text_to_html(str(description)), base_url=base_url)


def _last_modified(event: Component, zones: _Zones, notes: list[str]) -> datetime | None:
    for name in ("LAST-MODIFIED", "DTSTAMP"):
        prop = _first(event.get(name))
        if prop is None or isinstance(prop, vBroken):
            continue
        moment, _ = _place(prop.dt, _tzid(prop), zones, notes)
        if isinstance(moment, datetime):
            return moment
    return None


@dataclass(frozen=True, slots=True)
class _Context:
    source: SourceConfig
    url: str
    zones: _Zones
    cancelled: bool  # METHOD:CANCEL


def _event(event: Component, number: int, ctx: _Context) -> tuple[EventRecord | None, list[Problem]]:
    """One VEVENT as a record (None when it has no readable DTSTART) and its Problems."""
    notes: list[str] = [f"broken {name or 'line'}: {message}" for name, message in event.errors]
    source = ctx.source.name
    title = _text(event, "SUMMARY")
    dtstart = _first(event.get("DTSTART"))
    uid = _text(event, "UID")
    where = f"VEVENT uid={uid}" if uid else f"VEVENT {number}"
    if dtstart is None or isinstance(dtstart, vBroken):
        if dtstart is None:
            notes.append("no DTSTART; event skipped")
        else:
            notes.append("unreadable DTSTART; event skipped")
        return None, [Problem(source, note, where) for note in notes]
    try:
        record = _record(event, dtstart, uid, title, ctx, notes)
    except OverflowError:  # e.g. 9999-12-31 moved into a zone east of UTC, or one day added to it
        notes.append("a date is out of range; event skipped")
        record = None
    return record, [Problem(source, note, where) for note in dict.fromkeys(notes)]


def _record(
    event: Component, dtstart: Any, uid: str, title: str, ctx: _Context, notes: list[str]
) -> EventRecord | None:
    """The record of a VEVENT with a DTSTART; None when that is a time of day or a duration, not a date."""
    source = ctx.source.name
    start, zone = _place(dtstart.dt, _tzid(dtstart), ctx.zones, notes)
    if not isinstance(start, date):
        notes.append("unreadable DTSTART; event skipped")
        return None
    if not uid:
        uid = hash_id(source, title, start.isoformat())
        notes.append(f"no UID; identified by a hash of source, SUMMARY and DTSTART ({uid})")
    if not title:
        title = UNTITLED
        notes.append("no SUMMARY")
    status_text = _text(event, "STATUS").upper()
    status = _STATUS.get(status_text, EventStatus.CONFIRMED)
    if status_text and status_text not in _STATUS:
        notes.append(f"unknown STATUS {status_text!r}; taken as confirmed")
    if ctx.cancelled:
        status = EventStatus.CANCELLED
    rrules = [r for r in _all(event.get("RRULE")) if not isinstance(r, vBroken)]
    if len(rrules) > 1:
        notes.append(f"{len(rrules)} RRULEs; kept the first")
    recurrence = _first(event.get("RECURRENCE-ID"))
    recurrence_id = None
    if recurrence is not None and not isinstance(recurrence, vBroken):
        recurrence_id, _ = _place(recurrence.dt, _tzid(recurrence), ctx.zones, notes)
    sequence = _first(event.get("SEQUENCE"))
    categories = [str(c) for prop in _all(event.get("CATEGORIES")) if not isinstance(prop, vBroken) for c in prop.cats]
    url_prop = _first(event.get("URL"))
    return EventRecord(
        uid=uid,
        source=source,
        title=title,
        start=start,
        end=_end(event, start, zone, ctx.zones, notes),
        timezone=zone,
        location=_text(event, "LOCATION") or None,
        link=absolute_url(str(url_prop), ctx.url) if url_prop is not None else None,
        description=_description(event, ctx.url),
        status=status,
        rrule=rrules[0].to_ical().decode() if rrules else None,
        rdates=tuple(_moments(event.get("RDATE"), ctx.zones, notes)),
        exdates=tuple(_moments(event.get("EXDATE"), ctx.zones, notes)),
        recurrence_id=recurrence_id,
        last_modified=_last_modified(event, ctx.zones, notes),
        sequence=int(sequence) if sequence is not None and not isinstance(sequence, vBroken) else 0,
        tags=merge_tags(ctx.source.tags, categories),
        strategy=Strategy.ICAL,
    )


def _without_truncation(text: str) -> tuple[str, str | None]:
    """A download cut short keeps its complete events: cut after the last END:VEVENT, close the calendar."""
    if _CALENDAR_END.search(text):
        return text, None
    ends = list(_EVENT_END.finditer(text))
    if ends:
        text = text[: ends[-1].end()]
    return text.rstrip("\r\n") + _CLOSING, _TRUNCATED


def _not_a_calendar(source: SourceConfig, why: str) -> ParseResult:
    return ParseResult(problems=(Problem(source.name, f"not an iCalendar file: {why}"),))


def _context(
    outline: tuple[Component, dict[str, Component]], ctx: tuple[SourceConfig, str, datetime], problems: list[Problem]
) -> _Context:
    """What every event of one VCALENDAR (and its VTIMEZONEs by TZID) is read with; its own damage to ``problems``."""
    (calendar, vtimezones), (source, url, fetched_at) = outline, ctx
    problems.extend(Problem(source.name, f"broken {name or 'line'}: {message}") for name, message in calendar.errors)
    zones = _Zones(source.timezone, source.timezone, vtimezones, fetched_at.year)
    declared = _text(calendar, "X-WR-TIMEZONE")
    if declared:
        floating = _zone_named(declared)
        if floating is None:
            problems.append(Problem(source.name, f"unknown X-WR-TIMEZONE {declared!r}; using {source.timezone.key}"))
        zones.floating = source.timezone if floating is None else zones.own_if_windows_twin(declared, floating)
    return _Context(source, url, zones, cancelled=_text(calendar, "METHOD").upper() == "CANCEL")


def _vtimezones(components: Iterable[Component]) -> dict[str, Component]:
    return {str(tz.get("TZID")): tz for tz in components if tz.get("TZID")}


def _keep(record: EventRecord, records: dict[str, EventRecord], problems: list[Problem]) -> None:
    """Of two events with the same UID and RECURRENCE-ID the higher SEQUENCE (else the first) stays."""
    kept = records.get(record.key)
    if kept is not None:
        winner = record if record.sequence > kept.sequence else kept
        problems.append(
            Problem(
                record.source,
                f"duplicate UID/RECURRENCE-ID; kept SEQUENCE {winner.sequence}",
                f"VEVENT uid={record.uid}",
            )
        )
        record = winner
    records[record.key] = record


def _parse_whole(body: bytes, *, source: SourceConfig, url: str, fetched_at: datetime) -> ParseResult:
    """``parse_ical`` with icalendar reading the whole document at once (memory grows with the file).

    The path for documents the streaming splitter declines, and the reference it is tested against.
    """
    text, decode_problem = _decode(body)
    head = text.lstrip()
    if not head:
        return _not_a_calendar(source, "empty body")
    if not head[:15].upper().startswith("BEGIN:VCALENDAR"):
        return _not_a_calendar(source, f"it starts with {clean_text(head[:40])!r}")
    problems: list[Problem] = []
    if decode_problem:
        problems.append(Problem(source.name, f"{decode_problem}; undecodable bytes replaced"))
    text, truncated = _without_truncation(text)
    if truncated:
        problems.append(Problem(source.name, truncated))
    parser = _WallClockParser(text)
    try:
        calendars = parser.parse()
    except ValueError as error:
        return _not_a_calendar(source, str(error))
    problems.extend(Problem(source.name, message) for message in parser.skipped)
    records: dict[str, EventRecord] = {}
    for calendar in calendars:
        if calendar.name != "VCALENDAR":
            continue
        ctx = _context((calendar, _vtimezones(calendar.walk("VTIMEZONE"))), (source, url, fetched_at), problems)
        for number, component in enumerate(calendar.walk("VEVENT"), start=1):
            record, event_problems = _event(component, number, ctx)
            problems.extend(event_problems)
            if record is not None:
                _keep(record, records, problems)
    return ParseResult(records=tuple(records.values()), problems=tuple(problems))


# --- streaming: the same result, holding one event's objects at a time -------------------------------

_CHUNK_BYTES = 1 << 18
_CUT = re.compile(rb"\n(?=[A-Za-z])")  # a line break before a line that starts with a letter
_BOM = b"\xef\xbb\xbf"
_CALENDAR_END = re.compile(r"^END:VCALENDAR\s*$", re.I | re.M)
_EVENT_END = re.compile(r"^END:VEVENT[ \t]*\r?$", re.I | re.M)
_CLOSING = "\r\nEND:VCALENDAR\r\n"
_TRUNCATED = "calendar is truncated (no END:VCALENDAR); kept its complete events"
# A line icalendar could take for BEGIN or END (its name part, white space removed, upper-cased:
# "ı".upper() is "I"); anything that matches this but not _BEGIN_END sends the document down the whole path.
_MAYBE_MARKER = re.compile(r"\s*(?:b\s*e\s*g\s*[iı]\s*n|e\s*n\s*d)", re.I)
_BEGIN_END = re.compile(r"(BEGIN|END):([A-Za-z0-9-]+)", re.I | re.ASCII)  # re.I alone matches "ı" to "i"
_SPLIT_AT = frozenset({"VCALENDAR", "VEVENT", "VTIMEZONE"})  # found only where the splitter looks for them


class _Odd(Exception):
    """The splitter met a structure it does not read exactly as icalendar would."""


def _pieces(body: bytes) -> Iterator[bytes]:
    """The body unfolded, in pieces of about 256 KiB, each cut before a line that starts with a letter.

    No fold, line or UTF-8 sequence crosses such a cut, so every piece unfolds and
    decodes (and icalendar unfolds it again) exactly as it does within the whole body.
    """
    start = len(_BOM) if body.startswith(_BOM) else 0
    while start < len(body):
        cut = _CUT.search(body, start + _CHUNK_BYTES)
        end = cut.end() if cut else len(body)
        yield _FOLD.sub(b"", body[start:end])
        start = end


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a first cheap pass over the pieces tells: how the text starts, its damage, where it ends."""

    head: str  # the first 40 characters after leading white space
    pieces: int
    undecodable: str | None
    truncated: bool
    cut: tuple[int, int] | None  # piece and offset just after the last END:VEVENT of a truncated file


def _plan(body: bytes) -> _Plan:
    head, undecodable, offset, pieces = "", None, 0, 0
    complete, cut = False, None
    for index, piece in enumerate(_pieces(body)):
        pieces += 1
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError as error:
            if undecodable is None:
                undecodable = f"not valid UTF-8 ({error.reason} at byte {offset + error.start})"
            text = piece.decode("utf-8", errors="replace")
        offset += len(piece)
        if len(head) < 40:
            head = (head + text[:40] if head else text.lstrip()[:40])[:40]
        if not complete:
            complete = _CALENDAR_END.search(text) is not None
        if not complete and (ends := [match.end() for match in _EVENT_END.finditer(text)]):
            cut = (index, ends[-1])
    return _Plan(head, pieces, undecodable, not complete, cut if not complete else None)


def _texts(body: bytes, plan: _Plan) -> Iterator[str]:
    """The decoded pieces; a truncated file ends after its last complete event and is closed."""
    for index, piece in enumerate(_pieces(body)):
        text = piece.decode("utf-8", errors="replace")
        if plan.truncated and plan.cut is not None and index == plan.cut[0]:
            yield text[: plan.cut[1]].rstrip("\r\n") + _CLOSING
            return
        if plan.truncated and plan.cut is None and index == plan.pieces - 1:
            text = text.rstrip("\r\n") + _CLOSING
        yield text


def _lines(body: bytes, plan: _Plan) -> Iterator[str]:
    """The content lines icalendar would see, one piece at a time."""
    for text in _texts(body, plan):
        for line in NEWLINE.split(UFOLD.sub("", text)):
            if line:
                yield line


def _split(lines: Iterator[str]) -> Iterator[tuple[str, str, list[str]]]:
    """Units of a calendar stream: ("BEGIN"/"END", "VCALENDAR", []), ("PROPERTY", "", [line]), ("BLOCK", name, lines).

    Strict: top level holds only VCALENDARs; VCALENDAR, VEVENT and VTIMEZONE stand
    only directly in a VCALENDAR; every END names the open component; nothing stays open.
    """
    stack: list[str] = []
    block: list[str] = []
    for line in lines:
        if _MAYBE_MARKER.match(line) is None:
            if len(stack) > 1:
                block.append(line)
            elif stack:
                yield "PROPERTY", "", [line]
            else:
                raise _Odd(f"line outside a calendar: {line[:40]!r}")
            continue
        marker = _BEGIN_END.fullmatch(line)
        if marker is None:
            raise _Odd(f"unusual BEGIN or END line: {line[:40]!r}")
        name = marker.group(2).upper()
        if marker.group(1).upper() == "BEGIN":
            if (name == "VCALENDAR") != (not stack) or (len(stack) > 1 and name in _SPLIT_AT):
                raise _Odd(f"{name} inside {stack}")
            stack.append(name)
        elif not stack or stack.pop() != name:
            raise _Odd(f"END:{name} does not close the open component")
        if not stack:
            yield "END", name, []
        elif len(stack) == 1 and name == "VCALENDAR":
            yield "BEGIN", name, []
        else:
            block.append(line)
            if len(stack) == 1:
                yield "BLOCK", name, block
                block = []
    if stack:
        raise _Odd(f"{stack[-1]} is never closed")


@dataclass(slots=True)
class _Outline:
    """One VCALENDAR's own property lines and its VTIMEZONEs: what its events are read with."""

    properties: list[str] = field(default_factory=list)
    vtimezones: list[Component] = field(default_factory=list)


class _Late(Exception):
    """A calendar property or VTIMEZONE stands after an event that needed it: read the outline first."""


def _outline(units: Iterator[tuple[str, str, list[str]]]) -> list[_Outline]:
    """The outline of every VCALENDAR, in a pass that parses no event."""
    calendars: list[_Outline] = []
    for kind, name, lines in units:
        if kind == "BEGIN":
            calendars.append(_Outline())
        elif kind == "PROPERTY":
            calendars[-1].properties.extend(lines)
        elif kind == "BLOCK" and name == "VTIMEZONE":
            calendars[-1].vtimezones.extend(_components(lines, []))
    return calendars


def _components(lines: list[str], skipped: list[str]) -> list[Component]:
    """icalendar's reading of a few content lines; lines it skips are noted in ``skipped``."""
    parser = _WallClockParser([_Line(line) for line in lines])  # type: ignore[no-untyped-call]
    components = parser.parse()
    skipped.extend(parser.skipped)
    return components


# Every VEVENT property ``_event`` reads; the others matter only when icalendar could find them damaged.
_READ = frozenset({
    "SUMMARY", "DTSTART", "DTEND", "DURATION", "UID", "STATUS", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID",
    "SEQUENCE", "CATEGORIES", "URL", "LOCATION", "DESCRIPTION", "X-ALT-DESC", "LAST-MODIFIED", "DTSTAMP",
    "BEGIN", "END",
})  # fmt: skip
_PLAIN_PROPERTY = re.compile(r"([A-Za-z0-9-]+):")
_UTC_DATE_TIME = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z?")


@lru_cache(maxsize=1024)
def _unread_kind(name: str) -> str:
    """How an unread property of this name can be dropped unparsed: "always", "date-time" (if valid), or ""."""
    if name in _READ:
        return ""
    kind = Calendar.types_factory.for_property(name)
    if kind in (vText, vUnknown):  # any value is accepted: never a Problem
        return "always"
    return "date-time" if kind is vDDDTypes else ""


def _unread(line: str) -> bool:
    """A line without parameters that ``_event`` never reads and icalendar could not find damaged."""
    plain = _PLAIN_PROPERTY.match(line)
    if plain is None:
        return False
    kind = _unread_kind(plain.group(1).upper())
    if kind != "date-time":
        return kind == "always"
    when = _UTC_DATE_TIME.fullmatch(line, plain.end())
    if when is None:
        return False
    try:
        year, month, day, hour, minute, second = (int(part) for part in when.groups())
        datetime(year, month, day, hour, minute, second)
    except ValueError:  # icalendar would report it: keep the line
        return False
    return True


def _read_units(
    units: Iterator[tuple[str, str, list[str]]],
    outlines: list[_Outline] | None,
    ctx_parts: tuple[SourceConfig, str, datetime],
) -> tuple[dict[str, EventRecord], list[str], list[Problem]]:
    """Records, skipped lines and Problems of a calendar stream, one VEVENT parsed at a time.

    With no ``outlines`` each calendar's properties and VTIMEZONEs are taken as
    they come, which is enough when they stand before its first event (else _Late).
    """
    skipped: list[str] = []
    found: list[Problem] = []
    records: dict[str, EventRecord] = {}
    given = iter(outlines) if outlines is not None else None
    outline, ctx, number = _Outline(), None, 0
    for kind, name, lines in units:
        if kind == "BEGIN":
            outline, ctx, number = next(given) if given is not None else _Outline(), None, 0
        elif kind == "PROPERTY":
            _components(["BEGIN:VCALENDAR", *lines, "END:VCALENDAR"], skipped)
            if given is None:
                if ctx is not None:
                    raise _Late
                outline.properties.extend(lines)
        elif kind == "BLOCK" and name == "VEVENT":
            if ctx is None:
                ctx = _context(_calendar(outline), ctx_parts, found)
            number += 1
            record, event_problems = _event(
                _components([line for line in lines if not _unread(line)], skipped)[0], number, ctx
            )
            found.extend(event_problems)
            if record is not None:
                _keep(record, records, found)
        elif kind == "BLOCK":
            components = _components(lines, skipped)
            if name == "VTIMEZONE" and given is None:
                if ctx is not None:
                    raise _Late
                outline.vtimezones.extend(components)
        elif ctx is None:  # END:VCALENDAR of a calendar without events: its own damage is reported all the same
            _context(_calendar(outline), ctx_parts, found)
    return records, skipped, found


def _calendar(outline: _Outline) -> tuple[Component, dict[str, Component]]:
    calendar = _components(["BEGIN:VCALENDAR", *outline.properties, "END:VCALENDAR"], [])[0]
    return calendar, _vtimezones(outline.vtimezones)


def _parse_streaming(
    body: bytes, plan: _Plan, problems: list[Problem], *, source: SourceConfig, url: str, fetched_at: datetime
) -> ParseResult:
    """Events read one at a time, after their calendar's properties and VTIMEZONEs (a first pass finds late ones).

    Problems come in the whole path's order: ``problems`` (decoding, truncation), the
    skipped lines in document order, then each calendar's own and its events'.
    """
    ctx_parts = (source, url, fetched_at)
    try:
        records, skipped, found = _read_units(_split(_lines(body, plan)), None, ctx_parts)
    except _Late:
        outlines = _outline(_split(_lines(body, plan)))
        records, skipped, found = _read_units(_split(_lines(body, plan)), outlines, ctx_parts)
    problems.extend(Problem(source.name, message) for message in skipped)
    problems.extend(found)
    return ParseResult(records=tuple(records.values()), problems=tuple(problems))


def _stream_declined(body: bytes) -> str | None:
    """Why the splitter hands ``body`` to the whole path, or None when it streams it (for tests and benchmarks)."""
    try:
        for _unit in _split(_lines(body, _plan(body))):
            pass
    except _Odd as odd:
        return str(odd)
    return None


def parse_ical(body: bytes, *, source: SourceConfig, url: str, fetched_at: datetime) -> ParseResult:
    """Bytes of one iCalendar fetch -> one record per VEVENT (overrides keyed by RECURRENCE-ID). No I/O.

    A file that is not iCalendar gives no records and a Problem "not an iCalendar
    file: ..."; a damaged event or property gives a Problem and the rest is kept.
    Of two events with the same UID and RECURRENCE-ID the higher SEQUENCE (else the first) is kept.
    """
    plan = _plan(body)
    if not plan.head:
        return _not_a_calendar(source, "empty body")
    if not plan.head[:15].upper().startswith("BEGIN:VCALENDAR"):
        return _not_a_calendar(source, f"it starts with {clean_text(plan.head[:40])!r}")
    problems: list[Problem] = []
    if plan.undecodable:
        problems.append(Problem(source.name, f"{plan.undecodable}; undecodable bytes replaced"))
    if plan.truncated:
        problems.append(Problem(source.name, _TRUNCATED))
    try:
        return _parse_streaming(body, plan, problems, source=source, url=url, fetched_at=fetched_at)
    except Exception:  # an odd document (or a damaged event read before the oddity showed): the whole path
        # reads it as it always has, with its result or its error, so both paths stay equal on any input.
        return _parse_whole(body, source=source, url=url, fetched_at=fetched_at)
