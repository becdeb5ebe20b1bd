"""The auto kind's step 0 and discovery: feeds and calendars at any URL, alternate links, dispatch."""

from __future__ import annotations

import pytest
from parse_html.html_support import at, page, source

from aggregator.config import SourceKind
from aggregator.errors import ParseError
from aggregator.parse import parse_document
from aggregator.parse.auto import parse_auto, sniff_format
from aggregator.records import Explanation, Strategy


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel/></rss>', "text/html", "feed"),
        (b'\xef\xbb\xbf  <?xml version="1.0"?><!-- generator: WordPress --><feed xmlns="x"/>', None, "feed"),
        (b'<?xml version="1.0"?>\n<?xml-stylesheet href="a.xsl"?>\n<rdf:RDF xmlns:rdf="r"/>', "text/plain", "feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "title": "News", "items": []}', "application/json", "feed"),
        (b'{"version": "1.0", "items": []}', "application/json", "html"),
        (b"\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "text/plain", "ical"),
        (b"<!DOCTYPE html><html><body>rss feed</body></html>", "text/html", "html"),
        (b"<html/>", "application/atom+xml", "feed"),
        (b"<html/>", "text/calendar", "ical"),
    ],
)
def test_feeds_and_calendars_are_recognised_by_type_or_first_bytes(body, content_type, expected):
    assert sniff_format(body, content_type) == expected


def test_page_linking_a_feed_returns_the_rss_feed_and_only_its_structured_events():
    url = "https://www.pole-auto.example/actualites/"
    result = parse_auto(
        page("alternate_rss_link.html"),
        source=source("pole", url, "Europe/Paris"),
        url=url,
        content_type="text/html",
        fetched_at=at("Europe/Paris", 2026, 1, 20, 9),
        explain=True,
    )
    assert result.discovered_url == "https://www.pole-auto.example/actualites/feed/"
    assert result.news == []
    assert [(e.title, e.start.isoformat(), e.location, e.link, e.strategy) for e in result.events] == [
        (
            "Rencontres de la mobilité 2026",
            "2026-03-26T09:00:00+01:00",
            "Couvent des Jacobins, 35000 Rennes",
            "https://www.pole-auto.example/agenda/rencontres-mobilite-2026",
            Strategy.JSON_LD,
        )
    ]
    assert result.explanations == (
        Explanation("json-ld", True, "1 records from json-ld"),
        Explanation(
            "link rel=alternate https://www.pole-auto.example/actualites/feed/",
            True,
            "feed discovered: page listings not used",
        ),
    )


def test_calendar_link_alone_is_discovered_when_no_feed_is_linked():
    body = (
        b'<html><head><link rel="alternate" type="text/calendar" href="webcal-export/events.ics">'
        b"</head><body><p>Agenda</p></body></html>"
    )
    url = "https://www.cluster.example/agenda/"
    result = parse_auto(
        body, source=source("c", url), url=url, content_type="text/html",
        fetched_at=at("Europe/Brussels", 2026, 1, 1), explain=False,
    )  # fmt: skip
    assert result.discovered_url == "https://www.cluster.example/agenda/webcal-export/events.ics"
    assert result.records == ()


def test_empty_page_is_a_parse_error():
    url = "https://www.cluster.example/"
    with pytest.raises(ParseError) as caught:
        parse_auto(
            b"  \n ", source=source("c", url), url=url, content_type="text/html",
            fetched_at=at("Europe/Brussels", 2026, 1, 1), explain=False,
        )  # fmt: skip
    assert str(caught.value) == "source 'c': empty page"


def test_windows_1252_page_without_charset_is_decoded():
    body = (
        "<html><body><div class='n'><h3><a href='/a'>Café des clusters à Linz</a></h3><span>12.01.2026</span></div>"
        "<div class='n'><h3><a href='/b'>Réunion des membres du réseau</a></h3><span>05.01.2026</span></div>"
        "</body></html>"
    ).encode("windows-1252")
    url = "https://www.cluster.example/"
    result = parse_auto(
        body, source=source("c", url), url=url, content_type="text/html",
        fetched_at=at("Europe/Brussels", 2026, 1, 20), explain=False,
    )  # fmt: skip
    assert [(n.title, n.link, n.published) for n in result.news] == [
        ("Café des clusters à Linz", "https://www.cluster.example/a", at("Europe/Brussels", 2026, 1, 12)),
        ("Réunion des membres du réseau", "https://www.cluster.example/b", at("Europe/Brussels", 2026, 1, 5)),
    ]


def test_parse_document_dispatches_auto_pages_with_explanations():
    url = "https://www.clusterland.example/en/news/"
    result = parse_document(
        page("seed_clusterland_news.html"),
        source=source("clusterland", url),
        url=url,
        content_type="text/html",
        fetched_at=at("Europe/Brussels", 2015, 1, 20, 10),
        explain=True,
    )
    assert (len(result.news), len(result.events), len(result.explanations)) == (4, 3, 3)
    assert source("x", url).kind is SourceKind.AUTO


FETCHED_FEED = at("Europe/Brussels", 2014, 12, 1)


def test_rss_served_at_a_page_url_is_read_as_a_feed():
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- a feed at /news/ served as text/html -->\n'
        b'<rss version="2.0"><channel><title>Clusterland</title><link>https://www.clusterland.example/</link>'
        b"<description>News</description><item><title>Cluster Academy 2014</title>"
        b"<link>https://www.clusterland.example/en/news/cluster-academy-2014/</link>"
        b"<pubDate>Mon, 24 Nov 2014 09:00:00 +0100</pubDate></item></channel></rss>"
    )
    url = "https://www.clusterland.example/en/news/"
    result = parse_document(
        body, source=source("clusterland", url), url=url, content_type="text/html", fetched_at=FETCHED_FEED
    )
    assert [(n.title, n.link, n.strategy) for n in result.news] == [
        ("Cluster Academy 2014", "https://www.clusterland.example/en/news/cluster-academy-2014/", Strategy.FEED)
    ]
    assert result.discovered_url is None
