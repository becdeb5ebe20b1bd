"""index.html and sources.opml read back with lxml."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import lxml.html
from lxml import etree

from aggregator.publish import publish
from aggregator.publish.index import IndexSource, render_index, source_status
from aggregator.records import SourceState


def _page(feeds_dir):
    return lxml.html.fromstring((feeds_dir / "index.html").read_bytes())


def test_index_is_accessible_static_html(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    page = _page(feeds_dir)
    assert page.get("lang") == "en"
    assert page.findtext(".//title") == "Cluster feeds"
    assert [h.text_content() for h in page.iter("h1", "h2")] == [
        "Cluster feeds", "Subscribe", "Next 30 days", "Latest news", "Sources", "Topics",
    ]  # fmt: skip
    assert [e.tag for e in page.body] == ["header", "main", "footer"]
    assert page.xpath("//script | //iframe | //img | //link[@rel='stylesheet'] | //@style") == []
    assert [e.get("href") for e in page.xpath("//head/link[@rel='alternate']")] == [
        "news.xml",
        "news.atom",
        "news.json",
    ]


def test_index_links_are_relative_and_point_at_published_files(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    hrefs = [a.get("href") for a in _page(feeds_dir).iter("a")]
    local = [h for h in hrefs if "://" not in h]
    assert sorted({h for h in local if not (feeds_dir / h).is_file()}) == []
    assert {"news.xml", "news.atom", "news.json", "events.ics", "sources.opml", "sources/beta.json"} <= set(local)
    assert [h for h in hrefs if h.startswith("webcal:")] == [
        "webcal://feeds.clusterfeeds.example/events.ics",
        "webcal://feeds.clusterfeeds.example/sources/alpha.ics",
        "webcal://feeds.clusterfeeds.example/sources/beta.ics",
        "webcal://feeds.clusterfeeds.example/sources/gamma.ics",
        "webcal://feeds.clusterfeeds.example/tags/energy.ics",
        "webcal://feeds.clusterfeeds.example/tags/hydrogen.ics",
        "webcal://feeds.clusterfeeds.example/tags/mobility.ics",
    ]
    text = _page(feeds_dir).text_content()
    assert "Other calendars › + › From URL" in text
    assert "Add calendar › Subscribe from web" in text
    assert "https://feeds.clusterfeeds.example/events.ics" in text


def test_index_lists_the_next_30_days_of_events_in_their_zone(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    items = _page(feeds_dir).xpath("//section[@aria-labelledby='events']//li")
    assert [" ".join(li.text_content().split()) for li in items] == [
        "Thu 03 Dec 2026 · Open lab day · beta",
        "Tue 08 Dec 2026 – Thu 10 Dec 2026 · European Cluster Days – Graz · Congress Graz; Sparkassenplatz 1, "
        "8010 Graz, Österreich · gamma",
        "Wed 09 Dec 2026, 09:00–17:30 EET · Nordic–Baltic matchmaking · Messukeskus, Messuaukio 1, "
        "00520 Helsinki · beta",
        "Tue 15 Dec 2026, 08:00 UTC · Battery summit (cancelled) · gamma",
    ]
    assert items[3].get("class") == "cancelled"
    assert items[2].find("time").get("datetime") == "2026-12-09T09:00:00+02:00"


def test_index_lists_latest_news_and_source_health(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    page = _page(feeds_dir)
    news = page.xpath("//section[@aria-labelledby='news']//li/a/text()")
    assert news[:2] == [
        "Grazer Cluster eröffnet Wasserstoff-Testfeld 🚀",
        "Call for cross-border pilots – deadline in April",
    ]
    rows = [[" ".join(c.text_content().split()) for c in row[:4]] for row in page.xpath("//tbody/tr")]
    # Days and transitions only: poll times and attempt counts would rewrite the page every cycle.
    assert rows == [
        ["alpha", "ok", "26 Nov 2026", "4"],
        ["beta", "failing since 24 Nov 2026 08:00 UTC (HTTP 503 Service Unavailable)", "24 Nov 2026", "4"],
        ["gamma", "dormant, retried daily", "01 Sep 2026", "5"],
    ]  # fmt: skip


def test_index_escapes_markup_in_names_and_errors(feeds_dir, cluster_input):
    states = [SourceState(name="alpha", last_attempt=cluster_input.now, consecutive_failures=1,
                          last_error='<img src=x onerror="alert(1)">TLS failed')]  # fmt: skip
    publish(feeds_dir, replace(cluster_input, states=states))
    cell = _page(feeds_dir).xpath("//tbody/tr")[0][1]
    assert cell.text_content() == "failing, never succeeded (TLS failed)"
    assert cell.xpath(".//img") == []


def test_opml_lists_every_source_feed_with_absolute_urls(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    root = etree.parse(str(feeds_dir / "sources.opml")).getroot()
    assert (root.tag, root.get("version"), root.findtext("head/title")) == ("opml", "2.0", "Cluster feeds: sources")
    assert [dict(o.attrib) for o in root.iterfind("body/outline/outline")] == [
        {"type": "rss", "text": "alpha", "title": "alpha", "xmlUrl": "https://feeds.clusterfeeds.example/sources/alpha.xml",
         "htmlUrl": "https://alpha.clusterfeeds.example/", "category": "/energy,/hydrogen"},
        {"type": "rss", "text": "beta", "title": "beta", "xmlUrl": "https://feeds.clusterfeeds.example/sources/beta.xml",
         "htmlUrl": "https://beta.clusterfeeds.example/", "category": "/energy"},
        {"type": "rss", "text": "gamma", "title": "gamma", "xmlUrl": "https://feeds.clusterfeeds.example/sources/gamma.xml",
         "htmlUrl": "https://gamma.clusterfeeds.example/", "category": "/mobility"},
    ]  # fmt: skip


def test_a_long_index_comes_in_parts_that_join_into_the_whole_page() -> None:
    """10,000 sources' rows are encoded as they are made (parts of about 64 KB), never held three times."""
    sources = [
        IndexSource(
            name=f"Clúster Ñandú {n:05d} — Größe",  # multi-byte characters on every part's edges
            stem=f"cluster-{n:05d}",
            site=f"https://cluster-{n}.example.eu/",
            tags=(),
            status=source_status(None),
            items=n,
        )
        for n in range(10_000)
    ]
    parts = render_index(
        title="Cluster feeds",
        base_url="https://feeds.example.eu/",
        news=[],
        events=[],
        sources=sources,
        tags=[],
        now=datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    )
    assert all(isinstance(part, bytes) for part in parts)
    assert len(parts) > 50
    assert max(len(part) for part in parts[:-1]) < 70_000
    page = lxml.html.fromstring(b"".join(parts))
    rows = page.xpath("//section[@aria-labelledby='sources']//tbody/tr")
    assert len(rows) == 10_000
    assert rows[4_321].findtext("th/a") == "Clúster Ñandú 04321 — Größe"
    assert rows[4_321].xpath("td")[2].text == "4321"
    assert rows[-1].findtext("th/a") == "Clúster Ñandú 09999 — Größe"
