"""A publish shared out between processes (one per core) writes exactly what one process writes.

The daemon publishes in a child of its forkserver, whose one other thread only waits for the
daemon's end (``end_with_parent_process``, which ``can_fork`` allows); there ``publish`` forks helpers
that render some of the formats. These tests take the same path (``isolated=True``), so
the forks are real, and compare the files byte for byte with a one-process publish.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.config import Config
from aggregator.errors import PublishError
from aggregator.fragments import CACHE_FILE
from aggregator.processes import room_for_copies
from aggregator.publish import PublishReport
from aggregator.runtime import publish_from_store
from aggregator.store.sqlalchemy_store import SqlStore

from .conftest import BASE, NOW


def _files(feeds_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in sorted(feeds_dir.rglob("*")) if p.is_file()}


def _with(config: Config, *, processes: int, data_dir: Path, feeds_dir: Path) -> Config:
    defaults = dataclasses.replace(config.defaults, publish_processes=processes)
    return dataclasses.replace(config, defaults=defaults, data_dir=data_dir, feeds_dir=feeds_dir)


def _forced(config: Config, store: SqlStore, *, isolated: bool) -> tuple[PublishReport, dict[str, bytes]]:
    shutil.rmtree(config.feeds_dir, ignore_errors=True)
    for name in ("publish-state.json", "publish-token.json"):
        (config.data_dir / name).unlink(missing_ok=True)
    report = publish_from_store(config, store, now=NOW, base_url=BASE, isolated=isolated)
    return report, _files(config.feeds_dir)


def _rows(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / CACHE_FILE) as connection:
        assert connection.execute("SELECT count(*) - count(DISTINCT kind || hex(key)) FROM fragment").fetchone() == (0,)
        return dict(connection.execute("SELECT kind, count(*) FROM fragment GROUP BY kind").fetchall())


def test_two_processes_write_the_same_bytes_and_fragments_as_one(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    shutil.copytree(config.data_dir, tmp_path / "two-data")
    one = _with(config, processes=1, data_dir=config.data_dir, feeds_dir=tmp_path / "one")
    two = _with(config, processes=2, data_dir=tmp_path / "two-data", feeds_dir=tmp_path / "two")

    single, single_files = _forced(one, store, isolated=False)
    cold, cold_files = _forced(two, store, isolated=True)
    warm, warm_files = _forced(two, store, isolated=True)

    assert (single.processes, cold.processes, warm.processes) == (1, 2, 2)
    assert len(single_files) == 30
    assert cold_files == single_files
    assert warm_files == single_files
    assert cold.written == single.written  # the same order, whichever process wrote what
    # Every fragment is stored once, whichever process made it, and a second publish makes none.
    assert (
        _rows(tmp_path / "two-data")
        == _rows(config.data_dir)
        == {
            "atom": 4,
            "json": 4,
            "rss": 4,
            "vevent": 9,
        }
    )
    # Every fragment is read once, as in one process.
    assert (warm.fragments_rendered, warm.fragments_reused) == (0, single.fragments_rendered)


def test_a_file_the_helper_process_cannot_write_fails_the_publish_with_its_path(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    two = _with(config, processes=2, data_dir=config.data_dir, feeds_dir=tmp_path / "feeds")
    blocked = two.feeds_dir / "sources" / "alpha.json"  # written by the helper (JSON Feed and iCalendar)
    (blocked / "in-the-way").mkdir(parents=True)

    with pytest.raises(PublishError) as raised:
        publish_from_store(two, store, now=NOW, base_url=BASE, isolated=True)

    assert str(raised.value) == f"{blocked}: cannot write: Is a directory"
    # The other process's files were written; the one in the way was left as it was.
    assert (
        (two.feeds_dir / "sources" / "alpha.xml")
        .read_bytes()
        .startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"')
    )
    assert (blocked / "in-the-way").is_dir()
    assert not (two.data_dir / "publish-token.json").exists()


def test_when_the_publisher_fails_its_helper_still_finishes_its_files_and_leaves_no_temporary(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    two = _with(config, processes=2, data_dir=config.data_dir, feeds_dir=tmp_path / "feeds")
    blocked = two.feeds_dir / "sources" / "alpha.xml"  # written by the publisher itself (RSS and Atom)
    (blocked / "in-the-way").mkdir(parents=True)

    with pytest.raises(PublishError) as raised:
        publish_from_store(two, store, now=NOW, base_url=BASE, isolated=True)

    assert str(raised.value) == f"{blocked}: cannot write: Is a directory"
    assert json.loads((two.feeds_dir / "sources" / "alpha.json").read_bytes())["title"] == "Cluster feeds: alpha"
    assert [p.name for p in two.feeds_dir.rglob(".*")] == []


FORKING = """
import json, os, signal, sys, threading
from aggregator.errors import PublishError
from aggregator.processes import fork_call

seen = []
returned = fork_call(lambda: {"pid": os.getpid(), "items": [1, 2, 3]}, "returning")
value = returned.result()
seen.append(f"returned {value['items']} from another process: {value['pid'] != os.getpid()}")

def fails():
    raise PublishError("/feeds/news.json", "cannot write: No space left on device")

try:
    fork_call(fails, "raising").result()
except PublishError as error:
    seen.append(f"raised {type(error).__name__}: {error}")

try:
    fork_call(lambda: os.kill(os.getpid(), signal.SIGKILL), "publishing .json, .ics files").result()
except ChildProcessError as error:
    seen.append(f"died: {error}")

release = threading.Event()
other = threading.Thread(target=release.wait)
other.start()
seen.append(f"with another thread running: {fork_call(lambda: 1, 'threaded')}")
release.set()
other.join()
print(json.dumps(seen))
"""


def test_fork_call_returns_raises_reports_death_and_never_forks_a_threaded_process(tmp_path: Path) -> None:
    script = tmp_path / "forking.py"
    script.write_text(FORKING, encoding="utf-8")

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)

    assert json.loads(done.stdout) == [
        "returned [1, 2, 3] from another process: True",
        "raised PublishError: /feeds/news.json: cannot write: No space left on device",
        "died: publishing .json, .ics files: the process died (killed by signal 9)",
        "with another thread running: None",
    ]


def test_a_helper_is_forked_only_when_the_machine_has_room_for_a_copy_of_the_publisher() -> None:
    assert room_for_copies(0)
    # A billion copies of this process fit on no machine: publishing stays in one process.
    assert not room_for_copies(10**9)
