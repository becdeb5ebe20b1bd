"""Differential test: the fast path and feedparser give equal ParseResults on every feed fixture and the bench corpus.

The corpus test also counts the files that took the fast path, so a fast path that
silently declined everything would fail here rather than pass by falling back.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import SourceConfig, SourceKind
from aggregator.parse import fastfeed
from aggregator.parse.feed import _decode, parse_feed
from aggregator.records import ParseResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MAKE_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "bench" / "make_corpus.py"
FETCHED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _is_feed(path: Path) -> bool:
    head = path.read_bytes()[:3000]
    return path.suffix in (".xml", ".rss", ".atom", ".rdf") and any(
        root in head for root in (b"<rss", b"<feed", b"<rdf:RDF")
    )


FEED_FIXTURES = sorted(path for path in FIXTURES.rglob("*") if path.is_file() and _is_feed(path))


def _source(path: Path) -> tuple[SourceConfig, str]:
    url = f"https://www.{path.stem.lower().replace('_', '-')}.example/feed/{path.name}"
    return SourceConfig(name=path.stem, url=url, kind=SourceKind.FEED, timezone=ZoneInfo("Europe/Brussels")), url


def _parse(path: Path, *, fast: bool) -> ParseResult:
    source, url = _source(path)
    fastfeed.ENABLED = fast
    try:
        return parse_feed(path.read_bytes(), source=source, url=url, fetched_at=FETCHED)
    finally:
        fastfeed.ENABLED = True


def _takes_fast_path(path: Path) -> bool:
    source, url = _source(path)
    text, _note = _decode(path.read_bytes())
    return fastfeed.decline_reason(text, url, source) is None


@pytest.mark.parametrize("path", FEED_FIXTURES, ids=[str(p.relative_to(FIXTURES)) for p in FEED_FIXTURES])
def test_fixture_parses_the_same_with_and_without_the_fast_path(path: Path) -> None:
    assert _parse(path, fast=True) == _parse(path, fast=False)


def test_the_fixtures_of_this_area_all_take_the_fast_path() -> None:
    ours = [path for path in FEED_FIXTURES if path.parent.name == "parse"]

    assert [path.name for path in ours] == ["atom10_feedparser_quirks.atom", "rss2_feedparser_quirks.xml"]
    assert all(_takes_fast_path(path) for path in ours)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not MAKE_CORPUS.exists():
        pytest.skip(f"bench corpus generator not found at {MAKE_CORPUS} (../shared is absent)")
    out = tmp_path_factory.mktemp("corpus") / "small"
    subprocess.run(
        [sys.executable, str(MAKE_CORPUS), "--workload", "small", "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def test_bench_corpus_parses_the_same_and_every_feed_takes_the_fast_path(small_corpus: Path) -> None:
    files = sorted([*(small_corpus / "rss").glob("*.xml"), *(small_corpus / "atom").glob("*.atom")])

    fast_path = [path.name for path in files if _takes_fast_path(path)]
    assert (len(files), len(fast_path)) == (25, 25)
    records = 0
    for path in files:
        fast = _parse(path, fast=True)
        assert fast == _parse(path, fast=False), path.name
        records += len(fast.records)
    assert records == 500
