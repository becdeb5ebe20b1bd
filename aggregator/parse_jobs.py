"""The parse stage's jobs as they run in the parse processes (pool workers, fresh children).

Top-level functions, so that a process pool can pickle them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aggregator.config import SourceConfig
from aggregator.parse import parse_document
from aggregator.processes import note_job_done
from aggregator.records import ParseResult, Problem
from aggregator.store import UpsertSummary, open_store

__all__ = ["StoredByParser", "parse_and_store", "parse_job", "parse_spooled"]


def parse_job(
    body: bytes, source: SourceConfig, url: str, content_type: str | None, fetched_at: datetime
) -> ParseResult:
    """``parse_document`` in a parse process (top-level so a process pool can pickle it)."""
    try:
        return parse_document(body, source=source, url=url, content_type=content_type, fetched_at=fetched_at)
    finally:
        note_job_done(len(body))


def parse_spooled(
    path: str, source: SourceConfig, url: str, content_type: str | None, fetched_at: datetime
) -> ParseResult:
    """``parse_job`` of a body the daemon wrote to ``path`` (see ``Pipeline._from_file``)."""
    return parse_job(Path(path).read_bytes(), source, url, content_type, fetched_at)


@dataclass(frozen=True, slots=True)
class StoredByParser:
    """A big document's records, stored by the process that parsed them (``parse_and_store``)."""

    records: int
    summary: UpsertSummary
    problems: tuple[Problem, ...]


def parse_and_store(
    path: str, source: SourceConfig, url: str, content_type: str | None, fetched_at: datetime, store_location: str
) -> ParseResult | StoredByParser:
    """``parse_spooled``, then the records stored from this process when the daemon has nothing to add.

    A 33 MB calendar's 50,000 records went back to the daemon only to be stored: unpickled there,
    they raised its peak from 72 to 219 MB and left it at 140 MB. Records that still need the
    daemon (detail pages to fetch, a feed to discover, an error page) go back as they are. The
    store takes writers from several processes (SQLite waits for its lock, PostgreSQL locks the
    source), and a parser killed mid-write leaves its transaction undone.
    """
    parsed = parse_spooled(path, source, url, content_type, fetched_at)
    if not parsed.records or (parsed.detail_links and source.max_detail_pages > 0):
        return parsed
    store = open_store(store_location)
    try:
        summary = store.upsert(source.name, parsed.records, now=fetched_at)
    finally:
        store.close()
    return StoredByParser(len(parsed.records), summary, parsed.problems)
