"""Writing feeds/: unchanged bytes are not rewritten, stale files go, a failed write keeps the old file."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.errors import PublishError
from aggregator.publish import publish
from aggregator.publish._files import write_if_changed


def _mtimes(feeds_dir: Path) -> dict[str, int]:
    return {p.relative_to(feeds_dir).as_posix(): p.stat().st_mtime_ns for p in feeds_dir.rglob("*") if p.is_file()}


def test_publishing_the_same_data_again_rewrites_nothing(feeds_dir, cluster_input):
    first = publish(feeds_dir, cluster_input)
    before = _mtimes(feeds_dir)
    second = publish(feeds_dir, cluster_input)
    assert (len(first.written), first.unchanged) == (30, 0)
    assert (second.written, second.unchanged, second.removed) == ((), 30, ())
    assert _mtimes(feeds_dir) == before


def test_a_changed_item_rewrites_only_the_files_that_show_it(feeds_dir, cluster_input, make_news):
    publish(feeds_dir, cluster_input)
    extra = make_news("gamma", "charging-study", "Charging study", published=datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    report = publish(feeds_dir, replace(cluster_input, news=[*cluster_input.news, extra]))
    assert sorted(report.written) == sorted(
        [f"{scope}.{ext}" for scope in ("news", "sources/gamma", "tags/mobility") for ext in ("xml", "atom", "json")]
        + ["index.html"]
    )
    assert report.unchanged == 20
    assert b"Charging study" in (feeds_dir / "news.xml").read_bytes()


def test_files_of_removed_sources_and_tags_are_deleted_after_the_new_ones_are_written(
    feeds_dir, cluster_input, configured
):
    publish(feeds_dir, cluster_input)
    (feeds_dir / "sources" / "README.txt").write_text("kept: not a feed")
    config = replace(cluster_input.config, sources=(configured["alpha"], configured["beta"]))
    report = publish(feeds_dir, replace(cluster_input, config=config))
    assert report.removed == (
        "sources/gamma.atom", "sources/gamma.ics", "sources/gamma.json", "sources/gamma.xml",
        "tags/mobility.atom", "tags/mobility.ics", "tags/mobility.json", "tags/mobility.xml",
    )  # fmt: skip
    assert sorted(p.name for p in (feeds_dir / "sources").iterdir()) == [
        "README.txt", "alpha.atom", "alpha.ics", "alpha.json", "alpha.xml",
        "beta.atom", "beta.ics", "beta.json", "beta.xml",
    ]  # fmt: skip
    assert b"Funding clinic" not in (feeds_dir / "events.ics").read_bytes()


def test_no_temporary_files_are_left_behind(feeds_dir, cluster_input):
    publish(feeds_dir, cluster_input)
    assert [p.name for p in feeds_dir.rglob(".*")] == []


@contextlib.contextmanager
def _read_only(directory: Path):
    """Make ``directory`` and its sub-folders unwritable: chmod for a normal user, a read-only bind mount for root."""
    folders = [directory, *(p for p in directory.rglob("*") if p.is_dir())]
    if os.geteuid() != 0:
        for folder in folders:
            folder.chmod(0o555)
        try:
            yield
        finally:
            for folder in folders:
                folder.chmod(0o755)
        return
    mounted = []
    try:
        for folder in folders:
            subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True, capture_output=True)
            mounted.append(folder)
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        for folder in reversed(mounted):
            subprocess.run(["umount", str(folder)], check=False, capture_output=True)
        pytest.skip(f"running as root and cannot bind-mount read-only here: {exc}")
    try:
        yield
    finally:
        for folder in reversed(mounted):
            subprocess.run(["umount", str(folder)], check=True, capture_output=True)


def test_read_only_feeds_dir_raises_publish_error_and_keeps_old_files(feeds_dir, cluster_input, make_news):
    publish(feeds_dir, cluster_input)
    old = {name: (feeds_dir / name).read_bytes() for name in ("news.xml", "events.ics", "sources/alpha.xml")}
    extra = make_news("alpha", "late", "Late story", published=datetime(2026, 11, 26, 7, 0, tzinfo=UTC))
    with _read_only(feeds_dir), pytest.raises(PublishError) as caught:
        publish(feeds_dir, replace(cluster_input, news=[*cluster_input.news, extra]))
    assert (caught.value.path, caught.value.message) == (
        str(feeds_dir / "news.xml"),
        "cannot write: Read-only file system" if os.geteuid() == 0 else "cannot write: Permission denied",
    )
    assert {name: (feeds_dir / name).read_bytes() for name in old} == old
    assert [p.name for p in feeds_dir.rglob(".*")] == []


def test_disk_full_raises_publish_error_removes_the_temporary_file_and_keeps_the_old_one(
    feeds_dir, cluster_input, make_news
):
    publish(feeds_dir, cluster_input)
    old = (feeds_dir / "news.xml").read_bytes()
    extra = make_news("alpha", "late", "Late story", published=datetime(2026, 11, 26, 7, 0, tzinfo=UTC))
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, limits[1]))  # writes past 1 KiB fail with EFBIG
    try:
        with pytest.raises(PublishError) as caught:
            publish(feeds_dir, replace(cluster_input, news=[*cluster_input.news, extra]))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert str(caught.value) == f"{feeds_dir / 'news.xml'}: cannot write: File too large"
    assert (feeds_dir / "news.xml").read_bytes() == old
    assert [p.name for p in feeds_dir.rglob(".*")] == []


def test_temporaries_abandoned_by_a_killed_writer_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    from aggregator.publish._files import remove_abandoned_temporaries

    old = tmp_path / ".news.xml.4242.tmp"
    fresh = tmp_path / ".events.ics.4343.tmp"
    mine = tmp_path / "notes.tmp"
    for path in (old, fresh, mine):
        path.write_bytes(b"half a file")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(mine, (two_hours_ago, two_hours_ago))
    assert remove_abandoned_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".events.ics.4343.tmp", "notes.tmp"]


def test_a_file_given_as_pieces_is_written_and_compared_piece_by_piece(tmp_path: Path) -> None:
    """Feeds are written from their items' fragments (more pieces than one writev takes, some empty)."""
    pieces = [f"<item>{i}</item>\n".encode() if i % 7 else b"" for i in range(3000)]
    target = tmp_path / "news.xml"

    assert write_if_changed(target, pieces) is True
    assert target.read_bytes() == b"".join(pieces)
    assert write_if_changed(target, b"".join(pieces)) is False  # the same bytes, given whole
    assert write_if_changed(target, [*pieces[:-1], b"<item>2999</item>\n"]) is False
    changed = [*pieces[:-2], b"<item>2998 changed</item>\n", pieces[-1]]
    assert write_if_changed(target, changed) is True
    assert target.read_bytes().endswith(b"<item>2998 changed</item>\n<item>2999</item>\n")
