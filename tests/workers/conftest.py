"""Workers fixtures: a session PostgreSQL, a corpus server that counts requests, the CLI as processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "workers"
CONTENT_TYPES = {".xml": "application/rss+xml; charset=utf-8", ".ics": "text/calendar; charset=utf-8"}


class CorpusServer:
    """The workers corpus on 127.0.0.1, counting requests per path.

    A held path answers its first request only after ``release(path)``: the test knows
    that a worker is in the middle of that fetch and can kill it there.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._held: dict[str, tuple[threading.Event, threading.Event]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def hold(self, path: str) -> threading.Event:
        """Make the first request of ``path`` wait; returns an event set when it has arrived."""
        arrived, release = threading.Event(), threading.Event()
        self._held[path] = (arrived, release)
        return arrived

    def release(self, path: str) -> None:
        self._held[path][1].set()

    def count(self, path: str) -> int:
        with self._lock:
            return self.counts[path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.counts[self.path] += 1
                    first = server.counts[self.path] == 1
                held = server._held.get(self.path)
                if held is not None and first:
                    held[0].set()
                    held[1].wait(60)
                file = server.root / self.path.lstrip("/")
                if self.path == "/robots.txt" or not file.is_file():
                    self._send(404, b"not found", "text/plain")
                    return
                self._send(200, file.read_bytes(), CONTENT_TYPES[file.suffix])

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client was killed while we held its request

        return Handler

    def __enter__(self) -> CorpusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for _, release in self._held.values():
            release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def corpus() -> Iterator[CorpusServer]:
    with CorpusServer(CORPUS) as server:
        yield server


def corpus_names() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if p.suffix in CONTENT_TYPES)


def sources_toml(
    corpus: CorpusServer,
    *,
    port: int,
    database_url: str | None,
    names: list[str] | None = None,
    feeds_dir: str = "feeds",
    data_dir: str = "data",
) -> str:
    """A sources.toml for the corpus: interval 1m, one source per file, fixed base_url."""
    head = [
        "[defaults]",
        'interval = "1m"',
        "allow_private = true",
        "past_days = 36500",
        'title = "Cluster networks (workers test)"',
        f'data_dir = "{data_dir}"',
        f'feeds_dir = "{feeds_dir}"',
    ]
    if database_url:
        head.append(f'database_url = "{database_url}"')
    head += ["", "[server]", 'host = "127.0.0.1"', f"port = {port}", 'base_url = "https://feeds.example.org/"', ""]
    body = []
    for file in names if names is not None else corpus_names():
        stem, suffix = file.rsplit(".", 1)
        kind = "feed" if suffix == "xml" else "ical"
        body += ["[[source]]", f'name = "{stem}"', f'url = "{corpus.url(file)}"', f'kind = "{kind}"', ""]
    return "\n".join(head + body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], bool], what: str, limit: float = 60.0, *, context: Callable[[], str] | None = None
) -> None:
    """Poll ``predicate``; on timeout, fail with ``context()`` (a daemon's log) so the cause can be read."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{context()}" if context else ""))


class Daemon:
    """``aggregator run`` as a process; its log (JSON lines) goes to a file the test can read."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.log_path = cwd / f"run-{len(list(cwd.glob('run-*.log')))}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--log-format", "json", "run", *args],
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            start_new_session=True,  # a SIGTERM for the parent only, as systemd's KillMode=mixed
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._log.close()
