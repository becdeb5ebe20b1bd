"""A real uvicorn server on 127.0.0.1 (ephemeral port, in a thread) serving a copy of tests/fixtures/serve."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from aggregator.metrics import Metrics
from aggregator.serve import build_app, server_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serve"
# Every fixture file's mtime: Thu, 26 Nov 2026 11:30:00 GMT.
PUBLISHED_AT = datetime(2026, 11, 26, 11, 30, tzinfo=UTC).timestamp()


@dataclass
class Served:
    """A running server and the knobs the test holds: its feeds_dir, metrics and readiness flag."""

    base_url: str
    port: int
    feeds: Path
    metrics: Metrics
    ready: threading.Event

    def client(self) -> httpx.Client:
        # Plain HTTP on loopback: verify=False only spares loading the CA bundle per client.
        return httpx.Client(base_url=self.base_url, timeout=10.0, verify=False)


def health_details() -> Mapping[str, object]:
    return {"sources": 2, "last_publish": datetime(2026, 11, 26, 11, 30, tzinfo=UTC)}


@pytest.fixture
def feeds(tmp_path: Path) -> Path:
    """A feeds_dir copied from the fixtures, next to a secret file that must never be served."""
    target = tmp_path / "feeds"
    shutil.copytree(FIXTURES, target, ignore=shutil.ignore_patterns("README.md"))
    (tmp_path / "outside.xml").write_text("<secret>TOPSECRET outside feeds_dir</secret>\n")
    for path in [target, *target.rglob("*")]:
        os.utime(path, (PUBLISHED_AT, PUBLISHED_AT))
    return target


class _AppSlot:
    """The app a session-wide server hands each request to; every test installs its own.

    Starting and stopping uvicorn costs a few tenths of a second, so tests share
    one real server and swap the app behind it.
    """

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the apps under test do no startup work; answer for them
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.app is not None, "no app installed for this test"
        await self.app(scope, receive, send)


def _start(app: ASGIApp) -> tuple[uvicorn.Server, threading.Thread, int]:
    server = uvicorn.Server(server_config(app, "127.0.0.1", 0))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during startup"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, port


def _stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(15)
    assert not thread.is_alive()


@pytest.fixture(scope="session")
def shared_server() -> Iterator[tuple[_AppSlot, int]]:
    slot = _AppSlot()
    server, thread, port = _start(slot)
    yield slot, port
    _stop(server, thread)


@pytest.fixture
def start_server(shared_server: tuple[_AppSlot, int]) -> Iterator[Callable[..., int]]:
    """start_server(app) -> port where real uvicorn serves app; dedicated=True for a server of its own."""
    slot, shared_port = shared_server
    dedicated: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: ASGIApp, *, dedicated_server: bool = False) -> int:
        if not dedicated_server:
            slot.app = app
            return shared_port
        server, thread, port = _start(app)
        dedicated.append((server, thread))
        return port

    yield start
    slot.app = None
    for server, thread in dedicated:
        _stop(server, thread)


@pytest.fixture
def served(feeds: Path, start_server: Callable[..., int]) -> Served:
    metrics = Metrics()
    ready = threading.Event()
    app = build_app(feeds, metrics=metrics, is_ready=ready.is_set, max_age=300, health=health_details)
    port = start_server(app)
    return Served(f"http://127.0.0.1:{port}", port, feeds, metrics, ready)
