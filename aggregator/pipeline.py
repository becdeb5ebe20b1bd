"""One source's cycle: fetch -> parse -> store, and the state that decides the next one.

This is the wiring between the I/O edges (fetcher, store) and the pure middle
(parse/, extract/). Parsing runs in a process pool when one is given, so the
event loop keeps fetching while both cores parse.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from aggregator.config import Config, SourceConfig
from aggregator.detail_cache import CachedPage, DetailCache
from aggregator.errors import FetchError, ParseError
from aggregator.fetch import Fetcher, FetchResult
from aggregator.logs import log_event
from aggregator.metrics import Metrics
from aggregator.parse.detail import enrich_from_detail
from aggregator.parse_jobs import StoredByParser, parse_and_store, parse_job, parse_spooled
from aggregator.processes import ParsePool, parse_in_fresh_process
from aggregator.records import ParseResult, Problem, Record, SourceState, Strategy, Validators
from aggregator.store.base import Store, UpsertSummary

__all__ = ["Outcome", "Pipeline", "SourceOutcome", "next_run_after_failure", "next_run_after_success"]

log = logging.getLogger("aggregator.pipeline")
_Parsed = TypeVar("_Parsed")  # what a fresh parser process returns


class Outcome(StrEnum):
    CHANGED = "changed"  # new or updated records stored
    UNCHANGED = "unchanged"  # fetched and parsed (or body identical): nothing new
    NOT_MODIFIED = "not-modified"  # 304
    FAILED = "failed"
    SKIPPED = "skipped"  # disabled


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    source: str
    outcome: Outcome
    summary: UpsertSummary = field(default_factory=UpsertSummary)
    records: int = 0
    error: str | None = None
    problems: tuple[Problem, ...] = ()
    duration: float = 0.0
    nbytes: int = 0
    next_run: datetime | None = None


MAX_FRESHNESS = timedelta(days=7)  # a Cache-Control max-age longer than this is not believed
DORMANT_RETRY = timedelta(days=1)  # a dormant source is still tried once a day


def _jitter(delay: timedelta, share: float = 0.1) -> timedelta:
    """Spread retries so sources that failed together do not retry together.

    Only ever later: the interval, Retry-After and max-age are minimums (the issue's
    "never hammered"), so jitter may stretch a wait but never shorten it.
    """
    return delay * (1 + random.uniform(0, share))


def next_run_after_success(source: SourceConfig, now: datetime, max_age: float | None) -> datetime:
    """The configured interval is a minimum; a longer Cache-Control max-age stretches it."""
    delay = source.interval
    if max_age is not None and max_age > delay.total_seconds():
        delay = min(timedelta(seconds=max_age), MAX_FRESHNESS)
    return now + _jitter(delay, 0.05)


def next_run_after_failure(
    source: SourceConfig,
    now: datetime,
    failures: int,
    cap: timedelta,
    retry_after: float | None,
    *,
    dormant: bool = False,
) -> datetime:
    """Exponential backoff from the interval up to ``cap``; never sooner than Retry-After.

    A dormant source waits a day (or its interval, if longer) whatever its count of failures.
    Retry-After is honoured up to ``cap`` (a server asking for a week does not get to stop us).
    """
    if dormant:
        delay = max(DORMANT_RETRY, source.interval)
    else:
        delay = max(min(source.interval * (2 ** max(0, min(failures - 1, 20))), cap), source.interval)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=min(retry_after, cap.total_seconds())))
    return now + _jitter(delay)


def body_hash(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


class _StateWriter:
    """Saves source states in groups: a group commit for the states of concurrent sources.

    The first state to arrive is written at once, in a worker thread; states arriving
    meanwhile wait and go together in the next transaction. Each caller still waits
    until its own state is committed, so the next run is stored before a source's
    cycle returns (a restart resumes from it, a worker releases its lease after it),
    yet a cycle of 1,000 sources costs a handful of transactions instead of 1,000.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[SourceState, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def save(self, state: SourceState) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((state, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        batch: list[tuple[SourceState, asyncio.Future[None]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(self._store.save_states, [state for state, _ in batch])
                except Exception as error:  # e.g. StoreError: each waiting source sees it, as before
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
                batch = []
        finally:
            for _, done in batch + self._pending:  # only when cancelled mid-write
                if not done.done():
                    done.cancel()


SPOOL_BYTES = 1 << 20  # a body this large goes to a parse worker through a file, not the pool's pipe


def remove_abandoned_bodies(directory: Path, *, older_than: float = 3600.0) -> int:
    """Delete spooled bodies a killed daemon left in ``directory`` (only old ones: a live parse's is seconds old)."""
    cutoff = time.time() - older_than
    count = 0
    for entry in directory.glob(".body-*"):
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
                count += 1
    return count


def _spool(directory: Path, body: bytes) -> Path:
    """``body`` in a new hidden file in ``directory`` (the caller removes it)."""
    descriptor, name = tempfile.mkstemp(prefix=".body-", dir=directory)
    with os.fdopen(descriptor, "wb") as file:
        file.write(body)
    return Path(name)


def _enrich(record: Record, body: bytes, source: SourceConfig, url: str, fetched_at: datetime) -> Record:
    return enrich_from_detail(record, body, source=source, url=url, fetched_at=fetched_at)


class Pipeline:
    """Runs source cycles against one store and one fetcher."""

    def __init__(
        self,
        config: Config,
        store: Store,
        fetcher: Fetcher,
        *,
        executor: Executor | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        remember_states: bool = False,
    ) -> None:
        """``remember_states``: this process is the only one writing source states (the daemon),
        so they are read from the store once and then kept in memory as they are saved.
        """
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.executor = executor
        self.metrics = metrics
        self.clock = clock
        # Detail pages seen by this process, asked for again with conditional GET.
        self.detail_cache = DetailCache()
        self.remember_states = remember_states
        self._states: dict[str, SourceState] | None = None
        self._states_loading: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._writer = _StateWriter(store)
        self._flight: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.bodies_spooled = 0  # bodies sent to the parse pool through a file (``_parse``)
        if self._parses_in_processes():
            remove_abandoned_bodies(config.data_dir)

    async def _in_pool(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.executor is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _parses_in_processes(self) -> bool:
        """Parsing happens in other processes (the daemon's pool), which share the data directory's body files."""
        return isinstance(self.executor, ProcessPoolExecutor | ParsePool)

    def _big(self, body: bytes) -> bool:
        return self._parses_in_processes() and len(body) >= SPOOL_BYTES

    async def _spooled(self, body: bytes) -> Path | None:
        """A big ``body`` in a file of the data directory, for a process of its own to parse
        (``_from_file``); None when it is small, or when that file cannot be written (no room,
        no right): then the pool's pipe takes it."""
        if not self._big(body):
            return None
        try:
            return await asyncio.to_thread(_spool, self.config.data_dir, body)
        except OSError:
            return None

    async def _from_file(
        self, spooled: Path, size: int, source: SourceConfig, function: Callable[..., _Parsed], *args: object
    ) -> _Parsed:
        """``function(spooled, *args)`` in a process of its own that ends after it (``parse_in_fresh_process``).

        Sent through the pool's pipe, a big body was pickled into a second copy, which the pipe's
        feeder thread kept until the next job (a 33 MB calendar: 37 MB more in the daemon). And a
        pool worker that parsed it stayed big: the process that parses it here gives all back by
        ending. Meanwhile the pool is one worker narrower (``ParsePool.reserved``): on the large
        workload the two idle workers held 76 MB PSS beside the 112 MB of this one.
        """
        self.bodies_spooled += 1
        reserved = self.executor.reserved() if isinstance(self.executor, ParsePool) else contextlib.nullcontext()
        try:
            with reserved:
                done: _Parsed = await asyncio.wrap_future(parse_in_fresh_process(function, str(spooled), *args))
            return done
        except BrokenProcessPool:  # killed (out of memory?) or crashed: this source fails, the run goes on
            raise ParseError(source.name, f"the parser process ended abruptly on this {size:,}-byte document") from None
        finally:
            with contextlib.suppress(OSError):
                spooled.unlink()

    async def _parse(
        self, body: bytes, source: SourceConfig, url: str, content_type: str | None, now: datetime
    ) -> ParseResult:
        """Parse in the pool; a big body in a process of its own (``_from_file``)."""
        spooled = await self._spooled(body)
        if spooled is not None:
            return await self._from_file(spooled, len(body), source, parse_spooled, source, url, content_type, now)
        return await self._parse_in_pool(body, source, url, content_type, now)

    async def _parse_in_pool(
        self, body: bytes, source: SourceConfig, url: str, content_type: str | None, now: datetime
    ) -> ParseResult:
        try:
            parsed: ParseResult = await self._in_pool(parse_job, body, source, url, content_type, now)
        except BrokenProcessPool:  # its worker killed (out of memory?) or crashed: this source fails, the
            # run goes on, and the pool is replaced at its next job (``ParsePool``)
            raise ParseError(
                source.name, f"the parser process ended abruptly on this {len(body):,}-byte document"
            ) from None
        return parsed

    async def _parse_or_store(
        self, result: FetchResult, spooled: Path | None, size: int, source: SourceConfig, now: datetime
    ) -> ParseResult | StoredByParser:
        """``_parse`` of ``result``, except that a ``spooled`` body's records are stored by the process
        that parsed them (``parse_and_store``), when the store can be opened there: the daemon never
        holds them. ``result.body`` is empty when ``spooled`` holds its ``size`` bytes."""
        url, content_type = result.final_url, result.content_type
        if spooled is None:  # small, or it could not be spooled: not again, the pool's pipe takes it
            return await self._parse_in_pool(result.body, source, url, content_type, now)
        location = self.store.location()
        if location is None:
            return await self._from_file(spooled, size, source, parse_spooled, source, url, content_type, now)
        return await self._from_file(spooled, size, source, parse_and_store, source, url, content_type, now, location)

    async def _store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def forget_states(self) -> None:
        """Drop remembered states (someone else changed them, e.g. a reload): read them again."""
        self._states = None

    async def _all_states(self) -> dict[str, SourceState]:
        """Every stored state, read in one query (and kept, with ``remember_states``)."""
        if self._states is not None:
            return self._states
        if not self.remember_states:
            states: list[SourceState] = await self._store(self.store.states)
            return {s.name: s for s in states}
        loop = asyncio.get_running_loop()
        if self._states_loading is None or self._states_loading[0] is not loop:
            self._states_loading = (loop, asyncio.Lock())  # a lock belongs to one event loop
        async with self._states_loading[1]:
            if self._states is not None:
                return self._states
            loaded: list[SourceState] = await self._store(self.store.states)
            self._states = {s.name: s for s in loaded}
            return self._states

    async def _save_state(self, state: SourceState) -> None:
        await self._writer.save(state)
        if self._states is not None:
            self._states[state.name] = state

    async def run_all(
        self,
        sources: Sequence[SourceConfig] | None = None,
        *,
        on_done: Callable[[SourceOutcome], None] | None = None,
    ) -> list[SourceOutcome]:
        """Fetch every given source concurrently (the fetcher bounds concurrency per host and overall)."""
        chosen = list(sources if sources is not None else self.config.sources)
        # One read of every state instead of one query (and one thread hop) per source.
        known = await self._all_states() if any(s.enabled for s in chosen) else {}

        async def one(source: SourceConfig) -> SourceOutcome:
            outcome = await self._run(source, known.get(source.name) or SourceState(name=source.name))
            if on_done is not None:
                on_done(outcome)
            return outcome

        return list(await asyncio.gather(*(one(s) for s in chosen)))

    async def run_source(self, source: SourceConfig) -> SourceOutcome:
        """One cycle of one source. Never raises for a source's own failure."""
        if not source.enabled:
            return SourceOutcome(source.name, Outcome.SKIPPED)
        if self.remember_states:
            state = (await self._all_states()).get(source.name) or SourceState(name=source.name)
        else:
            state = await self._store(self.store.state, source.name)
        return await self._run(source, state)

    def _in_flight(self) -> asyncio.Semaphore:
        """Sources between fetch and store at once: a few times the fetch concurrency.

        Without a bound, a cycle of 10,000 sources fetches faster than two cores parse and
        holds every fetched body (and its parsed records) in memory until its turn.
        """
        loop = asyncio.get_running_loop()
        if self._flight is None or self._flight[0] is not loop:
            self._flight = (loop, asyncio.Semaphore(max(4 * self.config.defaults.concurrency, 32)))
        return self._flight[1]

    async def _run(self, source: SourceConfig, state: SourceState) -> SourceOutcome:
        async with self._in_flight():
            return await self._run_now(source, state)

    async def _run_now(self, source: SourceConfig, state: SourceState) -> SourceOutcome:
        started = time.monotonic()
        if not source.enabled:
            return SourceOutcome(source.name, Outcome.SKIPPED)
        if state.source_url is not None and state.source_url != source.url:
            # The address changed (perhaps while the daemon was stopped): what we cached belongs to the old one.
            state = replace(state, validators=Validators(), body_hash=None, discovered_url=None, redirected_to=None)
        state = replace(state, source_url=source.url)
        now = self.clock()
        url = state.discovered_url or source.url
        try:
            result = await self.fetcher.fetch(url, source=source, validators=state.validators)
        except FetchError as error:
            return await self._failed(source, state, now, error, started)
        if result.not_modified:
            return await self._succeeded(
                source, state, now, result, started, Outcome.NOT_MODIFIED, UpsertSummary(), None, (), None
            )
        digest = body_hash(result.body)
        if digest == state.body_hash and state.last_error is None:
            # Same bytes as last time: no parsing, no database writes (a server without validators).
            return await self._succeeded(
                source, state, now, result, started, Outcome.UNCHANGED, UpsertSummary(), None, (), digest
            )
        size = len(result.body)
        spooled = await self._spooled(result.body)
        if spooled is not None:  # a process parses it from there: the daemon lets its copy go meanwhile
            result = replace(result, body=b"")
        try:
            parsed = await self._parse_or_store(result, spooled, size, source, now)
        except ParseError as error:  # e.g. an empty page: the source failed, the run goes on
            return await self._failed(source, state, now, _unreadable(result.final_url, error), started)
        if isinstance(parsed, StoredByParser):
            outcome = Outcome.CHANGED if parsed.summary.new or parsed.summary.updated else Outcome.UNCHANGED
            return await self._succeeded(
                source,
                state,
                now,
                result,
                started,
                outcome,
                parsed.summary,
                parsed.records,
                parsed.problems,
                digest,
                size=size,
            )
        discovered = state.discovered_url
        if parsed.discovered_url and not parsed.records:
            try:
                feed = await self.fetcher.fetch(parsed.discovered_url, source=source)
                inner = await self._parse(feed.body, source, feed.final_url, feed.content_type, now)
            except FetchError as error:
                return await self._failed(source, state, now, error, started)
            except ParseError as error:
                return await self._failed(source, state, now, _unreadable(parsed.discovered_url, error), started)
            marked = tuple(_mark_discovered(r) for r in inner.records)
            parsed = replace(inner, records=marked, problems=parsed.problems + inner.problems)
            discovered = feed.url
            result = feed
            digest = body_hash(feed.body)
            size = len(feed.body)
        # Parsed and hashed: the body is not needed while the records are stored (a 33 MB calendar
        # would otherwise sit in the daemon beside its 50,000 records and their rows).
        result = replace(result, body=b"")
        records = await self._with_details(source, parsed, now)
        if not records and parsed.problems:
            # An error page or a document that is not what the source should be: a failure,
            # and the records stored earlier stay published.
            unreadable = FetchError(result.final_url, parsed.problems[0].message, reason="parse")
            return await self._failed(source, state, now, unreadable, started, problems=parsed.problems)
        summary: UpsertSummary = await self._store(self.store.upsert, source.name, records, now=now)
        outcome = Outcome.CHANGED if summary.new or summary.updated else Outcome.UNCHANGED
        state = replace(state, discovered_url=discovered)
        return await self._succeeded(
            source, state, now, result, started, outcome, summary, len(records), parsed.problems, digest, size=size
        )

    async def _with_details(self, source: SourceConfig, parsed: ParseResult, now: datetime) -> list[Record]:
        records = list(parsed.records)
        wanted = parsed.detail_links[: source.max_detail_pages]
        if not wanted:
            return records
        index = {r.key: i for i, r in enumerate(records)}

        async def enrich(key: str, link: str) -> None:
            if key not in index:
                return
            cached = self.detail_cache.get(link)
            try:
                page = await self.fetcher.fetch(link, source=source, validators=cached.validators if cached else None)
            except FetchError as error:
                log_event(log, logging.INFO, "detail-failed", source=source.name, url=link, error=str(error))
                return
            if page.not_modified and cached is not None:
                body, base = cached.body, cached.url
            else:
                body, base = page.body, page.final_url
                self.detail_cache.put(link, CachedPage(base, body, page.validators))
            i = index[key]
            try:
                records[i] = await self._in_pool(_enrich, records[i], body, source, base, now)
            except BrokenProcessPool:  # as a detail page that failed to load: the record stays as listed
                log_event(
                    log, logging.INFO, "detail-failed", source=source.name, url=link, error="parser process ended"
                )

        await asyncio.gather(*(enrich(k, u) for k, u in wanted))
        return records

    async def _succeeded(
        self,
        source: SourceConfig,
        state: SourceState,
        now: datetime,
        result: FetchResult,
        started: float,
        outcome: Outcome,
        summary: UpsertSummary,
        count: int | None,
        problems: tuple[Problem, ...],
        digest: str | None,
        *,
        size: int | None = None,
    ) -> SourceOutcome:
        """Record a successful cycle; ``count`` is None when nothing was parsed (304, same bytes).
        ``size``: the body's bytes, when ``result`` no longer holds them (let go before the store)."""
        size = len(result.body) if size is None else size
        next_run = next_run_after_success(source, now, result.max_age)
        items = state.items + summary.new
        new_state = replace(
            state,
            validators=result.validators if result.validators != Validators() else state.validators,
            body_hash=digest if digest is not None else state.body_hash,
            last_attempt=now,
            last_success=now,
            last_error=None,
            consecutive_failures=0,
            items=items,
            last_yield=count if count is not None else state.last_yield,
            yield_baseline=_baseline(state.yield_baseline, count),
            failing_since=None,
            next_run=next_run,
            dormant=False,
            redirected_to=result.permanent_redirect,
        )
        await self._save_state(new_state)
        duration = time.monotonic() - started
        for problem in problems[:20]:
            log_event(log, logging.WARNING, "problem", source=source.name, message=problem.message, where=problem.where)
        log_event(
            log,
            logging.INFO,
            "fetched",
            source=source.name,
            url=result.final_url,
            status=result.status,
            outcome=str(outcome),
            duration=round(duration, 3),
            bytes=size,
            new=summary.new,
            updated=summary.updated,
            unchanged=summary.unchanged,
        )
        if self.metrics is not None:
            self.metrics.observe_fetch(source.name, "not_modified" if result.not_modified else "ok", duration, size)
            self.metrics.set_source(source.name, items, now, 0)
        return SourceOutcome(source.name, outcome, summary, count or 0, None, problems, duration, size, next_run)

    async def _failed(
        self,
        source: SourceConfig,
        state: SourceState,
        now: datetime,
        error: FetchError,
        started: float,
        problems: tuple[Problem, ...] = (),
    ) -> SourceOutcome:
        failures = state.consecutive_failures + 1
        defaults = self.config.defaults
        failing_since = state.failing_since or now
        dormant = error.reason == "gone" or now - failing_since > defaults.dormant_after
        next_run = next_run_after_failure(
            source, now, failures, defaults.backoff_cap, error.retry_after, dormant=dormant
        )
        message = str(error)
        new_state = replace(
            state,
            last_attempt=now,
            last_error=message,
            consecutive_failures=failures,
            failing_since=failing_since,
            next_run=next_run,
            dormant=dormant,
        )
        await self._save_state(new_state)
        duration = time.monotonic() - started
        log_event(
            log,
            logging.WARNING,
            "fetch-failed",
            source=source.name,
            url=error.url,
            reason=error.reason,
            status=error.status,
            error=error.message,
            failures=failures,
            next_run=next_run.isoformat(timespec="seconds"),
            duration=round(duration, 3),
        )
        if self.metrics is not None:
            self.metrics.observe_fetch(source.name, error.reason, duration, 0)
            self.metrics.set_source(source.name, state.items, state.last_success, failures)
        return SourceOutcome(
            source.name, Outcome.FAILED, error=message, problems=problems, duration=duration, next_run=next_run
        )


def _baseline(previous: float | None, count: int | None) -> float | None:
    """Highest recent yield, decaying 3 % per parse so a lasting change stops warning after a while."""
    if count is None:
        return previous
    if previous is None:
        return float(count)
    return max(float(count), previous * 0.97)


def _unreadable(url: str, error: ParseError) -> FetchError:
    """A document that could not be read at all, reported like any other failure of the source."""
    return FetchError(url, error.message, reason="parse")


def _mark_discovered(record: Record) -> Record:
    return replace(record, strategy=Strategy.DISCOVERED_FEED)
