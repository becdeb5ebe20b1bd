"""A publish past its memory budget keeps rendered items in a spill file, and writes the same bytes.

A 10,000-source store has 160 MB of RSS items alone; every item is in about four files, so a
publish used to hold a whole format's fragments at once. Past ``publish_memory_mb`` they wait
in an unlinked temporary file and are read back as each file is written. These tests publish
the same real store with no room at all (``publish_memory_mb = 0``: every fragment spilled)
and with the default, in one and in two processes, cold and warm, and compare the files byte
for byte; the cache class itself is checked with a budget of a few hundred bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from aggregator.config import Config
from aggregator.fragments import FragmentCache, Spilled, fragment_cache, joined
from aggregator.processes import room_for_copies
from aggregator.publish import PublishReport
from aggregator.runtime import publish_from_store
from aggregator.store.sqlalchemy_store import SqlStore

from .conftest import BASE, NOW


def _files(feeds_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in sorted(feeds_dir.rglob("*")) if p.is_file()}


def _with(config: Config, tmp_path: Path, name: str, *, memory_mb: int, processes: int) -> Config:
    """``config`` with its own data directory (a copy: the store is shared) and feeds directory."""
    data_dir = tmp_path / f"{name}-data"
    shutil.copytree(config.data_dir, data_dir)
    defaults = dataclasses.replace(config.defaults, publish_memory_mb=memory_mb, publish_processes=processes)
    return dataclasses.replace(config, defaults=defaults, data_dir=data_dir, feeds_dir=tmp_path / name)


def _forced(config: Config, store: SqlStore) -> tuple[PublishReport, dict[str, bytes]]:
    shutil.rmtree(config.feeds_dir, ignore_errors=True)
    for name in ("publish-state.json", "publish-token.json"):
        (config.data_dir / name).unlink(missing_ok=True)
    report = publish_from_store(config, store, now=NOW, base_url=BASE, isolated=config.defaults.publish_processes > 1)
    return report, _files(config.feeds_dir)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_publish_with_no_memory_for_fragments_spills_them_all_and_writes_the_same_bytes(
    config: Config, store: SqlStore, tmp_path: Path, processes: int
) -> None:
    if processes == 2 and not room_for_copies(1):
        pytest.skip("not enough free memory for a second publishing process")
    roomy = _with(config, tmp_path, "roomy", memory_mb=64, processes=1)
    tight = _with(config, tmp_path, "tight", memory_mb=0, processes=processes)

    reference, reference_files = _forced(roomy, store)
    cold, cold_files = _forced(tight, store)
    warm, warm_files = _forced(tight, store)

    assert len(reference_files) == 30
    assert cold_files == reference_files
    assert warm_files == reference_files
    assert cold.processes == warm.processes == processes
    # 21 fragments (RSS, Atom and JSON Feed of 4 news, 9 VEVENTs): with no room, every one waits
    # in the spill file, both when it is made and when a later publish reads it from the cache.
    assert (cold.fragments_rendered, cold.fragments_spilled) == (21, 21)
    assert (warm.fragments_reused, warm.fragments_spilled) == (21, 21)
    assert reference.fragments_spilled == 0
    # The spill file was unlinked at once: nothing is left in the data directory.
    assert not [p.name for p in tight.data_dir.iterdir() if p.name.startswith(".spill-")]


def test_fragments_past_the_budget_wait_in_the_spill_file_and_read_back_exactly(tmp_path: Path) -> None:
    bodies = [f"<item>{n:04d}</item>\n".encode() * (n % 7 + 1) for n in range(3000)]  # 3000 items, 0.16 MB
    made: list[bytes | Spilled] = []
    with fragment_cache(tmp_path / "render-cache.sqlite3", memory_budget=500) as cache:
        for number, body in enumerate(bodies):
            made.append(cache.put("rss", number.to_bytes(8, "big"), number, 1, body))
        in_memory = [m for m in made if isinstance(m, bytes)]
        # Items of 18 to 126 bytes: 0-5 fill 378 bytes, 6 (126) does not fit, 7-9 (18, 36, 54) do.
        assert [made.index(m) for m in in_memory] == [0, 1, 2, 3, 4, 5, 7, 8, 9]
        assert sum(map(len, in_memory)) == 486
        assert cache.spilled == 2991
        # Read back in any order, also those still in the write buffer, from another thread's view.
        assert [m if isinstance(m, bytes) else m.read() for m in reversed(made)] == bodies[::-1]
        assert joined(made) == b"".join(bodies)
        last = made[-1]
        assert isinstance(last, Spilled)
        assert last.tail(len(b"<item>2999</item>\n")).read() == b"<item>2999</item>\n" * 3

    # The next publish reads them from the cache: again the first 500 bytes in memory, the rest spilled.
    cache = FragmentCache(tmp_path / "render-cache.sqlite3", memory_budget=500)
    try:
        read = [cache.get("rss", number.to_bytes(8, "big")) for number in range(3000)]
        assert sum(len(r) for r in read if isinstance(r, bytes)) <= 500
        assert cache.spilled == sum(isinstance(r, Spilled) for r in read) > 2900
        assert [r if isinstance(r, bytes) else r.read() for r in read if r is not None] == bodies
    finally:
        cache.close()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".spill-")]


@pytest.mark.parametrize(("budget", "saved_before_close"), [(0, 8193), (64 << 20, 0)])
def test_past_the_budget_new_fragments_are_saved_as_they_come_not_held_until_the_format_ends(
    tmp_path: Path, budget: int, saved_before_close: int
) -> None:
    """A first publish of a large store makes 140 MB of each format: past the budget they go to disk every 8 MB."""
    path = tmp_path / "render-cache.sqlite3"
    body = b"x" * 1024
    with fragment_cache(path, memory_budget=budget) as cache:
        for number in range(9000):  # 9 MB
            cache.put("rss", number.to_bytes(8, "big"), number, 1, body)
        cache._settle_writes()  # the writer thread's batches so far (a test's window into the cache)
        with sqlite3.connect(path) as other:
            (saved,) = other.execute("SELECT count(*) FROM fragment").fetchone()
        assert saved == saved_before_close
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT count(*) FROM fragment").fetchone() == (9000,)


def test_a_spilled_fragment_read_after_its_publish_ended_fails_instead_of_reading_another_file(tmp_path: Path) -> None:
    with fragment_cache(tmp_path / "render-cache.sqlite3", memory_budget=0) as cache:
        late = cache.put("rss", b"k", 1, 1, b"<item>late</item>\n")
        assert isinstance(late, Spilled)
        assert late.read() == b"<item>late</item>\n"
    reused = os.open(tmp_path / "another-file", os.O_RDWR | os.O_CREAT)  # likely takes the spill file's number
    try:
        os.write(reused, b"not a fragment at all")
        with pytest.raises(OSError, match="Bad file descriptor"):
            late.read()
    finally:
        os.close(reused)


def test_without_a_place_for_the_spill_file_fragments_stay_in_memory_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "data"
    blocked.write_text("a file where the data directory should be")
    with (
        caplog.at_level(logging.WARNING, logger="aggregator.publish"),
        fragment_cache(blocked / "render-cache.sqlite3", memory_budget=0) as cache,
    ):
        made = [cache.put("rss", bytes([n]), n, 1, b"<item>%d</item>\n" % n) for n in range(3)]
    assert made == [b"<item>0</item>\n", b"<item>1</item>\n", b"<item>2</item>\n"]
    assert cache.spilled == 0
    warnings = [r.getMessage() for r in caplog.records if "spill" in r.getMessage()]
    assert warnings == [
        f"render cache {blocked / 'render-cache.sqlite3'}: no spill file ([Errno 17] File exists: '{blocked}'): "
        "fragments stay in memory"
    ]


def test_records_past_the_copy_limit_are_published_by_one_process_with_the_same_bytes(
    config: Config, store: SqlStore, tmp_path: Path
) -> None:
    """A forked helper holds its own copy of the records it touches: past ``publish_copy_limit_mb``, none."""
    if not room_for_copies(1):
        pytest.skip("not enough free memory for a second publishing process")
    shared = _with(config, tmp_path, "shared", memory_mb=64, processes=2)
    alone = _with(config, tmp_path, "alone", memory_mb=64, processes=2)
    alone = dataclasses.replace(alone, defaults=dataclasses.replace(alone.defaults, publish_copy_limit_mb=0))

    two, two_files = _forced(shared, store)
    one, one_files = _forced(alone, store)

    assert (two.processes, one.processes) == (2, 1)
    assert len(one_files) == 30
    assert one_files == two_files
