"""The daemons publish in a short-lived child process: same files, same report, errors come back typed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aggregator.config import Config
from aggregator.errors import PublishError
from aggregator.runtime import publish_from_store
from aggregator.store.sqlalchemy_store import SqlStore

from .conftest import BASE, NOW


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
