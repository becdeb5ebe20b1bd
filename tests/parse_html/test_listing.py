"""Listing heuristics (auto kind, strategy "listing"): teasers and event boxes without structured data."""

from __future__ import annotations

from datetime import date

from parse_html.html_support import at, page, source

from aggregator.parse.auto import parse_auto
from aggregator.records import EventRecord, EventStatus, NewsRecord, Strategy

SEED_URL = "https://www.clusterland.example/en/news/"
BASE = "https://www.clusterland.example/en/"


def _auto(name: str, url: str, tz: str, fetched: tuple[int, ...], **kwargs: object):  # type: ignore[no-untyped-def]
    return parse_auto(
        page(name),
        source=source("test", url, tz, **kwargs),  # type: ignore[arg-type]
        url=url,
        content_type="text/html",
        fetched_at=at(tz, *fetched),
        explain=True,
    )


def test_seed_page_teasers_become_news_with_day_first_dates_at_midnight_brussels():
    result = _auto("seed_clusterland_news.html", SEED_URL, "Europe/Brussels", (2015, 1, 20, 10))
    news = result.news
    assert [(n.title, n.link, n.published.isoformat() if n.published else None, n.strategy) for n in news] == [
        (
            'The Strategic Cluster Partnership (ESCP) for Personalised Healthcare: Report on the "EU‐Japan Cluster'
            ' Matchmaking Event"',
            BASE + "news/escp-personalised-healthcare-eu-japan-matchmaking/",
            "2015-01-12T00:00:00+01:00",
            Strategy.LISTING,
        ),
        (
            "A strong European policy to support SMEs and entrepreneurs 2015-2020 Public consultation on the Small"
            " Business Act",
            BASE + "news/public-consultation-small-business-act/",
            "2015-01-08T00:00:00+01:00",
            Strategy.LISTING,
        ),
        (
            "Report of the incoming mission of European Aerospace Cluster Partnerships",
            BASE + "news/incoming-mission-aerospace-cluster-partnerships/",
            "2014-12-19T00:00:00+01:00",
            Strategy.LISTING,
        ),
        (
            "Europe goes international",
            BASE + "news/europe-goes-international/",
            "2014-12-02T00:00:00+01:00",
            Strategy.LISTING,
        ),
    ]
    assert news[0].id == BASE + "news/escp-personalised-healthcare-eu-japan-matchmaking/"
    assert news[0].summary == "Cluster managers from Europe and Japan met in Linz for two days of matchmaking."
    assert news[3].summary == (
        "Since October 2011, the consortium of 18 central European partners has worked together developing a joint"
        " strategy on new cluster concepts."
    )
    assert result.problems == ()


def test_seed_page_upcoming_events_box_gives_timed_all_day_and_located_events():
    result = _auto("seed_clusterland_news.html", SEED_URL, "Europe/Brussels", (2015, 1, 20, 10))
    events = result.events
    assert [
        (e.title, e.link, e.start.isoformat(), e.end.isoformat() if e.end else None, e.all_day) for e in events
    ] == [
        (
            "Cluster Excellence Day 2015",
            BASE + "events/cluster-excellence-day-2015/",
            "2015-02-02T10:30:00+01:00",
            None,
            False,
        ),
        (
            "European Cluster Collaboration Platform Info Day",
            BASE + "events/european-cluster-collaboration-platform-info-day/",
            "2015-02-19",
            "2015-02-20",
            True,
        ),
        ("European Cluster Days 2015", BASE + "events/european-cluster-days-2015/", "2015-03-18", "2015-03-19", True),
    ]
    assert [e.location for e in events] == [None, None, "Strasbourg, European Parliament"]
    assert [e.timezone for e in events] == ["Europe/Brussels", None, None]
    assert {e.strategy for e in events} == {Strategy.LISTING}
    assert all(e.uid.endswith("@clusterfeeds") and len(e.uid) == 45 for e in events)
    assert len(result.records) == 7


