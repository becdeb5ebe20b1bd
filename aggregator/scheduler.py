"""The daemon: APScheduler jobs per source, a debounced publisher, the HTTP front, reloads.

A signal sets a flag; running source jobs finish (bounded), the last changes
are published, then HTTP stops. Next run times come from the store, so a
restart resumes where the last process left off instead of refetching
everything at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aggregator import USER_AGENT
from aggregator.config import Config, SourceConfig
from aggregator.errors import AggregatorError, ConfigErrors
from aggregator.fetch import Fetcher
from aggregator.logs import log_event
from aggregator.metrics import Metrics
from aggregator.pipeline import Outcome, Pipeline
from aggregator.processes import ParsePool, parse_pool, release_free_memory, release_free_memory_every
from aggregator.records import SourceState, Validators
from aggregator.runtime import (
    STOP_PUBLISH_GRACE_S,
    DataDirLock,
    PublishRuns,
    PublishStandby,
    base_url_of,
    feeds_server,
    install_signal_handlers,
    load_config_apart,
    open_configured_store,
    publish_from_store,
)
from aggregator.store.base import Store

__all__ = ["Daemon", "DaemonOptions"]

log = logging.getLogger("aggregator.daemon")

PUBLISH_DEBOUNCE_S = 2.0  # publish once after a burst of changes, not once per source
PUBLISH_MAX_HOLD_S = 30.0  # ... but a batch still running delays publishing at most this long
STOP_GRACE_S = 20.0  # how long running fetches may finish after SIGTERM
RELOAD_POLL_S = 2.0


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    config_path: Path
    data_dir: Path | None = None
    feeds_dir: Path | None = None
    host: str | None = None
    port: int | None = None
    base_url: str | None = None
    parse_workers: int = 2


def first_run_time(source: SourceConfig, next_run: datetime | None, now: datetime) -> datetime:
    """Resume from the stored schedule; overdue and new sources are spread out, not stormed."""
    if next_run is not None and next_run > now:
        return next_run
    # A source never fetched starts within seconds (a new install shows feeds at once; the fetcher's
    # global and per-host limits keep that polite); overdue ones spread over up to five minutes.
    spread = min(source.interval.total_seconds() / 10, 8.0 if next_run is None else 300.0)
    return now + timedelta(seconds=random.uniform(0, max(spread, 0.5)))


class Daemon:
    def __init__(self, config: Config, options: DaemonOptions) -> None:
        self.config = config
        self.options = options
        self.metrics = Metrics()
        self._stop = asyncio.Event()
        self._dirty = asyncio.Event()
        self._standby = PublishStandby()  # the next publish's process, started by the first change of a batch
        self._ready = False
        self._running: set[asyncio.Task[Any]] = set()
        self._config_mtime = self._mtime()
        self._retired: set[Fetcher] = set()  # replaced by a reload, closed once idle
        self._background: set[asyncio.Task[None]] = set()
        self._publishes = PublishRuns(self._standby, log)
        self.store: Store | None = None
        self.pipeline: Pipeline | None = None
        self.scheduler: AsyncIOScheduler | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        lock = DataDirLock(self.config.data_dir)
        lock.acquire()
        executor = parse_pool(self.options.parse_workers)
        self.store = open_configured_store(self.config)
        fetcher = Fetcher(self.config.defaults, user_agent=USER_AGENT)
        # One daemon per data directory (the lock above): its pipeline may keep source states in memory.
        self.pipeline = Pipeline(
            self.config, self.store, fetcher, executor=executor, metrics=self.metrics, remember_states=True
        )
        host = self.options.host or self.config.server.host
        port = self.options.port if self.options.port is not None else self.config.server.port
        install_signal_handlers(self._stop, self.reload)
        server = feeds_server(
            self.config, host=host, port=port, metrics=self.metrics, is_ready=lambda: self._ready, health=self._health
        )
        publisher: asyncio.Task[None] | None = None
        try:
            self.scheduler = AsyncIOScheduler(timezone=UTC)
            self._schedule_all()
            self.scheduler.start()
            serving = asyncio.create_task(server.serve())
            # Its first publish is of what the store already holds, at once (feeds/ as it is is served
            # meanwhile, and /readyz waits for it). On the event loop, a large store's took minutes in
            # which not even SIGTERM was heard.
            publisher = asyncio.create_task(self._publisher())
            watcher = asyncio.create_task(self._watch_config())
            releaser = asyncio.create_task(release_free_memory_every())
            log_event(log, logging.INFO, "started", host=host, port=port, sources=len(self.config.sources))
            stop_wait = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait({serving, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if serving in done and serving.exception() is not None:
                raise serving.exception()  # type: ignore[misc]
            log_event(log, logging.INFO, "stopping", running=len(self._running))
            self.scheduler.shutdown(wait=False)
            watcher.cancel()
            releaser.cancel()
            if self._running:
                await asyncio.wait(self._running, timeout=STOP_GRACE_S)
            # A batch that finished meanwhile is published, given as long as the fetches were; a
            # publish still running then is stopped (each file in feeds/ stays whole, old or new).
            publisher.cancel()  # a publish in its thread goes on: ``finish`` decides its end
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
            await self._publishes.finish(STOP_PUBLISH_GRACE_S, self._publish_now if self._dirty.is_set() else None)
            server.should_exit = True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(serving, timeout=5)
        finally:
            if publisher is not None:  # after an error above too: no publish outlives the daemon
                publisher.cancel()
                await self._publishes.finish(0)
            await self.pipeline.fetcher.aclose()
            for old in self._retired:
                await old.aclose()
            executor.shutdown(wait=False, cancel_futures=True)
            self._standby.dismiss()
            self.store.close()
            lock.release()  # only now: no process of ours writes feeds/ any more
            log_event(log, logging.INFO, "stopped")
        return 0

    def _health(self) -> dict[str, object]:
        scheduled = len(self.scheduler.get_jobs()) if self.scheduler is not None else 0
        return {
            "sources": len(self.config.sources),
            "scheduled": scheduled,
            "running": len(self._running),
            "ready": self._ready,
        }

    def _mtime(self) -> tuple[int, int] | None:
        """What tells an edit of sources.toml: modification time and inode (editors that replace the file)."""
        try:
            info = self.options.config_path.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_ino

    # ---- scheduling ------------------------------------------------------------------------

    def _schedule_all(self) -> None:
        assert self.scheduler is not None
        assert self.store is not None
        states = {s.name: s for s in self.store.states()}
        now = datetime.now(UTC)
        for source in self.config.sources:
            if source.enabled:
                state = states.get(source.name)
                self._add_job(source, first_run_time(source, state.next_run if state else None, now))

    def _add_job(self, source: SourceConfig, when: datetime) -> None:
        assert self.scheduler is not None
        seconds = source.interval.total_seconds()
        self.scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=seconds, jitter=min(60, int(seconds * 0.05)) or None, timezone=UTC),
            args=[source.name],
            id=source.name,
            name=source.name,
            next_run_time=when,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            replace_existing=True,
        )

    async def _job(self, name: str) -> None:
        assert self.pipeline is not None
        assert self.scheduler is not None
        source = self.config.source(name)
        if source is None or not source.enabled:
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            outcome = await self.pipeline.run_source(source)
            if outcome.outcome is Outcome.CHANGED:
                self._dirty.set()
            if outcome.next_run is not None and not self._stop.is_set():
                with contextlib.suppress(Exception):
                    self.scheduler.modify_job(name, next_run_time=outcome.next_run)
        except Exception:
            # A bug, not a source failure: log the traceback and push the next attempt out so a
            # crash does not turn into a fetch loop.
            log.exception("bug while running source %s", name)
            with contextlib.suppress(Exception):
                self.scheduler.modify_job(name, next_run_time=datetime.now(UTC) + source.interval)
        finally:
            if task is not None:
                self._running.discard(task)

    # ---- publishing ------------------------------------------------------------------------

    async def _publish(self) -> None:
        await self._publishes.run(self._publish_now)

    async def _publisher(self) -> None:
        """Publish what the store holds, then once per batch: after a quiet moment, and after the sources still running finish."""
        loop = asyncio.get_running_loop()
        await self._publish()
        while True:
            await self._publishes.rest()
            await self._dirty.wait()
            # The batch's publishing process reads the store while its other sources are fetched.
            self._standby.start(self.config)
            await asyncio.sleep(PUBLISH_DEBOUNCE_S)
            hold_until = loop.time() + PUBLISH_MAX_HOLD_S
            while self._running and loop.time() < hold_until:
                await asyncio.wait(set(self._running), timeout=hold_until - loop.time())
            self._dirty.clear()
            # The batch is parsed: its workers' memory goes back before the publish needs memory.
            assert self.pipeline is not None
            if isinstance(self.pipeline.executor, ParsePool):
                self.pipeline.executor.release()
            await self._publish()
            # What the batch freed goes back now, not at the next minute's release: the daemon's
            # size between batches is then what it uses (sampled at any moment, it swung by 18 MB).
            await asyncio.to_thread(release_free_memory)

    def _publish_now(self) -> None:
        assert self.store is not None
        started = time.monotonic()
        try:
            report = publish_from_store(
                self.config,
                self.store,
                now=datetime.now(UTC),
                base_url=base_url_of(self.config, self.options.host, self.options.port)
                if not self.options.base_url
                else self.options.base_url.rstrip("/") + "/",
                isolated=True,
                standby=self._standby,
            )
        except AggregatorError as error:
            if self._standby.aborted:  # stopped by ``PublishRuns.finish``, which says so
                return
            log_event(log, logging.ERROR, "publish-failed", error=str(error))
            self._dirty.set()  # try again after the next change or the next cycle
            return
        duration = time.monotonic() - started
        self.metrics.observe_publish(duration, len(report.written))
        self._ready = True
        log_event(
            log,
            logging.INFO,
            "published",
            written=len(report.written),
            unchanged=report.unchanged,
            duration=round(duration, 3),
            read_ahead=report.read_ahead,
            # One past publish_copy_limit_mb; packed: the events were kept compressed (publish_memory_mb).
            processes=report.processes,
            events_packed=report.events_packed,
        )

    # ---- configuration reload --------------------------------------------------------------

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_POLL_S)
            mtime = self._mtime()
            if mtime is not None and mtime != self._config_mtime:
                await self.reload("file changed")

    async def reload(self, why: str) -> None:
        """Re-read sources.toml; an invalid file is rejected and the running configuration kept."""
        self._config_mtime = self._mtime()
        assert self.store is not None
        store = self.store

        def read() -> tuple[Config, dict[str, SourceState]]:
            new = load_config_apart(
                self.options.config_path, data_dir=self.options.data_dir, feeds_dir=self.options.feeds_dir
            )
            return new, {state.name: state for state in store.states()}

        try:
            # In a thread: 10,000 sources' file takes 1.5 s to read and check, and a new [defaults]
            # changes every source, whose states are read in one query, not one each on the loop.
            new, stored = await asyncio.to_thread(read)
        except ConfigErrors as errors:
            for error in errors.errors:
                log_event(log, logging.ERROR, "reload-rejected", why=why, error=str(error))
            return
        old = {s.name: s for s in self.config.sources}
        fresh = {s.name: s for s in new.sources}
        added = [n for n in fresh if n not in old]
        removed = [n for n in old if n not in fresh]
        changed = [n for n in fresh if n in old and fresh[n] != old[n]]
        assert self.pipeline is not None
        assert self.scheduler is not None
        defaults_changed = new.defaults != self.config.defaults
        if new.server != self.config.server or new.data_dir != self.config.data_dir:
            log_event(
                log, logging.WARNING, "reload-partial", why=why, note="[server] and data_dir apply after a restart"
            )
        if defaults_changed:
            self._replace_fetcher(new)
        self.config = new
        self.pipeline.config = new
        for name in removed:
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(name)
            self.metrics.remove_source(name)
        now = datetime.now(UTC)
        for name in added + changed:
            source = fresh[name]
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(name)
            state = stored.get(name) or SourceState(name=name)
            moved = name in changed and source.url != old[name].url
            if moved:
                # Validators, body hash, discovered feed and redirect belong to the old address.
                state = replace(state, validators=Validators(), body_hash=None, discovered_url=None, redirected_to=None)
                self.store.save_state(state)
                self.pipeline.forget_states()
            if source.enabled:
                self._add_job(source, now if moved else first_run_time(source, state.next_run, now))
        log_event(
            log,
            logging.INFO,
            "reloaded",
            why=why,
            added=sorted(added),
            removed=sorted(removed),
            changed=sorted(changed),
            scheduled=len(self.scheduler.get_jobs()),
        )
        if removed or changed or defaults_changed:
            self._dirty.set()

    def _replace_fetcher(self, new: Config) -> None:
        """New [defaults] (limits, allow-lists, sizes) take a new fetcher; the old one closes once idle."""
        assert self.pipeline is not None
        retired = self.pipeline.fetcher
        self.pipeline.fetcher = Fetcher(new.defaults, user_agent=USER_AGENT)
        self._retired.add(retired)
        running = set(self._running)

        async def close_when_idle() -> None:
            if running:
                await asyncio.wait(running, timeout=STOP_GRACE_S * 3)
            await retired.aclose()
            self._retired.discard(retired)

        task = asyncio.ensure_future(close_when_idle())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
