"""The worker loop in-process on a real PostgreSQL: claims, releases, takeovers, reloads, stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pgserver import PostgresServer

from aggregator import config as config_module
from aggregator.config import Config
from aggregator.errors import ConfigErrors
from aggregator.fetch import Fetcher
from aggregator.store import SqlStore, open_store
from aggregator.workers import ClaimLoop, WorkerOptions, default_lease, load_config, uses_workers

from .conftest import CorpusServer, corpus_names, free_port, sources_toml, wait_for

pytestmark = pytest.mark.postgres

LEASE = timedelta(minutes=2)


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two stores (two engines, two connection pools) on one database: two workers' views."""
    first, second = open_store(database_url), open_store(database_url)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _config(tmp_path: Path, corpus: CorpusServer, database_url: str, names: list[str] | None = None) -> Config:
    path = tmp_path / "sources.toml"
    path.write_text(sources_toml(corpus, port=free_port(), database_url=database_url, names=names), encoding="utf-8")
    return config_module.load(path)


def _leases(database_url: str) -> dict[str, str | None]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT name, lease_owner FROM source_state ORDER BY name").fetchall()
    return dict(rows)


async def _run_until(loops: list[ClaimLoop], done: Callable[[], bool]) -> None:
    stop = asyncio.Event()
    runs = [asyncio.create_task(loop.run(stop)) for loop in loops]
    while not await asyncio.to_thread(done):
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*runs)


def test_two_workers_on_one_database_fetch_every_source_exactly_once(
    tmp_path: Path, corpus: CorpusServer, stores: tuple[SqlStore, SqlStore], database_url: str
) -> None:
    config = _config(tmp_path, corpus, database_url)
    first, second = stores
    first.ensure_states(s.name for s in config.sources)

    async def scenario() -> None:
        fetchers = [Fetcher(config.defaults), Fetcher(config.defaults)]
        loops = [
            ClaimLoop(config, first, fetchers[0], worker_id="host-a:1", lease=LEASE, poll=0.1),
            ClaimLoop(config, second, fetchers[1], worker_id="host-b:1", lease=LEASE, poll=0.1),
        ]
        try:
            await _run_until(loops, lambda: all(s.last_success for s in first.states()))
        finally:
            for fetcher in fetchers:
                await fetcher.aclose()

    asyncio.run(scenario())
    assert {path: n for path, n in corpus.counts.items() if path != "/robots.txt"} == {
        f"/{name}": 1 for name in corpus_names()
    }
    assert 1 <= corpus.counts["/robots.txt"] <= 2  # one per worker's fetcher at most
    states = first.states()
    assert [s.name for s in states] == sorted(n.rsplit(".", 1)[0] for n in corpus_names())
    for state in states:
        assert state.last_error is None
        assert state.items == 2
        assert state.last_attempt is not None
        assert state.next_run is not None
        # interval "1m" with the pipeline's 5 % jitter: nobody fetches it again within the minute
        assert timedelta(seconds=57) <= state.next_run - state.last_attempt <= timedelta(seconds=63)
    assert set(_leases(database_url).values()) == {None}
    assert len(first.news()) == 16
    assert len(first.events(since=datetime(2026, 11, 26, tzinfo=UTC))) == 8


def test_a_source_removed_by_a_reload_is_no_longer_claimed(
    tmp_path: Path, corpus: CorpusServer, stores: tuple[SqlStore, SqlStore], database_url: str
) -> None:
    config = _config(tmp_path, corpus, database_url)
    store = stores[0]
    store.ensure_states(s.name for s in config.sources)
    smaller = _config(tmp_path, corpus, database_url, names=["eccp-news.xml", "eccp-events.ics"])

    async def scenario() -> list[str]:
        fetcher = Fetcher(config.defaults)
        loop = ClaimLoop(config, store, fetcher, worker_id="host-a:1", lease=LEASE)
        loop.reconfigure(smaller)
        try:
            started = await loop.claim()
            again = await loop.claim()
            await loop.drain(30)
            return started + again
        finally:
            await fetcher.aclose()

    assert sorted(asyncio.run(scenario())) == ["eccp-events", "eccp-news"]
    assert sorted(p for p in corpus.counts if p != "/robots.txt") == ["/eccp-events.ics", "/eccp-news.xml"]
    # The other ten keep their rows, untouched and unclaimed.
    untouched = [s for s in store.states() if s.name not in ("eccp-events", "eccp-news")]
    assert len(untouched) == 10
    assert all(s.last_attempt is None for s in untouched)
    assert set(_leases(database_url).values()) == {None}


def test_a_lease_held_by_a_vanished_worker_is_taken_over_once_it_expires(
    tmp_path: Path, corpus: CorpusServer, stores: tuple[SqlStore, SqlStore], database_url: str
) -> None:
    config = _config(tmp_path, corpus, database_url, names=["minalogic.xml", "foodvalley.xml"])
    vanished, survivor = stores
    vanished.ensure_states(["minalogic", "foodvalley"])
    start = datetime.now(UTC)
    # A worker claimed both, then died without releasing them.
    assert vanished.claim_due("host-gone:4242", start, timedelta(seconds=90), 10) == ["foodvalley", "minalogic"]
    clock = {"now": start + timedelta(seconds=30)}

    async def scenario() -> tuple[list[str], list[str]]:
        fetcher = Fetcher(config.defaults)
        loop = ClaimLoop(config, survivor, fetcher, worker_id="host-b:7", lease=LEASE, clock=lambda: clock["now"])
        try:
            while_leased = await loop.claim()
            clock["now"] = start + timedelta(seconds=91)
            after_expiry = await loop.claim()
            await loop.drain(30)
            return while_leased, after_expiry
        finally:
            await fetcher.aclose()

    while_leased, after_expiry = asyncio.run(scenario())
    assert while_leased == []
    assert after_expiry == ["foodvalley", "minalogic"]
    assert corpus.counts["/minalogic.xml"] == 1
    assert corpus.counts["/foodvalley.xml"] == 1
    assert {s.name: s.last_success for s in survivor.states()} == {
        "foodvalley": start + timedelta(seconds=91),
        "minalogic": start + timedelta(seconds=91),
    }
    assert _leases(database_url) == {"foodvalley": None, "minalogic": None}


