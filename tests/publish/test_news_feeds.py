"""RSS 2.0, Atom and JSON Feed output read back with feedparser, lxml and json."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
from lxml import etree

from aggregator.publish import publish

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
ORDER = [
    "Grazer Cluster eröffnet Wasserstoff-Testfeld 🚀",
    "Kraków and Brno clusters sign cooperation",
    "Call for cross-border pilots – deadline in April",
    "E-mobility report 2026 published",
]


def titles(path: Path) -> list[str]:
    """Item titles as a reader sees them: feedparser for RSS/Atom, json for JSON Feed."""
    if path.suffix == ".json":
        return [item["title"] for item in json.loads(path.read_bytes())["items"]]
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo is False, path
    return [entry.title for entry in parsed.entries]


def test_merged_feeds_list_every_item_newest_first_by_published_else_first_seen(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    for name in ("news.xml", "news.atom", "news.json"):
        assert titles(feeds_dir / name) == ORDER, name
    rss = feedparser.parse((feeds_dir / "news.xml").read_bytes())
    assert [e.published for e in rss.entries] == [
        "Tue, 24 Nov 2026 09:30:00 +0000",
        "Sun, 22 Nov 2026 06:00:00 +0000",
        "Fri, 20 Nov 2026 11:00:00 +0000",
        "Fri, 02 Oct 2026 08:00:00 +0000",
    ]
    assert [e.get("link") for e in rss.entries] == [
        "https://alpha.clusterfeeds.example/news/hydrogen-test-bed",
        None,
        "https://beta.clusterfeeds.example/news/pilots-call",
        "https://gamma.clusterfeeds.example/news/e-mobility-report",
    ]


def test_rss_channel_and_item_carry_every_field(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    channel = etree.parse(str(feeds_dir / "news.xml")).getroot().find("channel")
    assert channel.findtext("title") == "Cluster feeds"
    assert channel.findtext("link") == "https://feeds.clusterfeeds.example/"
    assert channel.findtext("lastBuildDate") == "Tue, 24 Nov 2026 09:30:00 +0000"
    assert channel.find(f"{ATOM}link").attrib == {
        "href": "https://feeds.clusterfeeds.example/news.xml",
        "rel": "self",
        "type": "application/rss+xml",
    }
    assert channel.findtext("generator") == "clusterfeeds 0.1"
    assert channel.findtext("ttl") == "30"
    first = channel.find("item")
    guid = first.find("guid")
    assert (guid.text, guid.get("isPermaLink")) == ("tag:clusterfeeds,2026:alpha/hydrogen-test-bed", "false")
    assert first.findtext("description") == (
        '<p>Das Testfeld in <a href="https://alpha.clusterfeeds.example/labs" rel="noopener noreferrer nofollow">'
        "Graz</a> ist offen für KMU.</p>"
    )
    assert first.findtext(f"{DC}creator") == "Jana Novák"
    assert [c.text for c in first.findall("category")] == ["hydrogen"]
    assert [e.attrib for e in first.findall("enclosure")] == [
        {"url": "https://alpha.clusterfeeds.example/media/testbed.pdf", "type": "application/pdf", "length": "482133"}
    ]
    source = first.find("source")
    assert (source.text, source.get("url")) == ("alpha", "https://alpha.clusterfeeds.example/feed.xml")


def test_rss_enclosure_without_length_says_zero(feeds_dir, publish_input, make_news):
    from aggregator.records import Enclosure

    item = make_news(
        "alpha",
        "podcast-7",
        "Cluster podcast #7",
        published=datetime(2026, 11, 25, 7, 0, tzinfo=UTC),
        enclosures=(Enclosure("https://alpha.clusterfeeds.example/podcast/7.mp3"),),
    )
    publish(feeds_dir, publish_input(news=[item]))
    enclosure = etree.parse(str(feeds_dir / "news.xml")).getroot().find("channel/item/enclosure")
    assert enclosure.attrib == {
        "url": "https://alpha.clusterfeeds.example/podcast/7.mp3",
        "type": "application/octet-stream",
        "length": "0",
    }


def test_atom_feed_and_entry_fields(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    parsed = feedparser.parse((feeds_dir / "news.atom").read_bytes())
    assert parsed.feed.id == "https://feeds.clusterfeeds.example/news.atom"
    assert parsed.feed.updated == "2026-11-24T09:30:00Z"
    assert {(link.rel, link.href) for link in parsed.feed.links} == {
        ("self", "https://feeds.clusterfeeds.example/news.atom"),
        ("alternate", "https://feeds.clusterfeeds.example/"),
    }
    assert parsed.feed.author == "Cluster feeds"
    first, second = parsed.entries[0], parsed.entries[1]
    assert first.id == "tag:clusterfeeds,2026:alpha/hydrogen-test-bed"
    assert (first.published, first.updated) == ("2026-11-24T09:30:00Z", "2026-11-24T09:30:00Z")
    assert first.link == "https://alpha.clusterfeeds.example/news/hydrogen-test-bed"
    assert first.summary_detail.type == "text/html"
    assert [(link.rel, link.href, link.get("length")) for link in first.links if link.rel == "enclosure"] == [
        ("enclosure", "https://alpha.clusterfeeds.example/media/testbed.pdf", "482133"),
        ("enclosure", "https://alpha.clusterfeeds.example/media/testbed.jpg", None),
    ]
    assert [t.term for t in first.tags] == ["hydrogen"]
    # No publication date and no link: updated falls back to first_seen, the text goes into content.
    assert second.updated == "2026-11-22T06:00:00Z"
    assert "published" not in second
    assert second.content[0].value == "Plain-text summary without markup."


def test_json_feed_items(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    doc = json.loads((feeds_dir / "news.json").read_bytes())
    assert {k: doc[k] for k in ("version", "title", "home_page_url", "feed_url")} == {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Cluster feeds",
        "home_page_url": "https://feeds.clusterfeeds.example/",
        "feed_url": "https://feeds.clusterfeeds.example/news.json",
    }
    assert doc["items"][0] == {
        "id": "tag:clusterfeeds,2026:alpha/hydrogen-test-bed",
        "url": "https://alpha.clusterfeeds.example/news/hydrogen-test-bed",
        "title": "Grazer Cluster eröffnet Wasserstoff-Testfeld 🚀",
        "content_html": '<p>Das Testfeld in <a href="https://alpha.clusterfeeds.example/labs" '
        'rel="noopener noreferrer nofollow">Graz</a> ist offen für KMU.</p>',
        "date_published": "2026-11-24T09:30:00Z",
        "date_modified": "2026-11-20T07:30:00Z",
        "authors": [{"name": "Jana Novák"}],
        "tags": ["hydrogen"],
        "attachments": [
            {
                "url": "https://alpha.clusterfeeds.example/media/testbed.pdf",
                "mime_type": "application/pdf",
                "size_in_bytes": 482133,
            },
            {"url": "https://alpha.clusterfeeds.example/media/testbed.jpg", "mime_type": "image/jpeg"},
        ],
        "_clusterfeeds": {"source": "alpha", "also_from": []},
    }
    assert [i["date_published"] for i in doc["items"]] == [
        "2026-11-24T09:30:00Z",
        "2026-11-22T06:00:00Z",
        "2026-11-20T11:00:00Z",
        "2026-10-02T08:00:00Z",
    ]


def test_merged_feed_is_capped_at_max_items_keeping_the_newest(feeds_dir, publish_input, make_news):
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    items = [
        make_news("alpha", f"note-{n}", f"Cluster note {n}", published=start + timedelta(hours=n)) for n in range(12)
    ]
    publish(feeds_dir, publish_input(news=items, max_items=5))
    for name in ("news.xml", "news.atom", "news.json", "sources/alpha.xml", "tags/energy.xml"):
        assert titles(feeds_dir / name) == [f"Cluster note {n}" for n in (11, 10, 9, 8, 7)], name


def test_records_of_sources_no_longer_configured_are_not_published(feeds_dir, publish_input, configured, make_news):
    kept = make_news("alpha", "kept", "Alpha story", published=datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    gone = make_news("delta", "gone", "Story of a removed source", published=datetime(2026, 11, 25, 8, 0, tzinfo=UTC))
    report = publish(feeds_dir, publish_input(news=[kept, gone], sources=(configured["alpha"],)))
    assert titles(feeds_dir / "news.xml") == ["Alpha story"]
    assert not (feeds_dir / "sources/delta.xml").exists()
    assert "sources/delta.xml" not in report.written


def test_per_source_and_per_tag_files_hold_their_records(feeds_dir, cluster_input):
    report = publish(feeds_dir, cluster_input)
    per_scope = [f"{folder}/{name}.{ext}" for folder, name in (("sources", "alpha"), ("sources", "beta"),
                 ("sources", "gamma"), ("tags", "energy"), ("tags", "hydrogen"), ("tags", "mobility"))
                 for ext in ("xml", "atom", "json", "ics")]  # fmt: skip
    assert set(report.written) == {
        "news.xml", "news.atom", "news.json", "events.ics", "index.html", "sources.opml", *per_scope,
    }  # fmt: skip
    seen = {
        name: titles(feeds_dir / name)
        for name in ("sources/beta.atom", "tags/energy.json", "tags/mobility.xml", "tags/hydrogen.xml")
    }
    assert seen == {
        "sources/beta.atom": [ORDER[1], ORDER[2]],
        "tags/energy.json": ORDER[:3],
        "tags/mobility.xml": [ORDER[3]],
        "tags/hydrogen.xml": [ORDER[0]],
    }
    channel = etree.parse(str(feeds_dir / "tags/energy.xml")).getroot().find("channel")
    assert channel.findtext("title") == "Cluster feeds: energy"
    assert channel.findtext("ttl") == "30"
    assert etree.parse(str(feeds_dir / "sources/beta.xml")).getroot().findtext("channel/ttl") == "120"


def test_duplicate_story_appears_once_merged_and_in_each_sources_own_feed(feeds_dir, publish_input, make_news):
    when = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    original = make_news(
        "alpha", "h2-award", "Hydrogen cluster wins EU award", published=when,
        link="https://alpha.clusterfeeds.example/news/h2-award",
    )  # fmt: skip
    repost = make_news(
        "beta", "repost-17", "Hydrogen cluster wins EU award", published=when,
        link="https://alpha.clusterfeeds.example/news/h2-award?utm_source=beta",
    )  # fmt: skip
    publish(feeds_dir, publish_input(news=[original, repost]))
    merged = etree.parse(str(feeds_dir / "news.xml")).getroot().findall("channel/item")
    assert len(merged) == 1
    also = [c.text for c in merged[0].findall("category") if c.get("domain") == "source"]
    kept = merged[0].findtext("source")
    assert {kept, *also} == {"alpha", "beta"}
    for source, link in (
        ("alpha", "https://alpha.clusterfeeds.example/news/h2-award"),
        ("beta", "https://alpha.clusterfeeds.example/news/h2-award?utm_source=beta"),
    ):
        items = etree.parse(str(feeds_dir / f"sources/{source}.xml")).getroot().findall("channel/item")
        assert [i.findtext("link") for i in items] == [link]


def test_feed_without_items_is_valid_and_stable(feeds_dir, publish_input):
    publish(feeds_dir, publish_input())
    root = etree.parse(str(feeds_dir / "news.xml")).getroot()
    assert root.find("channel/item") is None
    assert root.findtext("channel/lastBuildDate") == "Thu, 01 Jan 1970 00:00:00 +0000"
    assert json.loads((feeds_dir / "news.json").read_bytes())["items"] == []


def test_modified_dates_say_when_an_item_changed_and_only_then(feeds_dir, publish_input, make_news):
    seen = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    published = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    items = [
        # Stored once, never changed: the moment we first stored it is no modification.
        make_news("alpha", "never", "Never changed", published=published, first_seen=seen, changed_at=seen),
        # We saw its content change on 18 November.
        make_news(
            "alpha",
            "seen",
            "Seen to change",
            published=published,
            first_seen=seen,
            changed_at=datetime(2026, 11, 18, 7, 15, tzinfo=UTC),
        ),
        # The source dates its own update (later than the change we saw).
        make_news(
            "alpha",
            "dated",
            "Dated by its source",
            published=published,
            first_seen=seen,
            changed_at=datetime(2026, 11, 18, 7, 15, tzinfo=UTC),
            updated=datetime(2026, 11, 19, 16, 0, tzinfo=UTC),
        ),
    ]
    publish(feeds_dir, publish_input(news=items))

    by_title = {i["title"]: i for i in json.loads((feeds_dir / "news.json").read_bytes())["items"]}
    assert {t: (i["date_published"], i.get("date_modified")) for t, i in by_title.items()} == {
        "Never changed": ("2026-11-02T09:00:00Z", None),
        "Seen to change": ("2026-11-02T09:00:00Z", "2026-11-18T07:15:00Z"),
        "Dated by its source": ("2026-11-02T09:00:00Z", "2026-11-19T16:00:00Z"),
    }
    entries = feedparser.parse((feeds_dir / "news.atom").read_bytes()).entries
    assert {e.title: (e.published, e.updated) for e in entries} == {
        "Never changed": ("2026-11-02T09:00:00Z", "2026-11-02T09:00:00Z"),
        "Seen to change": ("2026-11-02T09:00:00Z", "2026-11-18T07:15:00Z"),
        "Dated by its source": ("2026-11-02T09:00:00Z", "2026-11-19T16:00:00Z"),
    }
