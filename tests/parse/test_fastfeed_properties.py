"""Generated RSS 2.0 and Atom 1.0 feeds, built from the awkward values real cluster feeds carry, parse the same both ways.

Each feed is parsed with the fast path on and off; whenever the fast path reads it
(it may decline, e.g. XHTML content that would become the summary), the two
ParseResults must be equal, problems included. Declined feeds are filtered out, so every
example counted is one the fast path read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aggregator.config import SourceConfig
from aggregator.parse import fastfeed
from aggregator.parse.feed import parse_feed

SOURCE = SourceConfig(name="cluster", url="https://www.cluster.example/feed/", timezone=ZoneInfo("Europe/Vienna"))
URL = "https://www.cluster.example/feed/news.xml"
FETCHED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEXTS = st.sampled_from(
    [
        "Wasserstoff-Förderprogramm verlängert",
        "R&amp;amp;D &lt;b&gt;Ausschreibung&lt;/b&gt;",
        "Halbleiter&#150;Standort",
        "KÃ¤rnten wÃ¤chst",
        "",
        "   ",
        "a &lt; b",
        "Caf&#233; &amp; Networking",
        "x &amp;nbsp; y",
        "&lt;p&gt;Absatz&lt;/p&gt;",
        "Zeile\nUmbruch",
        "&lt;script&gt;alert(1)&lt;/script&gt;Titel",
        "<![CDATA[<p>a</p><p>b <a href='/rel'>Link</a></p>]]>",
        '<![CDATA[<img src="x.png"><a href="javascript:alert(1)">j</a>]]>',
        '<![CDATA[<p style="color:red">s</p><table><tr><td>1</td></tr></table>]]>',
        '<![CDATA[<a href="ftp://f.example/x">f</a> <a href="mailto:a@b.example">m</a>]]>',
        "<![CDATA[<br/><hr><p>x<br>y</p>]]>",
        "<![CDATA[<p>&nbsp;&copy;&#39;&#34;</p>]]>",
        "<![CDATA[<p>offen <b>fett]]>",
        "<![CDATA[<!-- c --><p>nach Kommentar</p>]]>",
    ]
)
URLS = st.sampled_from(
    [
        "https://www.cluster.example/news/1",
        "/news/relativ",
        "news/rel2?a=1&amp;b=2",
        "",
        "  https://www.cluster.example/leer  ",
        "javascript:alert(1)",
        "tag:www.cluster.example,2026:1",
        "http://other.example/x#frag",
        "//cdn.example/p",
        "https://www.cluster.example/news/1?utm_source=rss",
        "abc-123",
    ]
)
DATES = st.sampled_from(
    [
        "Tue, 03 Mar 2026 09:15:00 +0100",
        "Mon, 16 Feb 2026 08:00:00 MEZ",
        "2026-02-20T11:00:00+01:00",
        "2026-02-20",
        "gestern",
        "",
        "Tue, 03 Mar 2026 09:15:00 GMT",
        "03 Mar 2026 09:15 EST",
        "Tue, 3 Mar 2026 09:15:00 -0000",
    ]
)
PEOPLE = st.sampled_from(
    [
        "office@cluster.example (Eva Gruber)",
        "Jürgen Höller",
        "info@cluster.eu",
        "&lt;x@y.com&gt; Name",
        "",
        "Dr. A &amp; B",
    ]
)
TYPES = st.sampled_from(["", ' type="html"', ' type="text"'])


def _element(name: str, attributes: st.SearchStrategy[str], text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(attributes, text).map(lambda pair: f"<{name}{pair[0]}>{pair[1]}</{name}>")


RSS_CHILDREN = st.one_of(
    _element("title", TYPES, TEXTS),
    _element("link", st.just(""), URLS),
    _element("guid", st.sampled_from(["", ' isPermaLink="false"', ' isPermaLink="true"']), URLS),
    _element("pubDate", st.just(""), DATES),
    _element("dc:date", st.just(""), DATES),
    _element("author", st.just(""), PEOPLE),
    _element("dc:creator", st.just(""), PEOPLE),
    _element(
        "category", st.sampled_from(["", ' domain="themen"', ' domain=""']), st.sampled_from(["Energie", "energie", ""])
    ),
    _element("description", st.just(""), TEXTS),
    _element("content:encoded", st.just(""), TEXTS),
    st.tuples(
        URLS, st.sampled_from(["12", " 3 ", "x", ""]), st.sampled_from(["Image/JPEG", "", "application/pdf"])
    ).map(lambda e: f'<enclosure url="{e[0]}" length="{e[1]}" type="{e[2]}"/>'),
)
PERSON_PARTS = st.lists(
    st.one_of(
        _element("name", st.just(""), PEOPLE),
        _element("email", st.just(""), st.sampled_from(["a@b.example", ""])),
        _element("uri", st.just(""), URLS),
    ),
    max_size=3,
).map("".join)
ATOM_CHILDREN = st.one_of(
    _element("id", st.just(""), URLS),
    _element("title", TYPES, TEXTS),
    st.tuples(
        st.sampled_from(["", ' rel="alternate"', ' rel="related"', ' rel="self"', ' rel="enclosure" length="5"']),
        st.sampled_from(["", ' type="text/html"', ' type="application/pdf"', ' type="TEXT/HTML"']),
        URLS,
    ).map(lambda link: f'<link{link[0]}{link[1]} href="{link[2]}"/>'),
    _element("published", st.just(""), DATES),
    _element("updated", st.just(""), DATES),
    PERSON_PARTS.map(lambda parts: f"<author>{parts}</author>"),
    st.tuples(
        st.sampled_from(["", ' term="t"', ' term=""']),
        st.sampled_from(["", ' label="L"']),
        st.sampled_from(["", ' scheme="s"']),
    ).map(lambda c: f"<category{c[0]}{c[1]}{c[2]}/>"),
    _element("summary", st.sampled_from(["", ' type="html"', ' type="text"', ' type="xhtml"']), TEXTS),
    _element("content", st.sampled_from(["", ' type="html"', ' type="text"', ' type="text/plain"']), TEXTS),
)

RSS = st.lists(st.lists(RSS_CHILDREN, max_size=10).map("\n".join), min_size=1, max_size=4).map(
    lambda items: (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<channel><title>Cluster</title><link>https://www.cluster.example/</link>"
        + "".join(f"<item>{item}</item>" for item in items)
        + "</channel></rss>"
    )
)
ATOM = st.lists(st.lists(ATOM_CHILDREN, max_size=10).map("\n".join), min_size=1, max_size=4).map(
    lambda entries: (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Cluster</title><id>f</id>'
        + "".join(f"<entry>{entry}</entry>" for entry in entries)
        + "</feed>"
    )
)


def _assert_same_both_ways(document: str) -> None:
    assume(fastfeed.decline_reason(document, URL, SOURCE) is None)  # only feeds the fast path reads count
    body = document.encode("utf-8")
    fast = parse_feed(body, source=SOURCE, url=URL, fetched_at=FETCHED)
    fastfeed.ENABLED = False
    try:
        slow = parse_feed(body, source=SOURCE, url=URL, fetched_at=FETCHED)
    finally:
        fastfeed.ENABLED = True
    assert fast == slow


@SETTINGS
@given(RSS)
def test_generated_rss_parses_the_same_with_and_without_the_fast_path(document: str) -> None:
    _assert_same_both_ways(document)


@SETTINGS
@given(ATOM)
def test_generated_atom_parses_the_same_with_and_without_the_fast_path(document: str) -> None:
    _assert_same_both_ways(document)
