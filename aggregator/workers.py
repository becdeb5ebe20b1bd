"""Several worker processes on one PostgreSQL (``aggregator run --workers N``).

The single-process daemon (``scheduler.py``) keeps its schedule in APScheduler. Here the
schedule is the database: every worker, on this machine or another, claims due sources with
a lease (``Store.claim_due``: ``FOR UPDATE SKIP LOCKED``), runs them through the same
``Pipeline`` and releases them; the pipeline's ``save_state`` writes the next run. A worker
that dies holds its leases only until they expire; then another worker claims the sources.

The parent process never fetches. It starts and supervises the workers, forwards reloaded
configurations to them, serves HTTP, and publishes under the store's publish lock (a
PostgreSQL advisory lock), so exactly one instance writes feeds at a time however many
machines run one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.context import ForkServerProcess
from multiprocessing.queues import Queue as ProcessQueue
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Literal

from aggregator import USER_AGENT
from aggregator.config import Config, SourceConfig
from aggregator.errors import AggregatorError, ConfigError, ConfigErrors, StoreError
from aggregator.fetch import Fetcher
from aggregator.logs import configure_logging, log_event
from aggregator.metrics import Metrics
from aggregator.pipeline import Pipeline
from aggregator.processes import release_free_memory_every
from aggregator.runtime import (
    STOP_PUBLISH_GRACE_S,
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

__all__ = [
    "ClaimLoop",
    "Coordinator",
    "WorkerOptions",
    "default_lease",
    "load_config",
    "uses_workers",
]

log = logging.getLogger("aggregator.workers")

POLL_S = 1.0  # how often an idle worker asks the database for due sources
PUBLISH_POLL_S = 2.0  # how often the parent compares the store's generation with its last publish
REFRESH_S = 300.0  # republish this often anyway: source health on index.html, the past-event window
METRICS_S = 15.0  # source gauges on /metrics, read from the shared source_state table
STOP_GRACE_S = 20.0  # how long running fetches may finish after SIGTERM
RESPAWN_BACKOFF_S = 5.0  # a worker that keeps dying is restarted at most this often
RELOAD_POLL_S = 2.0
CLAIM_BATCH = 4  # sources claimed per query: small batches spread a burst of due sources over the workers


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """``run --workers N`` options; folders and the database URL override sources.toml."""

    config_path: Path
    workers: int = 1
    data_dir: Path | None = None
    feeds_dir: Path | None = None
    database_url: str | None = None
    host: str | None = None
    port: int | None = None
    base_url: str | None = None
    lease: timedelta | None = None  # None: default_lease(config)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"


def load_config(options: WorkerOptions) -> Config:
    """sources.toml with the command line's folders and ``--database-url`` applied (raises ConfigErrors)."""
    loaded = load_config_apart(options.config_path, data_dir=options.data_dir, feeds_dir=options.feeds_dir)
    if options.database_url:
        loaded = replace(loaded, defaults=replace(loaded.defaults, database_url=options.database_url))
    return loaded


def uses_workers(config: Config, workers: int | None) -> bool:
    """Whether ``run`` starts worker processes (True) or the single-process daemon (False).

    ``--workers`` with PostgreSQL means workers; without it, or ``--workers 1`` on SQLite,
    the daemon. SQLite is for one process, so ``--workers N > 1`` on it raises ConfigErrors.
    """
    if workers is None:
        return False
    if workers < 1:
        raise ConfigErrors(
            [ConfigError(str(config.path), None, None, "--workers", f"must be 1 or more, not {workers}")]
        )
    if _is_postgresql(config.defaults.database_url):
        return True
    if workers == 1:
        return False
    problem = (
        f"--workers {workers} needs PostgreSQL, and this configuration uses SQLite (one process only): "
        'set database_url = "postgresql://..." in [defaults] or pass --database-url, or run without --workers'
    )
    raise ConfigErrors([ConfigError(str(config.path), None, None, "defaults.database_url", problem)])


