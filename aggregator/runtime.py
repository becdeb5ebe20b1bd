"""Process-level resources shared by the CLI and the daemon: store, lock, publishing.

Kept apart from ``cli.py`` so that the daemon and the one-shot commands open
the database, take the data-directory lock and publish in exactly one way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from aggregator import config as config_module
from aggregator.config import Config
from aggregator.errors import PublishError, StoreError
from aggregator.logs import log_event
from aggregator.matching import MatchKeys, match_keys
from aggregator.metrics import Metrics
from aggregator.processes import (
    collector_paused,
    forkserver_context,
    init_publishing_process,
    parse_in_fresh_process,
)
from aggregator.publish import (
    PackedEvents,
    PublishInput,
    PublishReport,
    change_token,
    events_are_packed,
    news_per_source,
    pack_events,
    publish,
    published_still_current,
    remember_publish,
)
from aggregator.publish.streamed import publish_streamed, publishes_streamed
from aggregator.records import SourceState
from aggregator.serve import EmbeddedServer, build_app, server_config
from aggregator.store import open_store
from aggregator.store.base import Store, StoredEvent, StoredNews

__all__ = [
    "STOP_PUBLISH_GRACE_S",
    "DataDirLock",
    "PublishRuns",
    "PublishStandby",
    "base_url_of",
    "cache_max_age",
    "feeds_server",
    "install_signal_handlers",
    "open_configured_store",
    "publish_from_store",
]

log = logging.getLogger(__name__)


def cache_max_age(config: Config) -> int:
    """Cache-Control for served files: a fraction of the shortest interval, 1-15 minutes."""
    shortest = min((s.interval for s in config.sources), default=timedelta(minutes=30))
    return int(min(max(shortest.total_seconds() / 4, 60), 900))


def feeds_server(
    config: Config,
    *,
    host: str | None,
    port: int | None,
    metrics: Metrics,
    is_ready: Callable[[], bool],
    health: Callable[[], Mapping[str, object]],
) -> EmbeddedServer:
    """The HTTP front of a daemon (single-process or worker parent): feeds/, health, metrics."""
    app = build_app(config.feeds_dir, metrics=metrics, is_ready=is_ready, max_age=cache_max_age(config), health=health)
    listen_host = host or config.server.host
    listen_port = port if port is not None else config.server.port
    return EmbeddedServer(server_config(app, listen_host, listen_port))


def install_signal_handlers(stop: asyncio.Event, reload: Callable[[str], Awaitable[None]]) -> None:
    """SIGTERM/SIGINT set ``stop`` (running work finishes); SIGHUP re-reads the configuration."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload("SIGHUP")))


def open_configured_store(config: Config) -> Store:
    """PostgreSQL when ``database_url`` is set, else one SQLite file in the data directory."""
    if config.defaults.database_url:
        return open_store(config.defaults.database_url)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(f"sqlite:///{config.data_dir / 'aggregator.sqlite3'}")


APART_CONFIG_BYTES = 256 * 1024  # a sources.toml this large is read in a process of its own


def load_config_apart(path: Path, *, data_dir: Path | None = None, feeds_dir: Path | None = None) -> Config:
    """``config.load`` in a process of its own when the file is large; what it returns or raises comes back.

    Reading 10,000 sources' 3.6 MB file made 27 MB of short-lived objects (the TOML document, the
    checks) among the 5 MB of the Config the daemon keeps, and its heap stayed 21 MB bigger for
    good: a collection and a trim gave back 2. Unpickled into a daemon that did not read it, the
    same Config takes 8 MB. A small file is read here: a process would cost more than it saves.
    """
    load = functools.partial(config_module.load, path, data_dir=data_dir, feeds_dir=feeds_dir)
    try:
        large = path.stat().st_size >= APART_CONFIG_BYTES
    except OSError:  # ``load`` says so, with the file's name
        large = False
    if not large:
        return load()
    try:
        return parse_in_fresh_process(load).result()
    except BrokenProcessPool:  # the process was killed (out of memory?): read it here after all
        return load()


