"""Connections are reused: a 304, a redirect or an error page must not cost the next request a new TCP connection.

The server here is a small HTTP/1.1 keep-alive server on 127.0.0.1 that counts the
connections it accepts (pytest-httpserver's werkzeug closes every connection itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aggregator.config import Defaults, SourceConfig
from aggregator.errors import FetchError
from aggregator.fetch import Fetcher
from aggregator.records import Validators

FEED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<rss version="2.0"><channel><title>Silicon Saxony news</title><link>https://silicon-saxony.example/</link>'
    b"<item><title>Semiconductor day 2026</title><link>https://silicon-saxony.example/news/day</link></item>"
    b"</channel></rss>"
)
ETAG = '"v1"'


@dataclass
class KeepAliveServer:
    """Answers GETs on keep-alive connections; ``connections`` counts the TCP connections accepted."""

    big_error_bytes: int = 0
    connections: int = 0
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                self.requests.append((path, headers.get("if-none-match")))
                writer.write(self.answer(path, headers))
                await writer.drain()
        finally:
            writer.close()

    def answer(self, path: str, headers: dict[str, str]) -> bytes:
        if path == "/robots.txt":
            return _response("404 Not Found", b"no robots.txt here", "text/plain")
        if path == "/old-feed.xml":
            body = b'<html><body>Moved to <a href="/feed.xml">/feed.xml</a></body></html>'
            return _response("301 Moved Permanently", body, "text/html", extra="Location: /feed.xml\r\n")
        if path == "/missing.xml":
            return _response("404 Not Found", b"x" * self.big_error_bytes, "text/plain")
        if headers.get("if-none-match") == ETAG:
            return f"HTTP/1.1 304 Not Modified\r\nETag: {ETAG}\r\n\r\n".encode()
        return _response("200 OK", FEED, "application/rss+xml", extra=f"ETag: {ETAG}\r\n")


def _response(status: str, body: bytes, content_type: str, *, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def _run(server: KeepAliveServer, scenario: Callable[[Fetcher, str], object]) -> None:
    async def main() -> None:
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        fetcher = Fetcher(Defaults(allow_private=True))
        try:
            await scenario(fetcher, f"http://127.0.0.1:{port}")  # type: ignore[misc]
        finally:
            await fetcher.aclose()
            listener.close()
            await listener.wait_closed()

    asyncio.run(main())


def _source(url: str) -> SourceConfig:
    return SourceConfig(name="silicon-saxony", url=url, allow_private=True, timeout=5.0)


def test_conditional_gets_answered_304_reuse_one_connection() -> None:
    server = KeepAliveServer()
    statuses: list[int] = []

    async def scenario(fetcher: Fetcher, base: str) -> None:
        first = await fetcher.fetch(base + "/feed.xml", source=_source(base + "/feed.xml"))
        statuses.append(first.status)
        for _ in range(3):
            again = await fetcher.fetch(
                base + "/feed.xml", source=_source(base + "/feed.xml"), validators=first.validators
            )
            statuses.append(again.status)

    _run(server, scenario)
    assert statuses == [200, 304, 304, 304]
    assert server.requests == [
        ("/robots.txt", None),
        ("/feed.xml", None),
        ("/feed.xml", ETAG),
        ("/feed.xml", ETAG),
        ("/feed.xml", ETAG),
    ]
    assert server.connections == 1


def test_a_redirect_with_a_body_does_not_close_the_connection() -> None:
    server = KeepAliveServer()
    results: list[tuple[int, str, str]] = []

    async def scenario(fetcher: Fetcher, base: str) -> None:
        for _ in range(2):
            result = await fetcher.fetch(base + "/old-feed.xml", source=_source(base + "/old-feed.xml"))
            moved_to = (result.permanent_redirect or "").removeprefix(base)
            results.append((result.status, result.final_url.removeprefix(base), moved_to))

    _run(server, scenario)
    assert results == [(200, "/feed.xml", "/feed.xml")] * 2
    assert [path for path, _ in server.requests] == [
        "/robots.txt",
        "/old-feed.xml",
        "/feed.xml",
        "/old-feed.xml",
        "/feed.xml",
    ]
    assert server.connections == 1


def test_a_large_unread_error_body_closes_its_connection_instead_of_being_read() -> None:
    server = KeepAliveServer(big_error_bytes=2 * 1024 * 1024)
    errors: list[str] = []

    async def scenario(fetcher: Fetcher, base: str) -> None:
        try:
            await fetcher.fetch(base + "/missing.xml", source=_source(base + "/missing.xml"))
        except FetchError as error:
            errors.append(f"{error.reason} {error.status} {error.message}")
        result = await fetcher.fetch(base + "/feed.xml", source=_source(base + "/feed.xml"), validators=Validators())
        errors.append(str(result.status))

    _run(server, scenario)
    assert errors == ["http 404 HTTP 404 Not Found", "200"]
    assert server.connections == 2  # robots.txt and the 404 on the first, the feed on a new one