def test_footer_numbers_and_navigation_give_no_records_and_are_explained_as_rejected():
    result = _auto("seed_clusterland_news.html", SEED_URL, "Europe/Brussels", (2015, 1, 20, 10))
    assert [(x.candidate, x.accepted, x.reason) for x in result.explanations] == [
        ("ul > li.event (3 blocks)", True, "event: 3 of 3 blocks dated"),
        ("div.news-list > div.teaser (4 blocks)", True, "news: 4 of 4 blocks dated"),
        (
            "ul > li (5 blocks)",
            False,
            "news: 0 of 5 blocks dated and titles of 1.0 words: navigation or link list",
        ),
    ]


def test_event_uid_is_stable_across_fetches_on_different_days():
    first = _auto("seed_clusterland_news.html", SEED_URL, "Europe/Brussels", (2015, 1, 20, 10))
    later = _auto("seed_clusterland_news.html", SEED_URL, "Europe/Brussels", (2015, 1, 27, 18))
    assert [e.uid for e in first.events] == [e.uid for e in later.events]
    assert len({e.uid for e in first.events}) == 3


def test_detail_links_name_listing_records_missing_a_place_up_to_the_limit():
    result = _auto("seed_clusterland_news.html", SEED_URL, "Europe/Brussels", (2015, 1, 20, 10), max_detail_pages=1)
    assert result.detail_links == ((result.events[0].uid, BASE + "events/cluster-excellence-day-2015/"),)
    unlimited = _auto("seed_clusterland_news.html", SEED_URL, "Europe/Brussels", (2015, 1, 20, 10))
    assert unlimited.detail_links == ()


def test_wordpress_posts_and_agenda_widget_with_cancelled_badge():
    url = "https://www.woodcluster.example/news/"
    result = _auto("wordpress_news_agenda.html", url, "Europe/Ljubljana", (2026, 2, 1, 9))
    assert result.discovered_url is None  # only a comments feed is linked
    assert [(n.title, n.published.isoformat() if n.published else None, n.summary) for n in result.news] == [
        (
            "Timber construction survey 2026: what member companies expect",
            "2026-01-28T09:12:00+01:00",
            "Sixty companies answered our annual survey on orders, skills and prices.",
        ),
        (
            "Horizon Europe call on bio-based materials opens for cluster members",
            "2026-01-14T00:00:00+01:00",
            "Partners for a consortium are wanted; deadline for expressions of interest is 20 February.",
        ),
        (
            "Review: Wood Innovation Day in Ljubljana",
            "2025-12-19T00:00:00+01:00",
            "Two hundred visitors saw prototypes of timber facades and furniture.",
        ),
    ]
    assert result.news[0].link == "https://www.woodcluster.example/2026/01/28/timber-construction-survey-2026/"
    events = result.events
    assert [
        (e.title, e.start.isoformat(), e.end.isoformat() if e.end else None, e.location, e.status) for e in events
    ] == [
        (
            "B2B meetings at the furniture fair",
            "2026-04-21T09:00:00+02:00",
            "2026-04-21T17:30:00+02:00",
            "Milan, Fiera Milano Rho",
            EventStatus.CONFIRMED,
        ),
        ("Webinar: EU deforestation regulation", "2026-03-05T14:00:00+01:00", None, "Online", EventStatus.CANCELLED),
        ("Staff Training Week", "2026-05-06", "2026-05-09", "Graz, TU Graz", EventStatus.CONFIRMED),
    ]
    assert events[2].link == "https://www.woodcluster.example/events/staff-training-week-graz/"


def test_drupal_views_rows_with_slash_dates_and_a_rejected_pager():
    url = "https://www.pole-numerique.example/fr/actualites"
    result = _auto("drupal_views_listing.html", url, "Europe/Luxembourg", (2025, 10, 20, 8))
    assert [(n.title, n.link, n.published.isoformat() if n.published else None) for n in result.news] == [
        (
            "Appel à projets : numérique responsable pour les PME",
            "https://www.pole-numerique.example/fr/actualites/appel-projets-numerique-responsable",
            "2025-10-14T00:00:00+02:00",
        ),
        (
            "Retour sur la journée cybersécurité des adhérents",
            "https://www.pole-numerique.example/fr/actualites/retour-sur-la-journee-cybersecurite",
            "2025-10-02T00:00:00+02:00",
        ),
        (
            "Six nouveaux adhérents rejoignent le pôle",
            "https://www.pole-numerique.example/fr/actualites/nouveaux-adherents-2025",
            "2025-09-25T00:00:00+02:00",
        ),
    ]
    assert result.events == []
    rejected = [x for x in result.explanations if not x.accepted]
    assert ("ul.pager > li.pager-item (2 blocks)", False) in [(x.candidate, x.accepted) for x in rejected]


