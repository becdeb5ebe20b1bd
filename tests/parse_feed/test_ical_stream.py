"""parse_ical streams a calendar one VEVENT at a time: equal to the whole-document path, in bounded memory.

Every .ics fixture, the small bench corpus, odd structures and mutated fixtures are
parsed by both paths (``parse_ical`` and ``_parse_whole``) and the ParseResults,
problems included, must be equal. The corpus test also counts the files that were
streamed, so a splitter that declined everything would fail rather than pass.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar.parser.content_line import Contentline

from aggregator.config import SourceConfig
from aggregator.parse.ical import _Line, _parse_whole, _stream_declined, parse_ical
from aggregator.records import ParseResult, Problem
from tests.fuzz.run import mutate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ICS_FIXTURES = sorted(FIXTURES.rglob("*.ics"))
MAKE_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "bench" / "make_corpus.py"
FETCHED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
URL = "https://www.cluster-mechatronik.example.at/events.ics"
LONDON = ZoneInfo("Europe/London")
VIENNA = ZoneInfo("Europe/Vienna")
BERLIN = ZoneInfo("Europe/Berlin")


def _source(zone: str = "Europe/Brussels") -> SourceConfig:
    return SourceConfig(name="src", url=URL, tags=("mechatronik",), timezone=ZoneInfo(zone))


def _both(body: bytes, zone: str = "Europe/Brussels") -> tuple[ParseResult, ParseResult]:
    source = _source(zone)
    streamed = parse_ical(body, source=source, url=URL, fetched_at=FETCHED)
    whole = _parse_whole(body, source=source, url=URL, fetched_at=FETCHED)
    return streamed, whole


def _calendar(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def _event(uid: str, start: str, summary: str, *extra: str) -> tuple[str, ...]:
    return ("BEGIN:VEVENT", f"UID:{uid}", f"DTSTART{start}", f"SUMMARY:{summary}", *extra, "END:VEVENT")


@pytest.mark.parametrize("path", ICS_FIXTURES, ids=[str(p.relative_to(FIXTURES)) for p in ICS_FIXTURES])
@pytest.mark.parametrize("zone", ["Europe/Brussels", "Europe/Helsinki"])
def test_every_calendar_fixture_parses_the_same_streamed_and_whole(path: Path, zone: str) -> None:
    streamed, whole = _both(path.read_bytes(), zone)

    assert streamed == whole
    assert streamed.problems == whole.problems


def test_every_calendar_fixture_is_streamed_not_handed_to_the_whole_path() -> None:
    declined = {str(p.relative_to(FIXTURES)): _stream_declined(p.read_bytes()) for p in ICS_FIXTURES}

    assert {name: why for name, why in declined.items() if why is not None} == {}
    assert len(declined) == 23


@pytest.mark.skipif(not MAKE_CORPUS.is_file(), reason="the shared bench generator is not next to the repository")
def test_small_bench_corpus_calendars_parse_the_same_streamed_and_whole(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(MAKE_CORPUS), "--workload", "small", "--out", str(tmp_path / "corpus")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    calendars = sorted((tmp_path / "corpus" / "ics").glob("*.ics"))

    events = 0
    for path in calendars:
        body = path.read_bytes()
        streamed, whole = _both(body)
        assert streamed == whole, path.name
        assert _stream_declined(body) is None, path.name
        events += len(streamed.records)
    assert (len(calendars), events) == (10, 100)


def test_zones_and_calendar_properties_after_the_events_still_apply() -> None:
    body = (FIXTURES / "ical" / "zones_after_events.ics").read_bytes()
    streamed, whole = _both(body, "Europe/London")

    assert streamed == whole
    assert streamed.problems == ()
    breakfast, workshop = streamed.events
    # The VTIMEZONE (after the events) is known by its offsets: Europe/Berlin, not the source's London.
    assert (breakfast.title, breakfast.start, breakfast.end, breakfast.timezone, breakfast.location) == (
        "Cluster-Frühstück Mechatronik",
        datetime(2026, 12, 3, 9, 0, tzinfo=BERLIN),
        datetime(2026, 12, 3, 11, 0, tzinfo=BERLIN),
        "Europe/Berlin",
        "Techcenter Linz, Hafenstraße 47",
    )
    # X-WR-TIMEZONE (after the events) places the floating time; the VALARM's DESCRIPTION is not the event's.
    assert (workshop.start, workshop.end, workshop.timezone, breakfast.description) == (
        datetime(2026, 12, 10, 14, 0, tzinfo=VIENNA),
        datetime(2026, 12, 10, 16, 0, tzinfo=VIENNA),
        "Europe/Vienna",
        "",
    )


def test_two_calendars_in_one_file_keep_their_own_zones_and_numbering() -> None:
    body = _calendar(
        "BEGIN:VCALENDAR",
        "X-WR-TIMEZONE:Europe/Vienna",
        *_event("a@cluster.example", ":20261203T090000", "Linz"),
        *("BEGIN:VEVENT", "SUMMARY:ohne Beginn", "END:VEVENT"),
        "END:VCALENDAR",
        "BEGIN:VCALENDAR",
        "METHOD:CANCEL",
        *("BEGIN:VEVENT", "DTSTART:20261204T100000", "END:VEVENT"),
        "END:VCALENDAR",
    )
    streamed, whole = _both(body, "Europe/London")

    assert streamed == whole
    linz, untitled = streamed.events
    assert (linz.start, linz.status.value) == (datetime(2026, 12, 3, 9, 0, tzinfo=VIENNA), "confirmed")
    assert (untitled.title, untitled.start, untitled.status.value) == (
        "(untitled)",
        datetime(2026, 12, 4, 10, 0, tzinfo=LONDON),
        "cancelled",
    )
    assert [(p.message, p.where) for p in streamed.problems] == [
        ("no DTSTART; event skipped", "VEVENT 2"),
        (f"no UID; identified by a hash of source, SUMMARY and DTSTART ({untitled.uid})", "VEVENT 1"),
        ("no SUMMARY", "VEVENT 1"),
    ]


def test_damaged_lines_are_reported_in_document_order_across_calendar_events_and_zones() -> None:
    body = _calendar(
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        *_event("b@cluster.example", ":20261203T090000", "Erstes", "SEQUENCE:eins"),
        "BROKEN LINE WITHOUT COLON",
        "BEGIN:VTIMEZONE",
        "TZID:Lokal",
        "TZOFFSETTO:kaputt",
        "END:VTIMEZONE",
        *_event("c@cluster.example", ";TZID=Lokal:20261204T100000", "Zweites", "BEGIN:VALARM", "ACTION", "END:VALARM"),
        "X-WR-TIMEZONE;VALUE=DATE:2026",
        "END:VCALENDAR",
    )
    streamed, whole = _both(body)

    assert streamed == whole
    assert [p.message for p in streamed.problems] == [
        "unreadable line skipped: Content line could not be parsed into parts: "
        "'BROKEN LINE WITHOUT COLON': Invalid content line",
        "broken TZOFFSETTO skipped: Expected UTC offset, got: kaputt",
        "unreadable line skipped: Content line could not be parsed into parts: 'ACTION': Invalid content line",
        "broken X-WR-TIMEZONE: Expected datetime, date, or time. Got: '2026'",
        "unknown X-WR-TIMEZONE '2026'; using Europe/Brussels",
        "broken SEQUENCE: Expected int, got: eins",
        "unknown time zone 'Lokal'; times read in Europe/Brussels",
    ]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_calendar("BEGIN:VCALENDAR", *_event("d@x", ":20261203T090000", "A"), "END:VCALENDAR", "trailing words"),
         "line outside a calendar: 'trailing words'"),
        (_calendar("BEGIN:VCALENDAR", "BEGIN:VTODO", *_event("e@x", ":20261203T090000", "B"), "END:VTODO",
                   "END:VCALENDAR"), "VEVENT inside ['VCALENDAR', 'VTODO']"),
        (_calendar("BEGIN:VCALENDAR", "BEGIN:VEVENT", "UID:f@x", "DTSTART:20261203T090000", "END:VCALENDAR"),
         "END:VCALENDAR does not close the open component"),
        (_calendar("BEGIN:VCALENDAR", "BEGıN:VEVENT", "UID:g@x", "DTSTART:20261203T090000", "END:VEVENT",
                   "END:VCALENDAR"), "unusual BEGIN or END line: 'BEGıN:VEVENT'"),
        (_calendar("BEGIN:VCALENDAR", "Begin : VEVENT", "UID:h@x", "DTSTART:20261203T090000", "END:VEVENT",
                   "END:VCALENDAR"), "unusual BEGIN or END line: 'Begin : VEVENT'"),
        (_calendar("BEGIN:VCALENDAR", *_event("i@x", ":20261203T090000", "C"), "END:VCALENDAR",
                   "BEGIN:VEVENT", "END:VEVENT"), "VEVENT inside []"),
    ],
    ids=["trailing-text", "event-in-todo", "unclosed-event", "dotless-i", "spaced-begin", "top-level-event"],
)  # fmt: skip
def test_odd_structures_go_to_the_whole_path_with_the_same_result(body: bytes, why: str) -> None:
    streamed, whole = _both(body)

    assert _stream_declined(body) == why
    assert streamed == whole


def test_lowercase_markers_and_lf_line_ends_are_streamed() -> None:
    body = (
        b"begin:vcalendar\nbegin:vevent\nuid:j@x\ndtstart:20261203T090000\nsummary:Klein\nend:vevent\nend:vcalendar\n"
    )
    streamed, whole = _both(body)

    assert _stream_declined(body) is None
    assert streamed == whole
    assert [(e.uid, e.title) for e in streamed.events] == [("j@x", "Klein")]


def test_a_calendar_larger_than_one_piece_is_cut_between_lines_without_loss() -> None:
    # About 1.2 MB: several 256 KiB pieces; folds inside UTF-8 sequences; a truncated end.
    events = [
        _event(
            f"k{n}@cluster.example",
            ";TZID=W. Europe Standard Time:20261203T090000",
            f"Veranstaltung {n} – Kreislaufwirtschaft",
            "DESCRIPTION:Über " + "Mitglieder " * 40 + "\r\n  und Gäste",
        )
        for n in range(2500)
    ]
    text = "\r\n".join(["BEGIN:VCALENDAR", *(line for event in events for line in event)])
    body = text.encode().replace("ä".encode(), "\xc3\r\n \xa4".encode("latin-1")) + b"\r\nBEGIN:VEVENT\r\nUID:cut"
    streamed, whole = _both(body)

    assert len(body) > 1_000_000
    assert streamed == whole
    assert len(streamed.records) == 2500
    assert streamed.events[-1].title == "Veranstaltung 2499 – Kreislaufwirtschaft"
    assert streamed.events[0].start == datetime(2026, 12, 3, 9, 0, tzinfo=BERLIN)
    assert streamed.problems == (Problem("src", "calendar is truncated (no END:VCALENDAR); kept its complete events"),)


def test_mutated_fixtures_parse_the_same_streamed_and_whole() -> None:
    rng = random.Random(20261126)
    seeds = [p.read_bytes() for p in ICS_FIXTURES]
    for _ in range(250):
        body = mutate(rng, rng.choice(seeds), seeds)
        streamed, whole = _both(body)
        assert streamed == whole, body[:2000]


def _peak_above_result(body: bytes, parse: Callable[..., ParseResult]) -> int:
    source = _source()
    tracemalloc.start()
    try:
        result = parse(body, source=source, url=URL, fetched_at=FETCHED)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.records) == 1200
    return int(peak - kept)


def test_streaming_holds_one_event_not_the_whole_calendar() -> None:
    start = datetime(2026, 12, 1, 9, 0)
    body = _calendar(
        "BEGIN:VCALENDAR",
        *(
            line
            for n in range(1200)
            for line in _event(
                f"m{n}@cluster.example",
                f";TZID=Europe/Berlin:{(start + timedelta(hours=n)).strftime('%Y%m%dT%H%M%S')}",
                f"Netzwerktreffen {n}",
                "DESCRIPTION:" + "Programm und Anmeldung. " * 8,
            )
        ),
        "END:VCALENDAR",
    )

    # The whole path holds every event's icalendar objects at once; streaming only one event's.
    assert _peak_above_result(body, parse_ical) * 4 < _peak_above_result(body, _parse_whole)


_LINE_TEXT = st.text(alphabet=st.sampled_from('ABDEGINTZ;:="\\,^ \t-/ı1é'), max_size=40)


@settings(max_examples=400, deadline=None)
@given(_LINE_TEXT)
def test_a_line_splits_into_the_same_parts_as_icalendar_splits_it(text: str) -> None:
    def parts(line: Contentline) -> object:
        try:
            return line.parts()
        except ValueError as error:
            return str(error)

    assert parts(_Line(text)) == parts(Contentline(text))  # type: ignore[no-untyped-call]


def test_a_time_of_day_or_an_out_of_range_date_skips_the_event_with_a_problem() -> None:
    body = _calendar(
        "BEGIN:VCALENDAR",
        *_event("n@cluster.example", ";TZID=Europe/Brussels:213000", "Nur eine Uhrzeit"),
        *_event("o@cluster.example", ";VALUE=DATE:99991231", "Letzter Tag"),
        *_event("p@cluster.example", ";VALUE=DATE:20261203", "Messe"),
        "END:VCALENDAR",
    )
    streamed, whole = _both(body)

    assert streamed == whole
    assert [(e.uid, e.start, e.end) for e in streamed.events] == [
        ("p@cluster.example", date(2026, 12, 3), date(2026, 12, 4))
    ]
    assert [(p.message, p.where) for p in streamed.problems] == [
        ("unreadable DTSTART; event skipped", "VEVENT uid=n@cluster.example"),
        ("a date is out of range; event skipped", "VEVENT uid=o@cluster.example"),
    ]


def test_a_dotted_capital_i_is_not_read_as_begin_by_either_path() -> None:
    body = _calendar("BEGIN:VCALENDAR", "BEGİN:VEVENT", *_event("q@x", ":20261203T090000", "D"), "END:VCALENDAR")
    streamed, whole = _both(body)

    assert _stream_declined(body) == "unusual BEGIN or END line: 'BEGİN:VEVENT'"
    assert streamed == whole
    assert [e.uid for e in streamed.events] == ["q@x"]


def test_a_repeated_value_parameter_and_repeated_zone_offsets_do_not_stop_the_calendar() -> None:
    body = _calendar(
        "BEGIN:VCALENDAR",
        "BEGIN:VTIMEZONE",
        "TZID:Büro",
        *("BEGIN:STANDARD", "DTSTART:19701025T030000", "TZOFFSETTO:+0100", "TZOFFSETTO:+0100", "END:STANDARD"),
        *("BEGIN:DAYLIGHT", "DTSTART:19700329T020000", "DTSTART:19700329T020000", "TZOFFSETTO:+0200", "END:DAYLIGHT"),
        "END:VTIMEZONE",
        *_event("r@cluster.example", ";TZID=Büro:20261203T090000", "Büro"),
        *_event("s@cluster.example", ";VALUE=DATE,DATE-TIME:20261204", "Zwei Typen"),
        "END:VCALENDAR",
    )
    streamed, whole = _both(body, "Europe/London")

    assert streamed == whole
    assert streamed.problems == ()
    assert [(e.uid, e.start, e.timezone) for e in streamed.events] == [
        ("r@cluster.example", datetime(2026, 12, 3, 9, 0, tzinfo=BERLIN), "Europe/Berlin"),
        ("s@cluster.example", date(2026, 12, 4), None),
    ]
