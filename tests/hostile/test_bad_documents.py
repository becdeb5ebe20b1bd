"""Hostile documents end to end: fetch -> store -> publish, read back the way clients read them."""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events

from .conftest import Checker, Documents, fixture

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def _items(documents: Documents, name: str) -> list[dict[str, Any]]:
    feed = json.loads((documents.cli.feeds / "sources" / f"{name}.json").read_text(encoding="utf-8"))
    return feed["items"]  # type: ignore[no-any-return]


def _events(documents: Documents, name: str) -> dict[str, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical((documents.cli.feeds / "sources" / f"{name}.ics").read_bytes())
    return {str(e["SUMMARY"]): e for e in calendar.walk("VEVENT")}


def test_every_source_but_the_bottomless_page_is_healthy_after_two_fetches(documents: Documents) -> None:
    first, second, publish = documents.runs
    health = {name: (s["health"], s["items"]) for name, s in documents.status.items()}

    assert "15 sources: 13 changed, 1 unchanged, 0 not modified, 1 failed; 171 new, 0 updated records" in first.stdout
    assert "15 sources: 0 changed, 14 unchanged, 0 not modified, 1 failed; 0 new, 0 updated records" in second.stdout
    assert (first.returncode, second.returncode, publish.returncode) == (1, 1, 0)
    assert "Traceback" not in first.stderr + second.stderr + publish.stderr
    assert health == {
        "billion-laughs": ("ok", 1),
        "xxe": ("ok", 1),
        "deep-feed": ("ok", 2),
        "huge-attribute": ("ok", 2),
        "missing-fields": ("ok", 6),
        "guid-churn": ("ok", 2),
        "damaged-calendar": ("ok", 10),
        "damaged-calendar-lf": ("ok", 10),
        "unclosed-tags": ("ok", 3),
        "non-dates": ("ok", 0),
        "deep-page": ("failing", 0),
        "xss-news": ("ok", 37),
        "xss-json": ("ok", 36),
        "xss-events": ("ok", 37),
        "xss-page": ("ok", 24),
    }


def test_ten_megabytes_of_nested_divs_degrade_to_a_reported_problem(documents: Documents) -> None:
    assert documents.status["deep-page"]["last_error"] == (
        "elements nested more than 255 levels deep; the page was read only up to that point "
        f"({documents.urls['deep-page']})"
    )


def test_entities_are_never_expanded_and_no_local_file_is_read(documents: Documents) -> None:
    published = b"".join(p.read_bytes() for p in documents.cli.feeds.rglob("*") if p.is_file())
    passwd = Path("/etc/passwd").read_text(encoding="utf-8").splitlines()[0]

    assert [i["title"] for i in _items(documents, "billion-laughs")] == ["Supplier day in Žilina &lol9;"]
    assert [i["title"] for i in _items(documents, "xxe")] == ["Call for pilots: recycled fibres &passwd;"]
    assert b"lollol" not in published
    assert passwd.encode() not in published


def test_deep_nesting_and_huge_attributes_keep_every_item(documents: Documents) -> None:
    deep = {i["title"]: i.get("content_html", "") for i in _items(documents, "deep-feed")}
    attribute = [i["title"] for i in _items(documents, "huge-attribute")]

    assert sorted(deep) == ["Nested elements", "Nested markup"]
    assert deep["Nested markup"].count("<div>") == 256  # kept up to the nesting limit, then text only
    assert deep["Nested markup"].endswith("deep text" + "</div>" * 256)
    assert attribute == ["Normal neighbour", "Huge attribute"]


def test_missing_titles_links_ids_and_dates_are_filled_or_left_empty_never_guessed(documents: Documents) -> None:
    items = {i["title"]: i for i in _items(documents, "missing-fields")}

    assert sorted(items) == sorted(
        [
            "Alternative protein call opens for SMEs in the Nordics.",
            "Guid only, no link",
            "Relative link and a UTC date",
            "Unreadable date",
            "No date at all",
            "Neither guid nor link",
        ]
    )
    untitled = items["Alternative protein call opens for SMEs in the Nordics."]
    assert untitled["url"] == "https://www.foodcluster.example.dk/news/untitled-protein-call"
    assert untitled["date_published"] == "2026-11-23T07:00:00Z"  # "CET" read as +01:00
    assert items["Relative link and a UTC date"]["url"] == "https://www.foodcluster.example.dk/news/relative-link"
    assert items["Relative link and a UTC date"]["date_published"] == "2026-11-21T07:30:00Z"
    assert items["Guid only, no link"]["date_published"] == "2026-11-21T23:00:00Z"  # midnight in Vienna
    assert "url" not in items["Guid only, no link"]
    assert "url" not in items["Neither guid nor link"]
    assert len({i["id"] for i in items.values()}) == 6


def test_guids_regenerated_on_every_fetch_do_not_grow_the_feed(documents: Documents) -> None:
    titles = [i["title"] for i in _items(documents, "guid-churn")]

    assert titles == ["Verpackung neu gedacht", "Innovationstag Lebensmittel 2027"]
    assert "guid-churn           unchanged  0    0        2" in documents.runs[1].stdout


def test_damaged_calendar_keeps_every_event_with_its_zone_and_recurrence(documents: Documents) -> None:
    events = _events(documents, "damaged-calendar")

    assert len(events) == 10
    board = events["Hydrogen Valley board meeting"]
    assert board["DTSTART"].params["TZID"] == "Europe/Vienna"  # "W. Europe Standard Time" in a Vienna calendar
    assert board.decoded("DTSTART") == datetime(2026, 12, 8, 14, 0, tzinfo=ZoneInfo("Europe/Vienna"))
    webinar = events["Nordic hydrogen webinar"]  # TZID without VTIMEZONE: the IANA name is enough
    assert webinar.decoded("DTSTART") == datetime(2026, 12, 9, 10, 0, tzinfo=ZoneInfo("Europe/Helsinki"))
    floating = events["Floating-time workshop"]  # floating: the source's zone
    assert floating.decoded("DTSTART") == datetime(2026, 12, 10, 9, 30, tzinfo=ZoneInfo("Europe/Vienna"))
    assert "DTEND" not in events["End before start"]
    assert "DTEND" not in events["Open-ended networking"]
    weekly = events["Weekly cluster stand-up"]
    assert weekly["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=6;BYDAY=TU"
    # The source's EXDATE, then the occurrence its override moved: published as an event of its own.
    assert [d.dt for exdate in weekly["EXDATE"] for d in exdate.dts] == [
        datetime(2026, 12, 22, 9, 0, tzinfo=AMSTERDAM),
        datetime(2026, 12, 8, 9, 0, tzinfo=AMSTERDAM),
    ]
    moved = events["Weekly cluster stand-up (moved)"]
    assert str(moved["UID"]) == f"{weekly['UID']}-occurrence-20261208T090000"
    assert "RECURRENCE-ID" not in moved
    assert moved.decoded("DTSTART") == datetime(2026, 12, 8, 11, 0, tzinfo=AMSTERDAM)
    monthly = events["Monthly member newsletter deadline"]
    assert monthly["RRULE"].to_ical() == b"FREQ=MONTHLY;UNTIL=20270603;BYMONTHDAY=3"
    assert (monthly.decoded("DTSTART"), monthly.decoded("DTEND")) == (date(2026, 12, 3), date(2026, 12, 4))
    assert str(events["Kerstborrel zonder UID"]["UID"]).startswith("hash:")
    assert "Groningen – Göteborg – Łódź: Wasserstoffkorridor-Konferenz über grüne Energieträger" in events


def test_lf_line_endings_publish_the_same_calendar_as_crlf(documents: Documents) -> None:
    def shape(name: str) -> list[tuple[str, bytes, bytes]]:
        return sorted(
            (summary, e["DTSTART"].to_ical(), e["DTEND"].to_ical() if "DTEND" in e else b"")
            for summary, e in _events(documents, name).items()
        )

    assert shape("damaged-calendar-lf") == shape("damaged-calendar")


def test_unclosed_tags_still_give_the_events_and_number_soup_gives_none(documents: Documents) -> None:
    events = _events(documents, "unclosed-tags")

    assert {s: (e.decoded("DTSTART"), str(e["LOCATION"])) for s, e in events.items()} == {
        "Holzbau-Forum 2027": (date(2027, 1, 12), "Messe Congress Graz"),
        "Seminar Brettsperrholz im Hochbau": (date(2027, 2, 3), "Holzinnovationszentrum Zeltweg"),
        "Steirischer Waldtag": (date(2027, 3, 17), "Stift Admont"),
    }
    assert _events(documents, "non-dates") == {}
    assert _items(documents, "non-dates") == []


def test_independent_checkers_accept_every_file_published_from_hostile_sources(
    documents: Documents, check_feeds: Checker
) -> None:
    result: subprocess.CompletedProcess[str] = check_feeds(documents.cli.feeds)

    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert failures == []
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_rdate_exdate_and_a_moved_instance_give_the_same_occurrences_after_publishing(cli, site) -> None:  # type: ignore[no-untyped-def]
    site.expect_request("/stand-up.ics").respond_with_data(fixture("rdate_series.ics"), content_type="text/calendar")
    cli.write_sources(f'\n[[source]]\nname = "stand-up"\nurl = "{site.url_for("/stand-up.ics")}"\nkind = "ical"\n')

    run = cli("fetch")
    calendar = icalendar.Calendar.from_ical((cli.feeds / "events.ics").read_bytes())
    occurrences = recurring_ical_events.of(calendar).between(date(2026, 11, 30), date(2027, 2, 1))

    assert run.returncode == 0, run.stderr
    assert sorted((o.decoded("DTSTART"), str(o["SUMMARY"])) for o in occurrences) == [
        (datetime(2026, 12, 1, 9, 0, tzinfo=AMSTERDAM), "Cluster stand-up"),
        (datetime(2026, 12, 8, 11, 0, tzinfo=AMSTERDAM), "Cluster stand-up (moved)"),
        (datetime(2026, 12, 22, 9, 0, tzinfo=AMSTERDAM), "Cluster stand-up"),
        (datetime(2026, 12, 23, 9, 0, tzinfo=AMSTERDAM), "Cluster stand-up"),
    ]


@pytest.mark.slow
def test_fifty_thousand_events_are_fetched_stored_and_published(cli, site) -> None:  # type: ignore[no-untyped-def]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Big cluster platform//EN"]
    for n in range(50_000):
        day = date(2027, 1, 1).toordinal() + n % 365
        stamp = date.fromordinal(day).strftime("%Y%m%d")
        lines += [
            "BEGIN:VEVENT",
            f"UID:event-{n}@eventplatform.example.eu",
            "DTSTAMP:20261101T000000Z",
            f"DTSTART;TZID=Europe/Brussels:{stamp}T{9 + n % 8:02d}0000",
            f"SUMMARY:Matchmaking session {n}",
            "END:VEVENT",
        ]
    body = ("\r\n".join([*lines, "END:VCALENDAR"]) + "\r\n").encode()
    site.expect_request("/all.ics").respond_with_data(body, content_type="text/calendar")
    cli.write_sources(f'\n[[source]]\nname = "platform"\nurl = "{site.url_for("/all.ics")}"\nkind = "ical"\n')

    run = cli("fetch", timeout=600)

    assert run.returncode == 0, run.stderr
    assert "1 sources: 1 changed, 0 unchanged, 0 not modified, 0 failed; 50000 new, 0 updated records" in run.stdout
    published = (cli.feeds / "events.ics").read_bytes()
    assert published.count(b"BEGIN:VEVENT") == 50_000
    calendar = icalendar.Calendar.from_ical(published)
    assert str(calendar.walk("VEVENT")[0]["SUMMARY"]).startswith("Matchmaking session ")
