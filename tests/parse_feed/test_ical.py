"""parse_ical: real client exports read field by field, zones resolved, damage reported, text round-trips."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event

from aggregator.config import SourceConfig
from aggregator.parse._common import hash_id
from aggregator.parse.ical import parse_ical
from aggregator.records import EventRecord, EventStatus, ParseResult, Problem, Strategy
from aggregator.sanitize import clean_text, html_to_text

ICAL = Path(__file__).resolve().parents[1] / "fixtures" / "ical"
FETCHED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
VIENNA = ZoneInfo("Europe/Vienna")
BRUSSELS = ZoneInfo("Europe/Brussels")
UTC_ZONE = ZoneInfo("UTC")


def _parse(name: str, *, body: bytes | None = None, tags: tuple[str, ...] = ()) -> ParseResult:
    url = "https://www.cluster.example.eu/events.ics"
    source = SourceConfig(name="src", url=url, tags=tags, timezone=BRUSSELS)
    data = body if body is not None else (ICAL / name).read_bytes()
    return parse_ical(data, source=source, url=url, fetched_at=FETCHED)


def test_google_calendar_export_reads_every_field() -> None:
    result = _parse("google_calendar_export.ics", tags=("kunststoff-cluster",))

    assert result.problems == ()
    workshop, webinar = result.events
    assert workshop == EventRecord(
        uid="6kq3m2l8v0b1t9r4s7p5n0d2c1@google.com",
        source="src",
        title="Kunststoff-Cluster: Kreislaufwirtschaft in der Praxis",
        start=datetime(2025, 3, 18, 9, 0, tzinfo=VIENNA),
        end=datetime(2025, 3, 18, 12, 30, tzinfo=VIENNA),
        timezone="Europe/Vienna",
        location="Tabakfabrik Linz, Peter-Behrens-Platz 11, 4020 Linz",
        link="https://www.biz-up.example.at/veranstaltungen/kreislaufwirtschaft-praxis",
        description=(
            "<p>Programm:<br>\n09:00 Begrüßung<br>\n09:15 Impulsvortrag</p>\n"
            "<p>Anmeldung bis 10. März &lt;bitte online&gt;.</p>"
        ),
        status=EventStatus.CONFIRMED,
        last_modified=datetime(2025, 2, 25, 16, 10, tzinfo=UTC_ZONE),
        sequence=2,
        tags=("kunststoff-cluster", "Kunststoff", "Kreislaufwirtschaft"),
        strategy=Strategy.ICAL,
    )
    assert isinstance(workshop.start, datetime)
    assert workshop.start.utcoffset() == timedelta(hours=1)
    # A UTC (Z) event stays in UTC; X-ALT-DESC (HTML) wins over DESCRIPTION and is sanitised.
    assert webinar.start == datetime(2025, 4, 2, 12, 0, tzinfo=UTC_ZONE)
    assert webinar.end == datetime(2025, 4, 2, 13, 30, tzinfo=UTC_ZONE)
    assert webinar.timezone == "UTC"
    assert webinar.description == (
        '<p>Webinar mit <b>FFG</b>, <a href="https://www.cluster.example.eu/foerderungen" '
        'rel="noopener noreferrer nofollow">Details</a></p>'
    )
    assert webinar.last_modified == datetime(2025, 3, 1, 10, 15, tzinfo=UTC_ZONE)


def test_outlook_windows_zone_names_become_iana_zones() -> None:
    result = _parse("outlook_export.ics")

    assert result.problems == ()
    berlin, paris, london = result.events
    assert (berlin.start, berlin.end, berlin.timezone) == (
        datetime(2025, 6, 5, 14, 0, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(2025, 6, 5, 17, 0, tzinfo=ZoneInfo("Europe/Berlin")),
        "Europe/Berlin",
    )
    assert berlin.title == "Netzwerktreffen Automotive BW"
    assert berlin.description == (
        "<p>Netzwerktreffen der Mitglieder des Clusters Automotive.</p>\n<p>Bitte bringen Sie Visitenkarten mit.</p>"
    )
    assert berlin.location == "IHK Stuttgart"
    assert berlin.last_modified == datetime(2025, 1, 10, 9, 30, 12, tzinfo=UTC_ZONE)
    # Windows counts Brussels, the source's zone, in "Romance Standard Time" (CLDR's default: Paris).
    assert (paris.start, paris.timezone) == (
        datetime(2025, 9, 10, 9, 30, tzinfo=BRUSSELS),
        "Europe/Brussels",
    )
    # DURATION:PT2H gives the end.
    assert (london.start, london.end, london.timezone) == (
        datetime(2025, 10, 21, 10, 0, tzinfo=ZoneInfo("Europe/London")),
        datetime(2025, 10, 21, 12, 0, tzinfo=ZoneInfo("Europe/London")),
        "Europe/London",
    )


@pytest.mark.parametrize(
    ("source_zone", "tzid", "expected"),
    [
        ("Europe/Vienna", "W. Europe Standard Time", "Europe/Vienna"),
        ("Europe/Rome", '"W. Europe Standard Time"', "Europe/Rome"),
        ("Europe/Ljubljana", "Central Europe Standard Time", "Europe/Ljubljana"),
        ("Europe/Helsinki", "FLE Standard Time", "Europe/Helsinki"),
        ("Europe/Lisbon", "GMT Standard Time", "Europe/Lisbon"),
        # Not in that Windows zone's group: CLDR's default zone for the name.
        ("Europe/Helsinki", "W. Europe Standard Time", "Europe/Berlin"),
        ("Europe/Vienna", "Romance Standard Time", "Europe/Paris"),
        # An IANA name is taken as written, even in a calendar of another zone with the same rules.
        ("Europe/Vienna", "Europe/Berlin", "Europe/Berlin"),
    ],
)
def test_a_windows_zone_name_is_read_as_the_sources_own_zone_when_windows_counts_it_in(
    source_zone: str, tzid: str, expected: str
) -> None:
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r\n"
        "BEGIN:VEVENT\r\nUID:meeting@cluster.example.eu\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART;TZID={tzid}:20260709T093000\r\nDTEND;TZID={tzid}:20260709T110000\r\n"
        "SUMMARY:Cluster-Treffen\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    source = SourceConfig(name="src", url="https://www.cluster.example.eu/events.ics", timezone=ZoneInfo(source_zone))

    result = parse_ical(body, source=source, url=source.url, fetched_at=FETCHED)

    assert result.problems == ()
    (event,) = result.events
    assert (event.start, event.end, event.timezone) == (
        datetime(2026, 7, 9, 9, 30, tzinfo=ZoneInfo(expected)),
        datetime(2026, 7, 9, 11, 0, tzinfo=ZoneInfo(expected)),
        expected,
    )


def test_a_windows_name_in_x_wr_timezone_places_floating_times_in_the_sources_own_zone() -> None:
    body = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-TIMEZONE:W. Europe Standard Time\r\n"
        b"BEGIN:VEVENT\r\nUID:floating@cluster.example.eu\r\nDTSTAMP:20260101T000000Z\r\n"
        b"DTSTART:20260709T093000\r\nSUMMARY:Cluster-Treffen\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    source = SourceConfig(name="src", url="https://www.cluster.example.eu/events.ics", timezone=VIENNA)

    (event,) = parse_ical(body, source=source, url=source.url, fetched_at=FETCHED).events

    assert (event.start, event.timezone) == (datetime(2026, 7, 9, 9, 30, tzinfo=VIENNA), "Europe/Vienna")


def test_recurring_series_keeps_rule_exdate_rdate_and_override_across_dst() -> None:
    result = _parse("recurring_series.ics")

    assert result.problems == ()
    series, moved = result.events
    assert series.rrule == "FREQ=WEEKLY;COUNT=6;BYDAY=TU"
    assert series.start == datetime(2025, 3, 18, 9, 0, tzinfo=VIENNA)
    assert series.exdates == (datetime(2025, 3, 25, 9, 0, tzinfo=VIENNA),)
    assert series.rdates == (datetime(2025, 4, 24, 9, 0, tzinfo=VIENNA),)
    assert series.recurrence_id is None
    assert series.sequence == 1
    assert series.key == "jour-fixe-2025@cluster-mechatronik.example.at"
    # The override is after the change to summer time: +02:00, its own key.
    assert moved.uid == series.uid
    assert moved.recurrence_id == datetime(2025, 4, 1, 9, 0, tzinfo=VIENNA)
    assert isinstance(moved.recurrence_id, datetime)
    assert moved.recurrence_id.utcoffset() == timedelta(hours=2)
    assert moved.start == datetime(2025, 4, 1, 10, 30, tzinfo=VIENNA)
    assert moved.end == datetime(2025, 4, 1, 11, 30, tzinfo=VIENNA)
    assert moved.title == "Jour fixe Mechatronik-Cluster (verschoben)"
    assert moved.rrule is None
    assert moved.sequence == 2
    assert moved.key == "jour-fixe-2025@cluster-mechatronik.example.at#2025-04-01T09:00:00+02:00"


def test_all_day_events_have_exclusive_date_ends_and_statuses() -> None:
    result = _parse("all_day_and_status.ics")

    assert result.problems == ()
    assert [(e.title, e.start, e.end, e.timezone, e.status, e.all_day) for e in result.events] == [
        ("Holzbaumesse Salzburg", date(2025, 9, 23), date(2025, 9, 26), None, EventStatus.CONFIRMED, True),
        ("Tag der offenen Tür", date(2025, 10, 3), date(2025, 10, 4), None, EventStatus.TENTATIVE, True),
        ("Exkursion Vorarlberg", date(2025, 11, 10), date(2025, 11, 12), None, EventStatus.CANCELLED, True),
    ]


def test_floating_times_with_lf_line_endings_take_the_source_zone() -> None:
    result = _parse("floating_times.ics")

    (brunch,) = result.events
    assert (brunch.start, brunch.end, brunch.timezone, brunch.location) == (
        datetime(2025, 5, 14, 8, 30, tzinfo=BRUSSELS),
        datetime(2025, 5, 14, 11, 0, tzinfo=BRUSSELS),
        "Europe/Brussels",
        "Leuven",
    )
    assert result.problems == ()


def test_floating_times_take_x_wr_timezone_when_declared() -> None:
    body = (
        (ICAL / "floating_times.ics")
        .read_bytes()
        .replace(b"VERSION:2.0\n", b"VERSION:2.0\nX-WR-TIMEZONE:Europe/Vienna\n")
    )

    (brunch,) = _parse("", body=body).events

    assert (brunch.start, brunch.timezone) == (datetime(2025, 5, 14, 8, 30, tzinfo=VIENNA), "Europe/Vienna")


def test_method_cancel_cancels_every_event() -> None:
    (event,) = _parse("cancel_method.ics").events

    assert event.status is EventStatus.CANCELLED
    assert event.start == datetime(2025, 12, 4, 15, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert event.sequence == 3


def test_damaged_events_are_reported_and_the_rest_is_kept() -> None:
    result = _parse("damaged_events.ics")

    no_uid_start = datetime(2025, 6, 12, 14, 0, tzinfo=BRUSSELS)
    no_uid = hash_id("src", "Matchmaking ohne UID", "2025-06-12T14:00:00+02:00")
    assert [(e.uid, e.start, e.end, e.timezone, e.sequence) for e in result.events] == [
        (no_uid, no_uid_start, datetime(2025, 6, 12, 16, 0, tzinfo=BRUSSELS), "Europe/Brussels", 0),
        ("backwards@cluster.example.eu", datetime(2025, 6, 13, 14, 0, tzinfo=BRUSSELS), None, "Europe/Brussels", 0),
        ("nowhere@cluster.example.eu", datetime(2025, 7, 1, 10, 0, tzinfo=BRUSSELS), None, "Europe/Brussels", 0),
        # Custom TZID known only by its offsets: the source's zone has the same ones.
        ("offsets@cluster.example.eu", datetime(2025, 7, 2, 10, 0, tzinfo=BRUSSELS), None, "Europe/Brussels", 0),
        (
            "helsinki@cluster.example.eu",
            datetime(2025, 7, 3, 10, 0, tzinfo=ZoneInfo("Europe/Helsinki")),
            None,
            "Europe/Helsinki",
            0,
        ),
    ]
    backwards, nowhere = "VEVENT uid=backwards@cluster.example.eu", "VEVENT uid=nowhere@cluster.example.eu"
    assert result.problems == (
        Problem("src", f"no UID; identified by a hash of source, SUMMARY and DTSTART ({no_uid})", "VEVENT 1"),
        Problem("src", "broken SEQUENCE: Expected int, got: drei", backwards),
        Problem(
            "src",
            "broken line: Content line could not be parsed into parts: 'THIS LINE HAS NO COLON': Invalid content line",
            backwards,
        ),
        Problem(
            "src", "DTEND 2025-06-13T12:00:00+02:00 is before DTSTART 2025-06-13T14:00:00+02:00; end dropped", backwards
        ),
        Problem(
            "src",
            "broken DTSTART: Expected datetime, date, or time. Got: '2025-13-45'",
            "VEVENT uid=no-start@cluster.example.eu",
        ),
        Problem("src", "unreadable DTSTART; event skipped", "VEVENT uid=no-start@cluster.example.eu"),
        Problem("src", "unknown time zone 'Atlantis Standard Time'; times read in Europe/Brussels", nowhere),
    )


def test_missing_uid_hash_is_stable_across_fetches() -> None:
    first = _parse("damaged_events.ics").events[0]
    second = _parse("damaged_events.ics").events[0]

    assert first.uid == second.uid == hash_id("src", "Matchmaking ohne UID", "2025-06-12T14:00:00+02:00")


def test_fold_inside_a_utf8_sequence_heals_and_a_stray_byte_is_replaced() -> None:
    result = _parse("folded_utf8_split.ics")

    (event,) = result.events
    assert event.title == "Fachtagung Lebensmittelsicherheit: Prüfverfahren für Rückstände"
    assert event.location == "Messezentrum Wels, Halle Süd"
    assert event.description == "<p>Geb\ufffdhr 90 EUR</p>"
    assert result.problems == (
        Problem("src", "not valid UTF-8 (invalid start byte at byte 517); undecodable bytes replaced"),
    )


def test_truncated_download_keeps_the_complete_events() -> None:
    result = _parse("truncated_download.ics")

    assert [(e.uid, e.title, e.start, e.end) for e in result.events] == [
        ("complete@cluster.example.eu", "Vollständig", date(2025, 5, 5), date(2025, 5, 6))
    ]
    assert result.problems == (Problem("src", "calendar is truncated (no END:VCALENDAR); kept its complete events"),)


def test_duplicate_uid_keeps_the_higher_sequence() -> None:
    event = "BEGIN:VEVENT\r\nUID:u1\r\nDTSTART;VALUE=DATE:20250505\r\nSUMMARY:{}\r\nSEQUENCE:{}\r\nEND:VEVENT\r\n"
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + event.format("Alt", 1) + event.format("Neu", 4) + "END:VCALENDAR\r\n"

    result = _parse("", body=body.encode())

    assert [(e.title, e.sequence) for e in result.events] == [("Neu", 4)]
    assert result.problems == (Problem("src", "duplicate UID/RECURRENCE-ID; kept SEQUENCE 4", "VEVENT uid=u1"),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not an iCalendar file: empty body"),
        (
            b"<!DOCTYPE html><html><body>Termine</body></html>",
            "not an iCalendar file: it starts with '<!DOCTYPE html><html><body>Termine</body'",
        ),
        (b"\x00\xffgarbage", "not an iCalendar file: it starts with '\ufffdgarbage'"),
        (
            b"BEGIN:VCALENDAR\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "not an iCalendar file: END encountered without an accompanying BEGIN",
        ),
    ],
)
def test_a_body_that_is_not_a_calendar_gives_one_problem(body: bytes, message: str) -> None:
    assert _parse("", body=body) == ParseResult(problems=(Problem("src", message),))


def test_crlf_and_lf_files_give_the_same_records() -> None:
    crlf = (ICAL / "recurring_series.ics").read_bytes()

    assert _parse("", body=crlf.replace(b"\r\n", b"\n")) == _parse("", body=crlf)


@pytest.mark.slow
def test_fifty_thousand_events_parse_in_one_pass() -> None:
    event = (
        "BEGIN:VEVENT\r\nUID:ev{0}@cluster.example.eu\r\nDTSTAMP:20250101T000000Z\r\n"
        "DTSTART;TZID=W. Europe Standard Time:20250318T090000\r\nDTEND;TZID=W. Europe Standard Time:20250318T100000\r\n"
        "SUMMARY:Cluster-Treffen {0}\r\nLOCATION:Wien\r\nEND:VEVENT\r\n"
    )
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "".join(event.format(i) for i in range(50_000)) + "END:VCALENDAR\r\n"

    result = _parse("", body=body.encode())

    assert len(result.events) == 50_000
    assert result.events[-1].title == "Cluster-Treffen 49999"
    assert result.events[-1].start == datetime(2025, 3, 18, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert result.problems == ()


# Text icalendar can write: no surrogates (not UTF-8) and no other control characters than TAB/LF/CR.
_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from("\t\n\r,;\\:\"'<>&"), max_size=80)


@settings(max_examples=150, deadline=None)
@given(summary=_TEXT, location=_TEXT, description=_TEXT)
def test_text_written_by_icalendar_reads_back_the_same(summary: str, location: str, description: str) -> None:
    calendar = Calendar()
    calendar.add("prodid", "-//clusterfeeds tests//EN")
    calendar.add("version", "2.0")
    event = Event()
    event.add("uid", "roundtrip@cluster.example.eu")
    event.add("dtstart", datetime(2025, 3, 18, 9, 0, tzinfo=UTC))
    event.add("summary", summary)
    event.add("location", location)
    event.add("description", description)
    calendar.add_component(event)

    (record,) = _parse("", body=calendar.to_ical()).events

    assert record.title == (clean_text(summary) or "(untitled)")
    assert record.location == (clean_text(location) or None)
    assert html_to_text(record.description) == clean_text(description)
