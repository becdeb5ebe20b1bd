"""A daemon killed with SIGKILL leaves no parse worker behind.

The parse pool's workers are children of a forkserver, which lives as long as they do, and each
worker holds both ends of its own task pipe: without ``processes.end_with`` they waited forever
for work from a daemon that no longer existed (seen as leftovers of the kill -9 tests).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from processtree import children, descendants, forkserver_of, running

from .conftest import RSS, DaemonProcess, Site, fixture_bytes, free_port, sources_toml, wait_until

NEWS = fixture_bytes("vienna_news.xml")


def _daemon_with_four_sources(site: Site, tmp_path: Path, daemons: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A daemon whose four feeds have been fetched (and parsed in its pool)."""
    blocks = ""
    for number in range(4):
        site.serve(f"/news-{number}.xml", NEWS, RSS)
        blocks += f'[[source]]\nname = "cluster-{number}"\nurl = "{site.url(f"/news-{number}.xml")}"\n\n'
    port = free_port()
    (tmp_path / "sources.toml").write_text(sources_toml(port, blocks), encoding="utf-8")
    daemon = daemons(tmp_path, port)
    daemon.wait_ready()
    daemon.wait_for_event("fetched", count=4)
    return daemon


def test_the_parse_workers_end_when_their_daemon_is_killed(
    site: Site, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    daemon = _daemon_with_four_sources(site, tmp_path, daemons)  # parsed in the pool: forkserver and workers exist
    below = descendants(daemon.process.pid)
    assert len(below) >= 2, below  # the forkserver and at least one worker
    assert all(running(pid) for pid in below)

    daemon.signal(signal.SIGKILL)
    assert daemon.stop() == -signal.SIGKILL

    wait_until(lambda: not any(running(pid) for pid in below), f"processes {below} to end", limit=30)


def test_the_parse_workers_end_once_their_batch_is_published(
    site: Site, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """Idle workers held 143 MB through a large publish; released, only the forkserver stays."""
    daemon = _daemon_with_four_sources(site, tmp_path, daemons)
    published = daemon.wait_for_event("published", count=2)  # the start's publish, then the batch's
    assert published[1]["written"] > 0
    assert published[1]["processes"] in (1, 2)  # 2 where the machine has two cores and room for a copy
    assert published[1]["events_packed"] is False  # a few events: decoded, not packed
    forkserver = forkserver_of(daemon.process.pid)
    wait_until(lambda: not [pid for pid in children(forkserver) if running(pid)], "the parse workers to end", limit=30)
    assert running(forkserver)
    assert (tmp_path / "feeds" / "sources" / "cluster-3.xml").is_file()