def test_stopping_lets_a_running_fetch_finish_and_releases_its_lease(
    tmp_path: Path, corpus: CorpusServer, stores: tuple[SqlStore, SqlStore], database_url: str
) -> None:
    config = _config(tmp_path, corpus, database_url, names=["silicon-saxony.xml"])
    store = stores[0]
    store.ensure_states(["silicon-saxony"])
    arrived = corpus.hold("/silicon-saxony.xml")

    async def scenario() -> None:
        fetcher = Fetcher(config.defaults)
        loop = ClaimLoop(config, store, fetcher, worker_id="host-a:1", lease=LEASE, poll=0.1)
        stop = asyncio.Event()
        run = asyncio.create_task(loop.run(stop))
        try:
            await asyncio.to_thread(wait_for, arrived.is_set, "the held request")
            assert _leases(database_url) == {"silicon-saxony": "host-a:1"}
            stop.set()
            await asyncio.sleep(0.2)
            assert loop.running == frozenset({"silicon-saxony"})  # still waiting for its answer
            corpus.release("/silicon-saxony.xml")
            await run
        finally:
            await fetcher.aclose()

    asyncio.run(scenario())
    state = store.state("silicon-saxony")
    assert state.last_error is None
    assert state.items == 2
    assert _leases(database_url) == {"silicon-saxony": None}


def test_a_cycle_cut_short_at_the_stop_deadline_gives_its_source_back_still_due(
    tmp_path: Path, corpus: CorpusServer, stores: tuple[SqlStore, SqlStore], database_url: str
) -> None:
    config = _config(tmp_path, corpus, database_url, names=["bioregio-stern.xml"])
    store = stores[0]
    store.ensure_states(["bioregio-stern"])
    arrived = corpus.hold("/bioregio-stern.xml")

    async def scenario() -> None:
        fetcher = Fetcher(config.defaults)
        loop = ClaimLoop(config, store, fetcher, worker_id="host-a:1", lease=LEASE)
        try:
            assert await loop.claim() == ["bioregio-stern"]
            await asyncio.to_thread(wait_for, arrived.is_set, "the held request")
            await loop.drain(0.1)
        finally:
            await fetcher.aclose()

    asyncio.run(scenario())
    state = store.state("bioregio-stern")
    assert state.last_attempt is None
    assert state.next_run is None  # due at once: the next worker takes it
    assert _leases(database_url) == {"bioregio-stern": None}
    assert store.claim_due("host-b:2", datetime.now(UTC), LEASE, 5) == ["bioregio-stern"]


def test_only_one_store_connection_holds_the_publish_lock_at_a_time(stores: tuple[SqlStore, SqlStore]) -> None:
    first, second = stores
    with first.publish_lock() as granted:
        assert granted is True
        with second.publish_lock() as refused:
            assert refused is False
        with first.publish_lock() as same_process_other_session:
            assert same_process_other_session is False  # a session lock: one holder, whoever asks
    with second.publish_lock() as granted_after_release:
        assert granted_after_release is True


def test_workers_need_postgresql_when_more_than_one(tmp_path: Path, corpus: CorpusServer) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(sources_toml(corpus, port=free_port(), database_url=None), encoding="utf-8")
    sqlite = load_config(WorkerOptions(config_path=path))
    postgres = load_config(WorkerOptions(config_path=path, database_url="postgresql://feeds@db.example.org/feeds"))
    assert postgres.defaults.database_url == "postgresql://feeds@db.example.org/feeds"
    assert uses_workers(sqlite, None) is False
    assert uses_workers(sqlite, 1) is False  # one process: the ordinary daemon
    assert uses_workers(postgres, 1) is True
    assert uses_workers(postgres, 3) is True
    with pytest.raises(ConfigErrors) as refused:
        uses_workers(sqlite, 3)
    assert str(refused.value) == (
        f"{path.absolute()}: defaults.database_url: --workers 3 needs PostgreSQL, and this configuration uses "
        'SQLite (one process only): set database_url = "postgresql://..." in [defaults] or pass --database-url, '
        "or run without --workers"
    )


def test_the_default_lease_covers_three_fetches_of_the_slowest_source(tmp_path: Path, corpus: CorpusServer) -> None:
    path = tmp_path / "sources.toml"
    text = sources_toml(corpus, port=free_port(), database_url=None, names=["minalogic.xml", "foodvalley.xml"])
    path.write_text(text.replace('name = "foodvalley"', 'name = "foodvalley"\ntimeout = 50'), encoding="utf-8")
    assert default_lease(config_module.load(path)) == timedelta(seconds=180)
