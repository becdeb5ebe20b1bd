"""One publish's de-duplication memo: keys computed once per item, results exactly those without it."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.dedupe import dedupe_memo, merge_events, merge_news
from aggregator.matching import normalised_title
from aggregator.records import EventRecord, NewsRecord
from aggregator.store.base import StoredEvent, StoredNews

SEEN = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def news(source: str, id: str, title: str, link: str | None, summary: str = "") -> StoredNews:
    record = NewsRecord(id=id, source=source, title=title, link=link, summary=summary, published=DAY)
    return StoredNews(record=record, first_seen=SEEN, changed_at=SEEN)


def shape(items: list[StoredNews] | list[StoredEvent]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(item.record.source, item.record.key, item.record.also_from) for item in items]


# Two stories carried by three networks (one re-post with tracking parameters), one carried once.
HYDROGEN = [
    news(
        "silicon-alps", "h1", "Hydrogen Valley Styria opens test site", "https://silicon-alps.at/news/h2?utm_source=x"
    ),
    news("ecoplus", "h2", "Hydrogen Valley Styria opens test site", "https://silicon-alps.at/news/h2"),
    news("cleantech-bw", "h3", "Hydrogen valley Styria opens test site!", None, ""),
]
BATTERY = [
    news("cleantech-bw", "b1", "Battery recycling call: deadline 15 April", "https://cleantech-bw.de/call"),
    news("ecoplus", "b2", "Battery recycling call – deadline 15 April", "https://cleantech-bw.de/call#apply"),
]
SINGLE = [news("silicon-alps", "s1", "Cluster day Graz: programme online", "https://silicon-alps.at/news/day")]


def test_merges_inside_the_memo_equal_merges_without_it_for_the_whole_set_and_each_subset() -> None:
    everything = [*HYDROGEN, *BATTERY, *SINGLE]
    subsets = [everything, HYDROGEN[1:], [*BATTERY, *SINGLE], [HYDROGEN[0], BATTERY[1]]]
    plain = [shape(merge_news(subset)) for subset in subsets]
    with dedupe_memo():
        memoized = [shape(merge_news(subset)) for subset in subsets]
    assert memoized == plain
    # Equal times: a copy without tracking parameters, then the first source by name, is kept.
    assert plain[0] == [
        ("cleantech-bw", "h3", ("ecoplus", "silicon-alps")),
        ("cleantech-bw", "b1", ("ecoplus",)),
        ("silicon-alps", "s1", ()),
    ]
    assert plain[1] == [("cleantech-bw", "h3", ("ecoplus",))]


def test_the_same_kept_copy_with_the_same_other_sources_is_one_object_within_a_publish() -> None:
    with dedupe_memo():
        merged = merge_news([*HYDROGEN, *SINGLE])[0]
        per_tag = merge_news(HYDROGEN)[0]
        other_sources = merge_news(HYDROGEN[:2])[0]
    assert per_tag is merged
    assert (merged.record.also_from, other_sources.record.also_from) == (
        ("ecoplus", "silicon-alps"),
        ("silicon-alps",),
    )
    assert merge_news(HYDROGEN)[0] is not merge_news(HYDROGEN)[0]  # outside a publish nothing is kept


def test_event_merges_inside_the_memo_equal_merges_without_it() -> None:
    start = datetime(2026, 5, 12, 9, 0, tzinfo=UTC)
    items = [
        StoredEvent(
            record=EventRecord(uid=f"u{i}", source=source, title=title, start=start, link=link),
            sequence=0,
            first_seen=SEEN,
            changed_at=SEEN,
        )
        for i, (source, title, link) in enumerate(
            [
                ("silicon-alps", "Hydrogen Day 2026", "https://silicon-alps.at/events/h2-day"),
                ("ecoplus", "HYDROGEN DAY 2026", None),
                ("cleantech-bw", "Battery Forum", "https://silicon-alps.at/events/h2-day?utm_medium=mail"),
            ]
        )
    ]
    plain = shape(merge_events(items))
    with dedupe_memo():
        assert shape(merge_events(items)) == plain
        assert shape(merge_events(items[1:])) == shape(merge_events(list(items[1:])))
    # The re-post (tracking parameter) is not kept; of the others the first source by name is.
    assert plain == [("ecoplus", "u1", ("cleantech-bw", "silicon-alps"))]


def _reference_title(title: str) -> str:
    """The normalisation spelled out one character at a time (what the translate table must equal)."""
    kept = []
    for char in unicodedata.normalize("NFKC", title).casefold():
        category = unicodedata.category(char)
        if category[0] == "Z" or char.isspace():
            kept.append(" ")
        elif category[0] not in "PSC":
            kept.append(char)
    return " ".join("".join(kept).split())


def test_normalised_titles_of_cluster_headlines() -> None:
    titles = [
        "Straße der Innovation: Öko-Cluster\u00a0lädt ein!",
        "ﬁnal call — Horizon Europe ①",
        "Mid-term review\t(2026)\x1f",
        "Énergie & Climat 🚀 Occitanie",
    ]
    assert [normalised_title(t) for t in titles] == [
        "strasse der innovation ökocluster lädt ein",
        "final call horizon europe 1",
        "midterm review 2026",
        "énergie climat occitanie",
    ]
    assert [normalised_title(t) for t in titles] == [_reference_title(t) for t in titles]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_normalised_title_equals_the_character_by_character_rule(title: str) -> None:
    assert normalised_title(title) == _reference_title(title)