def _is_postgresql(url: str | None) -> bool:
    return bool(url) and str(url).split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def default_lease(config: Config) -> timedelta:
    """How long a claim lasts: long enough for one whole source cycle, short enough for a quick takeover.

    A cycle makes at most three fetches one after the other (the page, a discovered feed, then
    its detail pages together), each bounded by the source's timeout; the margin covers parsing
    and storing. A lease that runs out early costs a duplicate fetch, never a lost source.
    """
    longest = max((s.timeout for s in config.sources), default=config.defaults.timeout)
    return timedelta(seconds=3 * max(longest, config.defaults.timeout) + 30)


def _enabled_names(config: Config) -> frozenset[str]:
    return frozenset(s.name for s in config.sources if s.enabled)


# ---- one worker ---------------------------------------------------------------------------------


class ClaimLoop:
    """One worker: claim due sources with a lease, run their cycles concurrently, release them.

    The loop is the same in a worker process and in a test's event loop; it holds no schedule
    of its own, so any number of loops on any number of machines can share one database.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        fetcher: Fetcher,
        *,
        worker_id: str,
        lease: timedelta,
        poll: float = POLL_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.store = store
        self.worker_id = worker_id
        self.lease = lease
        self.poll = poll
        self.clock = clock
        self.pipeline = Pipeline(config, store, fetcher, clock=clock)
        self._names = _enabled_names(config)
        self._running: dict[str, asyncio.Task[None]] = {}

    @property
    def capacity(self) -> int:
        """Sources in flight at once: the fetcher bounds requests to ``concurrency`` anyway."""
        return max(1, self.config.defaults.concurrency)

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    def reconfigure(self, config: Config) -> None:
        """Use a reloaded configuration from the next claim on; running cycles finish as they are."""
        self.config = config
        self.pipeline.config = config
        self._names = _enabled_names(config)

    async def claim(self) -> list[str]:
        """Claim what is due (up to the free capacity) and start its cycles; returns the names started."""
        free = min(self.capacity - len(self._running), CLAIM_BATCH)
        if free <= 0:
            return []
        try:
            claimed: list[str] = await asyncio.to_thread(
                self.store.claim_due, self.worker_id, self.clock(), self.lease, free, names=self._names
            )
        except StoreError as error:
            log_event(log, logging.ERROR, "claim-failed", worker=self.worker_id, error=str(error))
            return []
        started = []
        for name in claimed:
            if name in self._running:
                continue  # its lease ran out mid-cycle and we took it again: the running cycle releases it
            source = self.config.source(name)
            if source is None or not source.enabled:
                await self._release(name)  # reloaded away between the query and now: give it back
                continue
            self._running[name] = asyncio.create_task(self._cycle(source), name=f"source:{name}")
            started.append(name)
        return started

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run until ``stop`` is set, then let running cycles finish (see ``drain``)."""
        log_event(log, logging.INFO, "worker-started", worker=self.worker_id, lease=self.lease.total_seconds())
        stopping = asyncio.create_task(stop.wait())
        releaser = asyncio.create_task(release_free_memory_every())
        try:
            while not stop.is_set():
                if len(await self.claim()) == CLAIM_BATCH:
                    continue  # a full batch: more may be due right now, ask again before waiting
                await asyncio.wait(
                    {stopping, *self._running.values()}, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            stopping.cancel()
            releaser.cancel()
            await self.drain(STOP_GRACE_S)
            log_event(log, logging.INFO, "worker-stopped", worker=self.worker_id)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running cycles; cancel the rest (their leases are released)."""
        tasks = list(self._running.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _cycle(self, source: SourceConfig) -> None:
        try:
            await self.pipeline.run_source(source)
        except StoreError as error:
            # The database went away mid-cycle: the lease runs out and the source is retried.
            log_event(log, logging.ERROR, "store-failed", worker=self.worker_id, source=source.name, error=str(error))
        except Exception:
            # A bug, not a source failure: log the traceback and push the next attempt out so a
            # crash does not turn into a fetch loop across every worker.
            log.exception("bug while running source %s", source.name)
            await self._postpone(source)
        finally:
            self._running.pop(source.name, None)
            await self._release(source.name)

    async def _postpone(self, source: SourceConfig) -> None:
        with contextlib.suppress(StoreError):
            state = await asyncio.to_thread(self.store.state, source.name)
            await asyncio.to_thread(self.store.save_state, replace(state, next_run=self.clock() + source.interval))

    async def _release(self, name: str) -> None:
        try:
            await asyncio.to_thread(self.store.release, name, self.worker_id)
        except StoreError as error:
            log_event(log, logging.WARNING, "release-failed", worker=self.worker_id, source=name, error=str(error))


# ---- the worker process -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _WorkerSpec:
    """Everything a worker process needs, picklable."""

    slot: int
    config: Config
    lease: timedelta
    log_format: Literal["text", "json"]
    log_level: str


def _worker_main(spec: _WorkerSpec, stop: ProcessEvent, updates: ProcessQueue[Config]) -> None:
    """Entry point of a worker process (forked from the forkserver: nothing inherited but ``spec``)."""
    configure_logging(spec.log_format, spec.log_level)
    # SIGHUP is the parent's (it reloads and forwards the configuration). Ctrl-C and a
    # SIGTERM to the whole group reach the workers too: they mean "finish and stop".
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_worker_async(spec, stop, updates))


async def _worker_async(spec: _WorkerSpec, stop: ProcessEvent, updates: ProcessQueue[Config]) -> None:
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    local_stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, local_stop.set)
    try:
        store = await asyncio.to_thread(open_configured_store, spec.config)
    except StoreError as error:
        log_event(log, logging.ERROR, "worker-failed", worker=worker_id, error=str(error))
        raise SystemExit(3) from error
    fetcher = Fetcher(spec.config.defaults, user_agent=USER_AGENT)
    worker = ClaimLoop(spec.config, store, fetcher, worker_id=worker_id, lease=spec.lease)

    parent = multiprocessing.parent_process()

    async def watch_parent() -> None:
        while not local_stop.is_set():
            if stop.is_set() or (parent is not None and not parent.is_alive()):  # told to stop, or orphaned
                local_stop.set()
                return
            with contextlib.suppress(queue.Empty):
                while True:
                    worker.reconfigure(updates.get_nowait())
                    log_event(log, logging.INFO, "worker-reloaded", worker=worker_id)
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch_parent())
    try:
        await worker.run(local_stop)
    finally:
        watcher.cancel()
        await fetcher.aclose()
        store.close()


# ---- the parent ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    process: ForkServerProcess
    updates: ProcessQueue[Config]
    started: float


class Coordinator:
    """The parent of ``run --workers N``: workers, HTTP, reloads, and the one publisher at a time."""

    def __init__(self, config: Config, options: WorkerOptions) -> None:
        self.config = config
        self.options = options
        self.lease = options.lease or default_lease(config)
        self.metrics = Metrics()
        # forkserver: one clean process imports the aggregator once (seconds on a small machine)
        # and forks every worker from it; nothing of this process's threads or sockets is inherited.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["aggregator.workers"])
        self._stop_workers = self._context.Event()
        self._slots: list[_Slot | None] = [None] * options.workers
        self._stop = asyncio.Event()
        self._ready = False
        self._published_generation: int | None = None
        self._published_at = 0.0
        self._force_publish = False
        self._config_mtime = self._mtime()
        self.store: Store | None = None
        self._publishes = PublishRuns(PublishStandby(), log)

    async def run(self) -> int:
        uses_workers(self.config, self.options.workers)  # refuses SQLite with several workers
        self.store = await asyncio.to_thread(open_configured_store, self.config)  # applies migrations
        try:
            await asyncio.to_thread(self.store.ensure_states, _enabled_names(self.config))
            return await self._serve()
        finally:
            self.store.close()
            log_event(log, logging.INFO, "stopped")

    async def _serve(self) -> int:
        host = self.options.host or self.config.server.host
        port = self.options.port if self.options.port is not None else self.config.server.port
        install_signal_handlers(self._stop, self.reload)
        server = feeds_server(
            self.config,
            host=host,
            port=port,
            metrics=self.metrics,
            is_ready=lambda: self._ready,
            health=self._health,
        )
        for slot in range(len(self._slots)):
            self._spawn(slot)
        serving = asyncio.create_task(server.serve())
        helpers = [
            asyncio.create_task(self._publisher()),
            asyncio.create_task(self._supervise()),
            asyncio.create_task(self._watch_config()),
            asyncio.create_task(self._refresh_metrics()),
        ]
        log_event(
            log,
            logging.INFO,
            "started",
            host=host,
            port=port,
            workers=len(self._slots),
            lease=self.lease.total_seconds(),
            sources=len(self.config.sources),
        )
        try:
            stop_wait = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait({serving, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if serving in done and serving.exception() is not None:
                raise serving.exception()  # type: ignore[misc]
            log_event(log, logging.INFO, "stopping", workers=sum(1 for s in self._slots if s is not None))
        finally:
            for helper in helpers:
                helper.cancel()  # a publish in its thread goes on: ``finish`` decides its end
            await asyncio.gather(*helpers, return_exceptions=True)
            await asyncio.to_thread(self._stop_all_workers)
            # The workers' last changes, within the grace; a publish still running then is stopped.
            await self._publishes.finish(STOP_PUBLISH_GRACE_S, self._publish_if_changed)
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(serving, timeout=5)
        return 0

    def _health(self) -> dict[str, object]:
        alive = sum(1 for s in self._slots if s is not None and s.process.is_alive())
        return {
            "sources": len(self.config.sources),
            "workers": alive,
            "ready": self._ready,
            "published_generation": self._published_generation,
        }

    def _mtime(self) -> float | None:
        try:
            return self.options.config_path.stat().st_mtime
        except OSError:
            return None

    # ---- workers ----------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        spec = _WorkerSpec(
            slot=slot,
            config=self.config,
            lease=self.lease,
            log_format=self.options.log_format,
            log_level=self.options.log_level,
        )
        updates: ProcessQueue[Config] = self._context.Queue()
        process = self._context.Process(
            target=_worker_main, args=(spec, self._stop_workers, updates), name=f"clusterfeeds-worker-{slot}"
        )
        process.start()
        self._slots[slot] = _Slot(process, updates, time.monotonic())
        log_event(log, logging.INFO, "worker-spawned", slot=slot, pid=process.pid)

    async def _supervise(self) -> None:
        """Restart dead workers; the sources they held come back when their leases expire."""
        while not self._stop.is_set():
            await asyncio.sleep(1.0)
            for index, slot in enumerate(self._slots):
                if self._stop.is_set():
                    return  # a SIGTERM to the whole group (systemd's default KillMode) stops workers too
                if slot is None or slot.process.is_alive():
                    continue
                if time.monotonic() - slot.started < RESPAWN_BACKOFF_S:
                    continue  # died at once: do not turn a crash into a busy loop
                log_event(
                    log,
                    logging.WARNING,
                    "worker-died",
                    slot=index,
                    pid=slot.process.pid,
                    exitcode=slot.process.exitcode,
                )
                slot.updates.close()
                try:
                    self._spawn(index)
                except OSError as error:
                    log_event(log, logging.ERROR, "worker-spawn-failed", slot=index, error=str(error))

    def _stop_all_workers(self) -> None:
        """Ask every worker to finish its running cycles and stop; kill what outlives the grace."""
        self._stop_workers.set()
        deadline = time.monotonic() + STOP_GRACE_S + 10
        for slot in self._slots:
            if slot is not None:
                slot.process.join(max(0.0, deadline - time.monotonic()))
        for index, slot in enumerate(self._slots):
            if slot is None:
                continue
            if slot.process.is_alive():
                log_event(log, logging.WARNING, "worker-killed", slot=index, pid=slot.process.pid)
                slot.process.kill()
                slot.process.join(5)
            slot.updates.close()
            self._slots[index] = None

    # ---- publishing -------------------------------------------------------------------------

    async def _publisher(self) -> None:
        while True:
            await self._publishes.run(self._publish_if_changed)
            await asyncio.sleep(PUBLISH_POLL_S)
            await self._publishes.rest()

    def _publish_if_changed(self) -> None:
        """Publish when the generation moved since our last publish, if no other instance is publishing."""
        assert self.store is not None
        try:
            generation = self.store.generation()
            stale = time.monotonic() - self._published_at > REFRESH_S
            if generation == self._published_generation and not stale and not self._force_publish:
                return
            with self.store.publish_lock() as granted:
                if not granted:
                    log_event(log, logging.INFO, "publish-deferred", reason="another instance is publishing")
                    return
                started = time.monotonic()
                generation = self.store.generation()  # what this publish includes, at least
                report = publish_from_store(
                    self.config,
                    self.store,
                    now=datetime.now(UTC),
                    base_url=self._base_url(),
                    isolated=True,
                    standby=self._publishes.standby,  # never started ahead here: what a stop ends
                )
        except AggregatorError as error:
            if self._publishes.standby.aborted:  # stopped by ``PublishRuns.finish``, which says so
                return
            log_event(log, logging.ERROR, "publish-failed", error=str(error))
            return
        duration = time.monotonic() - started
        self._published_generation = generation
        self._published_at = time.monotonic()
        self._force_publish = False
        self._ready = True
        self.metrics.observe_publish(duration, len(report.written))
        log_event(
            log,
            logging.INFO,
            "published",
            generation=generation,
            written=len(report.written),
            unchanged=report.unchanged,
            duration=round(duration, 3),
        )

    def _base_url(self) -> str:
        if self.options.base_url:
            return self.options.base_url.rstrip("/") + "/"
        return base_url_of(self.config, self.options.host, self.options.port)

    async def _refresh_metrics(self) -> None:
        """Source gauges from the shared state table: the parent fetches nothing itself."""
        assert self.store is not None
        while True:
            with contextlib.suppress(StoreError):
                states = await asyncio.to_thread(self.store.states)
                names = {s.name for s in self.config.sources}
                for state in states:
                    if state.name in names:
                        self.metrics.set_source(state.name, state.items, state.last_success, state.consecutive_failures)
            await asyncio.sleep(METRICS_S)

    # ---- configuration reload ---------------------------------------------------------------

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_POLL_S)
            mtime = self._mtime()
            if mtime is not None and mtime != self._config_mtime:
                await self.reload("file changed")

    async def reload(self, why: str) -> None:
        """Re-read sources.toml, register new sources, hand the new configuration to every worker.

        An invalid file is rejected and the running configuration kept. Removed sources keep
        their rows but are no longer claimed (workers claim only the configuration's names).
        """
        assert self.store is not None
        self._config_mtime = self._mtime()
        try:
            new = load_config(self.options)
        except ConfigErrors as errors:
            for error in errors.errors:
                log_event(log, logging.ERROR, "reload-rejected", why=why, error=str(error))
            return
        if new.defaults.database_url != self.config.defaults.database_url:
            log_event(log, logging.WARNING, "reload-database-kept", why="changing database_url needs a restart")
            new = replace(new, defaults=replace(new.defaults, database_url=self.config.defaults.database_url))
        try:
            await asyncio.to_thread(self.store.ensure_states, _enabled_names(new))
        except StoreError as error:
            log_event(log, logging.ERROR, "reload-failed", why=why, error=str(error))
            return
        old_names = {s.name for s in self.config.sources}
        new_names = {s.name for s in new.sources}
        for name in old_names - new_names:
            self.metrics.remove_source(name)
        changed = new != self.config
        self.config = new
        for slot in self._slots:
            if slot is not None:
                slot.updates.put(new)
        if changed:
            self._force_publish = True  # removed sources and new titles show without waiting for a fetch
        log_event(
            log,
            logging.INFO,
            "reloaded",
            why=why,
            added=len(new_names - old_names),
            removed=len(old_names - new_names),
        )
