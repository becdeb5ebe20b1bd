"""The daemon over time: SIGHUP and file-change reloads, an invalid file rejected, restarts that resume.

Every check is a server-side request count, a log line or /healthz, never a duration.
"""

from __future__ import annotations

import fcntl
import os
import signal
import stat
from collections.abc import Callable
from pathlib import Path

import feedparser
from processtree import children, forkserver_of, publishing_children, running, waits_opening_a_fifo

from .conftest import ICS, RSS, DaemonProcess, Site, fixture_bytes, free_port, sources_toml, status_json, wait_until

NEWS = fixture_bytes("vienna_news.xml")
EVENTS = fixture_bytes("eccp_events.ics")


def source(name: str, url: str) -> str:
    return f'[[source]]\nname = "{name}"\nurl = "{url}"\n\n'


def write_keeping_mtime(path: Path, text: str) -> None:
    """Rewrite in place with the old modification time: only a signal can announce this edit."""
    before = path.stat()
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def scheduled(daemon: DaemonProcess) -> int:
    return int(daemon.get("/healthz").json()["scheduled"])


def test_sighup_reload_fetches_a_new_source_and_drops_the_removed_ones_job(
    site: Site, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    site.serve("/alpha.xml", NEWS, RSS)
    site.serve("/beta.ics", EVENTS, ICS)
    port = free_port()
    config = tmp_path / "sources.toml"
    config.write_text(sources_toml(port, source("alpha", site.url("/alpha.xml"))), encoding="utf-8")
    daemon = daemons(tmp_path, port)
    daemon.wait_ready()
    site.wait_for_hits("/alpha.xml", 1)
    assert scheduled(daemon) == 1

    write_keeping_mtime(config, sources_toml(port, source("beta", site.url("/beta.ics"))))
    daemon.signal(signal.SIGHUP)

    reloaded = daemon.wait_for_event("reloaded", why="SIGHUP")[0]
    assert (reloaded["added"], reloaded["removed"], reloaded["changed"], reloaded["scheduled"]) == (
        ["beta"],
        ["alpha"],
        [],
        1,
    )
    site.wait_for_hits("/beta.ics", 1)
    daemon.wait_for_event("fetched", source="beta")
    assert scheduled(daemon) == 1
    assert site.hits["/alpha.xml"] == 1
    assert daemon.events("reloaded") == [reloaded]  # the file watcher saw no change of its own
    assert sorted(status_json(tmp_path)) == ["beta"]
    assert daemon.stop() == 0


def test_invalid_sources_toml_is_rejected_with_file_and_line_and_the_old_one_kept(
    site: Site, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    site.serve("/alpha.xml", NEWS, RSS)
    site.serve("/gamma.ics", EVENTS, ICS)
    port = free_port()
    config = tmp_path / "sources.toml"
    config.write_text(sources_toml(port, source("alpha", site.url("/alpha.xml"))), encoding="utf-8")
    daemon = daemons(tmp_path, port)
    daemon.wait_ready()
    site.wait_for_hits("/alpha.xml", 1)

    broken = source("alpha", site.url("/alpha.xml")) + '[[source]]\nname = "beta"\ninterval = "soon"\n'
    config.write_text(sources_toml(port, broken), encoding="utf-8")  # the file watcher notices

    rejected = daemon.wait_for_event("reload-rejected", count=2)
    assert [(e["why"], e["error"]) for e in rejected] == [
        ("file changed", "sources.toml:16: source 'beta': url: missing"),
        (
            "file changed",
            "sources.toml:18: source 'beta': interval: not a duration: \"soon\" "
            '(use e.g. "90s", "15m", "2h", "1d" or "1h30m")',
        ),
    ]
    assert daemon.events("reloaded") == []
    health = daemon.get("/healthz").json()
    assert (health["status"], health["sources"], health["scheduled"]) == ("ok", 1, 1)
    assert daemon.get("/news.xml").status_code == 200

    config.write_text(
        sources_toml(port, source("alpha", site.url("/alpha.xml")) + source("gamma", site.url("/gamma.ics"))),
        encoding="utf-8",
    )
    reloaded = daemon.wait_for_event("reloaded", why="file changed")[0]
    assert (reloaded["added"], reloaded["removed"], reloaded["scheduled"]) == (["gamma"], [], 2)
    site.wait_for_hits("/gamma.ics", 1)
    assert daemon.stop() == 0


def test_a_source_whose_url_changes_forgets_the_old_validators_and_is_fetched_at_once(
    site: Site, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    site.serve("/old.xml", NEWS, RSS, headers=(("ETag", '"old-v1"'),))
    site.serve("/new.xml", NEWS, RSS)
    port = free_port()
    config = tmp_path / "sources.toml"
    config.write_text(sources_toml(port, source("alpha", site.url("/old.xml"))), encoding="utf-8")
    daemon = daemons(tmp_path, port)
    daemon.wait_ready()
    daemon.wait_for_event("fetched", source="alpha")

    config.write_text(sources_toml(port, source("alpha", site.url("/new.xml"))), encoding="utf-8")

    reloaded = daemon.wait_for_event("reloaded")[0]
    assert (reloaded["added"], reloaded["removed"], reloaded["changed"]) == ([], [], ["alpha"])
    site.wait_for_hits("/new.xml", 1)
    assert "if-none-match" not in site.headers_seen["/new.xml"][0]
    daemon.wait_for_event("fetched", count=2, source="alpha")
    assert daemon.stop() == 0


def test_restart_resumes_from_stored_next_runs_without_refetching(
    site: Site, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    for name in ("alpha", "beta", "gamma"):
        site.serve(f"/{name}.xml", NEWS, RSS)
    port = free_port()
    config = tmp_path / "sources.toml"
    two = source("alpha", site.url("/alpha.xml")) + source("beta", site.url("/beta.xml"))
    config.write_text(sources_toml(port, two), encoding="utf-8")
    first = daemons(tmp_path, port, log_name="first.log")
    first.wait_ready()
    first.wait_for_event("fetched", count=2)
    first.wait_for_event("published", count=2)
    assert first.stop() == 0
    before = status_json(tmp_path)

    config.write_text(sources_toml(port, two + source("gamma", site.url("/gamma.xml"))), encoding="utf-8")
    second = daemons(tmp_path, port, log_name="second.log")
    second.wait_ready()
    # gamma, never fetched, is due within seconds; alpha and beta are due a minute after their fetch.
    second.wait_for_event("fetched", source="gamma")

    assert (site.hits["/alpha.xml"], site.hits["/beta.xml"], site.hits["/gamma.xml"]) == (1, 1, 1)
    assert scheduled(second) == 3
    after = status_json(tmp_path)
    for name in ("alpha", "beta"):
        assert after[name]["next_run"] == before[name]["next_run"]
        assert after[name]["last_attempt"] == before[name]["last_attempt"]
    wait_until(lambda: second.get("/readyz").status_code == 200, "ready")
    assert second.stop() == 0
    assert [e["event"] for e in second.events() if e["event"] in ("stopping", "stopped")] == ["stopping", "stopped"]


def test_sigterm_during_a_publish_stops_it_and_the_daemon_and_frees_the_data_directory(
    site: Site, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    site.serve("/alpha.xml", NEWS, RSS)
    port = free_port()
    (tmp_path / "sources.toml").write_text(
        sources_toml(port, source("alpha", site.url("/alpha.xml"))), encoding="utf-8"
    )
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    # The publisher reads news.xml's old bytes before it replaces them: a FIFO holds that read (and
    # so the publish) for as long as the test keeps its write end open, however long that is.
    fifo = feeds / "news.xml"
    os.mkfifo(fifo)
    first = daemons(tmp_path, port, log_name="first.log")
    publishers: list[int] = []

    def publisher_waits_at_the_fifo() -> bool:
        publishers[:] = [pid for pid in publishing_children(first.process.pid) if waits_opening_a_fifo(pid)]
        return bool(publishers)

    wait_until(publisher_waits_at_the_fifo, "the start-up publish waiting at news.xml")
    # The publisher's parent is the forkserver, a fork of the daemon (``fork_forkserver``).
    forkserver = forkserver_of(first.process.pid)
    assert publishers[0] in children(forkserver)
    # The event loop is free while the start-up publish runs: it serves, fetches and stores.
    assert first.get("/healthz").status_code == 200
    assert first.get("/readyz").status_code == 503
    first.wait_for_event("fetched", source="alpha")

    first.signal(signal.SIGTERM)
    assert first.process.wait(timeout=60) == 0  # with the publish still waiting: it was stopped, not awaited
    assert not running(publishers[0])
    wait_until(lambda: not running(forkserver), "the forkserver ended with the daemon")
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # left as it was
    assert [e["event"] for e in first.events() if e["event"] in PUBLISHING] == ["publish-interrupted"]
    with (tmp_path / "data" / "aggregator.lock").open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: another daemon may start
        fcntl.flock(lock, fcntl.LOCK_UN)

    fifo.unlink()
    second = daemons(tmp_path, port, log_name="second.log")
    second.wait_ready()  # its start-up publish has what the first one stored
    published = feedparser.parse(fifo.read_bytes())
    assert [e.title for e in published.entries] == [e.title for e in feedparser.parse(NEWS).entries]
    assert site.hits["/alpha.xml"] == 1
    assert second.stop() == 0
    assert [e["event"] for e in second.events() if e["event"] in PUBLISHING] == ["published"]


PUBLISHING = ("published", "publish-failed", "publish-interrupted")
