"""parse_feed: RSS 1.0/2.0, Atom 1.0 and JSON Feed fixtures read field by field, plus hostile and broken input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import SourceConfig
from aggregator.parse._common import hash_id
from aggregator.parse.feed import parse_feed
from aggregator.records import Enclosure, NewsRecord, ParseResult, Problem, Strategy

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
FETCHED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CET = timezone(timedelta(hours=1))
CEST = timezone(timedelta(hours=2))


def _parse(name: str, url: str, *, tags: tuple[str, ...] = ("cluster",), body: bytes | None = None) -> ParseResult:
    source = SourceConfig(name="src", url=url, tags=tags, timezone=ZoneInfo("Europe/Vienna"))
    data = body if body is not None else (FEEDS / name).read_bytes()
    return parse_feed(data, source=source, url=url, fetched_at=FETCHED)


def test_rss2_cluster_news_reads_every_field() -> None:
    result = _parse("rss2_cluster_news.xml", "https://www.cleantech-cluster.example.at/news/feed.xml")

    assert result.problems == ()
    first, second, third = result.news
    assert first == NewsRecord(
        id="https://www.cleantech-cluster.example.at/news/wasserstoff-foerderprogramm",
        source="src",
        title="Wasserstoff-Förderprogramm: Einreichfrist verlängert",
        link="https://www.cleantech-cluster.example.at/news/wasserstoff-foerderprogramm?utm_source=rss&utm_medium=feed",
        summary="Die Einreichfrist für das <b>Wasserstoff-Förderprogramm</b> wurde bis 30. April verlängert.",
        published=datetime(2025, 3, 18, 9, 30, tzinfo=CET),
        updated=None,
        authors=("Mag. Jürgen Höller",),
        tags=("cluster", "Förderungen", "Wasserstoff"),
        enclosures=(
            Enclosure(
                "https://www.cleantech-cluster.example.at/media/foerderleitfaden-2025.pdf", "application/pdf", 482113
            ),
        ),
        strategy=Strategy.FEED,
    )
    assert first.published is not None
    assert first.published.utcoffset() == timedelta(hours=1)
    # Relative link made absolute against the feed; the guid names the same page, so it is the id.
    assert second.id == "https://www.cleantech-cluster.example.at/news/rueckblick-energiegemeinschaften-forum"
    assert second.link == "https://www.cleantech-cluster.example.at/news/rueckblick-energiegemeinschaften-forum"
    assert second.published == datetime(2025, 4, 2, 14, 0, tzinfo=CEST)
    assert second.published is not None
    assert second.published.utcoffset() == timedelta(hours=2)
    assert second.summary == "Über 120 Teilnehmende diskutierten über Energiegemeinschaften &amp; Netzausbau."
    assert second.tags == ("cluster", "Energie")  # "energie" repeats "Energie"
    # No description: the full content is the summary, sanitised.
    assert third.summary == "<p>Willkommen im Cluster, <em>Grüne Kälte</em>!</p>"
    assert third.published == datetime(2025, 4, 14, 8, 15, tzinfo=UTC)
    assert third.authors == ()


def test_content_encoded_is_sanitised_when_it_is_the_only_text() -> None:
    body = (FEEDS / "rss2_cluster_news.xml").read_bytes().replace(b"<description><![CDATA[Die", b"<x><![CDATA[Die")
    body = body.replace(b"verl\xc3\xa4ngert.]]></description>", b"]]></x>")

    result = _parse("", "https://www.cleantech-cluster.example.at/news/feed.xml", body=body)

    assert result.news[0].summary == (
        "<p>Die Einreichfrist wurde verlängert.</p><p>"
        '<a href="https://www.cleantech-cluster.example.at/downloads/leitfaden.pdf" rel="noopener noreferrer nofollow">'
        "Leitfaden</a></p>"
    )


def test_atom10_xhtml_content_xml_base_and_authors() -> None:
    result = _parse("atom10_cluster_xhtml.atom", "https://www.flux50.example.be/news.atom", tags=())

    assert result.problems == ()
    call, meeting = result.news
    assert call.id == "https://www.flux50.example.be/news/call-smart-grid-pilots"
    assert call.title == "Call for smart grid pilots opens"
    assert call.link == "https://www.flux50.example.be/news/call-smart-grid-pilots"
    assert call.summary == "<p>Applications for the 2025 smart grid pilot call are open until 30 June.</p>"
    assert call.published == datetime(2025, 5, 5, 10, 0, tzinfo=CEST)
    assert call.updated == datetime(2025, 5, 6, 11, 0, tzinfo=CEST)
    assert call.authors == ("Els Peeters", "Tom Claes")
    assert call.tags == ("Smart grids", "funding")
    assert call.enclosures == (
        Enclosure("https://www.flux50.example.be/media/call-text-2025.pdf", "application/pdf", 90210),
    )
    # Only <updated>: it stands in for publication; the xhtml content is the summary.
    assert meeting.id == "https://www.flux50.example.be/news/members-meet-ghent"
    assert meeting.published == datetime(2025, 4, 28, 16, 45, tzinfo=UTC)
    assert meeting.updated == datetime(2025, 4, 28, 16, 45, tzinfo=UTC)
    assert meeting.summary == "<p>Over <strong>80 members</strong> met at the Ghent harbour.</p>"


def test_rss10_rdf_dc_date_is_publication_and_bare_date_is_local_midnight() -> None:
    result = _parse("rss10_rdf.rdf", "https://www.silicon-saxony.example.de/feed.rdf", tags=("mikroelektronik",))

    assert result.problems == ()
    workshop, members = result.news
    assert workshop.id == "https://www.silicon-saxony.example.de/aktuelles/chip-act-workshop"
    assert workshop.title == "Workshop zum EU Chips Act in Dresden"
    assert workshop.summary == "Was der Chips Act für KMU bedeutet."
    assert workshop.published == datetime(2025, 2, 11, 13, 0, tzinfo=CET)
    assert workshop.authors == ("Redaktion",)
    assert workshop.tags == ("mikroelektronik",)  # dc:subject "Mikroelektronik" repeats the source tag
    assert members.published == datetime(2025, 3, 31, 0, 0, tzinfo=ZoneInfo("Europe/Vienna"))
    assert members.tags == ("mikroelektronik",)


def test_json_feed_11_items_with_attachments_and_fallback_title() -> None:
    result = _parse("jsonfeed11_cluster.json", "https://www.waterclusters.example.dk/feed.json", tags=())

    call, report = result.news
    assert call == NewsRecord(
        id="https://www.waterclusters.example.dk/news/horizon-water-call",
        source="src",
        title="Horizon Europe water call: partner matchmaking",
        link="https://www.waterclusters.example.dk/news/horizon-water-call",
        summary="<p>Find partners for the 2025 water call.<br>\nMatchmaking on 12 June.</p>",
        published=datetime(2025, 6, 2, 9, 0, tzinfo=CEST),
        updated=datetime(2025, 6, 3, 10, 30, tzinfo=CEST),
        authors=("Mette Hansen", "Søren Østergaard"),
        tags=("Horizon Europe", "water"),
        enclosures=(
            Enclosure("https://www.waterclusters.example.dk/files/call-summary.pdf", "application/pdf", 20480),
        ),
    )
    assert report.id == "https://www.waterclusters.example.dk/news/annual-report-2024"
    assert report.title == "Our annual report 2024 is out: membership grew by 18 % and we ran 34 events…"
    assert report.authors == ("Communications",)
    assert report.published is None
    assert result.problems == (
        Problem("src", "unreadable date 'the second of June'", "item 2"),
        Problem("src", "no title; used the start of its summary", "item 2"),
    )


def test_illformed_feed_keeps_recovered_items_and_names_each_problem() -> None:
    result = _parse("illformed_rss.xml", "https://www.vehiculedufutur.example.fr/feed/")

    assert [(r.id, r.title, r.link) for r in result.news] == [
        (
            "https://www.vehiculedufutur.example.fr/feed/actualites/appel-projets-mobilite",
            "Appel à projets mobilité & hydrogène",
            "https://www.vehiculedufutur.example.fr/feed/actualites/appel-projets-mobilite",
        ),
        (
            "https://www.vehiculedufutur.example.fr/actualites/rencontre-adherents",
            "Les adhérents se retrouvent le 20 mars à Mulhouse pour une journée d'échanges…",
            "https://www.vehiculedufutur.example.fr/actualites/rencontre-adherents",
        ),
        (
            "https://www.vehiculedufutur.example.fr/actualites/sans-titre",
            "(untitled)",
            "https://www.vehiculedufutur.example.fr/actualites/sans-titre",
        ),
        (
            "https://www.vehiculedufutur.example.fr/actualites/webinaire-batteries",
            "Webinaire batteries",
            "https://www.vehiculedufutur.example.fr/actualites/webinaire-batteries",
        ),
        (hash_id(None, "Communiqué sans lien", ""), "Communiqué sans lien", None),
    ]
    assert result.news[0].published == datetime(2025, 3, 6, 10, 0, tzinfo=CET)
    assert result.news[1].published is None
    assert result.problems == (
        Problem(
            "src",
            "ill-formed XML at line 10, column 39: not well-formed (invalid token); "
            "kept what the lenient parser recovered",
        ),
        Problem("src", "unreadable date 'le 10 mars 2025'", "item 2"),
        Problem("src", "duplicate guid 'actu-7' (first in item 1); dropped", "item 4"),
        Problem("src", "duplicate guid 'actu-7' (first in item 1) with another link; not used as its id", "item 5"),
        Problem("src", "no title; used the start of its summary", "item 2"),
        Problem("src", "no title", "item 3"),
    )


def test_regenerated_guids_keep_the_same_ids_across_fetches() -> None:
    url = "https://www.lebensmittel-cluster.example.at/news/feed"

    first = _parse("guid_churn_fetch1.xml", url)
    second = _parse("guid_churn_fetch2.xml", url)

    expected = [
        "https://www.lebensmittel-cluster.example.at/news/innovationstag-2025",
        "https://www.lebensmittel-cluster.example.at/news/verpackung-neu-gedacht",
    ]
    assert [r.id for r in first.news] == expected
    assert [r.id for r in second.news] == expected


def _rss(items: str) -> bytes:
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()


def test_unique_guid_is_the_id_when_the_item_has_no_link() -> None:
    body = _rss("<item><title>A</title><guid isPermaLink='false'>tag:cluster.example.eu,2025:7</guid></item>")

    result = _parse("", "https://cluster.example.eu/feed", body=body)

    assert [r.id for r in result.news] == ["tag:cluster.example.eu,2025:7"]
    assert result.news[0].link is None


def test_shared_link_without_guid_gives_hash_of_link_title_and_date() -> None:
    items = (
        "<item><title>Call A</title><link>https://c.example.eu/calls</link>"
        "<pubDate>Tue, 18 Mar 2025 09:30:00 +0100</pubDate></item>"
        "<item><title>Call B</title><link>https://c.example.eu/calls</link></item>"
    )

    result = _parse("", "https://c.example.eu/feed", body=_rss(items))

    assert [r.id for r in result.news] == [
        hash_id("https://c.example.eu/calls", "Call A", "2025-03-18T09:30:00+01:00"),
        hash_id("https://c.example.eu/calls", "Call B", ""),
    ]
    assert result.problems == ()


def test_billion_laughs_and_xxe_are_never_expanded() -> None:
    # No duration is asserted: an expanded bomb would exhaust memory long before any timeout.
    result = _parse("billion_laughs_xxe.xml", "https://cluster.example.eu/feed")

    (item,) = result.news
    assert item.title == "Bomb &lol9; and file &xxe;"
    assert "lollol" not in item.title + item.summary
    assert "root:" not in item.title + item.summary
    assert result.problems == (
        Problem("src", "DOCTYPE with entity declarations removed; entities are never expanded"),
        Problem(
            "src",
            "ill-formed XML at line 22, column 18: undefined entity; kept what the lenient parser recovered",
        ),
    )


def test_xxe_pointing_at_a_local_file_does_not_read_it(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY s SYSTEM "file://{secret}">]>'
        "<rss version='2.0'><channel><item><title>x &s; y</title><link>https://c.example.eu/1</link></item>"
        "</channel></rss>"
    ).encode()

    result = _parse("", "https://c.example.eu/feed", body=body)

    assert result.news[0].title == "x &s; y"
    assert all("TOP-SECRET" not in str(r) for r in result.records)


@pytest.mark.parametrize(
    ("name", "title", "summary", "problems"),
    [
        ("encoding_utf8_bom.xml", "Größte Zulieferbörse Österreichs", "Anmeldung für Aussteller läuft", ()),
        (
            "encoding_windows1252.xml",
            "Förderung: 50.000 € für „Leichtbau“",
            "Einreichung bis Ende Mai – jetzt prüfen",
            (),
        ),
        ("encoding_iso88591_declared_cp1252.xml", "Schweißtechnik-Tag: Gebühr 120 €", "Maß, Güte und Qualität", ()),
        (
            "encoding_latin1_declared_utf8.xml",
            "Grüße aus Steyr",
            "Neue Fahrzeugstudie veröffentlicht",
            (Problem("src", "declared as iso-8859-1 but is UTF-8; read as UTF-8"),),
        ),
        (
            "encoding_mixed_utf8_cp1252.xml",
            "Mobilität in Österreich",
            "Kurzbericht über Verkehrsplanung und Lärm",
            (
                Problem(
                    "src",
                    "not valid UTF-8 (invalid continuation byte at byte 471); such bytes read as Windows-1252",
                ),
            ),
        ),
    ],
)
def test_german_text_survives_each_encoding(name: str, title: str, summary: str, problems: tuple[Problem, ...]) -> None:
    result = _parse(name, "https://www.automobil-cluster.example.at/feed.xml")

    (item,) = result.news
    assert (item.title, item.summary) == (title, summary)
    assert result.problems == problems


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not a feed: empty body"),
        (b"  \r\n ", "not a feed: empty body"),
        ((FEEDS / "not_a_feed.html").read_bytes(), "not a feed: an HTML page"),
        (b"\x00\x01garbage \xff", "not a feed: ill-formed XML at line 1, column 38: not well-formed (invalid token)"),
        (b'{"version": "1"}', "not a feed: JSON without a JSON Feed version"),
        (
            b"{not json",
            "not a feed: JSON that cannot be read "
            "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        ),
        (b'<?xml version="1.0"?><catalog><book/></catalog>', "not a feed: no RSS, Atom or JSON Feed root element"),
    ],
)
def test_a_document_that_is_not_a_feed_gives_one_problem_and_no_records(body: bytes, message: str) -> None:
    result = _parse("", "https://c.example.eu/feed", body=body)

    assert result == ParseResult(problems=(Problem("src", message),))


def test_rfc822_date_with_european_zone_name_keeps_its_offset() -> None:
    body = _rss(
        "<item><title>A</title><link>https://c.example.eu/a</link><pubDate>Tue, 01 Jul 2025 10:00:00 CEST</pubDate>"
        "</item>"
    )

    (item,) = _parse("", "https://c.example.eu/feed", body=body).news

    assert item.published == datetime(2025, 7, 1, 10, 0, tzinfo=CEST)
    assert item.published is not None
    assert item.published.utcoffset() == timedelta(hours=2)


_AUTHORS_RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Cluster</title>
<link>https://www.cluster.example/</link><description>News</description>
<item><title>One</title><link>https://www.cluster.example/1</link>
<author>info@www.aerospace-cluster-finland.example (Clusterland Editorial Team)</author></item>
<item><title>Two</title><link>https://www.cluster.example/2</link><dc:creator>presse@cluster.berlin</dc:creator></item>
<item><title>Three</title><link>https://www.cluster.example/3</link>
<author>Eva Gruber &lt;eva@cluster.swiss&gt;</author></item>
<item><title>Four</title><link>https://www.cluster.example/4</link><author>office@cluster.at (Anna Kofler)</author></item>
<item><title>Five</title><link>https://www.cluster.example/5</link><author>AUTHOR</author></item>
</channel></rss>
"""


