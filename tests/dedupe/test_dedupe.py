"""De-duplication: re-posts merge into the first-stored copy, look-alikes that differ stay apart."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from aggregator.dedupe import merge_events, merge_news
from aggregator.records import EventRecord, NewsRecord
from aggregator.store.base import StoredEvent, StoredNews

BRUSSELS = ZoneInfo("Europe/Brussels")
LONDON = ZoneInfo("Europe/London")
SEEN = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def news(
    source: str,
    id: str,
    title: str,
    link: str | None,
    *,
    summary: str = "",
    published: datetime | None = None,
    first_seen: datetime = SEEN,
) -> StoredNews:
    record = NewsRecord(id=id, source=source, title=title, link=link, summary=summary, published=published)
    return StoredNews(record=record, first_seen=first_seen, changed_at=first_seen)


def event(
    source: str,
    uid: str,
    title: str,
    start: datetime | date,
    *,
    link: str | None = None,
    rrule: str | None = None,
    first_seen: datetime = SEEN,
) -> StoredEvent:
    record = EventRecord(uid=uid, source=source, title=title, start=start, link=link, rrule=rrule)
    return StoredEvent(record=record, sequence=0, first_seen=first_seen, changed_at=first_seen)


def summary(items: list[StoredNews] | list[StoredEvent]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(item.record.source, item.record.key, item.record.also_from) for item in items]


# -- news ----------------------------------------------------------------------


def test_one_story_from_three_sources_becomes_the_first_stored_copy_with_two_also_from(fixture_path) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(fixture_path("dedupe/reposted_news.json").read_text(encoding="utf-8"))
    items = [
        news(
            n["source"],
            n["id"],
            n["title"],
            n["link"],
            summary=n["summary"],
            published=datetime.fromisoformat(n["published"]),
            first_seen=datetime.fromisoformat(n["first_seen"]),
        )
        for n in data["news"]
    ]
    merged = merge_news(items)
    assert summary(merged) == [
        ("eccp", "https://www.clustercollaboration.eu/node/41822", ("bavarian-clusters", "clusterplatform-de")),
        ("bavarian-clusters", "news-7802", ()),
        ("eccp", "https://www.clustercollaboration.eu/node/41830", ()),
    ]
    kept = merged[0]
    assert kept.record.title == "European Cluster Conference 2026: Call for Speakers"
    assert kept.first_seen == datetime(2026, 3, 12, 8, 15, tzinfo=UTC)


def test_tracking_parameters_and_fragment_do_not_hide_a_repost() -> None:
    items = [
        news("b", "1", "Hydrogen Valley Call", "https://Example.org/news/h2?utm_campaign=x&id=7#xtor=RSS-1"),
        news("a", "2", "Another title entirely", "https://example.org:443/news/h2?id=7"),
    ]
    assert summary(merge_news(items)) == [("a", "2", ("b",))]


def test_same_title_on_another_day_is_another_story() -> None:
    items = [
        news("a", "1", "Cluster Newsletter", None, published=datetime(2026, 3, 12, 9, 0, tzinfo=BRUSSELS)),
        news("b", "2", "Cluster Newsletter", None, published=datetime(2026, 3, 13, 9, 0, tzinfo=BRUSSELS)),
    ]
    assert summary(merge_news(items)) == [("a", "1", ()), ("b", "2", ())]


def test_same_title_and_day_with_different_summaries_are_two_stories() -> None:
    day = datetime(2026, 3, 12, 9, 0, tzinfo=BRUSSELS)
    items = [
        news("a", "1", "Members' Meeting", None, summary="<p>Agenda: budget 2027 and new members.</p>", published=day),
        news(
            "b",
            "2",
            "Members’ meeting",
            None,
            summary="<p>Photos from our Linz site visit in February.</p>",
            published=day,
        ),
    ]
    assert summary(merge_news(items)) == [("a", "1", ()), ("b", "2", ())]


def test_title_case_whitespace_nbsp_and_punctuation_differences_still_match() -> None:
    day = datetime(2026, 3, 12, 9, 0, tzinfo=BRUSSELS)
    items = [
        news("b", "1", "Smart\u00a0Textiles:  Open Call!", None, published=day, first_seen=SEEN + timedelta(hours=1)),
        news("a", "2", "smart textiles – open call", None, published=day + timedelta(hours=3)),
    ]
    assert summary(merge_news(items)) == [("a", "2", ("b",))]


def test_two_different_links_are_two_stories_even_with_equal_titles() -> None:
    day = datetime(2026, 3, 12, 9, 0, tzinfo=BRUSSELS)
    items = [
        news("a", "1", "Press release", "https://a.example/press/1", published=day),
        news("b", "2", "Press release", "https://b.example/press/9", published=day),
    ]
    assert summary(merge_news(items)) == [("a", "1", ()), ("b", "2", ())]


def test_a_link_one_source_gives_to_several_items_is_a_listing_page_not_an_identity() -> None:
    items = [
        news("a", "1", "Call for projects opens", "https://a.example/news/"),
        news("a", "2", "Annual report published", "https://a.example/news/"),
    ]
    assert summary(merge_news(items)) == [("a", "1", ()), ("a", "2", ())]


def test_ties_on_first_seen_keep_the_source_first_by_name_and_output_keeps_input_order() -> None:
    items = [
        news("x", "0", "Unrelated", None),
        news("zeta", "1", "Story", "https://e.example/s"),
        news("alpha", "2", "Story", "https://e.example/s"),
    ]
    assert summary(merge_news(items)) == [("x", "0", ()), ("alpha", "2", ("zeta",))]


def test_kept_copies_come_in_the_order_of_their_own_positions_between_the_stories_that_stand_alone() -> None:
    """The kept copy of a group may come after its group's first member and after other stories."""
    later = SEEN + timedelta(days=1)
    day = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    items = [
        news("zeta", "a1", "Hydrogen valley", "https://h.example/v?utm_source=x", first_seen=SEEN),  # a repost
        news("solo", "b", "Smart textiles", "https://t.example/s"),
        news("omega", "c1", "Cluster matchmaking in Osaka", None, published=day, first_seen=later),
        news("alpha", "a2", "Hydrogen valley", "https://h.example/v", first_seen=later),  # the original
        news("lone", "d", "Aerospace mission", "https://a.example/m"),
        news("beta", "c2", "Cluster Matchmaking in Osaka!", None, published=day, first_seen=SEEN),
    ]
    assert summary(merge_news(items)) == [
        ("solo", "b", ()),
        ("alpha", "a2", ("zeta",)),
        ("lone", "d", ()),
        ("beta", "c2", ("omega",)),
    ]


