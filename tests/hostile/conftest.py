"""Hostile-world fixtures: a loopback server for misbehaving sources, the real CLI, and readers of its output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

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


# ---- every hostile document in one data directory -------------------------------------------------


def nested_feed(levels: int) -> bytes:
    """A feed whose one item nests ``levels`` elements as markup and ``levels`` divs as escaped HTML."""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Deep</title>'
        b"<link>https://www.deep-cluster.example.eu/</link>"
        b"<item><title>Nested markup</title><link>https://www.deep-cluster.example.eu/news/markup</link>"
        b"<pubDate>Tue, 24 Nov 2026 09:00:00 +0100</pubDate><description>"
        + b"&lt;div&gt;" * levels
        + b"deep text"
        + b"</description></item>"
        b"<item><title>Nested elements</title><link>https://www.deep-cluster.example.eu/news/elements</link>"
        b"<pubDate>Wed, 25 Nov 2026 09:00:00 +0100</pubDate><description>"
        + b"<x>" * levels
        + b"</x>" * levels
        + b"</description></item></channel></rss>\n"
    )


def huge_attribute_feed(size: int) -> bytes:
    """An item whose link carries a ``size``-byte attribute, next to a normal item."""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Attributes</title>'
        b"<link>https://www.attr-cluster.example.eu/</link>"
        b'<item><title lang="' + b"x" * size + b'">Huge attribute</title>'
        b"<link>https://www.attr-cluster.example.eu/news/huge</link>"
        b"<pubDate>Tue, 24 Nov 2026 09:00:00 +0100</pubDate></item>"
        b"<item><title>Normal neighbour</title><link>https://www.attr-cluster.example.eu/news/normal</link>"
        b"<pubDate>Wed, 25 Nov 2026 09:00:00 +0100</pubDate></item></channel></rss>\n"
    )


def nested_page(size: int) -> bytes:
    """About ``size`` bytes of nested divs after a page heading (no closing tags: the bytes run out)."""
    return b"<!DOCTYPE html><html><head><title>Deep page</title></head><body><h1>News</h1>" + b"<div>" * (size // 5)


@dataclass
class Documents:
    cli: Cli
    urls: dict[str, str]
    runs: list[subprocess.CompletedProcess[str]]
    status: dict[str, dict[str, Any]]


DOCUMENT_SOURCES: dict[str, tuple[str, str]] = {
    # name: (kind, served path)
    "billion-laughs": ("auto", "/billion_laughs.xml"),
    "xxe": ("feed", "/xxe_local_file.xml"),
    "deep-feed": ("auto", "/deep.xml"),
    "huge-attribute": ("feed", "/attribute.xml"),
    "missing-fields": ("feed", "/missing_fields.xml"),
    "guid-churn": ("feed", "/guid_churn.xml"),
    "damaged-calendar": ("ical", "/damaged_calendar.ics"),
    "damaged-calendar-lf": ("ical", "/damaged_calendar_lf.ics"),
    "unclosed-tags": ("auto", "/unclosed_tags.html"),
    "non-dates": ("auto", "/date_like_non_dates.html"),
    "deep-page": ("auto", "/deep.html"),
    "xss-news": ("feed", "/xss_news.xml"),
    "xss-json": ("auto", "/xss_feed.json"),
    "xss-events": ("ical", "/xss_events.ics"),
    "xss-page": ("auto", "/xss_page.html"),
}


@pytest.fixture(scope="session")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Documents]:
    """Every hostile document as its own source: fetched twice, then published once more."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    server.expect_request("/robots.txt").respond_with_data("not found", status=404)
    bodies = {
        "/deep.xml": (nested_feed(100_000), "application/rss+xml"),
        "/attribute.xml": (huge_attribute_feed(5_000_000), "application/rss+xml"),
        "/deep.html": (nested_page(10_000_000), "text/html; charset=utf-8"),
        "/damaged_calendar_lf.ics": (fixture("damaged_calendar.ics").replace(b"\r\n", b"\n"), "text/calendar"),
    }
    types = {".xml": "application/rss+xml", ".json": "application/feed+json", ".ics": "text/calendar"}
    for _name, (_kind, path) in DOCUMENT_SOURCES.items():
        if path in bodies:
            body, media_type = bodies[path]
        elif path == "/guid_churn.xml":
            continue
        else:
            body = fixture(path.lstrip("/"))
            media_type = types.get(Path(path).suffix, "text/html; charset=utf-8")
        server.expect_request(path).respond_with_data(body, content_type=media_type)
    churn = fixture("guid_churn.xml").decode("utf-8")

    def fresh_guids(_request: Request) -> Response:
        text = churn.replace("{guid1}", str(uuid.uuid4())).replace("{guid2}", str(uuid.uuid4()))
        return Response(text, content_type="application/rss+xml")

    server.expect_request("/guid_churn.xml").respond_with_handler(fresh_guids)
    cli = Cli(tmp_path_factory.mktemp("documents"))
    urls = {name: server.url_for(path) for name, (_kind, path) in DOCUMENT_SOURCES.items()}
    cli.write_sources(
        "".join(source_block(name, urls[name], kind=kind) for name, (kind, _path) in DOCUMENT_SOURCES.items())
        + '\n[server]\nbase_url = "https://feeds.cluster-hostile.example.eu/"\n'
    )
    runs = [cli("fetch"), cli("fetch"), cli("publish")]
    try:
        yield Documents(cli, urls, runs, cli.status())
    finally:
        server.clear()
        server.stop()
