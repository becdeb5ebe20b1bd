"""The Store contract, run against SQLite and PostgreSQL alike (fixture ``store``)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from aggregator.errors import StoreError
from aggregator.records import EventRecord, EventStatus, NewsRecord, SourceState, Strategy, Validators
from aggregator.store import SqlStore, UpsertSummary, open_store
from aggregator.store.sqlalchemy_store import _engine_url

VIENNA = ZoneInfo("Europe/Vienna")
BRUSSELS = ZoneInfo("Europe/Brussels")
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def news(ident: str, title: str, published: datetime | None, *, source: str = "silicon-saxony", tags=()) -> NewsRecord:  # type: ignore[no-untyped-def]
    return NewsRecord(
        id=ident,
        source=source,
        title=title,
        link=f"https://www.silicon-saxony.de/news/{ident}",
        summary=f"<p>{title}</p>",
        published=published,
        tags=tuple(tags),
    )


def event(uid: str, title: str, start, end=None, *, source: str = "plastics-cluster", **more) -> EventRecord:  # type: ignore[no-untyped-def]
    return EventRecord(
        uid=uid,
        source=source,
        title=title,
        start=start,
        end=end,
        timezone=getattr(start.tzinfo, "key", "UTC") if isinstance(start, datetime) else None,
        **more,
    )


KUNSTSTOFF = event(
    "kt-2026@kunststoff-cluster.at",
    "Kunststoff-Forum 2026",
    datetime(2026, 12, 3, 9, 0, tzinfo=VIENNA),
    datetime(2026, 12, 3, 17, 30, tzinfo=VIENNA),
    location="Linz, Design Center",
    tags=("Kunststoff", "Circular Economy"),
)
MATCHMAKING = news(
    "eu-japan-matchmaking",
    'Report on the "EU-Japan Cluster Matchmaking Event"',
    datetime(2026, 11, 20, 14, 15, tzinfo=BRUSSELS),
    tags=("Internationalisation", "Healthcare"),
)
CLUSTER_DAYS = news(
    "cluster-days-2026",
    "European Cluster Days: Clusters as the Driving Power of the European Economy",
    datetime(2026, 11, 24, 9, 0, tzinfo=BRUSSELS),
    tags=("Events",),
)


# -- upsert ----------------------------------------------------------------------------------


def test_first_upsert_reports_every_record_new(store: SqlStore) -> None:
    assert store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS], now=NOW) == UpsertSummary(new=2)
    assert store.upsert("plastics-cluster", [KUNSTSTOFF], now=NOW) == UpsertSummary(new=1)
    assert [n.record for n in store.news()] == [CLUSTER_DAYS, MATCHMAKING]
    assert [e.record for e in store.events(since=NOW)] == [KUNSTSTOFF]


def test_identical_upsert_is_unchanged_and_writes_nothing(store: SqlStore) -> None:
    store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS], now=NOW)
    generation = store.generation()

    assert store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS], now=LATER) == UpsertSummary(unchanged=2)

    assert store.generation() == generation
    assert [(n.first_seen, n.changed_at) for n in store.news()] == [(NOW, NOW), (NOW, NOW)]


def test_changed_news_updates_payload_and_changed_at_but_keeps_first_seen(store: SqlStore) -> None:
    store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS], now=NOW)
    retitled = dataclasses.replace(CLUSTER_DAYS, title="European Cluster Days 2026: programme online")

    assert store.upsert("silicon-saxony", [MATCHMAKING, retitled], now=LATER) == UpsertSummary(updated=1, unchanged=1)

    stored = store.news()
    assert [n.record.title for n in stored] == [
        "European Cluster Days 2026: programme online",
        'Report on the "EU-Japan Cluster Matchmaking Event"',
    ]
    assert [(n.first_seen, n.changed_at) for n in stored] == [(NOW, LATER), (NOW, NOW)]


def test_event_sequence_rises_only_when_content_changes(store: SqlStore) -> None:
    store.upsert("plastics-cluster", [KUNSTSTOFF], now=NOW)
    moved = dataclasses.replace(KUNSTSTOFF, location="Wels, Messezentrum")
    cancelled = dataclasses.replace(moved, status=EventStatus.CANCELLED)

    store.upsert("plastics-cluster", [KUNSTSTOFF], now=NOW + timedelta(minutes=30))
    first = store.events(since=NOW)[0]
    store.upsert("plastics-cluster", [moved], now=LATER)
    second = store.events(since=NOW)[0]
    store.upsert("plastics-cluster", [moved], now=LATER + timedelta(hours=1))
    store.upsert("plastics-cluster", [cancelled], now=LATER + timedelta(hours=2))
    third = store.events(since=NOW)[0]

    assert (first.sequence, second.sequence, third.sequence) == (0, 1, 2)
    assert (second.record.location, third.record.status) == ("Wels, Messezentrum", EventStatus.CANCELLED)
    assert (third.first_seen, third.changed_at) == (NOW, LATER + timedelta(hours=2))


def test_event_sequence_never_falls_below_the_source_sequence(store: SqlStore) -> None:
    store.upsert("plastics-cluster", [dataclasses.replace(KUNSTSTOFF, sequence=3)], now=NOW)
    assert store.events(since=NOW)[0].sequence == 3
    store.upsert("plastics-cluster", [dataclasses.replace(KUNSTSTOFF, sequence=3, title="Forum")], now=LATER)
    assert store.events(since=NOW)[0].sequence == 4
    store.upsert("plastics-cluster", [dataclasses.replace(KUNSTSTOFF, sequence=9, title="Forum!")], now=LATER)
    assert store.events(since=NOW)[0].sequence == 9


def test_restamped_last_modified_alone_counts_as_unchanged(store: SqlStore) -> None:
    store.upsert("plastics-cluster", [dataclasses.replace(KUNSTSTOFF, last_modified=NOW)], now=NOW)
    restamped = dataclasses.replace(KUNSTSTOFF, last_modified=LATER)

    assert store.upsert("plastics-cluster", [restamped], now=LATER) == UpsertSummary(unchanged=1)
    assert store.events(since=NOW)[0].sequence == 0


def test_generation_rises_once_per_upsert_that_changes_something(store: SqlStore) -> None:
    assert store.generation() == 0
    store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS], now=NOW)
    assert store.generation() == 1
    store.upsert("silicon-saxony", [MATCHMAKING], now=LATER)
    assert store.generation() == 1
    store.upsert("silicon-saxony", [dataclasses.replace(MATCHMAKING, summary="<p>Updated</p>")], now=LATER)
    assert store.generation() == 2
    store.upsert("silicon-saxony", [], now=LATER)
    assert store.generation() == 2


def test_upsert_never_deletes_records_missing_from_a_later_fetch(store: SqlStore) -> None:
    store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS], now=NOW)
    assert store.upsert("silicon-saxony", [CLUSTER_DAYS], now=LATER) == UpsertSummary(unchanged=1)
    assert [n.record.id for n in store.news()] == ["cluster-days-2026", "eu-japan-matchmaking"]


def test_key_repeated_within_one_upsert_is_stored_once_from_its_first_occurrence(store: SqlStore) -> None:
    duplicate = dataclasses.replace(MATCHMAKING, title="Second copy of the same guid")
    assert store.upsert("silicon-saxony", [MATCHMAKING, duplicate], now=NOW) == UpsertSummary(new=1)
    assert [n.record.title for n in store.news()] == ['Report on the "EU-Japan Cluster Matchmaking Event"']


def test_news_and_event_sharing_a_key_are_kept_apart(store: SqlStore) -> None:
    page = "https://www.clusterland.at/veranstaltungen/cluster-academy"
    announcement = news(page, "Cluster Academy: registration open", NOW, source="clusterland")
    academy = event(page, "Cluster Academy", datetime(2027, 1, 14, 9, 0, tzinfo=VIENNA), source="clusterland")

    assert store.upsert("clusterland", [announcement, academy], now=NOW) == UpsertSummary(new=2)
    assert [n.record for n in store.news()] == [announcement]
    assert [e.record for e in store.events(since=NOW)] == [academy]


def test_upsert_refuses_a_record_of_another_source(store: SqlStore) -> None:
    with pytest.raises(StoreError) as caught:
        store.upsert("plastics-cluster", [MATCHMAKING], now=NOW)
    assert str(caught.value) == (
        "record 'eu-japan-matchmaking' belongs to source 'silicon-saxony', not 'plastics-cluster'"
    )


def test_upsert_refuses_a_naive_now(store: SqlStore) -> None:
    with pytest.raises(StoreError) as caught:
        store.upsert("silicon-saxony", [MATCHMAKING], now=datetime(2026, 11, 26, 9, 0))
    assert str(caught.value) == "upsert needs an aware 'now'"
    assert store.news() == []


def test_stored_records_round_trip_zones_dates_and_recurrence(store: SqlStore) -> None:
    weekly = event(
        "jour-fixe@silicon-saxony.de",
        "Jour fixe Halbleiter",
        datetime(2026, 3, 5, 16, 0, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(2026, 3, 5, 17, 0, tzinfo=ZoneInfo("Europe/Berlin")),
        source="silicon-saxony",
        rrule="FREQ=WEEKLY;BYDAY=TH",
        exdates=(datetime(2026, 4, 2, 16, 0, tzinfo=ZoneInfo("Europe/Berlin")),),
        last_modified=datetime(2026, 2, 1, 12, 0, tzinfo=UTC),
        strategy=Strategy.ICAL,
    )
    override = dataclasses.replace(
        weekly,
        rrule=None,
        exdates=(),
        recurrence_id=datetime(2026, 3, 12, 16, 0, tzinfo=ZoneInfo("Europe/Berlin")),
        location="Dresden, Haus der Presse",
    )
    all_day = event(
        "cluster-excellence-day@eccp",
        "Cluster Excellence Day",
        date(2026, 12, 10),
        date(2026, 12, 11),
        source="silicon-saxony",
        strategy=Strategy.JSON_LD,
    )
    store.upsert("silicon-saxony", [weekly, override, all_day], now=NOW)

    stored = {e.record.key: e.record for e in store.events(since=datetime(2026, 1, 1, tzinfo=UTC))}

    assert stored == {
        "jour-fixe@silicon-saxony.de": weekly,
        "jour-fixe@silicon-saxony.de#2026-03-12T16:00:00+01:00": override,
        "cluster-excellence-day@eccp": all_day,
    }
    assert stored["jour-fixe@silicon-saxony.de"].start.tzinfo is ZoneInfo("Europe/Berlin")  # type: ignore[union-attr]
    assert type(stored["cluster-excellence-day@eccp"].start) is date


# -- queries ---------------------------------------------------------------------------------


def test_news_is_newest_first_by_published_else_first_seen_and_limited(store: SqlStore) -> None:
    undated = news("call-for-experts", "Call for experts: cluster internationalisation", None)
    store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS, undated], now=datetime(2026, 11, 22, 7, 0, tzinfo=UTC))

    assert [n.record.id for n in store.news()] == ["cluster-days-2026", "call-for-experts", "eu-japan-matchmaking"]
    assert [n.record.id for n in store.news(limit=2)] == ["cluster-days-2026", "call-for-experts"]
    assert store.news(limit=0) == []


def test_news_filters_by_source_and_by_tag_ignoring_case(store: SqlStore) -> None:
    other = news("tp-2026", "Textile2020 partnership meeting", NOW, source="euratex", tags=("Internationalisation",))
    store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS], now=NOW)
    store.upsert("euratex", [other], now=NOW)

    assert [n.record.id for n in store.news(tag="internationalisation")] == ["tp-2026", "eu-japan-matchmaking"]
    assert [n.record.id for n in store.news(tag="INTERNATIONALISATION", source="euratex")] == ["tp-2026"]
    assert [n.record.id for n in store.news(source="silicon-saxony")] == ["cluster-days-2026", "eu-japan-matchmaking"]
    assert store.news(tag="Aerospace") == []


def test_news_per_source_keeps_each_sources_newest_with_ties_by_key(store: SqlStore) -> None:
    day = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    saxony = [news(f"sx-{n}", f"Saxony {n}", day + timedelta(days=n)) for n in range(5)]
    # Two of the same moment: the smaller key counts as the newer, as in the published order.
    tied = [news("b-tie", "Tie b", day + timedelta(days=3), source="biopro"), news("a-tie", "Tie a", day + timedelta(days=3), source="biopro")]  # fmt: skip
    undated = news("bp-undated", "Undated: first seen counts", None, source="biopro")
    store.upsert("silicon-saxony", saxony, now=NOW)
    store.upsert("biopro", [*tied, undated, news("bp-old", "Old", day, source="biopro")], now=NOW)

    newest_two = store.news(per_source=2)

    assert [(n.record.source, n.record.id) for n in newest_two] == [
        ("biopro", "bp-undated"),  # first seen on 26 November
        ("silicon-saxony", "sx-4"),
        ("biopro", "a-tie"),  # the same moment as sx-3: by source, then key
        ("silicon-saxony", "sx-3"),
    ]
    assert store.news(per_source=2, known=_by_key(store.news())) == newest_two
    assert store.news(per_source=2, known={}) == newest_two
    assert [n.record.id for n in store.news(per_source=1, source="silicon-saxony")] == ["sx-4"]
    # Enough for every source: all of them, as without the argument.
    assert store.news(per_source=5) == store.news()
    assert len(store.news(per_source=5)) == 9


def test_a_group_of_sources_is_read_source_by_source_each_newest_first(store: SqlStore) -> None:
    """What a publish that reads a group of sources at a time asks for (``sources``, ``stream_news``)."""
    day = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    store.upsert("silicon-saxony", [news(f"sx-{n}", f"Saxony {n}", day + timedelta(days=n)) for n in range(4)], now=NOW)
    tied = [news("b-tie", "Tie b", day + timedelta(days=3), source="biopro"), news("a-tie", "Tie a", day + timedelta(days=3), source="biopro")]  # fmt: skip
    store.upsert("biopro", [*tied, news("bp-old", "Old", day, source="biopro")], now=NOW)
    store.upsert("euratex", [news("tp-2026", "Textile2020", day, source="euratex")], now=NOW)

    both = [(n.record.source, n.record.id) for n in store.news(sources=["silicon-saxony", "biopro"], per_source=2)]
    streamed = [
        (n.record.source, n.record.id) for n in store.stream_news(sources=["silicon-saxony", "biopro"], per_source=2)
    ]

    assert (
        both
        == streamed
        == [("biopro", "a-tie"), ("biopro", "b-tie"), ("silicon-saxony", "sx-3"), ("silicon-saxony", "sx-2")]
    )
    assert [n.record.id for n in store.stream_news(sources=["biopro"])] == ["a-tie", "b-tie", "bp-old"]
    assert store.count_news() == 8
    start = datetime(2026, 12, 1, 9, 0, tzinfo=VIENNA)
    store.upsert("biopro", [event("late@bio", "Late", start + timedelta(days=2), source="biopro"), event("early@bio", "Early", start, source="biopro")], now=NOW)  # fmt: skip
    store.upsert("euratex", [event("tex@euratex", "Textile day", start + timedelta(days=1), source="euratex")], now=NOW)
    since = datetime(2026, 11, 1, tzinfo=UTC)
    grouped = [(e.record.source, e.record.uid) for e in store.stream_events(since=since, sources=["euratex", "biopro"])]
    assert grouped == [("biopro", "early@bio"), ("biopro", "late@bio"), ("euratex", "tex@euratex")]
    assert store.events(since=since, sources=["euratex", "biopro"]) == list(
        store.stream_events(since=since, sources=["euratex", "biopro"])
    )


def test_a_read_shares_one_object_per_stored_time(store: SqlStore) -> None:
    """Records stored together share their first-sight and change times; a read keeps one object per value."""
    day = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    store.upsert("silicon-saxony", [news(f"sx-{n}", f"Saxony {n}", day + timedelta(days=n)) for n in range(3)], now=NOW)
    store.upsert("biopro", [news("bp-1", "BioPro", day, source="biopro")], now=LATER)

    read = store.news()

    assert [(n.record.id, n.first_seen, n.changed_at) for n in read] == [
        ("sx-2", NOW, NOW),
        ("sx-1", NOW, NOW),
        ("bp-1", LATER, LATER),
        ("sx-0", NOW, NOW),
    ]
    assert len({id(moment) for n in read for moment in (n.first_seen, n.changed_at)}) == 2
    store.upsert(
        "plastics-cluster", [event(f"ev-{n}", f"Event {n}", day + timedelta(days=n)) for n in range(2)], now=NOW
    )
    store.upsert("plastics-cluster", [event("ev-2", "Event 2", day)], now=LATER)
    events = store.events(since=day)
    assert [(e.record.uid, e.first_seen) for e in events] == [("ev-0", NOW), ("ev-2", LATER), ("ev-1", NOW)]
    assert len({id(moment) for e in events for moment in (e.first_seen, e.changed_at)}) == 2


def test_stored_times_read_back_as_the_same_instant_in_utc(store: SqlStore) -> None:
    """Times are read past the column type and converted once per value: exactly, to the microsecond, in UTC."""
    vienna = ZoneInfo("Europe/Vienna")
    first = datetime(2026, 3, 29, 1, 59, 59, 999_999, tzinfo=vienna)  # an hour before Vienna's clocks go forward
    second = datetime(2026, 10, 25, 2, 30, 0, 1, tzinfo=vienna, fold=1)  # the second 02:30 of the night they go back
    store.upsert("silicon-saxony", [news("sx-1", "Saxony", None)], now=first)
    store.upsert("silicon-saxony", [news("sx-1", "Saxony, changed", None)], now=second)
    store.upsert("plastics-cluster", [event("ev-1", "Event", NOW)], now=second)

    (item,) = store.news()
    (stored_event,) = store.events(since=NOW - timedelta(days=1))

    assert (item.first_seen.isoformat(), item.changed_at.isoformat()) == (
        "2026-03-29T00:59:59.999999+00:00",
        "2026-10-25T01:30:00.000001+00:00",
    )
    assert item.first_seen.tzinfo is UTC
    assert item.changed_at.tzinfo is UTC
    assert stored_event.first_seen is stored_event.changed_at  # one object per value within a read
    assert stored_event.first_seen.isoformat() == "2026-10-25T01:30:00.000001+00:00"


def test_changed_tags_replace_the_old_ones(store: SqlStore) -> None:
    store.upsert("silicon-saxony", [MATCHMAKING], now=NOW)
    store.upsert("silicon-saxony", [dataclasses.replace(MATCHMAKING, tags=("Life Sciences",))], now=LATER)

    assert store.news(tag="healthcare") == []
    assert [n.record.tags for n in store.news(tag="life sciences")] == [("Life Sciences",)]


def test_events_window_keeps_ongoing_open_ended_and_recurring_events(store: SqlStore) -> None:
    since = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    ended = event(
        "ended",
        "Cluster Conference 2026",
        datetime(2026, 10, 20, 9, 0, tzinfo=BRUSSELS),
        datetime(2026, 10, 21, 17, 0, tzinfo=BRUSSELS),
    )
    ongoing = event(
        "ongoing",
        "Train the Trainers module",
        datetime(2026, 10, 30, 9, 0, tzinfo=BRUSSELS),
        datetime(2026, 11, 2, 12, 0, tzinfo=BRUSSELS),
    )
    open_before = event("open-before", "Webinar (no end given)", datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    open_at = event("open-at", "Networking breakfast", datetime(2026, 11, 1, 0, 0, tzinfo=UTC))
    day_gone = event("day-gone", "Cluster Academy day 1", date(2026, 10, 30))
    day_ends_at_since = event("day-ends-at-since", "Cluster Academy day 2", date(2026, 10, 31))
    day_of = event("day-of", "Cluster Academy day 3", date(2026, 11, 1))
    weekly = event(
        "weekly",
        "Weekly jour fixe",
        datetime(2025, 1, 9, 16, 0, tzinfo=VIENNA),
        datetime(2025, 1, 9, 17, 0, tzinfo=VIENNA),
        rrule="FREQ=WEEKLY",
    )
    extra_dates = event("rdates", "Matchmaking days", date(2025, 3, 1), rdates=(date(2025, 9, 1),))
    future = KUNSTSTOFF
    store.upsert(
        "plastics-cluster",
        [ended, ongoing, open_before, open_at, day_gone, day_ends_at_since, day_of, weekly, extra_dates, future],
        now=NOW,
    )

    kept = [e.record.uid for e in store.events(since=since)]

    assert kept == [
        "weekly",
        "rdates",
        "ongoing",
        "day-ends-at-since",
        "day-of",
        "open-at",
        "kt-2026@kunststoff-cluster.at",
    ]


def test_an_upsert_larger_than_one_write_batch_stores_every_record_tag_and_sequence(store: SqlStore) -> None:
    """A big calendar is written a batch of rows at a time inside one transaction: nothing lost or doubled."""
    start = datetime(2026, 12, 1, 9, 0, tzinfo=VIENNA)
    series = [
        event(f"session-{i:04d}", f"Session {i}", start + timedelta(hours=i), tags=("Kunststoff", f"track {i % 3}"))
        for i in range(2_500)
    ]
    generation = store.generation()
    assert store.upsert("plastics-cluster", series, now=NOW) == UpsertSummary(new=2_500)
    assert store.generation() == generation + 1

    # 1,200 changed (titles), the rest as they were, 10 new: across three write batches again.
    changed = [dataclasses.replace(e, title=e.title + " (moved)") if i < 1_200 else e for i, e in enumerate(series)]
    more = [event(f"extra-{i}", f"Extra {i}", start - timedelta(days=1), tags=("Kunststoff",)) for i in range(10)]
    assert store.upsert("plastics-cluster", [*changed, *more], now=LATER) == UpsertSummary(
        new=10, updated=1_200, unchanged=1_300
    )
    assert store.generation() == generation + 2

    stored = {e.record.uid: e for e in store.events(since=NOW - timedelta(days=2))}
    assert len(stored) == 2_510
    assert stored["session-0000"].record.title == "Session 0 (moved)"
    assert stored["session-1199"].sequence == 1
    assert stored["session-1199"].changed_at == LATER
    assert stored["session-1200"].record.title == "Session 1200"
    assert stored["session-1200"].sequence == 0
    assert stored["session-2499"].changed_at == NOW
    assert len(store.events(since=NOW - timedelta(days=2), tag="kunststoff")) == 2_510
    assert len(store.events(since=NOW - timedelta(days=2), tag="track 1")) == 833  # i % 3 == 1 below 2,500
    assert store.events(since=NOW - timedelta(days=2), tag="track 1")[0].record.tags == ("Kunststoff", "track 1")


def test_events_filter_by_source_and_tag(store: SqlStore) -> None:
    saxony = event(
        "halbleiter",
        "Halbleiter-Tag",
        datetime(2026, 12, 8, 10, 0, tzinfo=BRUSSELS),
        source="silicon-saxony",
        tags=("Microelectronics",),
    )
    store.upsert("plastics-cluster", [KUNSTSTOFF], now=NOW)
    store.upsert("silicon-saxony", [saxony], now=NOW)

    assert [e.record.uid for e in store.events(since=NOW, tag="circular economy")] == ["kt-2026@kunststoff-cluster.at"]
    assert [e.record.uid for e in store.events(since=NOW, source="silicon-saxony")] == ["halbleiter"]
    assert store.events(since=NOW, source="silicon-saxony", tag="kunststoff") == []


def _by_key(items):  # type: ignore[no-untyped-def]
    return {(i.record.source, i.record.key): i for i in items}


def test_news_with_known_items_reuses_the_unchanged_and_reads_only_the_changed(store: SqlStore) -> None:
    store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS], now=NOW)
    earlier = store.news()
    retitled = dataclasses.replace(MATCHMAKING, title="EU-Japan matchmaking: the report")
    newcomer = news("hydrogen-valley", "Hydrogen Valley joins", datetime(2026, 11, 25, 8, 0, tzinfo=BRUSSELS))
    store.upsert("silicon-saxony", [retitled, CLUSTER_DAYS, newcomer], now=LATER)
    read_before = store.records_read

    again = store.news(known=_by_key(earlier))

    assert again == store.news()  # the same list, in the same order, as a full read
    assert [n.record.title for n in again] == [
        "Hydrogen Valley joins",
        "European Cluster Days: Clusters as the Driving Power of the European Economy",
        "EU-Japan matchmaking: the report",
    ]
    assert again[1] is earlier[0]  # unchanged: the very object read before, not decoded again
    assert (again[2].changed_at, again[2].first_seen) == (LATER, NOW)
    assert store.records_read - read_before == 2 + 3  # the retitled and the new one, then the full read


def test_news_with_known_items_keeps_source_tag_and_limit(store: SqlStore) -> None:
    store.upsert("silicon-saxony", [MATCHMAKING, CLUSTER_DAYS], now=NOW)
    other = news("bio-day", "Biotech day", datetime(2026, 11, 25, 8, 0, tzinfo=UTC), source="biopro", tags=("Events",))
    store.upsert("biopro", [other], now=NOW)
    known = _by_key(store.news())

    assert store.news(known=known, tag="EVENTS") == store.news(tag="events")
    assert [n.record.id for n in store.news(known=known, source="biopro")] == ["bio-day"]
    assert [n.record.id for n in store.news(known=known, limit=2)] == ["bio-day", "cluster-days-2026"]
    assert store.news(known={}) == store.news()


def test_events_with_known_items_apply_the_window_of_the_new_read(store: SqlStore) -> None:
    early = event(
        "early", "Morning session", datetime(2026, 11, 26, 9, 0, tzinfo=UTC), datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    )
    store.upsert("plastics-cluster", [early, KUNSTSTOFF], now=NOW)
    known = _by_key(store.events(since=NOW))
    moved = dataclasses.replace(KUNSTSTOFF, location="Wels, Messe")
    store.upsert("plastics-cluster", [early, moved], now=LATER)
    since = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)  # the morning session has left the window

    again = store.events(since=since, known=known)

    assert again == store.events(since=since)
    assert [(e.record.uid, e.record.location, e.sequence) for e in again] == [
        ("kt-2026@kunststoff-cluster.at", "Wels, Messe", 1)
    ]


# -- source state ----------------------------------------------------------------------------


FULL_STATE = SourceState(
    name="silicon-saxony",
    validators=Validators(etag='W/"5f3a-1c9"', last_modified="Tue, 24 Nov 2026 09:00:00 GMT"),
    body_hash="9b74c9897bac770ffc029102a200c5de",
    last_attempt=datetime(2026, 11, 26, 9, 0, 5, 123456, tzinfo=BRUSSELS),
    last_success=datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
    last_error="HTTP 503 Service Unavailable",
    consecutive_failures=2,
    items=37,
    last_yield=12,
    next_run=datetime(2026, 11, 26, 8, 30, tzinfo=UTC),
    dormant=True,
    redirected_to="https://www.silicon-saxony.de/en/news/feed/",
    discovered_url="https://www.silicon-saxony.de/feed/",
)


def test_state_round_trips_every_field_with_times_in_utc(store: SqlStore) -> None:
    store.save_state(FULL_STATE)

    loaded = store.state("silicon-saxony")

    assert loaded == FULL_STATE
    assert loaded.last_attempt == datetime(2026, 11, 26, 8, 0, 5, 123456, tzinfo=UTC)
    assert loaded.last_attempt.tzinfo is UTC


def test_state_of_an_unknown_source_is_empty(store: SqlStore) -> None:
    assert store.state("eccp") == SourceState(name="eccp")
    assert store.states() == []


def test_save_state_replaces_the_previous_state(store: SqlStore) -> None:
    store.save_state(FULL_STATE)
    store.save_state(SourceState(name="eccp", items=4))
    recovered = SourceState(name="silicon-saxony", last_success=NOW, items=40)

    store.save_state(recovered)

    assert store.states() == [SourceState(name="eccp", items=4), recovered]


# -- opening ---------------------------------------------------------------------------------


def test_opening_an_existing_database_again_keeps_data_and_schema(store_url: str) -> None:
    first = open_store(store_url)
    first.upsert("silicon-saxony", [MATCHMAKING], now=NOW)
    first.close()

    second = open_store(store_url)
    try:
        assert [n.record for n in second.news()] == [MATCHMAKING]
        assert second.generation() == 1
    finally:
        second.close()
    engine = create_engine(_engine_url(store_url))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0004"]
    engine.dispose()


def test_unsupported_database_url_is_refused() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("mysql://feeds@db.example/clusterfeeds")
    assert str(caught.value) == (
        "unsupported database URL 'mysql://feeds@db.example/clusterfeeds': use sqlite:///PATH or postgresql://..."
    )


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("sqlite://")
    assert str(caught.value) == "an SQLite store needs a file: sqlite:///path/to/clusterfeeds.sqlite3"


# -- claims and locks ------------------------------------------------------------------------


def test_claim_due_leases_due_sources_until_released_or_expired(store: SqlStore) -> None:
    for name, next_run in [
        ("eccp", NOW - timedelta(minutes=5)),
        ("euratex", NOW + timedelta(minutes=5)),
        ("silicon-saxony", NOW - timedelta(hours=1)),
    ]:
        store.save_state(SourceState(name=name, next_run=next_run))
    store.ensure_states(["plastics-cluster", "eccp"])
    lease = timedelta(minutes=10)

    assert store.claim_due("worker-a", NOW, lease, 10) == ["plastics-cluster", "silicon-saxony", "eccp"]
    assert store.claim_due("worker-b", NOW, lease, 10) == []
    store.release("eccp", "worker-b")  # not its lease: no effect
    assert store.claim_due("worker-b", NOW, lease, 10) == []
    store.release("eccp", "worker-a")
    assert store.claim_due("worker-b", NOW, lease, 10) == ["eccp"]
    assert store.claim_due("worker-c", NOW + lease, lease, 2) == ["plastics-cluster", "silicon-saxony"]


def test_save_state_keeps_the_lease(store: SqlStore) -> None:
    store.save_state(SourceState(name="eccp"))
    assert store.claim_due("worker-a", NOW, timedelta(minutes=10), 5) == ["eccp"]

    store.save_state(SourceState(name="eccp", last_success=NOW, next_run=NOW))

    assert store.claim_due("worker-b", NOW, timedelta(minutes=10), 5) == []
    assert store.state("eccp") == SourceState(name="eccp", last_success=NOW, next_run=NOW)


def test_publish_lock_is_granted_to_a_single_holder(store: SqlStore) -> None:
    with store.publish_lock() as granted:
        assert granted is True
    with store.publish_lock() as granted_again:
        assert granted_again is True


def test_news_with_known_items_mostly_new_reads_everything_once(store: SqlStore) -> None:
    first = [news(f"n{i:04d}", f"Story {i}", NOW - timedelta(minutes=i)) for i in range(1200)]
    store.upsert("silicon-saxony", first[:100], now=NOW)
    known = _by_key(store.news())
    store.upsert("silicon-saxony", first, now=LATER)  # 1,100 new: more than a quarter
    read_before = store.records_read

    again = store.news(known=known)

    assert [n.record.id for n in again] == [r.id for r in first]
    assert store.records_read - read_before == 1200  # one ordered scan, the known ones decoded again too


def test_another_process_opens_the_same_store_from_its_location(store: SqlStore, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A big document's parser process stores its records itself (``Store.location``): the URL must
    reach the same database from anywhere, password and all, an SQLite path made absolute."""
    import subprocess
    import sys

    location = store.location()
    assert location is not None
    if store.dialect == "sqlite":
        assert location.startswith("sqlite:////")  # absolute
    monkeypatch.chdir(tmp_path)  # elsewhere
    script = (
        "import sys; from datetime import datetime, UTC\n"
        "from aggregator.records import NewsRecord\n"
        "from aggregator.store import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "record = NewsRecord(id='from-elsewhere', source='silicon-saxony', title='Written by another process',"
        " link='https://www.silicon-saxony.de/news/from-elsewhere')\n"
        "print(store.upsert('silicon-saxony', [record], now=datetime(2026, 11, 26, 9, 0, tzinfo=UTC)))\n"
        "store.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", script, location], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "UpsertSummary(new=1, updated=0, unchanged=0)"
    assert [(n.record.title, n.first_seen) for n in store.news(source="silicon-saxony")] == [
        ("Written by another process", datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    ]


def test_events_stream_in_the_order_they_are_read_counted_and_with_their_series(store: SqlStore) -> None:
    """What a publish past its memory budget reads (``stream_events``), one by one: the same as ``events``."""
    start = datetime(2026, 12, 1, 9, 0, tzinfo=VIENNA)
    series = event("jour-fixe@plastics", "Jour fixe", start, start + timedelta(hours=1), rrule="FREQ=WEEKLY")
    moved = event(
        "jour-fixe@plastics",
        "Jour fixe (moved)",
        start + timedelta(days=8),
        start + timedelta(days=8, hours=1),
        recurrence_id=start + timedelta(days=7),
    )
    old = event("summit-2024@plastics", "Summit 2024", datetime(2024, 5, 2, 9, 0, tzinfo=VIENNA))
    long_moved = event(  # an override two years old: read with its series, or the RRULE shows it unmoved
        "jour-fixe@plastics",
        "Jour fixe (moved long ago)",
        start - timedelta(days=700),
        start - timedelta(days=700, hours=-1),
        recurrence_id=start - timedelta(days=701),
    )
    stray = event(  # an old override whose series is not stored: not read
        "gone@plastics",
        "Gone",
        start - timedelta(days=700),
        recurrence_id=start - timedelta(days=701),
    )
    others = [
        event(f"e{n}@plastics", f"Workshop {n}", start - timedelta(hours=n), start - timedelta(hours=n - 1))
        for n in range(5)
    ]
    store.upsert("plastics-cluster", [series, moved, old, long_moved, stray, *others], now=NOW)
    chip_day = event("s@saxony", "Chip day", start, source="silicon-saxony")
    room = event("room#4@saxony", "Open day in room #4", start, source="silicon-saxony")  # a "#" not an override's
    store.upsert("silicon-saxony", [chip_day, room], now=NOW)
    since = datetime(2026, 11, 1, tzinfo=UTC)

    streamed = list(store.stream_events(since=since))
    assert streamed == store.events(since=since)
    assert [(e.record.source, e.record.key) for e in streamed][:3] == [
        ("plastics-cluster", "jour-fixe@plastics#2024-12-30T09:00:00+01:00"),  # moved long ago, kept
        ("plastics-cluster", "e4@plastics"),
        ("plastics-cluster", "e3@plastics"),
    ]
    assert store.count_events(since=since) == len(streamed) == 10
    assert store.recurring_series() == {("plastics-cluster", "jour-fixe@plastics")}
    # Every override, old or current, with or without its series; nothing else.
    assert [(r.source, r.uid, r.recurrence_id, r.title) for r in store.overrides()] == [
        ("plastics-cluster", "gone@plastics", start - timedelta(days=701), "Gone"),
        ("plastics-cluster", "jour-fixe@plastics", start - timedelta(days=701), "Jour fixe (moved long ago)"),
        ("plastics-cluster", "jour-fixe@plastics", start + timedelta(days=7), "Jour fixe (moved)"),
    ]
