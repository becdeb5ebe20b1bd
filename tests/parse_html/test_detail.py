"""Detail pages fill what a listing record lacks (strategy "detail-page"), never what it has."""

from __future__ import annotations

import dataclasses
from datetime import date

from parse_html.html_support import at, page, source

from aggregator.parse.detail import enrich_from_detail
from aggregator.records import EventRecord, NewsRecord, Strategy

NEWS_URL = "https://www.clusterland.example/en/news/europe-goes-international/"
FETCHED = at("Europe/Brussels", 2015, 1, 20, 10)


def _news(**changes: object) -> NewsRecord:
    record = NewsRecord(
        id=NEWS_URL, source="clusterland", title="Europe goes international", link=NEWS_URL, strategy=Strategy.LISTING
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def test_missing_date_and_summary_come_from_time_and_og_description():
    enriched = enrich_from_detail(
        _news(), page("detail_page.html"), source=source("clusterland", NEWS_URL), url=NEWS_URL, fetched_at=FETCHED
    )
    assert isinstance(enriched, NewsRecord)
    assert enriched.published == at("Europe/Brussels", 2014, 12, 2, 11)
    assert (
        enriched.summary == "Eighteen central European partners present their joint strategy on new cluster concepts."
    )
    assert enriched.strategy is Strategy.DETAIL_PAGE
    assert (enriched.id, enriched.title, enriched.link) == (NEWS_URL, "Europe goes international", NEWS_URL)


def test_fields_the_listing_had_are_kept_and_a_complete_record_is_returned_unchanged():
    complete = _news(published=at("Europe/Brussels", 2014, 12, 2), summary="From the listing.")
    enriched = enrich_from_detail(
        complete, page("detail_page.html"), source=source("clusterland", NEWS_URL), url=NEWS_URL, fetched_at=FETCHED
    )
    assert enriched is complete


def test_first_paragraph_is_the_summary_when_the_page_has_no_description():
    body = page("detail_page.html").replace(b'<meta property="og:description"', b'<meta property="og:x"')
    enriched = enrich_from_detail(
        _news(published=at("Europe/Brussels", 2014, 12, 2)), body,
        source=source("clusterland", NEWS_URL), url=NEWS_URL, fetched_at=FETCHED,
    )  # fmt: skip
    assert enriched.summary == (
        "Since October 2011, the consortium of 18 central European partners has worked together developing a joint"
        " strategy on new cluster concepts."
    )


def test_event_place_and_description_come_from_the_detail_pages_jsonld():
    url = "https://www.clusterland.example/en/events/european-cluster-collaboration-platform-info-day/"
    event = EventRecord(
        uid="c65febb9a99ccb52c7e6bafc6c5a53ea@clusterfeeds",
        source="clusterland",
        title="European Cluster Collaboration Platform Info Day",
        start=date(2015, 2, 19),
        end=date(2015, 2, 20),
        link=url,
        strategy=Strategy.LISTING,
    )
    enriched = enrich_from_detail(
        event, page("detail_event_jsonld.html"), source=source("clusterland", url), url=url, fetched_at=FETCHED
    )
    assert isinstance(enriched, EventRecord)
    assert enriched.location == "Covent Garden, Place Rogier 16, 1210 Brussels, BE"
    assert enriched.description == "Presentation of the platform's new services."
    assert (enriched.uid, enriched.start, enriched.end) == (event.uid, date(2015, 2, 19), date(2015, 2, 20))
    assert enriched.strategy is Strategy.DETAIL_PAGE