def test_also_from_already_on_a_record_is_kept_and_sorted() -> None:
    first = news("a", "1", "Story", "https://e.example/s")
    second = news("c", "2", "Story", "https://e.example/s", first_seen=SEEN + timedelta(days=1))
    carried = StoredNews(
        record=NewsRecord(id="3", source="d", title="Story", link="https://e.example/s", also_from=("b",)),
        first_seen=SEEN + timedelta(days=2),
        changed_at=SEEN,
    )
    assert summary(merge_news([carried, second, first])) == [("a", "1", ("b", "c", "d"))]


def test_merging_40000_news_groups_by_key() -> None:
    items = [news(f"s{i % 4}", str(i), f"Story {i // 4}", f"https://e.example/{i // 4}") for i in range(40_000)]
    merged = merge_news(items)
    assert len(merged) == 10_000
    assert merged[0].record.also_from == ("s1", "s2", "s3")


# -- events --------------------------------------------------------------------


def test_same_instant_written_in_another_zone_is_the_same_event() -> None:
    items = [
        event("a", "uid-1@a", "Hydrogen Matchmaking", datetime(2026, 3, 12, 10, 0, tzinfo=BRUSSELS)),
        event("b", "x-77", "HYDROGEN MATCHMAKING", datetime(2026, 3, 12, 9, 0, tzinfo=LONDON)),
        event("c", "y-12", "Hydrogen matchmaking.", datetime(2026, 3, 12, 9, 0, tzinfo=UTC)),
    ]
    assert summary(merge_events(items)) == [("a", "uid-1@a", ("b", "c"))]


def test_same_title_different_day_or_time_is_not_merged() -> None:
    items = [
        event("a", "1", "Cluster Academy session", datetime(2026, 3, 12, 10, 0, tzinfo=BRUSSELS)),
        event("b", "2", "Cluster Academy session", datetime(2026, 3, 19, 10, 0, tzinfo=BRUSSELS)),
        event("c", "3", "Cluster Academy session", datetime(2026, 3, 12, 14, 0, tzinfo=BRUSSELS)),
    ]
    assert summary(merge_events(items)) == [("a", "1", ()), ("b", "2", ()), ("c", "3", ())]


def test_all_day_events_match_on_start_date() -> None:
    items = [
        event("a", "1", "European Cluster Days", date(2026, 6, 24), link="https://ecd.example/?utm_source=x"),
        event("b", "2", "ECD 2026", date(2026, 6, 24), link="https://ecd.example/"),
        event("c", "3", "ECD 2026", date(2026, 6, 25), link="https://ecd.example/"),
    ]
    # b's link carries no tracking parameters: it is the original, a's is the re-post.
    assert summary(merge_events(items)) == [("b", "2", ("a",)), ("c", "3", ())]


def test_same_uid_across_sources_with_same_start_merges() -> None:
    start = datetime(2026, 5, 6, 9, 30, tzinfo=BRUSSELS)
    items = [
        event("b", "evt-99@eccp.eu", "Webinar: internationalisation", start),
        event("a", "evt-99@eccp.eu", "Webinar on cluster internationalisation", start),
    ]
    assert summary(merge_events(items)) == [("a", "evt-99@eccp.eu", ("b",))]


def test_recurring_series_merge_only_with_same_rule_and_first_start() -> None:
    start = datetime(2026, 1, 7, 16, 0, tzinfo=BRUSSELS)
    items = [
        event("a", "1", "Cluster Coffee", start, rrule="FREQ=WEEKLY;COUNT=10"),
        event("b", "2", "Cluster coffee", start, rrule="FREQ=WEEKLY;COUNT=10"),
        event("c", "3", "Cluster Coffee", start, rrule="FREQ=MONTHLY;COUNT=10"),
        event("d", "4", "Cluster Coffee", start),
    ]
    assert summary(merge_events(items)) == [("a", "1", ("b",)), ("c", "3", ()), ("d", "4", ())]


def test_event_kept_copy_is_the_first_stored() -> None:
    start = datetime(2026, 3, 12, 10, 0, tzinfo=BRUSSELS)
    items = [
        event("a", "1", "Expo", start, first_seen=SEEN + timedelta(days=2)),
        event("b", "2", "Expo", start, first_seen=SEEN),
    ]
    merged = merge_events(items)
    assert summary(merged) == [("b", "2", ("a",))]
    assert merged[0].sequence == 0
    assert merged[0].record.start == start
