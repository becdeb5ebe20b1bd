"""Differential check of the feed fast path: every RSS/Atom file parsed with it and without it.

``.venv/bin/python -m bench.differential CORPUS_DIR [CORPUS_DIR...]`` reads the
``rss/`` and ``atom/`` files of each bench corpus (or, for any other directory,
every ``*.xml``, ``*.rss``, ``*.atom`` and ``*.rdf`` under it), parses each one
with ``parse_feed`` twice (``fastfeed.ENABLED`` on, then off), prints the files
and records compared, how many took the fast path (and why the others did
not), the CPU time and items/s of each way, and every difference. Exit status 1
on any difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from aggregator.config import SourceConfig, SourceKind
from aggregator.parse import fastfeed
from aggregator.parse.feed import _decode, parse_feed
from aggregator.records import ParseResult

FETCHED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
_SUFFIXES = (".xml", ".rss", ".atom", ".rdf")


def feed_files(corpus: Path) -> list[Path]:
    """The RSS/Atom files of a bench corpus, or every feed-looking file under another directory."""
    if (corpus / "rss").is_dir() or (corpus / "atom").is_dir():
        return sorted(p for sub in ("rss", "atom") for p in (corpus / sub).glob("*") if p.is_file())
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix in _SUFFIXES)


def source_for(path: Path) -> tuple[SourceConfig, str]:
    url = f"https://{path.stem.lower()}.example/feed/{path.name}"
    return SourceConfig(name=path.stem, url=url, kind=SourceKind.FEED, timezone=ZoneInfo("Europe/Brussels")), url


def parse(body: bytes, path: Path, *, fast: bool) -> ParseResult:
    source, url = source_for(path)
    previous, fastfeed.ENABLED = fastfeed.ENABLED, fast
    try:
        return parse_feed(body, source=source, url=url, fetched_at=FETCHED)
    finally:
        fastfeed.ENABLED = previous


def differences(fast: ParseResult, slow: ParseResult) -> list[str]:
    """Human-readable differences between two results, record by record and field by field."""
    found: list[str] = []
    if len(fast.records) != len(slow.records):
        found.append(f"records: fast {len(fast.records)}, feedparser {len(slow.records)}")
    for number, (a, b) in enumerate(zip(fast.records, slow.records, strict=False), start=1):
        for spec in fields(a):
            left, right = getattr(a, spec.name), getattr(b, spec.name, None)
            if left != right:
                found.append(f"record {number} {spec.name}: fast {left!r} != feedparser {right!r}")
    if fast.problems != slow.problems:
        found.append(f"problems: fast {fast.problems!r} != feedparser {slow.problems!r}")
    for name in ("discovered_url", "explanations", "detail_links"):
        if getattr(fast, name) != getattr(slow, name):
            found.append(f"{name}: fast {getattr(fast, name)!r} != feedparser {getattr(slow, name)!r}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.differential", description=__doc__.split("\n")[0])
    parser.add_argument("corpora", nargs="+", type=Path, metavar="CORPUS_DIR")
    args = parser.parse_args(argv)
    files = [path for corpus in args.corpora for path in feed_files(corpus)]
    if not files:
        print("no RSS/Atom files found", file=sys.stderr)
        return 2
    bodies = [(path, path.read_bytes()) for path in files]
    declined: Counter[str] = Counter()
    for path, body in bodies:
        source, url = source_for(path)
        text, _note = _decode(body)
        reason = fastfeed.decline_reason(text, url, source)
        if reason is not None:
            declined[reason[:70]] += 1
    results: dict[bool, list[ParseResult]] = {}
    seconds: dict[bool, float] = {}
    for fast in (False, True):
        started = time.process_time()
        results[fast] = [parse(body, path, fast=fast) for path, body in bodies]
        seconds[fast] = time.process_time() - started
    records = sum(len(result.records) for result in results[False])
    different = 0
    for (path, _body), fast_result, slow_result in zip(bodies, results[True], results[False], strict=True):
        found = differences(fast_result, slow_result)
        if found:
            different += 1
            print(f"DIFFERENT {path}")
            for line in found:
                print(f"  {line}")
    print(f"files compared: {len(files)}; records compared: {records}; files with differences: {different}")
    print(f"fast path taken: {len(files) - sum(declined.values())} files; declined: {sum(declined.values())}")
    for reason, count in declined.most_common():
        print(f"  declined {count}: {reason}")
    for fast in (False, True):
        label = "fast path on " if fast else "feedparser only"
        rate = records / seconds[fast] if seconds[fast] else float("inf")
        print(f"{label}: {seconds[fast]:.2f} s CPU, {rate:,.0f} items/s")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
