"""Hostile-world fixtures: a loopback server for misbehaving sources, the real CLI, and readers of its output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "hostile"
CHECK_FEEDS = REPO.parent / "shared" / "eval" / "check-feeds"

HEAD = """[defaults]
timezone = "Europe/Vienna"
interval = "1h"
allow_private = true
title = "Hostile world"
past_days = 36500
"""


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Cli:
    """The real ``aggregator`` command in a working directory holding sources.toml, data/ and feeds/."""

    cwd: Path

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aggregator", *args],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            check=False,
        )

    def write_sources(self, body: str, head: str = HEAD) -> Path:
        path = self.cwd / "sources.toml"
        path.write_text(head + body, encoding="utf-8")
        return path

    def status(self) -> dict[str, dict[str, Any]]:
        run = self("status", "--json")
        assert run.returncode == 0, run.stderr
        lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
        return {line["name"]: line for line in lines}

    @property
    def feeds(self) -> Path:
        return self.cwd / "feeds"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def source_block(name: str, url: str, **keys: Any) -> str:
    """One [[source]] table; values are written as TOML literals."""
    lines = ["", "[[source]]", f'name = "{name}"', f'url = "{url}"']
    for key, value in keys.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[HTTPServer]:
    """A threaded loopback server (a stalled handler does not hold the others), one per test module."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def site(hostile_server: HTTPServer) -> Iterator[HTTPServer]:
    """The module's server, cleared, with robots.txt answering 404 (everything allowed)."""
    hostile_server.clear()
    hostile_server.expect_request("/robots.txt").respond_with_data("not found", status=404)
    yield hostile_server
    hostile_server.clear()


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BlackHole:
    """A listener whose accept queue is full, so new connections hang in SYN-SENT: a connect timeout."""

    port: int
    _sockets: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        for s in self._sockets:
            s.close()


@pytest.fixture(scope="module")
def black_hole() -> Iterator[BlackHole]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    hole = BlackHole(int(listener.getsockname()[1]), [listener])
    # Fill the backlog (Linux lets backlog + 1 connections complete); later SYNs are dropped.
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", hole.port))
        hole._sockets.append(client)
    yield hole
    hole.close()


@dataclass
class Silent:
    """A server that accepts, answers robots.txt with 404, and then never answers: a read timeout."""

    port: int
    _stop: threading.Event
    _listener: socket.socket

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture(scope="module")
def silent_server() -> Iterator[Silent]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                request = conn.recv(65536)
            except OSError:
                conn.close()
                continue
            if b"/robots.txt" in request.split(b"\r\n", 1)[0]:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                conn.close()
            else:
                held.append(conn)  # read, never answered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    server = Silent(int(listener.getsockname()[1]), stop, listener)
    yield server
    server.close()
    thread.join(timeout=5)
    for conn in held:
        conn.close()


Checker = Callable[[Path], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def check_feeds() -> Checker:
    """Run the independent validators (../shared/eval/check-feeds) on a published folder."""
    if not CHECK_FEEDS.exists():
        pytest.skip(f"{CHECK_FEEDS} is missing")

    def run(folder: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CHECK_FEEDS), str(folder)], capture_output=True, text=True, timeout=600, check=False)

    return run