def base_url_of(config: Config, host: str | None = None, port: int | None = None) -> str:
    """Absolute base for links in published files: configured, else the address we listen on."""
    if config.server.base_url:
        return config.server.base_url.rstrip("/") + "/"
    return f"http://{host or config.server.host}:{port or config.server.port}/"


class PublishStandby:
    """The next publishing process, started before it is needed (the daemons).

    When the first source of a batch has changed, ``start`` spawns the process that will
    publish the batch: it imports the renderers and reads and decodes the records a publish reads while
    the other sources are still fetched. The publish then reads again only the rows whose
    content changed since (``Store.news(known=...)``): after 10 % of a medium corpus
    changed, 0.6 s instead of 3-4 s of reading, plus the second of start-up, leave the
    publish's critical path. A batch whose publish turns out to have nothing to do
    dismisses it; one that ends without a publish keeps it for the next.
    """

    def __init__(self) -> None:
        self._child: ProcessPoolExecutor | None = None
        self._read: Future[None] | None = None
        # The last publish was streamed (a large store): nothing is read ahead, so no process is
        # started ahead either; idle beside the batch's parse workers it held 60-80 MB for nothing.
        self.streams = False
        self._busy: ProcessPoolExecutor | None = None  # the process publishing now (``publish_from_store``)
        self._lock = threading.Lock()
        self.aborted = False  # ``abort`` was called: every later publish is refused

    @property
    def started(self) -> bool:
        return self._child is not None

    def start(self, config: Config) -> None:
        """Spawn the process and let it read the store (once: later calls until the publish do nothing)."""
        if self._child is not None or self.streams:
            return
        child = _publishing_process()
        self._read = child.submit(_read_ahead, config)  # a failure only means a full read later
        self._child = child

    def ready(self, timeout: float | None = None) -> bool:
        """Wait until the started process has read the store: True when it did (tests, benchmarks)."""
        read = self._read
        if read is None:
            return False
        try:
            read.result(timeout)
        except Exception:  # the publish reads everything itself then
            return False
        return True

    def take(self) -> ProcessPoolExecutor | None:
        """The started process (it is the caller's now), else None."""
        child, self._child, self._read = self._child, None, None
        return child

    @contextlib.contextmanager
    def publishing(self, child: ProcessPoolExecutor, feeds_dir: Path) -> Iterator[None]:
        """While the block runs, ``child`` is the process that ``abort`` stops (refused once aborted)."""
        with self._lock:
            if self.aborted:
                child.shutdown(wait=False, cancel_futures=True)
                raise PublishError(str(feeds_dir), "the daemon is stopping; old files kept")
            self._busy = child
        try:
            yield
        finally:
            with self._lock:
                self._busy = None

    def abort(self, *, kill: bool = False) -> None:
        """Stop at once the process publishing now and the one standing by (the daemon is stopping).

        A large publish takes minutes; a daemon asked to stop waited for it, and released its
        data-directory lock while its publisher still wrote feeds/. Each file is replaced
        atomically, so a publish stopped midway leaves every file whole (new or old), and the
        next publish sees by their stamps which scopes to render again.
        """
        with self._lock:
            self.aborted = True
            children = [c for c in (self._busy, self._child) if c is not None]
        for child in children:
            _stop_processes(child, signal.SIGKILL if kill else signal.SIGTERM)
        self.dismiss()

    def dismiss(self) -> None:
        """Let the process end (once it has read: a read cannot be interrupted) and free what it holds."""
        child = self.take()
        if child is not None:
            child.shutdown(wait=False, cancel_futures=True)


# At a stop, after the running fetches: how long the publish running or due may take (a large one takes
# minutes: it is stopped, each file in feeds/ whole), and how long its process may take to end on SIGTERM.
STOP_PUBLISH_GRACE_S = 10.0
STOP_KILL_AFTER_S = 5.0
PUBLISH_REST_FACTOR = 2.0  # after a publish of D seconds, the next starts 2 D later at the earliest


