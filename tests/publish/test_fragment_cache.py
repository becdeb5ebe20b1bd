"""The fragment cache: a publish after a change renders only the changed items, and the bytes never differ.

Every test publishes from a real SQLite store into real files and compares the files
byte for byte with a publish that rendered everything (cold cache, or no cache at all).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.config import Config
from aggregator.fragments import CACHE_FILE, FragmentCache
from aggregator.matching import match_keys
from aggregator.publish import PublishReport
from aggregator.records import NewsRecord
from aggregator.runtime import publish_from_store
from aggregator.store.sqlalchemy_store import SqlStore

from .conftest import ALPHA, BASE, BETA, GAMMA, NOW, cluster_news, make_config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """One publishing process: the counts below are one process's (two processes may both make a key)."""
    single = make_config(tmp_path, ALPHA, BETA, GAMMA)
    return dataclasses.replace(single, defaults=dataclasses.replace(single.defaults, publish_processes=1))


def _files(feeds_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in sorted(feeds_dir.rglob("*")) if p.is_file()}


def _forced(config: Config, store: SqlStore, feeds_dir: Path) -> tuple[PublishReport, dict[str, bytes]]:
    """Publish into an empty ``feeds_dir`` (nothing to skip), as after ``rm -r feeds``."""
    shutil.rmtree(feeds_dir, ignore_errors=True)
    for name in ("publish-state.json", "publish-token.json"):
        (config.data_dir / name).unlink(missing_ok=True)
    moved = dataclasses.replace(config, feeds_dir=feeds_dir)
    report = publish_from_store(moved, store, now=NOW, base_url=BASE)
    return report, _files(feeds_dir)


def _rows(config: Config) -> dict[str, int]:
    with sqlite3.connect(config.data_dir / CACHE_FILE) as connection:
        return dict(connection.execute("SELECT kind, count(*) FROM fragment GROUP BY kind").fetchall())


def _syndicated(store: SqlStore) -> None:
    """beta re-posts alpha's newest story (same link): the merged feed keeps one copy 'also from' beta."""
    original = next(n.record for n in cluster_news() if n.record.id == "hydrogen-test-bed")
    copy = dataclasses.replace(original, source="beta", id="repost-hydrogen", tags=())
    assert store.upsert("beta", [copy], now=NOW - timedelta(days=1)).new == 1


