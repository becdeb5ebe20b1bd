"""Behaviour that depends on the backend: concurrency, locking, SQLite files, schema drift."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pgserver import PostgresServer
from sqlalchemy import create_engine

from aggregator.errors import StoreError
from aggregator.records import NewsRecord, SourceState
from aggregator.store import SqlStore, UpsertSummary, open_store
from aggregator.store.schema import metadata
from aggregator.store.sqlalchemy_store import _engine_url

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

CHILD_UPSERT = """
import sys
from datetime import datetime, timezone
from aggregator.records import NewsRecord
from aggregator.store import open_store

store = open_store(sys.argv[1])
item = NewsRecord(id="escp-report", source="eccp", title="ESCP report published",
                  link="https://clustercollaboration.eu/news/escp-report",
                  published=datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc))
print(store.upsert("eccp", [item], now=datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)))
store.close()
"""


def _claim_all(store_url: str, workers: int, sources: int) -> list[list[str]]:
    """Each worker, on its own store (engine), claims 3 at a time until nothing is due."""
    stores = [open_store(store_url) for _ in range(workers)]
    stores[0].ensure_states(f"cluster-{n:03d}" for n in range(sources))
    start = threading.Barrier(workers)
    claimed: list[list[str]] = [[] for _ in range(workers)]

    def work(index: int) -> None:
        start.wait()
        while names := stores[index].claim_due(f"worker-{index}", NOW, timedelta(minutes=5), 3):
            claimed[index].extend(names)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    return claimed


def test_concurrent_workers_claim_disjoint_sets_covering_every_due_source(store_url: str) -> None:
    claimed = _claim_all(store_url, workers=4, sources=60)

    everything = [name for names in claimed for name in names]
    assert sorted(everything) == [f"cluster-{n:03d}" for n in range(60)]
    assert len(set(everything)) == 60


@pytest.mark.postgres
def test_publish_lock_is_refused_while_another_process_holds_it(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    first, second = open_store(url), open_store(url)
    try:
        with first.publish_lock() as granted, second.publish_lock() as refused:
            assert (granted, refused) == (True, False)
        with second.publish_lock() as granted_after_release:
            assert granted_after_release is True
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_unreachable_postgresql_is_reported_with_the_masked_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreError) as caught:
        open_store(f"postgresql://feeds:s3cret@127.0.0.1:{port}/clusterfeeds")
    message = str(caught.value)
    assert message.startswith(f"cannot connect to postgresql://feeds:***@127.0.0.1:{port}/clusterfeeds: ")
    assert "s3cret" not in message


def test_migrated_schema_matches_the_tables_the_queries_use(store_url: str) -> None:
    open_store(store_url).close()
    engine = create_engine(_engine_url(store_url))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def test_sqlite_file_is_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "clusterfeeds.sqlite3"
    store = open_store(f"sqlite:///{path}")
    store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert path.exists()


def test_a_plain_path_opens_an_sqlite_store_creating_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "clusterfeeds.sqlite3"
    store = open_store(str(path))
    try:
        assert store.dialect == "sqlite"
        assert store.generation() == 0
    finally:
        store.close()
    assert path.is_file()


def test_unwritable_sqlite_directory_is_reported() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("sqlite:////proc/clusterfeeds/data.sqlite3")
    assert (
        str(caught.value) == "cannot create the directory of /proc/clusterfeeds/data.sqlite3: No such file or directory"
    )


def _run_child(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD_UPSERT, url], capture_output=True, text=True, timeout=120, check=False
    )


def test_second_process_on_the_same_sqlite_file_writes_safely(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clusterfeeds.sqlite3'}"
    store = open_store(url)
    try:
        store.save_state(SourceState(name="eccp", items=3))
        child = _run_child(url)
        assert (child.returncode, child.stdout, child.stderr) == (
            0,
            "UpsertSummary(new=1, updated=0, unchanged=0)\n",
            "",
        )
        assert [n.record.title for n in store.news()] == ["ESCP report published"]
        assert store.generation() == 1
        assert store.state("eccp") == SourceState(name="eccp", items=3)
    finally:
        store.close()


def test_processes_opening_a_new_database_together_migrate_it_once(store_url: str) -> None:
    url = store_url
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_UPSERT, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = sorted((child.communicate(timeout=120), child.returncode) for child in children)

    assert outputs == [
        (("UpsertSummary(new=0, updated=0, unchanged=1)\n", ""), 0),
        (("UpsertSummary(new=0, updated=0, unchanged=1)\n", ""), 0),
        (("UpsertSummary(new=1, updated=0, unchanged=0)\n", ""), 0),
    ]
    store = open_store(url)
    try:
        assert store.generation() == 1
    finally:
        store.close()


def test_second_process_waits_for_a_writer_holding_the_sqlite_lock(tmp_path: Path) -> None:
    path = tmp_path / "clusterfeeds.sqlite3"
    url = f"sqlite:///{path}"
    store: SqlStore = open_store(url)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE meta SET value = 41 WHERE name = 'generation'")
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD_UPSERT, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1.0)  # let the child reach the lock (it waits up to the busy timeout)
        writer.execute("COMMIT")
        stdout, stderr = child.communicate(timeout=120)
        assert (child.returncode, stdout, stderr) == (0, "UpsertSummary(new=1, updated=0, unchanged=0)\n", "")
        assert store.generation() == 42
    finally:
        writer.close()
        store.close()


def test_records_from_many_sources_upsert_in_batches(store: SqlStore) -> None:
    """The pipeline's shape: one call per source, dozens of records each."""
    for s in range(20):
        source = f"cluster-{s:02d}"
        items = [
            NewsRecord(
                id=f"{source}-{n}",
                source=source,
                title=f"News {n} of {source}",
                link=None,
                published=NOW - timedelta(minutes=s * 50 + n),
            )
            for n in range(50)
        ]
        assert store.upsert(source, items, now=NOW) == UpsertSummary(new=50)
    assert store.generation() == 20
    newest = store.news(limit=3)
    assert [n.record.id for n in newest] == ["cluster-00-0", "cluster-00-1", "cluster-00-2"]
    assert len(store.news()) == 1000
