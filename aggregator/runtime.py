"""Process-level resources shared by the CLI and the daemon: store, lock, publishing.

Kept apart from ``cli.py`` so that the daemon and the one-shot commands open
the database, take the data-directory lock and publish in exactly one way.
"""

from __future__ import annotations

import fcntl
import os
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from aggregator.config import Config
from aggregator.errors import StoreError
from aggregator.publish import PublishInput, PublishReport, publish
from aggregator.store import open_store
from aggregator.store.base import Store

__all__ = ["DataDirLock", "base_url_of", "open_configured_store", "publish_from_store"]


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


def publish_from_store(config: Config, store: Store, *, now: datetime, base_url: str) -> PublishReport:
    """Read everything publishable from the store and write feeds/ (only changed files)."""
    since = now - timedelta(days=config.defaults.past_days)
    data = PublishInput(
        config=config,
        news=store.news(),
        events=store.events(since=since),
        states=store.states(),
        now=now,
        base_url=base_url,
    )
    return publish(config.feeds_dir, data)


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
