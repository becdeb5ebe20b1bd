"""Daemon-test fixtures: a loopback site server that counts requests, a pipeline rig with a clock, the real daemon.

Behaviour over time is tested two ways. Cycles that would take hours (backoff, dormancy, Retry-After)
drive ``Pipeline.run_source`` in-process with an injected clock, the pipeline's declared seam. What
only a running process shows (scheduling, reloads, restarts, publishing, the HTTP front) runs
``aggregator run`` as a subprocess against ``Site`` servers and asserts counts and states.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "daemon"
GATE_LIMIT_S = 60.0  # a gated request gives up after this long, so a failed test never hangs the server


# ---- a loopback site -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


Responder = Callable[[dict[str, str]], Reply]


@dataclass
class _Route:
    responder: Responder
    gate: threading.Event | None = None


class Site:
    """A threaded HTTP server on 127.0.0.x with an ephemeral port; counts requests per path server-side.

    Paths without a route answer 404 (so ``/robots.txt`` means "no robots.txt": all allowed).
    A gated path holds its request until the test opens the gate, which lets a test line up a
    batch of fetches or play a slow host without timing anything.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, _Route] = {}
        self.hits: Counter[str] = Counter()
        self.headers_seen: dict[str, list[dict[str, str]]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrived = threading.Condition()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                headers = {k.lower(): v for k, v in self.headers.items()}
                with site.arrived:
                    site.hits[path] += 1
                    site.headers_seen.setdefault(path, []).append(headers)
                    site.in_flight += 1
                    site.max_in_flight = max(site.max_in_flight, site.in_flight)
                    site.arrived.notify_all()
                try:
                    route = site.routes.get(path)
                    if route is not None and route.gate is not None:
                        route.gate.wait(GATE_LIMIT_S)
                    reply = route.responder(headers) if route is not None else Reply(404, b"not found")
                finally:
                    with site.arrived:
                        site.in_flight -= 1
                self.send_response_only(reply.status)
                if not any(name.lower() == "date" for name, _ in reply.headers):
                    self.send_header("Date", self.date_time_string())  # one Date only: a reply may bring its own
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = _QuietServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, responder: Responder, *, gated: bool = False) -> threading.Event | None:
        gate = threading.Event() if gated else None
        self.routes[path] = _Route(responder, gate)
        return gate

    def serve(
        self,
        path: str,
        body: bytes,
        content_type: str,
        *,
        status: int = 200,
        headers: tuple[tuple[str, str], ...] = (),
        gated: bool = False,
    ) -> threading.Event | None:
        return self.route(path, lambda _h: Reply(status, body, (("Content-Type", content_type), *headers)), gated=gated)

    def wait_for_hits(self, path: str, count: int, limit: float = 60.0) -> None:
        """Block until ``path`` was requested ``count`` times (server-side)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: self.hits[path] >= count, timeout=limit):
                raise AssertionError(f"{path} requested {self.hits[path]} times, expected {count}")

    def close(self) -> None:
        for route in self.routes.values():
            if route.gate is not None:
                route.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietServer(ThreadingHTTPServer):
    """A client that went away mid-reply (a daemon killed by a test) is expected, not an error to print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site("127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def other_site() -> Iterator[Site]:
    """A second host name: 127.0.0.2 is still the loopback interface on Linux."""
    server = Site("127.0.0.2")
    yield server
    server.close()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


RSS = "application/rss+xml; charset=utf-8"
ICS = "text/calendar; charset=utf-8"


# ---- a clock for in-process pipeline runs --------------------------------------------------------


@dataclass
class Clock:
    """The pipeline's declared ``clock`` seam: time moves only when the test says so."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 26, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance_to(self, when: datetime) -> None:
        assert when >= self.now
        self.now = when

    def advance(self, delta: timedelta) -> None:
        self.now += delta


# ---- the real CLI and daemon ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        check=False,
    )


def status_json(cwd: Path) -> dict[str, dict[str, Any]]:
    done = run_cli(cwd, "status", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {row["name"]: row for row in rows}


class DaemonProcess:
    """``aggregator --log-format json run`` in ``cwd``; its log goes to a file the test reads while it runs."""

    def __init__(self, cwd: Path, port: int, *, log_name: str = "daemon.log") -> None:
        self.cwd = cwd
        self.port = port
        self.log_path = cwd / log_name
        self._log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--log-format", "json", "run"],
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.returncode: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=10, **kwargs)

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines (other lines, e.g. a traceback's, are skipped), optionally one event only."""
        found = []
        for line in self.text().splitlines():
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if name is None or event.get("event") == name:
                found.append(event)
        return found

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.text()}")
            return self.get("/readyz").status_code == 200

        wait_until(ready, "/readyz")

    def wait_for_event(self, name: str, count: int = 1, limit: float = 60.0, **fields: object) -> list[dict[str, Any]]:
        def matching() -> list[dict[str, Any]]:
            return [e for e in self.events(name) if all(e.get(k) == v for k, v in fields.items())]

        wait_until(lambda: len(matching()) >= count, f"{count} '{name}' log line(s) with {fields}", limit)
        return matching()

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def stop(self) -> int:
        if self.returncode is None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.returncode = self.process.wait()
            self._log.close()
        return self.returncode


@pytest.fixture
def daemons() -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons with ``daemons(cwd, port)``; any still running at the end are stopped."""
    started: list[DaemonProcess] = []

    def start(cwd: Path, port: int, **kwargs: Any) -> DaemonProcess:
        process = DaemonProcess(cwd, port, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def sources_toml(port: int, body: str, **defaults: str) -> str:
    """A sources.toml for loopback sites: private addresses allowed, the given [defaults] added."""
    extra = "".join(f"{key} = {value}\n" for key, value in defaults.items())
    return (
        "[defaults]\n"
        'timezone = "Europe/Brussels"\n'
        'interval = "1m"\n'
        "allow_private = true\n"
        'title = "Cluster networks (daemon test)"\n'
        "past_days = 36500\n"
        f"{extra}\n"
        "[server]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n\n{body}"
    )
