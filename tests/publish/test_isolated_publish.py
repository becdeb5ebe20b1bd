"""The daemons publish in a short-lived child process: same files, same report, errors come back typed.

A standby child (``PublishStandby``) is started by the first change of a batch and reads the
store ahead; its publish must write exactly what a fresh publish writes.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.config import Config
from aggregator.errors import PublishError
from aggregator.records import NewsRecord
from aggregator.runtime import PublishStandby, publish_from_store
from aggregator.store.sqlalchemy_store import SqlStore

from .conftest import ALPHA, BASE, NOW, cluster_events, cluster_news, make_config


def _contents(feeds_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in sorted(feeds_dir.rglob("*")) if p.is_file()}


def test_a_publish_in_a_child_process_writes_the_same_bytes_as_one_in_process(config: Config, store: SqlStore) -> None:
    child = publish_from_store(config, store, now=NOW, base_url=BASE, isolated=True)
    from_child = _contents(config.feeds_dir)
    shutil.rmtree(config.feeds_dir)

    here = publish_from_store(config, store, now=NOW, base_url=BASE)

    assert (child.skipped, len(child.written), child.unchanged) == (False, 30, 0)
    assert child.written == here.written
    assert _contents(config.feeds_dir) == from_child
    assert {"news.xml", "events.ics"} <= from_child.keys()


def test_the_child_remembers_its_publish_so_the_next_unchanged_one_is_skipped(config: Config, store: SqlStore) -> None:
    publish_from_store(config, store, now=NOW, base_url=BASE, isolated=True)
    reads = store.records_read

    again = publish_from_store(config, store, now=NOW, base_url=BASE, isolated=True)

    assert (again.skipped, again.written, again.unchanged) == (True, (), 30)
    assert store.records_read == reads  # this process read nothing either


def test_a_publish_error_in_the_child_arrives_as_a_publish_error(config: Config, store: SqlStore) -> None:
    config.feeds_dir.parent.mkdir(parents=True, exist_ok=True)
    config.feeds_dir.write_text("a file where the feeds folder should be")

    with pytest.raises(PublishError) as raised:
        publish_from_store(config, store, now=NOW, base_url=BASE, isolated=True)

    assert raised.value.path.startswith(str(config.feeds_dir))


LATER = datetime(2026, 11, 26, 8, 45, tzinfo=UTC)


def _change_the_store(store: SqlStore) -> None:
    """One news retitled, one added, one event moved: what a batch of fetches leaves."""
    news = {n.record.key: n.record for n in cluster_news() if n.record.source == "alpha"}
    retitled = dataclasses.replace(news["hydrogen-test-bed"], title="Wasserstoff-Testfeld in Graz eröffnet")
    added = NewsRecord(
        id="valley-award",
        source="alpha",
        title="Hydrogen valley award for Styria",
        link="https://alpha.clusterfeeds.example/news/valley-award",
        published=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    )
    events = [e.record for e in cluster_events() if e.record.source == "alpha"]
    moved = dataclasses.replace(events[1], location="Graz, Messe")
    store.upsert("alpha", [retitled, added, events[0], moved], now=LATER)


@pytest.mark.parametrize("memory_mb", [64, 0])
def test_a_standby_reads_ahead_and_publishes_the_later_changes_as_a_fresh_publish_would(
    config: Config, store: SqlStore, memory_mb: int
) -> None:
    """With no memory budget for the events, the standby reads ahead the news only, and the
    publish reads the events as a stream (``PackedEvents``): the same files."""
    config = dataclasses.replace(config, defaults=dataclasses.replace(config.defaults, publish_memory_mb=memory_mb))
    standby = PublishStandby()
    standby.start(config)
    assert standby.ready(timeout=60)  # it has read the store as it was
    _change_the_store(store)

    report = publish_from_store(config, store, now=NOW, base_url=BASE, isolated=True, standby=standby)
    from_standby = _contents(config.feeds_dir)
    shutil.rmtree(config.feeds_dir)
    fresh = publish_from_store(config, store, now=NOW, base_url=BASE)

    assert (report.read_ahead, fresh.read_ahead, standby.started) == (True, False, False)
    assert (report.events_packed, fresh.events_packed) == (memory_mb == 0, memory_mb == 0)
    assert _contents(config.feeds_dir) == from_standby
    merged = from_standby["news.xml"].decode()
    assert "Wasserstoff-Testfeld in Graz eröffnet" in merged
    assert "Grazer Cluster eröffnet" not in merged
    assert "Hydrogen valley award for Styria" in merged
    assert "LOCATION:Graz\\, Messe" in from_standby["sources/alpha.ics"].decode()


def test_a_standby_is_dismissed_when_there_is_nothing_to_publish(config: Config, store: SqlStore) -> None:
    publish_from_store(config, store, now=NOW, base_url=BASE, isolated=True)
    before = set(multiprocessing.active_children())
    standby = PublishStandby()
    standby.start(config)
    assert set(multiprocessing.active_children()) - before  # the standby process runs

    again = publish_from_store(config, store, now=NOW, base_url=BASE, isolated=True, standby=standby)

    assert (again.skipped, standby.started) == (True, False)
    deadline = time.monotonic() + 60
    while set(multiprocessing.active_children()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(multiprocessing.active_children()) - before == set()  # it ended once it had read


def test_a_standby_that_read_another_store_reads_the_configured_one(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    elsewhere = make_config(tmp_path / "before-reload", ALPHA)
    standby = PublishStandby()
    standby.start(elsewhere)  # then the configuration was reloaded with another data directory
    assert standby.ready(timeout=60)

    report = publish_from_store(config, store, now=NOW, base_url=BASE, isolated=True, standby=standby)
    from_standby = _contents(config.feeds_dir)
    shutil.rmtree(config.feeds_dir)
    publish_from_store(config, store, now=NOW, base_url=BASE)

    assert report.read_ahead is False
    assert _contents(config.feeds_dir) == from_standby


def test_once_aborted_a_standby_ends_its_process_and_refuses_every_later_publish(
    config: Config, store: SqlStore
) -> None:
    before = set(multiprocessing.active_children())
    standby = PublishStandby()
    standby.start(config)
    assert set(multiprocessing.active_children()) - before  # reading ahead

    standby.abort()  # the daemon is stopping

    deadline = time.monotonic() + 60
    while set(multiprocessing.active_children()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(multiprocessing.active_children()) - before == set()
    with pytest.raises(PublishError) as raised:
        publish_from_store(config, store, now=NOW, base_url=BASE, isolated=True, standby=standby)
    assert str(raised.value) == f"{config.feeds_dir}: the daemon is stopping; old files kept"
    assert not config.feeds_dir.exists()  # nothing was written


def test_after_a_streamed_publish_no_standby_is_started_ahead(config: Config, store: SqlStore) -> None:
    """A large store is published a group of sources at a time and nothing is read ahead: a standby
    would only sit beside the batch's parse workers. The publish then starts its own process."""
    streamed = dataclasses.replace(config, defaults=dataclasses.replace(config.defaults, publish_stream_records=0))
    standby = PublishStandby()
    standby.start(streamed)  # a first batch: nothing is known yet
    assert standby.started

    report = publish_from_store(streamed, store, now=NOW, base_url=BASE, isolated=True, standby=standby)
    assert (report.streamed, len(report.written), standby.streams) == (True, 30, True)
    standby.start(streamed)
    assert not standby.started

    store.upsert("alpha", [dataclasses.replace(cluster_news()[0].record, title="Testfeld eröffnet")], now=NOW)
    again = publish_from_store(streamed, store, now=NOW, base_url=BASE, isolated=True, standby=standby)
    assert (again.streamed, again.skipped) == (True, False)
    assert "Testfeld eröffnet" in (streamed.feeds_dir / "news.xml").read_text(encoding="utf-8")
