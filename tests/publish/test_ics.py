"""events.ics and per-source/per-tag calendars read back with icalendar and as raw octets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from aggregator.publish import publish
from aggregator.records import EventStatus

from .conftest import overlapping_series

VIENNA = ZoneInfo("Europe/Vienna")


def _calendar(feeds_dir, name="events.ics"):
    return icalendar.Calendar.from_ical((feeds_dir / name).read_bytes())


def _events(feeds_dir, name="events.ics"):
    return {
        (str(e["UID"]), e.get("RECURRENCE-ID").dt if e.get("RECURRENCE-ID") else None): e
        for e in _calendar(feeds_dir, name).walk("VEVENT")
    }


def _lines(feeds_dir, name="events.ics"):
    return (feeds_dir / name).read_bytes().decode("utf-8").replace("\r\n ", "").split("\r\n")


def _event_lines(feeds_dir, name="events.ics"):
    lines = _lines(feeds_dir, name)
    return lines[lines.index("BEGIN:VEVENT") :]


def test_calendar_header_names_refresh_and_no_x_wr_timezone(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    lines = _lines(feeds_dir)
    assert lines[:8] == [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//clusterfeeds//clusterfeeds 0.1//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALNAME:Cluster feeds events",
        "REFRESH-INTERVAL;VALUE=DURATION:PT30M",
        "X-PUBLISHED-TTL:PT30M",
    ]
    assert not any(line.startswith("X-WR-TIMEZONE") for line in lines)
    beta = _lines(feeds_dir, "sources/beta.ics")
    assert beta[5:8] == [
        "X-WR-CALNAME:Cluster feeds events: beta",
        "REFRESH-INTERVAL;VALUE=DURATION:PT2H",
        "X-PUBLISHED-TTL:PT2H",
    ]


def test_vtimezone_uses_yearly_rrules_derived_from_zoneinfo(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    text = "\r\n".join(_lines(feeds_dir))
    assert (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Vienna\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:20250330T020000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:20251026T030000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE"
    ) in text
    assert (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Helsinki\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0300\r\nTZNAME:EEST\r\nDTSTART:20250330T030000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0300\r\nTZOFFSETTO:+0200\r\nTZNAME:EET\r\nDTSTART:20251026T040000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE"
    ) in text
    assert "RDATE" not in text
    assert [line for line in _lines(feeds_dir) if line.startswith("TZID:")] == [
        "TZID:Europe/Helsinki",
        "TZID:Europe/Vienna",
    ]


def test_timed_events_keep_their_zone_and_instant_across_dst(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    events = _events(feeds_dir)
    before = events[("h2-webinar-1@alpha.clusterfeeds.example", None)]
    after = events[("h2-webinar-2@alpha.clusterfeeds.example", None)]
    nordic = events[("nordic-matchmaking@beta.clusterfeeds.example", None)]
    assert before["DTSTART"].params["TZID"] == "Europe/Vienna"
    assert before["DTSTART"].dt.astimezone(UTC) == datetime(2027, 3, 25, 13, 0, tzinfo=UTC)
    assert before["DTEND"].dt.astimezone(UTC) == datetime(2027, 3, 25, 15, 0, tzinfo=UTC)
    assert after["DTSTART"].dt.astimezone(UTC) == datetime(2027, 4, 1, 12, 0, tzinfo=UTC)
    assert nordic["DTSTART"].params["TZID"] == "Europe/Helsinki"
    assert nordic["DTSTART"].dt.astimezone(UTC) == datetime(2026, 12, 9, 7, 0, tzinfo=UTC)
    assert "DTSTART;TZID=Europe/Vienna:20270325T140000" in _lines(feeds_dir)
    assert str(nordic["LOCATION"]) == "Messukeskus, Messuaukio 1, 00520 Helsinki"
    assert "LOCATION:Messukeskus\\, Messuaukio 1\\, 00520 Helsinki" in _lines(feeds_dir)
    assert str(nordic["DESCRIPTION"]) == "Meet clusters from Suomi, Eesti and Latvija; free entry."
    assert str(before["URL"]) == "https://alpha.clusterfeeds.example/events/h2-webinar-1"
    assert before["CATEGORIES"].cats == ["hydrogen"]


def test_event_bookkeeping_properties(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    webinar = _events(feeds_dir)[("h2-webinar-1@alpha.clusterfeeds.example", None)]
    assert webinar["DTSTAMP"].dt == datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
    assert webinar["LAST-MODIFIED"].dt == datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
    assert webinar["CREATED"].dt == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    assert webinar["SEQUENCE"] == 1
    assert str(webinar["STATUS"]) == "CONFIRMED"
    assert str(webinar["SUMMARY"]) == "Hydrogen valleys webinar, part 1"


def test_all_day_events_use_dates_with_exclusive_end(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    events = _events(feeds_dir)
    one_day = events[("open-day@beta.clusterfeeds.example", None)]
    multi = events[("cluster-days-2026@gamma.clusterfeeds.example", None)]
    assert (one_day["DTSTART"].dt, one_day["DTEND"].dt) == (date(2026, 12, 3), date(2026, 12, 4))
    assert (multi["DTSTART"].dt, multi["DTEND"].dt) == (date(2026, 12, 8), date(2026, 12, 11))
    lines = _lines(feeds_dir)
    assert "DTSTART;VALUE=DATE:20261203" in lines
    assert "DTEND;VALUE=DATE:20261204" in lines
    assert str(multi["LOCATION"]) == "Congress Graz; Sparkassenplatz 1, 8010 Graz, Österreich"


def test_cancelled_event_is_kept_with_its_status_and_utc_time(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    summit = _events(feeds_dir)[("battery-summit@gamma.clusterfeeds.example", None)]
    assert str(summit["STATUS"]) == "CANCELLED"
    # Marked in the title too: Outlook shows a cancelled event of a subscribed calendar like any other.
    assert str(summit["SUMMARY"]) == "Cancelled: Battery summit"
    assert summit["SEQUENCE"] == 3
    assert summit["DTSTART"].dt == datetime(2026, 12, 15, 8, 0, tzinfo=UTC)
    assert "DTSTART:20261215T080000Z" in _lines(feeds_dir)
    # A timed event without an end gets no DTEND (and no invented DURATION).
    assert "DTEND" not in summit
    assert "DURATION" not in summit


def test_series_keeps_rrule_and_exdate_and_its_moved_instance_is_an_event_of_its_own(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    events = _events(feeds_dir)
    uid = "funding-clinic@gamma.clusterfeeds.example"
    series = events[(uid, None)]
    assert series["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=6;BYDAY=TU"
    # The source's own EXDATE, then the occurrence its override replaces.
    assert [d.dt for exdate in series["EXDATE"] for d in exdate.dts] == [
        datetime(2027, 3, 30, 10, 0, tzinfo=VIENNA),
        datetime(2027, 4, 6, 10, 0, tzinfo=VIENNA),
    ]
    moved = events[(f"{uid}-occurrence-20270406T100000", None)]
    assert moved["DTSTART"].dt.astimezone(UTC) == datetime(2027, 4, 6, 9, 30, tzinfo=UTC)
    assert moved["SEQUENCE"] == 2
    assert "RRULE" not in moved
    lines = _lines(feeds_dir)
    assert "EXDATE;TZID=Europe/Vienna:20270330T100000" in lines
    assert "EXDATE;TZID=Europe/Vienna:20270406T100000" in lines
    assert not [line for line in lines if line.startswith("RECURRENCE-ID")]
    # The series comes before its moved instance (ordered by UID).
    assert lines.index("SUMMARY:Funding clinic (weekly)") < lines.index("SUMMARY:Funding clinic (moved)")


def test_an_override_moves_only_its_own_series_when_calendars_hold_several(feeds_dir, publish_input):
    # ical.js relates every RECURRENCE-ID in a calendar to every series: alpha's moved webinar also
    # moved beta's stand-up, which meets at the same local time. Overrides are events of their own.
    publish(feeds_dir, publish_input(events=overlapping_series()))
    lines = _event_lines(feeds_dir)
    assert [line for line in lines if line.startswith(("UID:", "EXDATE", "RECURRENCE-ID", "DTSTART"))] == [
        "UID:meetup@example.eu",  # alpha's series, seen first; gamma's copy merged into it
        "DTSTART;TZID=Europe/Lisbon:20261201T100000",
        "EXDATE;TZID=Europe/Lisbon:20261208T100000",
        "UID:meetup@example.eu-gamma-occurrence-20261208T100000",  # gamma's moved session, seen first
        "DTSTART;TZID=Europe/Lisbon:20261208T110000",
        "UID:standup@beta.example",
        "DTSTART;TZID=Europe/Lisbon:20261128T140000",
        "UID:webinar@alpha.example",
        "DTSTART;TZID=Europe/Lisbon:20261128T140000",
        "EXDATE;TZID=Europe/Lisbon:20261205T140000",
        "UID:webinar@alpha.example-occurrence-20261205T140000",
        "DTSTART;TZID=Europe/Lisbon:20261205T150000",
    ]
    gamma = _event_lines(feeds_dir, "sources/gamma.ics")
    assert [line for line in gamma if line.startswith(("UID:", "EXDATE", "RECURRENCE-ID"))] == [
        "UID:meetup@example.eu",
        "EXDATE;TZID=Europe/Lisbon:20261208T100000",
        "UID:meetup@example.eu-occurrence-20261208T100000",
    ]


def test_rdates_become_events_of_their_own_and_exdates_are_written_one_per_line(feeds_dir, publish_input, make_event):
    series = make_event(
        "alpha", "board@alpha.clusterfeeds.example", "Board meeting",
        datetime(2027, 1, 12, 17, 0, tzinfo=VIENNA), datetime(2027, 1, 12, 18, 0, tzinfo=VIENNA),
        rdates=(datetime(2027, 2, 9, 17, 0, tzinfo=VIENNA), datetime(2027, 4, 13, 16, 0, tzinfo=UTC)),
        exdates=(datetime(2027, 3, 9, 17, 0, tzinfo=VIENNA), datetime(2027, 5, 11, 17, 0, tzinfo=VIENNA)),
        rrule="FREQ=MONTHLY;BYDAY=2TU;UNTIL=20270630",
    )  # fmt: skip
    publish(feeds_dir, publish_input(events=[series]))
    lines = _event_lines(feeds_dir)
    # node-ical ignores RDATE: each extra date is published as a plain event of the same length.
    assert [line for line in lines if line.startswith(("RDATE", "EXDATE", "RRULE"))] == [
        "RRULE:FREQ=MONTHLY;BYDAY=2TU;UNTIL=20270630T215959Z",
        "EXDATE;TZID=Europe/Vienna:20270309T170000",
        "EXDATE;TZID=Europe/Vienna:20270511T170000",
    ]
    assert [line for line in lines if line.startswith("UID:")] == [
        "UID:board@alpha.clusterfeeds.example",
        "UID:board@alpha.clusterfeeds.example-rdate-20270209T170000",
        "UID:board@alpha.clusterfeeds.example-rdate-20270413T160000",
    ]
    assert "DTSTART;TZID=Europe/Vienna:20270209T170000" in lines
    assert "DTEND;TZID=Europe/Vienna:20270209T180000" in lines
    assert "DTSTART;TZID=Europe/Vienna:20270413T180000" in lines
    assert "DTEND;TZID=Europe/Vienna:20270413T190000" in lines


def test_an_rdate_series_whose_first_and_second_dates_moved_keeps_only_its_other_dates(
    feeds_dir, publish_input, make_event
):
    first, second, third = (datetime(2027, 1, day, 17, 0, tzinfo=VIENNA) for day in (12, 19, 26))
    hour = timedelta(hours=1)
    series = make_event("alpha", "board@alpha.example", "Board", first, first + hour, rdates=(second, third))
    moved = [
        make_event("alpha", "board@alpha.example", f"Board (moved from {when:%d})", when + hour, when + 2 * hour,
                   recurrence_id=when)
        for when in (first, second)
    ]  # fmt: skip
    publish(feeds_dir, publish_input(events=[series, *moved]))
    lines = _event_lines(feeds_dir)
    assert [line for line in lines if line.startswith(("UID:", "DTSTART", "EXDATE", "RDATE", "RECURRENCE-ID"))] == [
        "UID:board@alpha.example-occurrence-20270112T170000",
        "DTSTART;TZID=Europe/Vienna:20270112T180000",
        "UID:board@alpha.example-occurrence-20270119T170000",
        "DTSTART;TZID=Europe/Vienna:20270119T180000",
        "UID:board@alpha.example-rdate-20270126T170000",  # the one date that did not move
        "DTSTART;TZID=Europe/Vienna:20270126T170000",
    ]


def test_until_of_a_zoned_series_is_converted_to_utc(feeds_dir, publish_input, make_event):
    series = make_event(
        "alpha", "jour-fixe@alpha.clusterfeeds.example", "Jour fixe",
        datetime(2027, 3, 2, 10, 0, tzinfo=VIENNA), datetime(2027, 3, 2, 11, 0, tzinfo=VIENNA),
        rrule="FREQ=WEEKLY;UNTIL=20270420T100000",
    )  # fmt: skip
    all_day = make_event(
        "alpha", "closing-days@alpha.clusterfeeds.example", "Office closed",
        date(2026, 12, 24), date(2026, 12, 25), rrule="FREQ=DAILY;UNTIL=20261231T000000Z",
    )  # fmt: skip
    publish(feeds_dir, publish_input(events=[series, all_day]))
    rules = [line for line in _event_lines(feeds_dir) if line.startswith("RRULE")]
    assert rules == ["RRULE:FREQ=DAILY;UNTIL=20261231", "RRULE:FREQ=WEEKLY;UNTIL=20270420T080000Z"]


def test_long_lines_fold_at_75_octets_without_splitting_utf8(feeds_dir, publish_input, make_event):
    text = "Übergreifende Zusammenarbeit 🚀 zwischen Clustern aus Österreich, Česko und Slovenija – " * 6
    item = make_event(
        "alpha", "long@alpha.clusterfeeds.example", "Kooperationsbörse für Cluster aus Österreich 🚀🚀🚀 und Česko",
        datetime(2026, 12, 2, 9, 0, tzinfo=VIENNA), description=f"<p>{text}</p>",
    )  # fmt: skip
    publish(feeds_dir, publish_input(events=[item]))
    raw = (feeds_dir / "events.ics").read_bytes()
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert raw.count(b"\r") == raw.count(b"\r\n")
    physical = raw.split(b"\r\n")[:-1]
    assert max(len(line) for line in physical) == 75
    for line in physical:
        line.decode("utf-8")  # raises if a fold split a multi-byte character
    parsed = _events(feeds_dir)[("long@alpha.clusterfeeds.example", None)]
    assert str(parsed["DESCRIPTION"]) == text.strip()
    assert str(parsed["SUMMARY"]) == "Kooperationsbörse für Cluster aus Österreich 🚀🚀🚀 und Česko"


def test_line_breaks_in_text_cannot_inject_properties(feeds_dir, publish_input, make_event):
    item = make_event(
        "alpha", "inject@alpha.clusterfeeds.example",
        "Cluster night\r\nDTSTART:19990101T000000Z\nSUMMARY:Injected",
        datetime(2026, 12, 2, 19, 0, tzinfo=VIENNA),
        location="Hall 1\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:evil",
        description="Line one\nATTACH:https://evil.example/x",
    )  # fmt: skip
    publish(feeds_dir, publish_input(events=[item]))
    lines = _lines(feeds_dir)
    assert not any(line.startswith(("DTSTART:1999", "SUMMARY:Injected", "UID:evil", "ATTACH")) for line in lines)
    assert lines.count("BEGIN:VEVENT") == 1
    parsed = _events(feeds_dir)[("inject@alpha.clusterfeeds.example", None)]
    assert str(parsed["SUMMARY"]) == "Cluster night DTSTART:19990101T000000Z SUMMARY:Injected"
    assert str(parsed["LOCATION"]) == "Hall 1 END:VEVENT BEGIN:VEVENT UID:evil"
    # The line break stays in the text, written \n: never a line of its own.
    assert str(parsed["DESCRIPTION"]) == "Line one\nATTACH:https://evil.example/x"
    assert "DESCRIPTION:Line one\\nATTACH:https://evil.example/x" in lines


def test_text_escapes_backslash_semicolon_and_comma(feeds_dir, publish_input, make_event):
    item = make_event(
        "alpha", "esc@alpha.clusterfeeds.example", r"Workshop; AI, robots \ more",
        datetime(2026, 12, 2, 9, 0, tzinfo=VIENNA),
    )  # fmt: skip
    publish(feeds_dir, publish_input(events=[item]))
    assert "SUMMARY:Workshop\\; AI\\, robots \\\\ more" in _lines(feeds_dir)


def test_uid_shared_by_two_sources_is_suffixed_for_the_later_one(feeds_dir, publish_input, make_event):
    first = make_event(
        "alpha", "event-1", "Hydrogen breakfast", datetime(2026, 12, 2, 8, 0, tzinfo=VIENNA),
        first_seen=datetime(2026, 10, 1, tzinfo=UTC),
    )  # fmt: skip
    second = make_event(
        "beta", "event-1", "Nordic design sprint", date(2026, 12, 14),
        first_seen=datetime(2026, 11, 1, tzinfo=UTC),
    )  # fmt: skip
    publish(feeds_dir, publish_input(events=[first, second]))
    assert {uid: str(e["SUMMARY"]) for (uid, _), e in _events(feeds_dir).items()} == {
        "event-1": "Hydrogen breakfast",
        "event-1-beta": "Nordic design sprint",
    }
    # Each source's own calendar keeps the UID as the source wrote it.
    assert list(_events(feeds_dir, "sources/beta.ics")) == [("event-1", None)]


def test_events_older_than_the_past_window_are_dropped(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    uids = {uid for uid, _ in _events(feeds_dir)}
    assert "autumn-forum@alpha.clusterfeeds.example" in uids
    assert "old-forum@alpha.clusterfeeds.example" not in uids
    assert len(_events(feeds_dir)) == 9


def test_zone_without_dst_gets_a_single_standard_observance(feeds_dir, publish_input, make_event):
    item = make_event(
        "alpha", "tokyo@alpha.clusterfeeds.example", "EU–Japan cluster mission",
        datetime(2027, 5, 18, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
        datetime(2027, 5, 18, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
    )  # fmt: skip
    publish(feeds_dir, publish_input(events=[item]))
    text = "\r\n".join(_lines(feeds_dir))
    assert (
        "BEGIN:VTIMEZONE\r\nTZID:Asia/Tokyo\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0900\r\nTZOFFSETTO:+0900\r\n"
        "TZNAME:JST\r\nDTSTART:19700101T000000\r\nEND:STANDARD\r\nEND:VTIMEZONE"
    ) in text
    parsed = _events(feeds_dir)[("tokyo@alpha.clusterfeeds.example", None)]
    assert parsed["DTSTART"].dt.astimezone(UTC) == datetime(2027, 5, 18, 1, 0, tzinfo=UTC)


def test_calendar_without_events_still_holds_a_component(feeds_dir, publish_input):
    publish(feeds_dir, publish_input())
    calendar = _calendar(feeds_dir, "sources/beta.ics")
    assert calendar.walk("VEVENT") == []
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/Helsinki"]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2026, 12, 3), date(2026, 12, 3), ("DTSTART;VALUE=DATE:20261203", "DTEND;VALUE=DATE:20261204")),
        (date(2026, 12, 3), date(2026, 12, 1), ("DTSTART;VALUE=DATE:20261203", "DTEND;VALUE=DATE:20261204")),
        (
            datetime(2026, 12, 3, 18, 0, tzinfo=VIENNA),
            datetime(2026, 12, 3, 17, 0, tzinfo=VIENNA),
            ("DTSTART;TZID=Europe/Vienna:20261203T180000", None),
        ),
    ],
)
def test_an_end_not_after_the_start_is_repaired_or_left_out(feeds_dir, publish_input, make_event, start, end, expected):
    publish(feeds_dir, publish_input(events=[make_event("alpha", "x@alpha", "Clinic", start, end)]))
    lines = _lines(feeds_dir)
    assert expected[0] in lines
    ends = [line for line in lines if line.startswith("DTEND")]
    assert ends == ([expected[1]] if expected[1] else [])


def test_status_and_sequence_values(feeds_dir, publish_input, make_event):
    tentative = make_event(
        "alpha", "t@alpha", "Maybe", datetime(2026, 12, 5, 9, 0, tzinfo=UTC), status=EventStatus.TENTATIVE, sequence=7
    )
    publish(feeds_dir, publish_input(events=[tentative]))
    lines = _lines(feeds_dir)
    assert [line for line in lines if line.startswith(("STATUS", "SEQUENCE"))] == ["SEQUENCE:7", "STATUS:TENTATIVE"]


def test_descriptions_keep_their_lines_and_end_with_the_event_page_for_clients_that_show_no_url(
    feeds_dir, publish_input, make_event
):
    page = "https://alpha.clusterfeeds.example/events/"
    when = datetime(2026, 12, 2, 9, 0, tzinfo=VIENNA)
    items = [
        make_event("alpha", "text@a", "With text", when, description="<p>Matchmaking for SMEs.</p>", link=page + "1"),
        make_event("alpha", "bare@a", "Without text", when, link=page + "2"),
        make_event("alpha", "named@a", "Link in text", when, description=f"Register at {page}3 today", link=page + "3"),
        make_event("alpha", "none@a", "No page", when, description="Only text"),
        make_event(
            "alpha",
            "agenda@a",
            "Agenda",
            when,
            link=page + "5",
            description="<p>Agenda:</p>\n<ul><li>09:00 Welcome</li><li>10:00 Pitches</li></ul><p>Lunch<br/>included</p>",
        ),
    ]
    publish(feeds_dir, publish_input(events=items))

    events = _events(feeds_dir)
    assert {uid: (str(e.get("DESCRIPTION")), str(e.get("URL"))) for (uid, _), e in events.items()} == {
        "text@a": (f"Matchmaking for SMEs.\n\n{page}1", f"{page}1"),
        "bare@a": (f"{page}2", f"{page}2"),
        "named@a": (f"Register at {page}3 today", f"{page}3"),
        "none@a": ("Only text", "None"),
        "agenda@a": (f"Agenda:\n09:00 Welcome\n10:00 Pitches\nLunch\nincluded\n\n{page}5", f"{page}5"),
    }
    assert f"DESCRIPTION:Matchmaking for SMEs.\\n\\n{page}1" in _lines(feeds_dir)


def test_a_cancelled_event_whose_title_says_so_is_not_marked_twice(feeds_dir, publish_input, make_event):
    when = datetime(2026, 12, 2, 9, 0, tzinfo=VIENNA)
    items = [
        make_event("alpha", "a@a", "ABGESAGT: Netzwerktreffen Wasserstoff", when, status=EventStatus.CANCELLED),
        make_event("alpha", "b@a", "Cluster day (canceled)", when, status=EventStatus.CANCELLED),
        make_event("alpha", "c@a", "Matchmaking Linz", when, status=EventStatus.CANCELLED),
        make_event("alpha", "d@a", "Cancellation policy workshop", when),
    ]
    publish(feeds_dir, publish_input(events=items))

    assert sorted(str(e["SUMMARY"]) for e in _events(feeds_dir).values()) == [
        "ABGESAGT: Netzwerktreffen Wasserstoff",
        "Cancellation policy workshop",
        "Cancelled: Matchmaking Linz",
        "Cluster day (canceled)",
    ]
