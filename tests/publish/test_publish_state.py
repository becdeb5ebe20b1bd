"""The publish's memory of feeds/: one line per scope, read back, and what it says about the files on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

from aggregator.publish.state import files_intact, intact, load_state, save_state, scope_entry, stamp

PATHS = ("sources/alpha.xml", "sources/alpha.atom", "sources/alpha.json", "sources/alpha.ics")


def _feeds(tmp_path: Path) -> Path:
    feeds = tmp_path / "feeds"
    (feeds / "sources").mkdir(parents=True)
    for number, path in enumerate(PATHS):
        (feeds / path).write_bytes(b"x" * (10 + number))
        os.utime(feeds / path, ns=(1_800_000_000_000_000_000 + number, 1_800_000_000_000_000_000 + number))
    return feeds


def test_an_entry_is_one_line_of_the_digest_then_each_file_size_and_mtime(tmp_path: Path) -> None:
    feeds = _feeds(tmp_path)
    entry = scope_entry("d1g35t", feeds, PATHS[:2])
    assert entry == ("d1g35t\tsources/alpha.xml\t10\t1800000000000000000\tsources/alpha.atom\t11\t1800000000000000001")
    assert stamp(feeds / PATHS[1]) == (11, 1_800_000_000_000_000_001)
    assert stamp(feeds / "sources/missing.xml") is None


def test_a_scope_is_intact_only_with_the_same_digest_and_untouched_files(tmp_path: Path) -> None:
    feeds = _feeds(tmp_path)
    entry = scope_entry("d1g35t", feeds, PATHS)
    assert intact(feeds, entry, "d1g35t", PATHS)
    assert not intact(feeds, entry, "other", PATHS)  # the scope's content changed
    assert not intact(feeds, None, "d1g35t", PATHS)  # never published
    assert not intact(feeds, {"digest": "d1g35t", "files": {}}, "d1g35t", PATHS)  # the old form
    assert not intact(feeds, "d1g35t\tsources/alpha.xml\tten\t1", "d1g35t", PATHS[:1])  # damaged
    os.utime(feeds / PATHS[2], ns=(1, 1))  # someone touched a file
    assert not intact(feeds, entry, "d1g35t", PATHS)
    assert intact(feeds, scope_entry("d1g35t", feeds, PATHS), "d1g35t", PATHS)
    (feeds / PATHS[3]).unlink()
    gone = scope_entry("d1g35t", feeds, PATHS)  # written, then lost before the stamp was taken
    assert gone.endswith("\tsources/alpha.ics\t-1\t-1")
    assert not intact(feeds, gone, "d1g35t", PATHS)


def test_files_intact_counts_every_file_or_says_none(tmp_path: Path) -> None:
    feeds = _feeds(tmp_path)
    scopes = {"sources/alpha": scope_entry("a", feeds, PATHS[:3]), "tags/x": scope_entry("b", feeds, PATHS[3:])}
    assert files_intact(feeds, scopes) == 4
    (feeds / PATHS[3]).write_bytes(b"changed by hand")
    assert files_intact(feeds, scopes) is None


def test_the_state_is_saved_and_read_back_for_its_own_feeds_folder_only(tmp_path: Path) -> None:
    feeds = _feeds(tmp_path)
    path = tmp_path / "data" / "publish-state.json"
    path.parent.mkdir()
    scopes = {"tags/x": scope_entry("b", feeds, PATHS[3:]), "sources/alpha": scope_entry("a", feeds, PATHS[:3])}
    save_state(path, feeds, scopes)
    assert load_state(path, feeds) == scopes
    assert list(json.loads(path.read_text())["scopes"]) == ["sources/alpha", "tags/x"]  # sorted: stable bytes
    assert load_state(path, tmp_path / "elsewhere") == {}
    # An earlier form of the file (or none, or garbage) is no state at all: every scope is rendered once.
    old = {"feeds_dir": str(feeds.resolve()), "scopes": {"sources/alpha": {"digest": "a", "files": {}}}}
    path.write_text(json.dumps(old))
    assert load_state(path, feeds) == {}
    path.write_text("{not json")
    assert load_state(path, feeds) == {}
    path.unlink()
    assert load_state(path, feeds) == {}
