"""file:// URLs: local files for offline use, with the size cap and an mtime-based Last-Modified."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.config import Defaults
from aggregator.errors import FetchError
from aggregator.fetch import FetchResult
from aggregator.records import Validators

Fetch = Callable[..., FetchResult]
MTIME = datetime(2026, 11, 24, 8, 31, 7, tzinfo=UTC).timestamp()


@pytest.fixture
def local_feed(tmp_path: Path, fixture_path: Callable[[str], Path]) -> Path:
    path = tmp_path / "silicon saxony" / "news.rss"
    path.parent.mkdir()
    shutil.copyfile(fixture_path("fetch/cluster_news.rss"), path)
    os.utime(path, (MTIME, MTIME))
    return path


def test_file_url_reads_the_file_with_mtime_as_last_modified(local_feed: Path, fetch_once: Fetch) -> None:
    url = local_feed.as_uri()

    result = fetch_once(url)

    assert url.endswith("/silicon%20saxony/news.rss")
    assert (result.url, result.final_url, result.status, result.not_modified) == (url, url, 200, False)
    assert result.body == local_feed.read_bytes()
    assert (result.content_type, result.charset) == ("application/rss+xml", None)
    assert result.validators == Validators(etag=None, last_modified="Tue, 24 Nov 2026 08:31:07 GMT")
    assert (result.permanent_redirect, result.max_age) == (None, None)


def test_unchanged_file_is_not_modified(local_feed: Path, fetch_once: Fetch) -> None:
    first = fetch_once(local_feed.as_uri())

    again = fetch_once(local_feed.as_uri(), validators=first.validators)

    assert (again.status, again.not_modified, again.body) == (304, True, b"")
    assert again.validators == first.validators


def test_touched_file_is_read_again(local_feed: Path, fetch_once: Fetch) -> None:
    first = fetch_once(local_feed.as_uri())
    os.utime(local_feed, (MTIME + 60, MTIME + 60))

    again = fetch_once(local_feed.as_uri(), validators=first.validators)

    assert (again.status, again.validators.last_modified) == (200, "Tue, 24 Nov 2026 08:32:07 GMT")


def test_file_over_the_limit_is_too_large(local_feed: Path, fetch_once: Fetch) -> None:
    with pytest.raises(FetchError) as caught:
        fetch_once(local_feed.as_uri(), defaults=Defaults(max_bytes=1000))

    assert (caught.value.reason, caught.value.message) == ("too-large", "response exceeds 1000 bytes")


def test_missing_file_names_the_path(tmp_path: Path, fetch_once: Fetch) -> None:
    missing = tmp_path / "gone.ics"

    with pytest.raises(FetchError) as caught:
        fetch_once(missing.as_uri())

    assert (caught.value.reason, caught.value.message) == (
        "network",
        f"cannot read {missing}: No such file or directory",
    )
