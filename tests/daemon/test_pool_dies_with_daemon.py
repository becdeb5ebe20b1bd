"""A daemon killed with SIGKILL leaves no parse worker behind.

The parse pool's workers are children of a forkserver, which lives as long as they do, and each
worker holds both ends of its own task pipe: without ``processes.end_with`` they waited forever
for work from a daemon that no longer existed (seen as leftovers of the kill -9 tests).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from processtree import descendants, running

from .conftest import RSS, DaemonProcess, Site, fixture_bytes, free_port, sources_toml, wait_until

NEWS = fixture_bytes("vienna_news.xml")


def test_the_parse_workers_end_when_their_daemon_is_killed(
    site: Site, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    blocks = ""
    for number in range(4):
        site.serve(f"/news-{number}.xml", NEWS, RSS)
        blocks += f'[[source]]\nname = "cluster-{number}"\nurl = "{site.url(f"/news-{number}.xml")}"\n\n'
    port = free_port()
    (tmp_path / "sources.toml").write_text(sources_toml(port, blocks), encoding="utf-8")
    daemon = daemons(tmp_path, port)
    daemon.wait_ready()
    daemon.wait_for_event("fetched", count=4)  # parsed in the pool: its forkserver and workers exist
    below = descendants(daemon.process.pid)
    assert len(below) >= 2, below  # the forkserver and at least one worker
    assert all(running(pid) for pid in below)

    daemon.signal(signal.SIGKILL)
    assert daemon.stop() == -signal.SIGKILL

    wait_until(lambda: not any(running(pid) for pid in below), f"processes {below} to end", limit=30)
