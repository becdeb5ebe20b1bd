"""The feed fast path: feedparser's own quirks repeated exactly, and a decline (feedparser reads it) outside them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from feedparser.sanitizer import _sanitize_html
from feedparser.urls import resolve_relative_uris
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config import SourceConfig
from aggregator.parse import fastfeed
from aggregator.parse.feed import parse_feed
from aggregator.records import Enclosure, NewsRecord, ParseResult, Strategy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FETCHED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CET = timezone(timedelta(hours=1))
SOURCE = SourceConfig(
    name="cluster", url="https://www.silicon-alps.example.at/feed/", timezone=ZoneInfo("Europe/Vienna")
)
RSS_URL = "https://www.silicon-alps.example.at/feed/"
ATOM_URL = "https://www.minalogic.example.fr/feed.atom"


@pytest.fixture
def fast_path_off() -> Iterator[None]:
    fastfeed.ENABLED = False
    try:
        yield
    finally:
        fastfeed.ENABLED = True


def _both_ways(body: bytes, url: str) -> tuple[ParseResult, ParseResult]:
    """(fast path on, feedparser only) for the same bytes."""
    fast = parse_feed(body, source=SOURCE, url=url, fetched_at=FETCHED)
    fastfeed.ENABLED = False
    try:
        slow = parse_feed(body, source=SOURCE, url=url, fetched_at=FETCHED)
    finally:
        fastfeed.ENABLED = True
    return fast, slow


def _reason(body: bytes, url: str = RSS_URL) -> str | None:
    return fastfeed.decline_reason(body.decode("utf-8"), url, SOURCE)


def test_rss_quirks_take_the_fast_path_and_match_feedparser_field_by_field() -> None:
    body = (FIXTURES / "parse" / "rss2_feedparser_quirks.xml").read_bytes()

    assert _reason(body) is None
    fast, slow = _both_ways(body, RSS_URL)

    assert fast == slow
    assert fast.problems == ()
    first, second, third = fast.news
    assert first == NewsRecord(
        # A guid without isPermaLink="false" is resolved like a link by feedparser, so it is the permalink.
        id="https://www.silicon-alps.example.at/news/chip-design-days-2026",
        source="cluster",
        title="Chip Design Days 2026: Programm online",
        link="https://www.silicon-alps.example.at/news/chip-design-days-2026",
        summary=(
            '<p>Das <a href="https://www.silicon-alps.example.at/events/cdd-2026" rel="noopener noreferrer nofollow">'
            "Programm</a> der Chip Design Days ist online &amp; die Anmeldung offen.</p>"
            '<img alt="Chip Design Days" src="https://www.silicon-alps.example.at/feed/img/cdd.jpg">'
        ),
        published=datetime(2026, 3, 3, 9, 15, tzinfo=CET),
        authors=("Mag. Eva Gruber",),
        tags=("Mikroelektronik", "Veranstaltungen"),
        strategy=Strategy.FEED,
    )
    # Title with escaped markup: feedparser guesses HTML and sanitises it; the id is the link minus utm_*.
    assert second.title == "R&D-Förderung: neue Ausschreibung"
    assert second.id == "https://www.silicon-alps.example.at/news/rd-foerderung?id=7"
    assert second.summary == "<h2>Neue Ausschreibung</h2><p>Einreichung bis 15. April.</p>"
    assert second.published == datetime(2026, 2, 20, 11, 0, tzinfo=CET)
    assert second.updated == datetime(2026, 2, 20, 11, 0, tzinfo=CET)
    assert second.authors == ("Thomas Wieser", "Anna Kofler")
    assert second.tags == ("Förderungen",)
    assert second.enclosures == (
        Enclosure("https://www.silicon-alps.example.at/media/ausschreibung.pdf", "application/pdf", 48211),
    )
    # The C1 dash is not UTF-8, so the title keeps its mojibake; the description's is repaired.
    assert third.title == "KÃ¤rnten: Halbleiter–Standort wÃ¤chst"
    assert third.summary == "Kärntens Halbleiterstandort wächst weiter."
    assert third.published == datetime(2026, 2, 16, 8, 0, tzinfo=CET)
    assert third.authors == ("redaktion@silicon-alps.example.at",)


def test_atom_quirks_take_the_fast_path_and_match_feedparser_field_by_field() -> None:
    body = (FIXTURES / "parse" / "atom10_feedparser_quirks.atom").read_bytes()

    assert _reason(body, ATOM_URL) is None
    fast, slow = _both_ways(body, ATOM_URL)

    assert fast == slow
    assert fast.problems == ()
    first, second = fast.news
    assert first == NewsRecord(
        id="https://www.minalogic.example.fr/actu/photonique-integree",
        source="cluster",
        title="Photonique intégrée : appel à projets",
        link="https://www.minalogic.example.fr/actu/photonique-integree",
        summary="<p>Un appel à projets pour la photonique intégrée &amp; les capteurs.</p>",
        published=datetime(2026, 3, 2, 14, 30, tzinfo=CET),
        updated=datetime(2026, 3, 3, 9, 0, tzinfo=CET),
        authors=("Claire Martin",),
        tags=("Photonique", "Appels à projets"),
        enclosures=(
            Enclosure("https://www.minalogic.example.fr/docs/cahier-des-charges.pdf", "application/pdf", 120400),
        ),
        strategy=Strategy.FEED,
    )
    # No summary: the text content becomes it, read as HTML (feedparser leaves no summary_detail).
    assert second.id == "https://www.minalogic.example.fr/actu/413"
    assert second.link == "https://www.minalogic.example.fr/actu/413"
    assert second.summary == "Inscriptions ouvertes jusqu'au 10 mars.\nLieu : Grenoble ."
    assert second.published == datetime(2026, 2, 27, 8, 0, tzinfo=UTC)


def test_switched_off_the_fast_path_reads_nothing(fast_path_off: None) -> None:
    body = (FIXTURES / "parse" / "rss2_feedparser_quirks.xml").read_text("utf-8")

    assert fastfeed.read_items(body, RSS_URL, SOURCE) is None
    assert fastfeed.decline_reason(body, RSS_URL, SOURCE) is None  # it would read it when on


_ITEM = '<?xml version="1.0"?><rss version="2.0"><channel><title>c</title><item>{}</item></channel></rss>'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            (FIXTURES / "feeds" / "billion_laughs_xxe.xml").read_bytes(), "a DOCTYPE", id="billion-laughs-doctype"
        ),
        pytest.param((FIXTURES / "hostile" / "xxe_local_file.xml").read_bytes(), "a DOCTYPE", id="xxe-doctype"),
        pytest.param(
            (FIXTURES / "feeds" / "rss10_rdf.rdf").read_bytes(),
            "root element '{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF'",
            id="rss-1.0",
        ),
        pytest.param(
            b'<?xml version="1.0"?><rss version="0.91"><channel><title>c</title></channel></rss>',
            "root element 'rss'",
            id="rss-0.91",
        ),
        pytest.param(
            _ITEM.format("<title>a &nbsp; b</title>").encode(),
            "not well-formed for lxml: Entity 'nbsp' not defined, line 1, column 104 (<string>, line 1)",
            id="undefined-entity",
        ),
        pytest.param(
            _ITEM.format(
                "<title>Deep</title><description>" + "<div>" * 300 + "x" + "</div>" * 300 + "</description>"
            ).encode(),
            "not well-formed for lxml: Excessive depth in document: 256, use XML_PARSE_HUGE option, line 1, column 1385 (<string>, line 1)",
            id="deep-nesting",
        ),
        pytest.param(
            _ITEM.format('<title xml:base="https://elsewhere.example/">t</title>').encode(),
            "namespaced attribute {http://www.w3.org/XML/1998/namespace}base on <title>",
            id="xml-base",
        ),
        pytest.param(
            _ITEM.replace("<rss ", '<rss xmlns:media="http://search.yahoo.com/mrss/" ')
            .format('<title>t</title><media:content url="https://x.example/a.jpg"/>')
            .encode(),
            "unmapped element {http://search.yahoo.com/mrss/}content",
            id="media-rss",
        ),
        pytest.param(
            _ITEM.replace("<rss ", '<rss xmlns:content="http://purl.org/dc/elements/1.1/" ')
            .format("<title>t</title><content:creator>Eva Gruber</content:creator>")
            .encode(),
            "namespace prefix 'content' for http://purl.org/dc/elements/1.1/",
            id="known-namespace-under-another-prefix",
        ),
        pytest.param(
            _ITEM.format("<title>one</title><title>two</title>").encode(),
            "repeated <title> in an entry",
            id="two-titles",
        ),
        pytest.param(
            _ITEM.format("<title>a <b>bold</b> title</title>").encode(),
            "XHTML or nested markup in a field that is used",
            id="markup-in-title",
        ),
        pytest.param(
            _ITEM.format('<title>t</title><description type="application/octet-stream">aGk=</description>').encode(),
            "base64 content (application/octet-stream)",
            id="base64",
        ),
        pytest.param(
            b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>f</title><entry><id>e</id>'
            b'<title>t</title><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">x</div></content>'
            b"</entry></feed>",
            "XHTML or nested markup in a field that is used",
            id="xhtml-content-as-summary",
        ),
    ],
)
def test_outside_the_subset_the_fast_path_declines_and_feedparser_reads_it(body: bytes, reason: str) -> None:
    assert _reason(body) == reason
    fast, slow = _both_ways(body, RSS_URL)
    assert fast == slow


def test_a_declined_billion_laughs_is_still_refused_as_before() -> None:
    fast, _slow = _both_ways((FIXTURES / "feeds" / "billion_laughs_xxe.xml").read_bytes(), RSS_URL)

    assert [p.message for p in fast.problems][:1] == [
        "DOCTYPE with entity declarations removed; entities are never expanded"
    ]


_PLAIN_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="<>&\r"), max_size=12)
_PLAIN_TAG = st.sampled_from(fastfeed._PLAIN_TAGS.split("|")).flatmap(
    lambda tag: st.sampled_from([f"<{tag}>", f"</{tag}>"])
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PLAIN_TEXT, _PLAIN_TAG), max_size=12).map("".join))
def test_plain_markup_is_what_feedparsers_resolver_and_sanitiser_give_back(fragment: str) -> None:
    fragment = fragment.strip()
    assert fastfeed._PLAIN_MARKUP.fullmatch(fragment)

    resolved = resolve_relative_uris(fragment, "https://www.silicon-alps.example.at/feed/", "utf-8", "text/html")
    assert _sanitize_html(resolved, "utf-8", "text/html") == fragment
