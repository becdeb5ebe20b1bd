"""De-duplication keys stored with each record: what is stored, read back, filled in after an upgrade."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, text

from aggregator.dedupe import merge_events, merge_news
from aggregator.matching import RULES, MatchKeys, match_keys, title_key
from aggregator.records import EventRecord, NewsRecord
from aggregator.store import SqlStore, open_store
from aggregator.store.sqlalchemy_store import MIGRATIONS, _engine_url

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
PUBLISHED = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LINK = "https://www.clusterland.at/en/news/hydrogen-test-bed"


def _news(source: str, id: str, title: str, link: str | None, summary: str = "") -> NewsRecord:
    return NewsRecord(id=id, source=source, title=title, link=link, summary=summary, published=PUBLISHED)


PLAIN = _news("clusterland", "hydrogen", "Hydrogen test bed opens in Linz", LINK)
REPOST = _news("eccp", "repost", "Hydrogen test bed opens in Linz!", LINK + "?utm_source=newsletter#top", "Re-posted.")
NO_LINK = _news("eccp", "no-link", "Call for pilots – deadline extended", None)
UNUSABLE = _news("eccp", "mail", "Write to the cluster manager", "mailto:office@clusterland.at")
EVENT = EventRecord(
    uid="b2b-hydrogen@clusterland.at",
    source="clusterland",
    title="B2B Meetings: Hydrogen",
    start=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
    link="https://www.clusterland.at/en/events/b2b-hydrogen/",
)


def _columns(store_url: str) -> dict[str, tuple[int | None, str | None, int | None]]:
    engine = create_engine(_engine_url(store_url))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, match_rules, match_link, match_title FROM records")).all()
    engine.dispose()
    return {row.key: (row.match_rules, row.match_link, row.match_title) for row in rows}


def _execute(store_url: str, *statements: str) -> None:
    engine = create_engine(_engine_url(store_url))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def _save_all(store: SqlStore) -> int:
    """What a publish does for rows read without keys: compute and save them."""
    news = store.news()
    events = store.events(since=NOW)
    return store.save_match_keys(
        [(n, match_keys(n.record.link, n.record.title)) for n in news]
        + [(e, match_keys(e.record.link, e.record.title)) for e in events]
    )


def test_rows_are_stored_without_keys_and_keep_the_keys_saved_for_them(store: SqlStore, store_url: str) -> None:
    store.upsert("clusterland", [PLAIN, EVENT], now=NOW)
    store.upsert("eccp", [REPOST, NO_LINK, UNUSABLE], now=NOW)
    assert set(_columns(store_url).values()) == {(None, None, None)}  # storing computes nothing
    generation = store.generation()

    assert _save_all(store) == 5

    columns = _columns(store_url)
    assert columns == {
        "hydrogen": (RULES, None, title_key(PLAIN.title)),
        "repost": (RULES, LINK, title_key(REPOST.title)),  # tracking parameters and fragment removed
        "no-link": (RULES, None, title_key(NO_LINK.title)),
        "mail": (RULES, "", title_key(UNUSABLE.title)),  # a link, but none a story can be matched by
        "b2b-hydrogen@clusterland.at": (RULES, None, title_key(EVENT.title)),
    }
    # Punctuation and case do not count: the re-post's title has the same key.
    assert columns["hydrogen"][2] == columns["repost"][2] != 0
    assert store.generation() == generation  # keys change no output: nothing to republish


def test_read_records_carry_exactly_the_keys_de_duplication_would_compute(store: SqlStore) -> None:
    store.upsert("clusterland", [PLAIN, EVENT], now=NOW)
    store.upsert("eccp", [REPOST, NO_LINK, UNUSABLE], now=NOW)
    assert [n.match for n in store.news()] == [None] * 4
    _save_all(store)

    news = {n.record.id: n for n in store.news()}
    events = store.events(since=NOW)

    for item in news.values():
        assert item.match == match_keys(item.record.link, item.record.title)
    for event in events:
        assert event.match == match_keys(event.record.link, event.record.title)
    hydrogen = news["hydrogen"].match
    assert hydrogen is not None
    assert hydrogen.canonical is news["hydrogen"].record.link  # one string in memory, not two
    assert news["repost"].match == MatchKeys(LINK, title_key(REPOST.title))
    assert news["no-link"].match == MatchKeys(None, title_key(NO_LINK.title))
    assert news["mail"].match == MatchKeys(None, title_key(UNUSABLE.title))
    # The merge with the stored keys is the merge with computed ones: the re-post joins the original.
    merged = merge_news(list(news.values()))
    assert merged == merge_news([dataclasses.replace(n, match=None) for n in news.values()])
    assert [(n.record.id, n.record.also_from) for n in merged if n.record.id == "hydrogen"] == [("hydrogen", ("eccp",))]
    assert len(merged) == 3
    assert merge_events(events) == merge_events([dataclasses.replace(e, match=None) for e in events])


def test_a_changed_record_loses_its_keys_and_keys_computed_before_the_change_are_not_saved(
    store: SqlStore, store_url: str
) -> None:
    store.upsert("clusterland", [PLAIN], now=NOW)
    before = store.news()[0]
    _save_all(store)
    renamed = dataclasses.replace(PLAIN, title="Linz opens a hydrogen test bed", link=LINK + "?utm_medium=rss")

    assert store.upsert("clusterland", [renamed], now=NOW).updated == 1
    assert _columns(store_url)["hydrogen"] == (None, None, None)
    # A publish that read the old version saves its keys late: the row's new content keeps none.
    assert store.save_match_keys([(before, match_keys(PLAIN.link, PLAIN.title))]) == 0
    assert _columns(store_url)["hydrogen"] == (None, None, None)

    assert _save_all(store) == 1
    assert _columns(store_url)["hydrogen"] == (RULES, LINK, title_key("Linz opens a hydrogen test bed"))
    assert store.news()[0].match == MatchKeys(LINK, title_key(renamed.title))


def test_an_upgraded_database_reads_its_rows_without_keys(store_url: str) -> None:
    """Schema 0003 had no key columns: downgrade a filled database and open it again."""
    first = open_store(store_url)
    first.upsert("clusterland", [PLAIN, EVENT], now=NOW)
    first.upsert("eccp", [REPOST, NO_LINK, UNUSABLE], now=NOW)
    _save_all(first)
    first.close()
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(_engine_url(store_url))
    with engine.begin() as conn:
        alembic.attributes["connection"] = conn
        command.downgrade(alembic, "0003")
    engine.dispose()

    reopened = open_store(store_url)
    try:
        assert [n.match for n in reopened.news()] == [None] * 4
        assert _save_all(reopened) == 5
        news = reopened.news()
    finally:
        reopened.close()

    assert [(n.record.id, n.match) for n in news] == [
        (n.record.id, match_keys(n.record.link, n.record.title)) for n in news
    ]


def test_keys_stored_under_other_rules_are_not_used(store_url: str) -> None:
    """A row written by another version of the rules (say, a worker not yet upgraded) is read without keys."""
    store = open_store(store_url)
    try:
        store.upsert("clusterland", [PLAIN], now=NOW)
        store.upsert("eccp", [REPOST], now=NOW)
        _save_all(store)
        _execute(store_url, f"UPDATE records SET match_rules = {RULES + 1}, match_title = 7 WHERE key = 'repost'")
        news = {n.record.id: n for n in store.news()}
    finally:
        store.close()

    assert news["repost"].match is None
    assert news["hydrogen"].match == MatchKeys(LINK, title_key(PLAIN.title))
    # De-duplication computes the keys the row lacks: the re-post still joins the original.
    assert [(n.record.id, n.record.also_from) for n in merge_news(list(news.values()))] == [("hydrogen", ("eccp",))]