class PublishRuns:
    """A daemon's publishes, each in a thread that waits for its publishing process; at a stop,
    the one running (or a last one) may finish within a grace, then its process is stopped.

    Cancelling the task that awaits ``run`` leaves the publish running: a stop decides its end
    with ``finish``, and the daemon releases its data-directory lock only after that, so no
    process of a stopped daemon still writes feeds/.
    """

    def __init__(
        self, standby: PublishStandby, logger: logging.Logger, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.standby = standby  # its ``abort`` stops the process publishing now
        self._logger = logger
        self._clock = clock
        self._job: asyncio.Future[None] | None = None
        self._rest_until = 0.0  # on ``clock``: when the next publish may start (``rest``)

    async def run(self, publish: Callable[[], None]) -> None:
        """``publish()`` in a thread (it starts its process and waits for it)."""
        started = self._clock()
        job = self._job = asyncio.ensure_future(asyncio.to_thread(publish))
        try:
            await asyncio.shield(job)
        finally:
            ended = self._clock()
            self._rest_until = ended + PUBLISH_REST_FACTOR * (ended - started)

    def rest_left(self) -> float:
        """Seconds until the next publish may start: ``PUBLISH_REST_FACTOR`` times the last one's length."""
        return max(self._rest_until - self._clock(), 0.0)

    async def rest(self) -> None:
        """Wait ``rest_left()``: publishing takes at most a third of the daemon's time.

        With 10,000 sources, changes arrive all the time and a publish took 60-90 s of a core: one
        followed another, and fetching and parsing had one core left. A change waits for the next
        publish at most three times as long as a publish takes; with a few hundred sources that is
        seconds.
        """
        left = self.rest_left()
        if left > 0:
            await asyncio.sleep(left)

    async def finish(self, grace: float, last: Callable[[], None] | None = None) -> None:
        """Give the publish running, else ``last`` (when given), ``grace`` seconds; then stop its process.

        Every later publish is refused (``PublishStandby.abort``); this returns once the thread of
        the publish has returned, which it does as soon as its process has ended.
        """
        job = self._job
        if (job is None or job.done()) and last is not None and not self.standby.aborted:
            job = self._job = asyncio.ensure_future(asyncio.to_thread(last))
        if job is not None and not job.done():
            await asyncio.wait({job}, timeout=grace)
            if not job.done():
                log_event(self._logger, logging.WARNING, "publish-interrupted", reason="the daemon is stopping")
        self.standby.abort()
        if job is None:
            return
        await asyncio.wait({job}, timeout=STOP_KILL_AFTER_S)
        if not job.done():
            self.standby.abort(kill=True)
            await asyncio.wait({job})
        self._job = None  # settled: a second ``finish`` has nothing to wait for or report
        if not job.cancelled() and job.exception() is not None:  # a bug, not the stop: said, not swallowed
            log_event(self._logger, logging.ERROR, "publish-failed", error=repr(job.exception()))


# In a standby publishing process: which store it read, the store, and what it read (by source and key).
_READ_AHEAD: list[
    tuple[tuple[str | None, Path], Store, dict[tuple[str, str], StoredNews], dict[tuple[str, str], StoredEvent]]
] = []


def _store_location(config: Config) -> tuple[str | None, Path]:
    return config.defaults.database_url, config.data_dir


READ_AHEAD_NICE = 10  # the standby reads in the gaps the batch's fetching and parsing leave


def _read_ahead(config: Config) -> None:
    # Reading ahead must not slow the batch it runs beside: the parse workers come first. (The
    # publish stays at this priority too: an unprivileged process cannot raise its priority again.)
    with contextlib.suppress(OSError):
        os.nice(READ_AHEAD_NICE)
    store = open_configured_store(config)
    since = datetime.now(UTC) - timedelta(days=config.defaults.past_days)
    news: dict[tuple[str, str], StoredNews] = {}
    events: dict[tuple[str, str], StoredEvent] = {}
    count_events = store.count_events(since=since)
    if publishes_streamed(config, store.count_news() + count_events):
        pass  # the publish reads a group of sources at a time: nothing to read ahead
    else:
        with collector_paused():
            news = {(i.record.source, i.record.key): i for i in store.news(per_source=news_per_source(config))}
            if not events_are_packed(config, count_events):  # else read as a stream by the publish
                events = {(e.record.source, e.record.key): e for e in store.events(since=since)}
    _READ_AHEAD.append((_store_location(config), store, news, events))


def publish_from_store(
    config: Config,
    store: Store,
    *,
    now: datetime,
    base_url: str,
    isolated: bool = False,
    standby: PublishStandby | None = None,
) -> PublishReport:
    """Read everything publishable from the store and write feeds/ (only changed files).

    When neither records (the store's generation), nor what index.html shows of the source
    states, nor the configuration changed since the last publish, and its files are intact,
    this returns at once without reading a record (``skipped``).

    ``isolated`` (the daemons) renders in a short-lived child process: rendering every scope
    holds hundreds of MB for a moment, which a long-lived process would keep for the rest of
    its life (freed Python memory is rarely returned to the system); and it runs on another
    core, so fetching goes on meanwhile instead of waiting for the GIL. ``standby``: the
    child started ahead of time, if there is one (skipped publishes dismiss it).
    """
    generation = store.generation()  # before anything is read: a change meanwhile makes the token stale, not wrong
    states = store.states()
    token = change_token(config, base_url, generation, states)
    files = published_still_current(config, token, now)
    if files is not None:
        if standby is not None:
            standby.dismiss()
        return PublishReport(written=(), unchanged=files, skipped=True)
    if isolated:
        # The child reads them itself: held here, 10,000 sources' states (14 MB) stayed in the daemon
        # through minutes of a large publish, beside the process doing it.
        del states
        report = _publish_in_child(config, token, now, base_url, None if standby is None else standby.take(), standby)
        if standby is not None:
            standby.streams = report.streamed
        return report
    return _render_and_write(config, store, token, now, base_url, states)


def _render_and_write(
    config: Config,
    store: Store,
    token: str,
    now: datetime,
    base_url: str,
    states: Sequence[SourceState],
    known: tuple[dict[tuple[str, str], StoredNews], dict[tuple[str, str], StoredEvent]] | None = None,
) -> PublishReport:
    since = now - timedelta(days=config.defaults.past_days)
    started = time.perf_counter()
    known_news, known_events = known or (None, None)
    if publishes_streamed(config, store.count_news() + store.count_events(since=since)):
        del known, known_news, known_events  # read again a group of sources at a time
        del states  # read again for index.html: not held through the publish
        report = publish_streamed(config.feeds_dir, config, store, now=now, base_url=base_url)
        remember_publish(config, token, report)
        return report
    news, news_keys = _with_match_keys(store.news(known=known_news, per_source=news_per_source(config)))
    packed: PackedEvents | None = None
    events: list[StoredEvent] = []
    event_keys: list[tuple[StoredEvent, MatchKeys]] = []
    if events_are_packed(config, store.count_events(since=since)):
        packed = _packed_events(config, store, since, now)
    else:
        events, event_keys = _with_match_keys(store.events(since=since, known=known_events))
    for read_ahead in (known_news, known_events):
        if read_ahead is not None:
            read_ahead.clear()  # read again where changed: what is left is in ``news`` and ``events``
    read_seconds = time.perf_counter() - started
    # Before the publish, not beside it (a thread running would keep it from forking its helper),
    # and not after: the publish lets the records go as soon as it no longer needs them.
    try:
        store.save_match_keys([*news_keys, *event_keys])
    except StoreError as error:  # the keys are computed again next time: speed lost, not output
        log.warning("de-duplication keys not saved: %s", error)
    del news_keys, event_keys
    data = PublishInput(
        config=config,
        news=news,
        events=events,
        states=states,
        now=now,
        base_url=base_url,
        handed_over=True,
        packed_events=packed,
    )
    del news, events  # handed over: the publish empties the lists
    report = dataclasses.replace(
        publish(config.feeds_dir, data),
        read_seconds=read_seconds,
        read_ahead=known is not None,
        events_packed=packed is not None,
    )
    remember_publish(config, token, report)
    return report


_Item = TypeVar("_Item", StoredNews, StoredEvent)
_KEYS_SAVED_AT_ONCE = 2_000  # events given de-duplication keys while they stream by, saved in groups


def _packed_events(config: Config, store: Store, since: datetime, now: datetime) -> PackedEvents:
    """The events read as a stream and packed (``pack_events``); keys computed on the way are saved as it goes."""
    computed: list[tuple[StoredEvent, MatchKeys]] = []

    def save() -> None:
        try:
            store.save_match_keys(computed)
        except StoreError as error:  # computed again next time: speed lost, not output
            log.warning("de-duplication keys not saved: %s", error)
        computed.clear()

    def with_keys() -> Iterator[StoredEvent]:
        for item in store.stream_events(since=since):
            if item.match is None:
                keys = match_keys(item.record.link, item.record.title)
                item = dataclasses.replace(item, match=keys)
                computed.append((item, keys))
                if len(computed) >= _KEYS_SAVED_AT_ONCE:
                    save()
            yield item

    with collector_paused():
        packed = pack_events(
            with_keys(),
            names={s.name for s in config.sources},
            series=store.recurring_series(),
            now=now,
            past_days=config.defaults.past_days,
        )
    save()
    return packed


def _with_match_keys(items: list[_Item]) -> tuple[list[_Item], list[tuple[_Item, MatchKeys]]]:
    """``items``, each read without de-duplication keys (new or changed since the last publish) given them.

    Keys are computed here, in the publishing process, once per record version: the process
    that fetches and stores pays nothing for them, and the publish saves them in the rows
    (``Store.save_match_keys``) for every later publish to read.
    """
    computed: list[tuple[_Item, MatchKeys]] = []
    for index, item in enumerate(items):
        if item.match is None:
            keys = match_keys(item.record.link, item.record.title)
            items[index] = dataclasses.replace(item, match=keys)
            computed.append((items[index], keys))
    return items, computed


def _publish_child(config: Config, token: str, now: datetime, base_url: str) -> PublishReport:
    """The child's side of an isolated publish: its own store connection, then the usual publish."""
    known: tuple[dict[tuple[str, str], StoredNews], dict[tuple[str, str], StoredEvent]] | None = None
    if _READ_AHEAD:  # a standby: the store is open and the records were read while sources were fetched
        location, store, news, events = _READ_AHEAD.pop()
        if location == _store_location(config):
            known = (news, events)
        else:  # the configuration was reloaded meanwhile and names another store
            store.close()
            store = open_configured_store(config)
    else:
        store = open_configured_store(config)
    try:
        return _render_and_write(config, store, token, now, base_url, store.states(), known)
    finally:
        store.close()


def _stop_processes(executor: ProcessPoolExecutor, sig: signal.Signals) -> None:
    """``sig`` to the executor's processes: a publisher's writes stop where they are (each file whole)."""
    processes = getattr(executor, "_processes", None) or {}  # pid -> Process; no public way to stop a running job
    for pid in list(processes):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _publishing_process() -> ProcessPoolExecutor:
    """A child of the forkserver (not a fork of the daemon, whose threads a fork would copy mid-flight),
    forked with the publish's modules loaded and their pages shared (``aggregator.preload``); it
    ends with the daemon, ``kill -9`` included (``init_publishing_process``)."""
    return ProcessPoolExecutor(max_workers=1, mp_context=forkserver_context(), initializer=init_publishing_process)


def _publish_in_child(
    config: Config,
    token: str,
    now: datetime,
    base_url: str,
    started: ProcessPoolExecutor | None,
    standby: PublishStandby | None = None,
) -> PublishReport:
    with (
        started or _publishing_process() as child,
        standby.publishing(child, config.feeds_dir) if standby is not None else contextlib.nullcontext(),
    ):
        try:
            future = child.submit(_publish_child, config, token, now, base_url)
        except BrokenProcessPool:
            if started is None:
                raise
            future = None  # the standby died before the publish was asked of it
        if future is not None:
            try:
                return future.result()
            except BrokenProcessPool as error:
                raise PublishError(
                    str(config.feeds_dir), f"the publishing process died ({error}); old files kept"
                ) from None
    return _publish_in_child(config, token, now, base_url, None)  # in a new process


class DataDirLock:
    """An exclusive lock on the data directory: one writer process at a time.

    A second ``run``/``fetch``/``publish`` on the same directory refuses with a
    clear message instead of racing the first (the database would survive, but
    two publishers would fight over feeds/). The lock dies with the process.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "aggregator.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"data directory {self.path.parent} is in use by process {holder}; "
                "stop it first or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
