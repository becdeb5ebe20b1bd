"""``aggregator run --workers N`` as real processes on a real PostgreSQL and a counting HTTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import icalendar
import psycopg
import pytest
from pgserver import PostgresServer
from processtree import publishing_children, running, waits_opening_a_fifo

from aggregator.store import open_store

from .conftest import CorpusServer, Daemon, corpus_names, free_port, sources_toml, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HELD = "/silicon-saxony-events.ics"
# Build and storage times: when a run wrote or stored something, not what the sources said.
STORE_TIMES = frozenset({"DTSTAMP", "LAST-MODIFIED", "CREATED", "date_modified"})


def _query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _events(log: str, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == name]


def _fetched(database_url: str) -> set[str]:
    try:
        rows = _query(database_url, "SELECT name FROM source_state WHERE last_success IS NOT NULL")
    except psycopg.errors.UndefinedTable:
        return set()  # the daemon has not migrated the new database yet
    return {row[0] for row in rows}


def _generation(database_url: str) -> int:
    return int(_query(database_url, "SELECT value FROM meta WHERE name = 'generation'")[0][0])


def _published(feeds: Path) -> dict[str, Any]:
    """What a reader sees, without build times: JSON Feed items and calendar events, per file."""
    seen: dict[str, Any] = {}
    for path in sorted(feeds.rglob("*.json")):
        items = json.loads(path.read_bytes())["items"]
        seen[str(path.relative_to(feeds))] = [{k: v for k, v in i.items() if k not in STORE_TIMES} for i in items]
    for path in sorted(feeds.rglob("*.ics")):
        calendar = icalendar.Calendar.from_ical(path.read_bytes())
        seen[str(path.relative_to(feeds))] = [
            {k: v.to_ical().decode() for k, v in event.items() if k not in STORE_TIMES}
            for event in calendar.walk("VEVENT")
        ]
    return seen


def _sources(tmp: Path, text: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "sources.toml").write_text(text, encoding="utf-8")
    return tmp


def test_three_workers_fetch_each_source_once_survive_a_killed_worker_and_publish_what_one_process_would(
    tmp_path: Path, corpus: CorpusServer, postgres_server: PostgresServer
) -> None:
    database_url = postgres_server.create_database()
    multi = _sources(tmp_path / "multi", sources_toml(corpus, port=free_port(), database_url=database_url))
    arrived = corpus.hold(HELD)
    everything = {name.rsplit(".", 1)[0] for name in corpus_names()}
    daemon = Daemon(multi, "--workers", "3", "--lease-seconds", "4")
    try:
        wait_for(arrived.is_set, "a worker fetching the held calendar")
        wait_for(lambda: _fetched(database_url) == everything - {"silicon-saxony-events"}, "the other eleven sources")
        [(owner,)] = _query(database_url, "SELECT lease_owner FROM source_state WHERE name = 'silicon-saxony-events'")
        victim = int(owner.rsplit(":", 1)[1])
        workers = {e["pid"] for e in _events(daemon.log(), "worker-spawned")}
        assert len(workers) == 3
        assert victim in workers
        os.kill(victim, signal.SIGKILL)  # mid-fetch: its lease is never released
        corpus.release(HELD)
        wait_for(lambda: _fetched(database_url) == everything, "another worker taking the calendar over")
        generation = _generation(database_url)
        wait_for(
            lambda: any(e["generation"] == generation for e in _events(daemon.log(), "published")),
            "a publish of the last change",
        )
        wait_for(lambda: _events(daemon.log(), "worker-died") != [], "the parent noticing the dead worker")
    finally:
        code = daemon.stop()
    log = daemon.log()
    assert code == 0, log
    [died] = _events(log, "worker-died")
    assert (died["pid"], died["exitcode"]) == (victim, -signal.SIGKILL)
    assert len(_events(log, "worker-spawned")) == 4  # three, and the replacement
    assert len(_events(log, "worker-stopped")) == 3  # every live worker stopped cleanly
    assert _events(log, "stopped") != []
    assert _query(database_url, "SELECT count(*) FROM source_state WHERE lease_owner IS NOT NULL") == [(0,)]

    fetches = {path: n for path, n in corpus.counts.items() if path != "/robots.txt"}
    assert fetches == {f"/{name}": (2 if f"/{name}" == HELD else 1) for name in corpus_names()}
    assert 1 <= corpus.counts["/robots.txt"] <= 4  # at most once per worker process

    single = _sources(tmp_path / "single", sources_toml(corpus, port=free_port(), database_url=None))
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "fetch"],
        cwd=single,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert done.returncode == 0, done.stderr
    published_by_workers = _published(multi / "feeds")
    assert published_by_workers == _published(single / "feeds")
    assert len(published_by_workers["news.json"]) == 16
    assert len(published_by_workers["events.ics"]) == 8
    assert sorted(p.name for p in (multi / "feeds" / "sources").iterdir()) == sorted(
        p.name for p in (single / "feeds" / "sources").iterdir()
    )


def test_a_parent_publishes_only_while_no_other_instance_holds_the_publish_lock(
    tmp_path: Path, corpus: CorpusServer, postgres_server: PostgresServer
) -> None:
    database_url = postgres_server.create_database()
    names = ["clusterland-news.xml", "clusterland-events.ics"]
    first = _sources(tmp_path / "a", sources_toml(corpus, port=free_port(), database_url=database_url, names=names))
    second = _sources(tmp_path / "b", sources_toml(corpus, port=free_port(), database_url=database_url, names=names))
    other_instance = open_store(database_url)
    daemons: list[Daemon] = []
    try:
        with other_instance.publish_lock() as granted:
            assert granted is True
            daemons = [Daemon(first, "--workers", "1"), Daemon(second, "--workers", "1")]
            wait_for(lambda: _fetched(database_url) == {"clusterland-news", "clusterland-events"}, "both sources")
            generation = _generation(database_url)
            for daemon in daemons:
                wait_for(
                    lambda d=daemon: len(_events(d.log(), "publish-deferred")) >= 2,
                    "a refused publish",
                    context=daemon.log,
                )
                assert _events(daemon.log(), "published") == []
            assert not (first / "feeds" / "news.json").exists()
            assert not (second / "feeds" / "news.json").exists()
        for daemon in daemons:
            wait_for(
                lambda d=daemon: any(e["generation"] == generation for e in _events(d.log(), "published")),
                "a publish once the lock is free",
                context=daemon.log,
            )
    finally:
        codes = [daemon.stop() for daemon in daemons]
        other_instance.close()
    assert codes == [0, 0]
    for feeds in (first / "feeds", second / "feeds"):
        assert [item["title"] for item in json.loads((feeds / "news.json").read_bytes())["items"]] == [
            "Plastics Cluster opens recycling pilot hall in Wels",
            "Automotive Cluster: supplier day on hydrogen drivetrains",
        ]
    # Both sources were fetched once in all: the two instances share one schedule.
    assert corpus.counts["/clusterland-news.xml"] == 1
    assert corpus.counts["/clusterland-events.ics"] == 1


def test_a_reload_registers_added_sources_and_stops_claiming_removed_ones(
    tmp_path: Path, corpus: CorpusServer, postgres_server: PostgresServer
) -> None:
    database_url = postgres_server.create_database()
    port = free_port()
    before = ["eccp-news.xml", "eccp-events.ics"]
    after = ["eccp-news.xml", "foodvalley.xml"]
    home = _sources(tmp_path, sources_toml(corpus, port=port, database_url=database_url, names=before))
    daemon = Daemon(home, "--workers", "2")
    try:
        wait_for(lambda: _fetched(database_url) == {"eccp-news", "eccp-events"}, "the first two sources")
        (home / "sources.toml").write_text(
            sources_toml(corpus, port=port, database_url=database_url, names=after), encoding="utf-8"
        )
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "foodvalley" in _fetched(database_url), "the added source")
        wait_for(lambda: (home / "feeds" / "sources" / "foodvalley.json").exists(), "its published feed")
    finally:
        code = daemon.stop()
    log = daemon.log()
    assert code == 0, log
    reloads = [(e["added"], e["removed"]) for e in _events(log, "reloaded")]
    assert reloads[0] == (1, 1)
    assert len(_events(log, "worker-reloaded")) >= 2  # each worker got the new configuration
    assert {path: n for path, n in corpus.counts.items() if path != "/robots.txt"} == {
        "/eccp-news.xml": 1,
        "/eccp-events.ics": 1,
        "/foodvalley.xml": 1,
    }


def test_run_refuses_several_workers_on_sqlite(tmp_path: Path, corpus: CorpusServer) -> None:
    home = _sources(tmp_path, sources_toml(corpus, port=free_port(), database_url=None))
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "run", "--workers", "3"],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"{home / 'sources.toml'}: defaults.database_url: --workers 3 needs PostgreSQL, and this configuration "
        'uses SQLite (one process only): set database_url = "postgresql://..." in [defaults] or pass '
        "--database-url, or run without --workers"
    )
    assert corpus.counts == {}
    assert not (home / "feeds").exists()


def test_workers_stop_cleanly_when_their_parent_is_killed(
    tmp_path: Path, corpus: CorpusServer, postgres_server: PostgresServer
) -> None:
    database_url = postgres_server.create_database()
    home = _sources(tmp_path, sources_toml(corpus, port=free_port(), database_url=database_url))
    daemon = Daemon(home, "--workers", "2")
    try:
        wait_for(lambda: len(_fetched(database_url)) == len(corpus_names()), "every source fetched once")
        workers = [e["pid"] for e in _events(daemon.log(), "worker-spawned")]
        assert len(workers) == 2

        os.kill(daemon.process.pid, signal.SIGKILL)  # the parent alone, as the OOM killer would
        daemon.process.wait(10)
        # Their parent is the forkserver, not the killed process: without ``end_with`` they fetched on.
        wait_for(lambda: not any(running(pid) for pid in workers), "both workers to end", context=daemon.log)
    finally:
        daemon.kill()
    log = daemon.log()
    assert sorted(e["pid"] for e in _events(log, "worker-spawned")) == sorted(workers)
    assert len(_events(log, "worker-stopped")) == 2  # each finished its sources and stopped
    assert _query(database_url, "SELECT count(*) FROM source_state WHERE lease_owner IS NOT NULL") == [(0,)]


def test_sigterm_stops_a_publish_that_cannot_end_and_leaves_the_publish_lock_free(
    tmp_path: Path, corpus: CorpusServer, postgres_server: PostgresServer
) -> None:
    database_url = postgres_server.create_database()
    names = ["clusterland-news.xml"]
    home = _sources(tmp_path / "a", sources_toml(corpus, port=free_port(), database_url=database_url, names=names))
    (home / "feeds").mkdir()
    fifo = home / "feeds" / "news.xml"
    os.mkfifo(fifo)  # the publish reads the old news.xml first: this holds it until the test ends
    daemon = Daemon(home, "--workers", "1")
    try:
        publishers: list[int] = []

        def publisher_waits_at_the_fifo() -> bool:
            publishers[:] = [p for p in publishing_children(daemon.process.pid) if waits_opening_a_fifo(p)]
            return bool(publishers)

        wait_for(publisher_waits_at_the_fifo, "a publish waiting at news.xml", context=daemon.log)
        code = daemon.stop()
    finally:
        daemon.kill()
    assert code == 0
    assert not running(publishers[0])
    assert [e["event"] for e in _events(daemon.log(), "publish-interrupted")] == ["publish-interrupted"]
    assert _events(daemon.log(), "published") == []
    other_instance = open_store(database_url)
    try:
        with other_instance.publish_lock() as granted:
            assert granted is True  # the stopped parent's session let it go
    finally:
        other_instance.close()
