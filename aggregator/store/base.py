"""The storage interface every backend implements (SQLite, PostgreSQL).

SQL stays inside ``store/``; the pipeline sees only this Protocol and the
typed records. One contract-test module runs against every implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from aggregator.matching import MatchKeys
from aggregator.records import EventRecord, NewsRecord, Record, SourceState

__all__ = ["Store", "StoredEvent", "StoredNews", "UpsertSummary"]


@dataclass(frozen=True, slots=True)
class StoredNews:
    record: NewsRecord
    first_seen: datetime  # when we first stored it (fallback publication date)
    changed_at: datetime  # when its content last changed
    # The store's digest of the record's content ("" when unknown): lets publish skip unchanged files.
    content_hash: str = field(default="", compare=False)
    # De-duplication keys saved in the row (None: not yet, or under other rules; the publish computes them).
    match: MatchKeys | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    record: EventRecord
    sequence: int  # our SEQUENCE: rises each time the event's content changes
    first_seen: datetime
    changed_at: datetime  # LAST-MODIFIED in the published calendar
    content_hash: str = field(default="", compare=False)  # as in StoredNews
    match: MatchKeys | None = field(default=None, compare=False)  # as in StoredNews


@dataclass(frozen=True, slots=True)
class UpsertSummary:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


class Store(Protocol):
    def upsert(self, source: str, records: Sequence[Record], *, now: datetime) -> UpsertSummary:
        """Insert or update a source's records in one transaction; never deletes."""
        ...

    def news(
        self,
        *,
        source: str | None = None,
        tag: str | None = None,
        limit: int | None = None,
        known: Mapping[tuple[str, str], StoredNews] | None = None,
        per_source: int | None = None,
        sources: Collection[str] | None = None,
    ) -> list[StoredNews]:
        """News newest first (published, else first_seen).

        ``known`` (by source and key: an earlier read) is taken as it is for every row whose
        content digest is still the same; only the other rows' payloads are read and decoded.
        ``per_source``: only the newest that many of each source (ties broken by key), so a
        publish reads what its capped feeds can show, not every item stored over the years.
        ``sources``: only these sources' news, ordered by source first, each source's newest first (a
        publish that reads a group of sources at a time).
        """
        ...

    def count_news(self) -> int:
        """How many news are stored (a publish chooses how to go through them)."""
        ...

    def events(
        self,
        *,
        since: datetime,
        source: str | None = None,
        tag: str | None = None,
        known: Mapping[tuple[str, str], StoredEvent] | None = None,
        sources: Collection[str] | None = None,
    ) -> list[StoredEvent]:
        """Events that end (or start, if open-ended) at or after ``since``, plus every recurring one.

        ``known``, ``sources``: as in ``news``.
        """
        ...

    def count_events(self, *, since: datetime) -> int:
        """How many events ``events(since=since)`` would return (a publish chooses how to hold them)."""
        ...

    def stream_events(self, *, since: datetime, sources: Collection[str] | None = None) -> Iterator[StoredEvent]:
        """``events(since=since, sources=sources)`` one by one as they are read, in the same order: never all
        decoded at once."""
        ...

    def stream_news(self, *, sources: Collection[str], per_source: int | None = None) -> Iterator[StoredNews]:
        """``news(sources=sources, per_source=per_source)`` one by one as they are read, in the same order."""
        ...

    def recurring_series(self) -> set[tuple[str, str]]:
        """(source, UID) of every stored recurring event (RRULE or RDATE): known before its overrides stream by."""
        ...

    def overrides(self) -> list[EventRecord]:
        """Every stored override (an event with a RECURRENCE-ID): its series must skip the occurrence it
        replaces (``ics.published_vevents``), known before that series streams by."""
        ...

    def save_match_keys(self, keys: Sequence[tuple[StoredNews | StoredEvent, MatchKeys]]) -> int:
        """Store de-duplication keys computed for items read without them (``match`` None); returns rows updated.

        Rows whose content changed since they were read are left alone. Changes no output:
        the generation does not rise.
        """
        ...

    def state(self, name: str) -> SourceState:
        """Stored state of one source (an empty one if never seen)."""
        ...

    def states(self) -> list[SourceState]: ...

    def save_state(self, state: SourceState) -> None: ...

    def save_states(self, states: Sequence[SourceState]) -> None:
        """Save several states in one transaction (what a cycle's sources finished at about the same time)."""
        ...

    def generation(self) -> int:
        """A number that rises whenever records change: publish skips work when it has not."""
        ...

    def ensure_states(self, names: Iterable[str]) -> None:
        """Create empty states (due at once) for sources not stored yet, so workers can claim them."""
        ...

    def claim_due(
        self, worker: str, now: datetime, lease: timedelta, limit: int, *, names: Collection[str] | None = None
    ) -> list[str]:
        """Lease up to ``limit`` sources due at ``now`` whose lease is free or expired; disjoint across workers.

        ``names`` (optional) restricts the claim to those sources: the running configuration's.
        """
        ...

    def release(self, name: str, worker: str) -> None:
        """Give up ``worker``'s lease on a source."""
        ...

    def location(self) -> str | None:
        """A URL another process opens this same store with (``open_store``); None when it cannot."""
        ...

    def publish_lock(self) -> AbstractContextManager[bool]:
        """``with store.publish_lock() as granted:`` True when no other process is publishing."""
        ...

    def close(self) -> None: ...
