"""Structured data (JSON-LD, microdata, RDFa, microformats) -> records, merged with the visible list."""

from __future__ import annotations

from datetime import date

from parse_html.html_support import at, page, source

from aggregator.parse.auto import parse_auto
from aggregator.records import EventStatus, Problem, Strategy


def _auto(name: str, url: str, tz: str):  # type: ignore[no-untyped-def]
    return parse_auto(
        page(name),
        source=source("test", url, tz),
        url=url,
        content_type="text/html",
        fetched_at=at(tz, 2026, 2, 1, 12),
        explain=False,
    )


SITE = "https://www.kreativwirtschaft-zh.example/veranstaltungen/"


def test_jsonld_graph_and_list_events_with_places_online_cancelled_and_postponed():
    result = _auto("jsonld_events_graph.html", SITE, "Europe/Zurich")
    assert [
        (e.title, e.start.isoformat(), e.end.isoformat() if e.end else None, e.timezone, e.status, e.strategy)
        for e in result.events
    ] == [
        (
            "Design Business Forum 2026",
            "2026-03-18T09:00:00+01:00",
            "2026-03-18T16:30:00+01:00",
            "Europe/Zurich",
            EventStatus.CONFIRMED,
            Strategy.JSON_LD,
        ),
        (
            "Webinar: Urheberrecht und KI",
            "2026-04-02T14:00:00+02:00",
            "2026-04-02T15:30:00+02:00",
            "Europe/Zurich",
            EventStatus.CONFIRMED,
            Strategy.JSON_LD,
        ),
        (
            "Kreativwirtschaftstage Winterthur",
            "2026-05-06",
            "2026-05-08",
            None,
            EventStatus.CANCELLED,
            Strategy.JSON_LD,
        ),
        (
            "Sommerfest der Mitglieder",
            "2026-06-26T18:00:00+02:00",
            None,
            "Europe/Zurich",
            EventStatus.TENTATIVE,
            Strategy.JSON_LD,
        ),
        ("Ausstellung: Plakate aus Zürich", "2026-09-10", "2026-09-11", None, EventStatus.CONFIRMED, Strategy.JSON_LD),
    ]
    assert [e.location for e in result.events] == [
        "Kongresshaus Zürich, Claridenstrasse 5, 8002 Zürich, CH",
        "Online: https://meet.kreativwirtschaft-zh.example/urheberrecht",
        "Halle 53, Lagerplatz 53, 8400 Winterthur, Schweiz; Online: https://stream.kreativwirtschaft-zh.example/live",
        "Zürich, Zentrum Karl der Grosse",
        None,
    ]
    assert [e.link for e in result.events][:2] == [
        SITE + "design-business-forum-2026",
        SITE + "webinar-urheberrecht-ki",
    ]
    assert result.events[0].description == "Auftraggeber &amp; Agenturen im Gespräch: Trends 2026."
    assert result.events[3].description == "Postponed. Neuer Termin folgt."


def test_visible_list_of_the_same_events_is_counted_once():
    result = _auto("jsonld_events_graph.html", SITE, "Europe/Zurich")
    assert len(result.events) == 5
    assert {e.strategy for e in result.records} == {Strategy.JSON_LD}


def test_broken_jsonld_script_is_a_problem_and_the_others_are_kept():
    result = _auto("jsonld_events_graph.html", SITE, "Europe/Zurich")
    assert result.problems == (
        Problem("test", "invalid JSON-LD: Expecting property name enclosed in double quotes at line 1", "script 3"),
    )


def test_microdata_events_with_nested_place_and_text_location():
    url = "https://www.textiles-cz.example/events/"
    result = _auto("microdata_events.html", url, "Europe/Prague")
    assert result.news == []
    assert [(e.title, e.link, e.start, e.end, e.location, e.strategy) for e in result.events] == [
        (
            "Smart Textiles Matchmaking",
            url + "smart-textiles-matchmaking",
            at("Europe/Prague", 2026, 2, 24, 10),
            at("Europe/Prague", 2026, 2, 24, 15),
            "Brno Exhibition Centre, Výstaviště 405/1, 603 00 Brno, CZ",
            Strategy.MICRODATA,
        ),
        (
            "Circular Fashion Day",
            url + "circular-fashion-day",
            date(2026, 3, 12),
            date(2026, 3, 13),
            "Zlín, Congress Centre",
            Strategy.MICRODATA,
        ),
    ]
    assert result.events[0].description == "Meet research partners for functional fabrics."


def test_microformats_h_event_and_h_entry():
    result = _auto("microformats_hevent.html", "https://www.agrifood.example/agenda/", "Europe/Helsinki")
    assert [(n.title, n.link, n.published, n.summary, n.strategy) for n in result.news] == [
        (
            "Five new members join the cluster",
            "https://www.agrifood.example/news/new-members-2026",
            at("Europe/Helsinki", 2026, 1, 20, 8, 30),
            "Food start-ups from Oulu and Tampere joined in January.",
            Strategy.MICROFORMATS,
        )
    ]
    assert [(e.title, e.start, e.end, e.location, e.strategy) for e in result.events] == [
        (
            "Nordic Food Tech Summit",
            at("Europe/Helsinki", 2026, 5, 19, 9),
            at("Europe/Helsinki", 2026, 5, 19, 17),
            "Messukeskus, Messuaukio 1, 00520 Helsinki",
            Strategy.MICROFORMATS,
        ),
        ("Oat Innovation Day", date(2026, 6, 4), date(2026, 6, 5), "Turku", Strategy.MICROFORMATS),
    ]
    assert str(result.events[0].start.tzinfo) == "Europe/Helsinki"


def test_rdfa_event_with_dates_written_for_people_and_an_end_that_is_only_a_time():
    url = "https://www.mechatronik-cluster.example/veranstaltungen/"
    result = parse_auto(
        page("rdfa_events_text_dates.html"),
        source=source("mechatronik", url, "Europe/Vienna"),
        url=url,
        content_type="text/html",
        fetched_at=at("Europe/Vienna", 2026, 11, 26, 12),
        explain=False,
    )
    assert [
        (e.title, e.start.isoformat(), e.end.isoformat() if e.end else None, e.timezone, e.location, e.link, e.strategy)
        for e in result.events
    ] == [
        (
            "Mechatronik-Stammtisch Steyr",
            "2027-01-21T17:30:00+01:00",
            "2027-01-21T20:00:00+01:00",
            "Europe/Vienna",
            "FH Oberösterreich, Campus Steyr, Wehrgrabengasse 1-3, 4400 Steyr",
            "https://www.mechatronik-cluster.example/veranstaltungen/stammtisch-steyr",
            Strategy.RDFA,
        )
    ]
    assert result.problems == ()
