"""Crashes, full and read-only disks, and a second process: no record lost or doubled, no file half-written."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import httpx
import icalendar
import lxml.html
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.store import open_store

from .conftest import Cli, source_block

FEEDS = 6
WINDOW = 12  # items per feed version; each version adds 3 and drops the 3 oldest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Versioned:
    """Sliding-window feeds and a calendar: version v shows items 3v .. 3v+WINDOW-1."""

    def __init__(self) -> None:
        self.version = 0
        self.served: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def items(self, feed: int) -> range:
        return range(3 * self.version, 3 * self.version + WINDOW)

    def feed(self, request: Request) -> Response:
        feed = int(request.path.rsplit("-", 1)[1].split(".")[0])
        time.sleep(0.05)  # a little network time, so kills land mid-fetch too
        entries = []
        for n in self.items(feed):
            guid = f"https://cluster-{feed}.example.eu/news/{n}"
            with self._lock:
                self.served.add((f"cluster-{feed}", guid))
            entries.append(
                f"<item><title>Cluster {feed} news {n}</title><link>{guid}</link><guid>{guid}</guid>"
                f"<pubDate>{datetime.fromtimestamp(1_790_000_000 + n * 3600, UTC):%a, %d %b %Y %H:%M:%S +0000}</pubDate>"
                f"<description>Item {n} of cluster {feed}.</description></item>"
            )
        body = (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>Cluster {feed}</title>'
            f"<link>https://cluster-{feed}.example.eu/</link>{''.join(entries)}</channel></rss>"
        )
        return Response(body, content_type="application/rss+xml")

    def calendar(self, _request: Request) -> Response:
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Crash test//EN"]
        for n in self.items(0):
            uid = f"event-{n}@crash-cluster.example.eu"
            with self._lock:
                self.served.add(("events", uid))
            lines += [
                "BEGIN:VEVENT",
                f"UID:{uid}",
                "DTSTAMP:20261101T000000Z",
                f"DTSTART;TZID=Europe/Brussels:{20270101 + n % 28}T100000",
                f"SUMMARY:Cluster meeting {n}",
                "END:VEVENT",
            ]
        return Response("\r\n".join([*lines, "END:VCALENDAR", ""]), content_type="text/calendar")


def _stored_keys(data_dir: Path) -> list[tuple[str, str]]:
    store = open_store(f"sqlite:///{data_dir / 'aggregator.sqlite3'}")
    try:
        news = [(n.record.source, n.record.id) for n in store.news()]
        events = [(e.record.source, e.record.key) for e in store.events(since=datetime(2000, 1, 1, tzinfo=UTC))]
    finally:
        store.close()
    return news + events


def _wait_for_stored_records(data_dir: Path, child: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    """Poll the database read-only until a record is stored (or the child ended, or the deadline passed)."""
    database = data_dir / "aggregator.sqlite3"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and child.poll() is None:
        if database.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)) as db:
                    if db.execute("SELECT COUNT(*) FROM records").fetchone()[0]:
                        return
            except sqlite3.Error:
                pass  # tables not created yet, or locked for a moment
        time.sleep(0.05)


def _assert_every_file_is_whole(feeds: Path) -> None:
    """Every published file parses completely; temporaries are hidden names the server refuses."""
    for path in sorted(p for p in feeds.rglob("*") if p.is_file()):
        if path.name.startswith("."):
            continue  # a killed writer's temporary (or the test's ballast): serve refuses hidden names
        data = path.read_bytes()
        if path.suffix in (".xml", ".atom", ".opml"):
            assert feedparser.parse(data).bozo == 0 or path.suffix == ".opml", path
            assert data.rstrip().endswith((b"</rss>", b"</feed>", b"</opml>")), path
        elif path.suffix == ".json":
            json.loads(data)
        elif path.suffix == ".ics":
            icalendar.Calendar.from_ical(data)
            assert data.endswith(b"END:VCALENDAR\r\n"), path
        elif path.suffix == ".html":
            assert data.rstrip().endswith(b"</html>"), path
            lxml.html.fromstring(data)
        else:
            raise AssertionError(f"unexpected file {path}")
    assert [p for p in feeds.rglob("*.tmp") if not p.name.startswith(".")] == []


@pytest.fixture
def versioned(site: HTTPServer) -> Versioned:
    world = Versioned()
    for feed in range(1, FEEDS + 1):
        site.expect_request(f"/feed-{feed}.xml").respond_with_handler(world.feed)
    site.expect_request("/events.ics").respond_with_handler(world.calendar)
    return world


def _sources(site: HTTPServer, port: int) -> str:
    blocks = "".join(
        source_block(f"cluster-{n}", site.url_for(f"/feed-{n}.xml"), kind="feed", tags=["crash"])
        for n in range(1, FEEDS + 1)
    )
    blocks += source_block("events", site.url_for("/events.ics"), kind="ical", tags=["crash"])
    return blocks + f'\n[server]\nhost = "127.0.0.1"\nport = {port}\n'


def test_kill_9_during_fetch_publish_and_daemon_runs_loses_and_doubles_nothing(
    site: HTTPServer, cli: Cli, versioned: Versioned
) -> None:
    rng = random.Random(20261126)
    snapshots: list[set[tuple[str, str]]] = []
    for iteration in range(15):
        versioned.version = iteration
        cli.write_sources(_sources(site, _free_port()).replace('interval = "1h"', 'interval = "1m"'))
        command = ["run"] if iteration % 3 == 2 else ["fetch"]
        child = subprocess.Popen(
            [sys.executable, "-m", "aggregator", *command],
            cwd=cli.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if iteration % 2:
            time.sleep(rng.uniform(0.5, 4.0))
        else:  # land this kill after the first stores, however slow the machine is today
            _wait_for_stored_records(cli.cwd / "data", child)
            time.sleep(rng.uniform(0.0, 0.5))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if (cli.cwd / "data" / "aggregator.sqlite3").exists():
            keys = _stored_keys(cli.cwd / "data")
            assert len(keys) == len(set(keys)), f"duplicates after kill {iteration}"
            snapshots.append(set(keys))
        if cli.feeds.exists():
            _assert_every_file_is_whole(cli.feeds)

    versioned.version = 15
    final = cli("fetch")
    status = cli.status()

    assert final.returncode == 0, final.stdout + final.stderr
    assert {name: s["health"] for name, s in status.items()} == {
        **{f"cluster-{n}": "ok" for n in range(1, FEEDS + 1)},
        "events": "ok",
    }
    keys = _stored_keys(cli.cwd / "data")
    assert len(keys) == len(set(keys))
    assert len([s for s in snapshots if s]) >= 5  # the kills really landed after some stores
    for snapshot in snapshots:
        assert snapshot <= set(keys)  # nothing once stored is lost
    assert set(keys) <= versioned.served  # nothing invented
    current = {
        (f"cluster-{f}", f"https://cluster-{f}.example.eu/news/{n}")
        for f in range(1, FEEDS + 1)
        for n in versioned.items(f)
    }
    assert current <= set(keys)
    _assert_every_file_is_whole(cli.feeds)
    published = feedparser.parse((cli.feeds / "sources" / "cluster-1.xml").read_bytes())
    assert f"Cluster 1 news {3 * 15 + WINDOW - 1}" in {e.title for e in published.entries}


@pytest.fixture
def small_disk(cli: Cli) -> Iterator[Path]:
    """feeds/ on its own 1 MiB tmpfs, so it can be filled up and remounted read-only."""
    mount_point = cli.cwd / "feeds"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _snapshot(feeds: Path) -> dict[str, bytes]:
    return {str(p.relative_to(feeds)): p.read_bytes() for p in sorted(feeds.rglob("*")) if p.is_file()}


def test_full_disk_reports_the_error_keeps_the_old_files_and_recovers(
    site: HTTPServer, cli: Cli, versioned: Versioned, small_disk: Path
) -> None:
    cli.write_sources(_sources(site, _free_port()))
    assert cli("fetch").returncode == 0
    before = _snapshot(small_disk)
    ballast = small_disk / ".ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:  # fill every free block
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    versioned.version = 1

    full = cli("fetch")

    assert full.returncode == 1
    assert "No space left on device" in full.stderr
    assert full.stderr.startswith("aggregator: ") or "\naggregator: " in full.stderr
    assert _snapshot(small_disk) == before | {".ballast": ballast.read_bytes()}
    _assert_every_file_is_whole(small_disk)
    assert [p.name for p in small_disk.rglob("*.tmp")] == []

    ballast.unlink()
    again = cli("publish")

    assert again.returncode == 0, again.stderr
    titles = {e.title for e in feedparser.parse((small_disk / "news.xml").read_bytes()).entries}
    assert f"Cluster 1 news {3 + WINDOW - 1}" in titles
    _assert_every_file_is_whole(small_disk)


def test_read_only_feeds_dir_reports_the_error_keeps_the_old_files_and_recovers(
    site: HTTPServer, cli: Cli, versioned: Versioned, small_disk: Path
) -> None:
    cli.write_sources(_sources(site, _free_port()))
    assert cli("fetch").returncode == 0
    before = _snapshot(small_disk)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    versioned.version = 1

    refused = cli("fetch")

    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert refused.returncode == 1
    assert f"aggregator: {small_disk}/" in refused.stderr
    assert "Read-only file system" in refused.stderr
    assert _snapshot(small_disk) == before
    assert "new" in refused.stdout  # the records were stored before publishing failed

    again = cli("publish")

    assert again.returncode == 0, again.stderr
    titles = {e.title for e in feedparser.parse((small_disk / "news.xml").read_bytes()).entries}
    assert f"Cluster 1 news {3 + WINDOW - 1}" in titles


def _wait_for(predicate, what: str, limit: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_second_process_on_the_same_data_directory_refuses_clearly(site: HTTPServer, cli: Cli) -> None:
    def slow(_request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>slow</title>'
            for _ in range(40):
                time.sleep(0.1)
                yield b" "
            yield b"</channel></rss>"

        return Response(body(), content_type="application/rss+xml")

    site.expect_request("/slow.xml").respond_with_handler(slow)
    port = _free_port()
    cli.write_sources(source_block("slow", site.url_for("/slow.xml"), kind="feed") + f"\n[server]\nport = {port}\n")
    lock = cli.cwd / "data" / "aggregator.lock"
    refusal = "is in use by process {pid}; stop it first or use another --data-dir"

    first = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "fetch"], cwd=cli.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(lambda: lock.exists() and lock.read_text() == str(first.pid), "the first fetch to hold the lock")
        second = cli("fetch")
        publish = cli("publish")
    finally:
        first.wait(timeout=60)
    assert (second.returncode, publish.returncode) == (3, 3)
    expected = f"aggregator: data directory {cli.cwd / 'data'} " + refusal.format(pid=first.pid) + "\n"
    assert second.stderr.endswith(expected)
    assert publish.stderr.endswith(expected)
    assert first.returncode == 0

    daemon = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run"], cwd=cli.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, "the daemon")
        during_run = cli("fetch")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert during_run.returncode == 3
    assert during_run.stderr.endswith(
        f"aggregator: data directory {cli.cwd / 'data'} " + refusal.format(pid=daemon.pid) + "\n"
    )
    assert cli("fetch").returncode == 0  # the lock died with the daemon
