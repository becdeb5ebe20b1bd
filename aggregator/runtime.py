"""Process-level resources shared by the CLI and the daemon: store, lock, publishing.

Kept apart from ``cli.py`` so that the daemon and the one-shot commands open
the database, take the data-directory lock and publish in exactly one way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import multiprocessing
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from aggregator.config import Config
from aggregator.errors import PublishError, StoreError
from aggregator.metrics import Metrics
from aggregator.processes import die_with_parent
from aggregator.publish import (
    PublishInput,
    PublishReport,
    change_token,
    publish,
    published_still_current,
    remember_publish,
)
from aggregator.records import SourceState
from aggregator.serve import EmbeddedServer, build_app, server_config
from aggregator.store import open_store
from aggregator.store.base import Store

__all__ = [
    "DataDirLock",
    "base_url_of",
    "cache_max_age",
    "die_with_parent",
    "feeds_server",
    "install_signal_handlers",
    "open_configured_store",
    "publish_from_store",
]


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


def base_url_of(config: Config, host: str | None = None, port: int | None = None) -> str:
    """Absolute base for links in published files: configured, else the address we listen on."""
    if config.server.base_url:
        return config.server.base_url.rstrip("/") + "/"
    return f"http://{host or config.server.host}:{port or config.server.port}/"


def publish_from_store(
    config: Config, store: Store, *, now: datetime, base_url: str, isolated: bool = False
) -> PublishReport:
    """Read everything publishable from the store and write feeds/ (only changed files).

    When neither records (the store's generation), nor what index.html shows of the source
    states, nor the configuration changed since the last publish, and its files are intact,
    this returns at once without reading a record (``skipped``).

    ``isolated`` (the daemons) renders in a short-lived child process: rendering every scope
    holds hundreds of MB for a moment, which a long-lived process would keep for the rest of
    its life (freed Python memory is rarely returned to the system); and it runs on another
    core, so fetching goes on meanwhile instead of waiting for the GIL.
    """
    generation = store.generation()  # before anything is read: a change meanwhile makes the token stale, not wrong
    states = store.states()
    token = change_token(config, base_url, generation, states)
    files = published_still_current(config, token, now)
    if files is not None:
        return PublishReport(written=(), unchanged=files, skipped=True)
    if isolated:
        return _publish_in_child(config, token, now, base_url)
    return _render_and_write(config, store, token, now, base_url, states)


def _render_and_write(
    config: Config, store: Store, token: str, now: datetime, base_url: str, states: Sequence[SourceState]
) -> PublishReport:
    since = now - timedelta(days=config.defaults.past_days)
    started = time.perf_counter()
    data = PublishInput(
        config=config,
        news=store.news(),
        events=store.events(since=since),
        states=states,
        now=now,
        base_url=base_url,
    )
    read_seconds = time.perf_counter() - started
    report = dataclasses.replace(publish(config.feeds_dir, data), read_seconds=read_seconds)
    remember_publish(config, token, report)
    return report


def _publish_child(config: Config, token: str, now: datetime, base_url: str, parent_pid: int) -> PublishReport:
    """The child's side of an isolated publish: its own store connection, then the usual publish."""
    die_with_parent(parent_pid)
    store = open_configured_store(config)
    try:
        return _render_and_write(config, store, token, now, base_url, store.states())
    finally:
        store.close()


def _publish_in_child(config: Config, token: str, now: datetime, base_url: str) -> PublishReport:
    # spawn, not fork: the daemon has threads (server, scheduler, store) that a fork would copy mid-flight.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as child:
        try:
            return child.submit(_publish_child, config, token, now, base_url, os.getpid()).result()
        except BrokenProcessPool as error:
            raise PublishError(
                str(config.feeds_dir), f"the publishing process died ({error}); old files kept"
            ) from None


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