def test_a_forced_publish_with_a_warm_cache_renders_nothing_and_writes_the_same_bytes(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    _syndicated(store)
    cold, cold_files = _forced(config, store, tmp_path / "cold")
    warm, warm_files = _forced(config, store, tmp_path / "warm")

    assert (cold.fragments_reused, cold.fragments_rendered) == (0, 27)
    assert (warm.fragments_reused, warm.fragments_rendered) == (27, 0)
    # One row per fragment made: RSS, Atom and JSON Feed of the 5 stored news plus the merged
    # feed's copy "also from beta"; 9 VEVENTs. (De-duplication keys are stored with the records.)
    assert _rows(config) == {"atom": 6, "json": 6, "rss": 6, "vevent": 9}
    with sqlite3.connect(config.data_dir / CACHE_FILE) as connection:
        assert connection.execute("SELECT count(*) - count(DISTINCT key) FROM fragment").fetchone() == (0,)
    assert len(cold_files) == 30
    assert warm_files == cold_files
    merged = warm_files["news.xml"].decode()
    assert merged.count("Grazer Cluster eröffnet Wasserstoff-Testfeld") == 1
    assert '<category domain="source">beta</category>' in merged


def test_a_changed_record_renders_only_its_own_fragments_and_replaces_the_old_ones(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    _forced(config, store, tmp_path / "first")
    rows = _rows(config)
    report_record = next(n.record for n in cluster_news() if n.record.id == "pilots-call")
    changed = dataclasses.replace(report_record, title="Call for cross-border pilots – deadline extended to May")
    assert store.upsert("beta", [changed], now=NOW).updated == 1

    after, files = _forced(config, store, tmp_path / "after")
    uncached = dataclasses.replace(config, data_dir=tmp_path / "elsewhere")
    shutil.copytree(config.data_dir, uncached.data_dir, ignore=shutil.ignore_patterns(CACHE_FILE + "*"))
    reference, reference_files = _forced(uncached, store, tmp_path / "reference")

    # RSS, Atom and JSON Feed of the one changed item.
    assert after.fragments_rendered == 3
    assert after.fragments_reused == reference.fragments_rendered - 3
    assert _rows(config) == rows  # the old version's fragments were deleted, not kept beside the new
    assert files == reference_files
    assert "deadline extended to May" in files["sources/beta.json"].decode()


def test_an_updated_timestamp_alone_changes_nothing_that_the_cache_serves(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    """``updated`` is not part of the content digest: the store keeps the row, so the fragment stays right."""
    _, before = _forced(config, store, tmp_path / "first")
    record = next(n.record for n in cluster_news() if n.record.id == "hydrogen-test-bed")
    restamped: NewsRecord = dataclasses.replace(record, updated=datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert store.upsert("alpha", [restamped], now=NOW).unchanged == 1

    report, after = _forced(config, store, tmp_path / "second")

    assert report.fragments_rendered == 0
    assert after == before


def test_a_damaged_cache_file_is_made_anew_and_the_output_is_unchanged(
    config: Config, store: SqlStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, good = _forced(config, store, tmp_path / "good")
    (config.data_dir / CACHE_FILE).write_bytes(b"this is not an SQLite database, it was overwritten" * 100)
    for suffix in ("-wal", "-shm"):
        (config.data_dir / (CACHE_FILE + suffix)).unlink(missing_ok=True)

    with caplog.at_level(logging.WARNING, logger="aggregator.publish"):
        report, files = _forced(config, store, tmp_path / "after")

    assert files == good
    assert report.fragments_reused == 0
    assert any(
        r.getMessage().startswith(f"render cache {config.data_dir / CACHE_FILE} unreadable (file is not a database)")
        for r in caplog.records
    )
    again, _ = _forced(config, store, tmp_path / "again")
    assert (again.fragments_reused, again.fragments_rendered) == (report.fragments_rendered, 0)


def test_a_cache_that_cannot_be_opened_costs_speed_not_output(
    config: Config, store: SqlStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, good = _forced(config, store, tmp_path / "good")
    for suffix in ("", "-wal", "-shm"):
        (config.data_dir / (CACHE_FILE + suffix)).unlink(missing_ok=True)
    (config.data_dir / CACHE_FILE).mkdir()  # a directory where the file should be

    with caplog.at_level(logging.WARNING, logger="aggregator.publish"):
        report, files = _forced(config, store, tmp_path / "after")

    assert files == good
    assert (report.fragments_reused, report.fragments_rendered) == (0, 21)
    assert [r.getMessage() for r in caplog.records if "switched off" in r.getMessage()] == [
        f"render cache {config.data_dir / CACHE_FILE} switched off for this publish: unable to open database file"
    ]


def test_fragments_of_a_removed_source_are_deleted_when_everything_is_published_again(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    _forced(config, store, tmp_path / "three")
    with_gamma = _rows(config)
    without_gamma = dataclasses.replace(config, sources=tuple(s for s in config.sources if s.name != "gamma"))

    report = publish_from_store(without_gamma, store, now=NOW, base_url=BASE)

    assert report.rendered == ("news", "sources/alpha", "sources/beta", "tags/energy", "tags/hydrogen")
    assert report.fragments_rendered == 0
    # gamma's news item (RSS, Atom, JSON Feed) and its 4 events' VEVENTs are gone.
    assert with_gamma == {"atom": 4, "json": 4, "rss": 4, "vevent": 9}
    assert _rows(config) == {"atom": 3, "json": 3, "rss": 3, "vevent": 5}


def test_a_publish_saves_the_de_duplication_keys_of_rows_read_without_them(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    """Keys are computed by the first publish after a record is stored, and read by every later one."""
    _syndicated(store)
    assert {n.match for n in store.news()} == {None}

    first, first_files = _forced(config, store, tmp_path / "first")

    news = store.news()
    assert len(news) == 5
    assert [n.match for n in news] == [match_keys(n.record.link, n.record.title) for n in news]
    events = store.events(since=NOW - timedelta(days=config.defaults.past_days))  # what a publish reads
    assert len(events) == 9
    assert [e.match for e in events] == [match_keys(e.record.link, e.record.title) for e in events]
    # Merging with the keys read from the rows gives the same files, beta's re-post still folded in.
    second, second_files = _forced(config, store, tmp_path / "second")
    assert second_files == first_files
    assert second_files["news.xml"].decode().count("Grazer Cluster eröffnet Wasserstoff-Testfeld") == 1
    assert sorted(second.written) == sorted(first.written)


def test_kept_item_digests_are_made_once_per_item_and_hold_what_the_item_is_shown_with(
    store: SqlStore, tmp_path: Path
) -> None:
    """An item's digest is kept per item object while the block lasts, and differs with ``also_from``."""
    first, second = store.news()[:2]
    shown_with_another_source = dataclasses.replace(
        first, record=dataclasses.replace(first.record, also_from=("beta",))
    )
    fresh = FragmentCache(tmp_path / CACHE_FILE)  # digests made each time
    kept = FragmentCache(tmp_path / CACHE_FILE, keep_digests=True)

    digest = kept.item_digest(first)

    assert kept.item_digest(first) is digest  # the same object: not made again
    assert digest == fresh.item_digest(first)  # the same bytes as made afresh
    assert fresh.item_digest(first) is not fresh.item_digest(first)
    assert len(digest) == 28
    assert kept.item_digest(second) != digest
    assert kept.item_digest(shown_with_another_source)[:20] != digest[:20]  # the key part differs
    assert kept.item_digest(shown_with_another_source)[20:] == digest[20:]  # the item's id does not
    kept.forget_digests()
    assert kept.item_digest(first) is not digest
    assert kept.item_digest(first) == digest
    kept.close()
    fresh.close()