def test_typo3_german_news_and_veranstaltungen_box():
    url = "https://www.cluster-bayern.example/aktuelles/"
    result = _auto("typo3_news_veranstaltungen.html", url, "Europe/Berlin", (2025, 3, 1, 12))
    assert [(n.title, n.link, n.published.isoformat() if n.published else None) for n in result.news] == [
        (
            "Förderaufruf Digitalisierung in der Lebensmittelverarbeitung",
            "https://www.cluster-bayern.example/aktuelles/detail/?tx_news_pi1%5Bnews%5D=118&cHash=5f2a0c1d",
            "2025-02-27T00:00:00+01:00",
        ),
        (
            "Rückblick: Netzwerktreffen Ernährungshandwerk in Freising",
            "https://www.cluster-bayern.example/aktuelles/detail/?tx_news_pi1%5Bnews%5D=117&cHash=0b9e44aa",
            "2025-02-11T00:00:00+01:00",
        ),
    ]
    assert result.news[0].summary == "Bis zum 30. April können kleine und mittlere Betriebe Projektskizzen einreichen."
    assert [
        (e.title, e.start.isoformat(), e.end.isoformat() if e.end else None, e.location, e.status)
        for e in result.events
    ] == [
        (
            "Fachtagung Lebensmittelsicherheit 2025",
            "2025-03-18T09:00:00+01:00",
            "2025-03-18T16:30:00+01:00",
            "Freising, Hörsaalgebäude Weihenstephan",
            EventStatus.CONFIRMED,
        ),
        (
            "Online-Seminar: Nachhaltige Verpackung",
            "2025-04-08T14:00:00+02:00",
            "2025-04-08T17:00:00+02:00",
            "Online",
            EventStatus.CONFIRMED,
        ),
        ("Innovationstage Ernährung", "2025-05-22", "2025-05-24", "Nürnberg, Messezentrum", EventStatus.CONFIRMED),
        (
            "Stammtisch Agrartechnik",
            "2025-06-03T18:00:00+02:00",
            None,
            "Augsburg, Brauereigasthof",
            EventStatus.CANCELLED,
        ),
    ]
    assert [e.timezone for e in result.events] == ["Europe/Berlin", "Europe/Berlin", None, "Europe/Berlin"]


def test_events_announced_in_news_titles_and_teasers_but_not_publication_dates():
    url = "https://www.e4t.example/news/"
    result = _auto("news_titles_announce_events.html", url, "Europe/Berlin", (2018, 12, 1, 12))
    assert len(result.news) == 4
    assert result.news[0].published is not None
    assert result.news[0].published.isoformat() == "2018-09-05T00:00:00+02:00"
    events = result.events
    assert [(e.title, e.start, e.end, e.location, e.link, e.announced_by, e.strategy) for e in events] == [
        (
            "E4T mid-term open event",
            date(2018, 10, 24),
            date(2018, 10, 26),
            "Karlsruhe",
            "https://www.e4t.example/news/e4t-mid-term-open-event",
            "https://www.e4t.example/news/e4t-mid-term-open-event",
            Strategy.TITLE_TEXT,
        ),
        (
            "Staff Training Week",
            date(2019, 2, 6),
            date(2019, 2, 9),
            "TU Graz",
            "https://www.e4t.example/news/staff-training-week-graz",
            "https://www.e4t.example/news/staff-training-week-graz",
            Strategy.TITLE_TEXT,
        ),
        (
            "Matchmaking day",
            date(2018, 11, 14),
            date(2018, 11, 15),
            "Linz",
            "https://www.e4t.example/news/matchmaking-linz",
            "https://www.e4t.example/news/matchmaking-linz",
            Strategy.TITLE_TEXT,
        ),
    ]


def test_records_are_typed_news_then_events():
    result = _auto(
        "typo3_news_veranstaltungen.html", "https://www.cluster-bayern.example/", "Europe/Berlin", (2025, 3, 1)
    )
    kinds = [type(r) for r in result.records]
    assert kinds == [NewsRecord] * 2 + [EventRecord] * 4