@pytest.mark.parametrize("well_formed", [True, False], ids=["fast-path", "feedparser-lenient"])
def test_author_addresses_with_long_top_level_domains_keep_the_name_whole(well_formed: bool) -> None:
    # feedparser 6.0 cut the address after four letters of domain: "ple (Clusterland Editorial Team".
    # The ill-formed copy (an unclosed element at the end) is read by feedparser's lenient parser.
    long_author = "a@" + "a." * 16_000 + "!"
    body = _AUTHORS_RSS.replace("AUTHOR", long_author)
    if not well_formed:
        body = body.replace("</channel></rss>", "<broken></channel></rss>")
    result = _parse("-", "https://www.cluster.example/feed.xml", body=body.encode())

    assert [n.title for n in result.news] == ["One", "Two", "Three", "Four", "Five"]
    assert [n.authors for n in result.news] == [
        ("Clusterland Editorial Team",),
        ("presse@cluster.berlin",),
        ("Eva Gruber",),
        ("Anna Kofler",),
        # Too long to hold an address: kept as written, not searched (feedparser's pattern took seconds).
        (long_author,),
    ]
    assert bool(result.problems) is not well_formed


_CATEGORIES_ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Cluster</title><id>urn:cluster</id>
<updated>2026-11-20T10:00:00Z</updated><link href="https://www.cluster.example/"/>
<entry><title>Call</title><id>urn:call</id><updated>2026-11-20T10:00:00Z</updated>
<link href="https://www.cluster.example/call"/>
<category term="smart-grids" label="Smart grids"/><category term="energy" label=" "/>
<category term="la-bioeconomie" label="La bioéconomie"/><category label="Only a label"/><category term="plain"/>
</entry></feed>
"""


@pytest.mark.parametrize("well_formed", [True, False], ids=["fast-path", "feedparser-lenient"])
def test_atom_categories_show_their_label_else_their_term(well_formed: bool) -> None:
    body = _CATEGORIES_ATOM if well_formed else _CATEGORIES_ATOM.replace("</feed>", "<broken></feed>")
    result = _parse("-", "https://www.cluster.example/feed.atom", tags=(), body=body.encode())

    (call,) = result.news
    # A blank label is no label: the term shows.
    assert call.tags == ("Smart grids", "energy", "La bioéconomie", "Only a label", "plain")
