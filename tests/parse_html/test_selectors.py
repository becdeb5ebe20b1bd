"""kind = "html": CSS selectors from sources.toml give the same records as auto-detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from parse_html.html_support import HTML, at, page, source

from aggregator.config import Selectors, SourceConfig, SourceKind, load
from aggregator.errors import ParseError
from aggregator.parse import parse_document
from aggregator.parse.auto import parse_auto
from aggregator.records import EventRecord, NewsRecord, Problem, RecordKind, Strategy

URL = "https://www.clusterland.example/en/news/"
FETCHED = at("Europe/Brussels", 2015, 1, 20, 10)


def _configured(tmp_path: Path) -> tuple[SourceConfig, SourceConfig]:
    config = load(HTML / "seed_clusterland_sources.toml", data_dir=tmp_path / "data", feeds_dir=tmp_path / "feeds")
    news, events = config.sources
    return news, events


def _news_view(n: NewsRecord) -> tuple[object, ...]:
    return (n.id, n.title, n.link, n.published, n.summary)


def _event_view(e: EventRecord) -> tuple[object, ...]:
    return (e.title, e.link, e.start, e.end, e.timezone, e.location, e.status)


def test_seed_selectors_give_the_same_news_and_events_as_auto(tmp_path):
    news_source, events_source = _configured(tmp_path)
    body = page("seed_clusterland_news.html")
    by_selectors_news = parse_document(body, source=news_source, url=URL, content_type="text/html", fetched_at=FETCHED)
    by_selectors_events = parse_document(
        body, source=events_source, url=URL, content_type="text/html", fetched_at=FETCHED
    )
    auto = parse_auto(
        body, source=source("clusterland", URL), url=URL, content_type="text/html", fetched_at=FETCHED, explain=False
    )
    assert [_news_view(n) for n in by_selectors_news.news] == [_news_view(n) for n in auto.news]
    assert [_event_view(e) for e in by_selectors_events.events] == [_event_view(e) for e in auto.events]
    assert {r.strategy for r in by_selectors_news.records + by_selectors_events.records} == {Strategy.SELECTORS}
    assert by_selectors_news.problems == by_selectors_events.problems == ()
    assert [e.start.isoformat() for e in by_selectors_events.events] == [
        "2015-02-02T10:30:00+01:00",
        "2015-02-19",
        "2015-03-18",
    ]


def test_news_uid_source_name_is_part_of_the_event_uid(tmp_path):
    _, events_source = _configured(tmp_path)
    result = parse_document(
        page("seed_clusterland_news.html"), source=events_source, url=URL, content_type="text/html", fetched_at=FETCHED
    )
    auto = parse_auto(
        page("seed_clusterland_news.html"), source=source("clusterland-events", URL), url=URL,
        content_type="text/html", fetched_at=FETCHED, explain=False,
    )  # fmt: skip
    assert [e.uid for e in result.events] == [e.uid for e in auto.events]


def _html_source(**selectors: object) -> SourceConfig:
    return SourceConfig(
        name="selectors-test",
        url=URL,
        kind=SourceKind.HTML,
        selectors=Selectors(**selectors),  # type: ignore[arg-type]
    )


BODY = b"""<html><body><base href="/en/">
<div class="row"><h3>Cluster Academy 2014</h3><span class="d">24.11.2014</span><a href="academy">more</a></div>
<div class="row"><h3>Cluster Academy: site visit</h3><span class="d">sometime soon</span><a href="visit">more</a></div>
<div class="row"><h3>Newsletter 4/2014</h3><a href="newsletter">more</a></div>
<div class="row"><h3></h3><span class="d">01.12.2014</span></div>
</body></html>"""


def test_items_without_title_or_readable_date_become_problems_and_the_rest_is_kept():
    source_config = _html_source(item="div.row", title="h3", link="a", date="span.d")
    result = parse_document(BODY, source=source_config, url=URL, content_type="text/html", fetched_at=FETCHED)
    assert [(n.title, n.link, n.published) for n in result.news] == [
        ("Cluster Academy 2014", "https://www.clusterland.example/en/academy", at("Europe/Brussels", 2014, 11, 24)),
        ("Cluster Academy: site visit", "https://www.clusterland.example/en/visit", None),
        ("Newsletter 4/2014", "https://www.clusterland.example/en/newsletter", None),
    ]
    assert result.problems == (
        Problem("selectors-test", "unreadable date 'sometime soon'", "item 2"),
        Problem("selectors-test", "no date found", "item 3"),
        Problem("selectors-test", "no title", "item 4"),
    )


def test_event_items_without_a_readable_date_are_dropped_with_a_problem():
    source_config = _html_source(item="div.row", title="h3", link="a", date="span.d", record=RecordKind.EVENT)
    result = parse_document(BODY, source=source_config, url=URL, content_type="text/html", fetched_at=FETCHED)
    assert [(e.title, e.start.isoformat(), e.end.isoformat() if e.end else None) for e in result.events] == [
        ("Cluster Academy 2014", "2014-11-24", "2014-11-25"),
    ]
    assert [p.message for p in result.problems] == ["unreadable date 'sometime soon'", "no date found", "no title"]


def test_no_matching_item_is_reported():
    source_config = _html_source(item="article.news")
    result = parse_document(BODY, source=source_config, url=URL, content_type="text/html", fetched_at=FETCHED)
    assert result.records == ()
    assert result.problems == (Problem("selectors-test", "no element matches item selector 'article.news'"),)


def test_html_kind_without_selectors_is_a_parse_error():
    source_config = SourceConfig(name="bare", url=URL, kind=SourceKind.HTML)
    with pytest.raises(ParseError) as caught:
        parse_document(BODY, source=source_config, url=URL, content_type="text/html", fetched_at=FETCHED)
    assert str(caught.value) == "source 'bare': kind = \"html\" needs selectors (item, title, link, date ...)"


def test_a_meta_charset_full_of_control_characters_is_read_as_utf8() -> None:
    """Found by the fuzzer: lxml refused the declared encoding's name and parse_selectors raised ValueError."""
    body = (Path(__file__).parents[1] / "fixtures" / "hostile" / "fuzz-parse-selectors-encoding.bin").read_bytes()
    assert b'<meta charset="u\xe5*\xe4\x1e#}' in body
    events = SourceConfig(
        name="agrifood-events",
        url="https://www.agrifood.example/events/",
        kind=SourceKind.HTML,
        selectors=Selectors(
            item="div.h-event", title=".p-name", link="a.u-url", date=".dt-start", record=RecordKind.EVENT
        ),
    )

    result = parse_document(body, source=events, url=events.url, content_type="text/html", fetched_at=FETCHED)

    # The first event's date element was mutated away: it is reported, the second is read whole.
    assert [(e.title, e.start.isoformat()) for e in result.events] == [("Oat Innovation Day", "2026-06-04")]
    assert result.problems == (Problem("agrifood-events", "no date found", "item 1"),)
