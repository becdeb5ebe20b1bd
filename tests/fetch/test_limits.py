"""Limits that keep one bad server from hurting the run: size cap, gzip bombs, deadline, concurrency."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import Defaults, SourceConfig
from aggregator.errors import FetchError
from aggregator.fetch import Fetcher, FetchResult

Fetch = Callable[..., FetchResult]
SMALL = Defaults(max_bytes=100_000)


def test_body_over_the_limit_stops_streaming_at_the_limit(server: HTTPServer, fetch_once: Fetch) -> None:
    chunks_total = 4000  # 256 MB if it were all read
    sent = {"chunks": 0}

    def endless(_request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for _ in range(chunks_total):
                sent["chunks"] += 1
                yield b"<item>" + b"x" * 65530

        # No Content-Length: the cap must hold while streaming, not only on the header.
        return Response(body(), content_type="application/rss+xml")

    server.expect_request("/huge.xml").respond_with_handler(endless)

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/huge.xml"), defaults=SMALL)

    assert (caught.value.reason, caught.value.message) == ("too-large", "response exceeds 100000 bytes")
    assert sent["chunks"] < chunks_total


def test_declared_content_length_over_the_limit_is_refused_before_reading(
    server: HTTPServer, fetch_once: Fetch
) -> None:
    server.expect_request("/big.ics").respond_with_data(b"B" * 100_001, content_type="text/calendar")

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/big.ics"), defaults=SMALL)

    assert (caught.value.reason, caught.value.message) == ("too-large", "response exceeds 100000 bytes")


def test_body_exactly_at_the_limit_is_accepted(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/edge").respond_with_data(b"E" * 100_000)

    assert len(fetch_once(server.url_for("/edge"), defaults=SMALL).body) == 100_000


def test_gzip_bomb_stops_at_the_decompressed_limit(server: HTTPServer, fetch_once: Fetch) -> None:
    bomb = gzip.compress(b"\0" * 20_000_000, compresslevel=9)  # about 20 KB on the wire
    server.expect_request("/feed.xml").respond_with_data(
        bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"}
    )

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed.xml"), defaults=SMALL)

    assert len(bomb) < SMALL.max_bytes
    assert (caught.value.reason, caught.value.message) == ("too-large", "response exceeds 100000 bytes")


def test_truncated_gzip_body_is_an_error_not_a_short_document(server: HTTPServer, fetch_once: Fetch) -> None:
    whole = gzip.compress(b"<rss><channel><title>Cluster news</title></channel></rss>" * 50)
    server.expect_request("/feed.xml").respond_with_data(whole[:-12], headers={"Content-Encoding": "gzip"})

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed.xml"))

    assert (caught.value.reason, caught.value.message) == ("network", "cannot decode gzip body: truncated gzip stream")


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so handlers waiting on it finish and free their server threads."""
    event = threading.Event()
    yield event
    event.set()


def test_trickling_server_hits_the_whole_fetch_deadline(
    server: HTTPServer, fetch_once: Fetch, make_source: Callable[..., SourceConfig], release: threading.Event
) -> None:
    def trickle(_request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield b"<?xml version='1.0'?><rss>"
            while not release.wait(0.05):  # one byte every 50 ms: never a read timeout
                yield b" "

        return Response(body(), content_type="application/rss+xml")

    server.expect_request("/slow.xml").respond_with_handler(trickle)
    url = server.url_for("/slow.xml")

    with pytest.raises(FetchError) as caught:
        fetch_once(url, source=make_source(url, timeout=1.0))

    assert (caught.value.reason, caught.value.message) == ("timeout", "timeout: deadline of 1 s exceeded")


def test_silent_server_is_a_read_timeout(
    server: HTTPServer, fetch_once: Fetch, make_source: Callable[..., SourceConfig], release: threading.Event
) -> None:
    def silent(_request: Request) -> Response:
        release.wait(10)
        return Response("late")

    server.expect_request("/stalled").respond_with_handler(silent)
    url = server.url_for("/stalled")

    with pytest.raises(FetchError) as caught:
        fetch_once(url, source=make_source(url, timeout=1.0))

    # Connect and read each get half the deadline, so a stall is named as such.
    assert (caught.value.reason, caught.value.message) == ("timeout", "timeout: no data for 0.5 s (read)")


def test_slow_host_does_not_block_fast_hosts(
    server: HTTPServer,
    other_server: HTTPServer,
    make_source: Callable[..., SourceConfig],
    release: threading.Event,
) -> None:
    slow_arrived = threading.Event()

    def slow(_request: Request) -> Response:
        slow_arrived.set()
        release.wait(10)
        return Response("slow")

    other_server.expect_request("/slow").respond_with_handler(slow)
    server.expect_request("/fast").respond_with_data("fast")
    slow_url = other_server.url_for("/slow")
    fast_url = server.url_for("/fast")

    async def scenario() -> tuple[list[bytes], list[bool], list[bytes]]:
        # Two global slots, one per host: three fetches queue on the slow host,
        # yet the fast host still gets a slot.
        fetcher = Fetcher(Defaults(concurrency=2, per_host=1), respect_robots=False)
        try:
            slow_tasks = [asyncio.create_task(fetcher.fetch(slow_url, source=make_source(slow_url))) for _ in range(3)]
            while not slow_arrived.is_set():
                await asyncio.sleep(0.01)
            fast = [await fetcher.fetch(fast_url, source=make_source(fast_url)) for _ in range(5)]
            slow_pending = [not task.done() for task in slow_tasks]
            release.set()
            return [r.body for r in fast], slow_pending, [(await task).body for task in slow_tasks]
        finally:
            await fetcher.aclose()

    fast_bodies, slow_pending, slow_bodies = asyncio.run(scenario())

    assert fast_bodies == [b"fast"] * 5
    assert slow_pending == [True, True, True]
    assert slow_bodies == [b"slow"] * 3
    assert len(other_server.log) == 3


def test_per_host_limit_caps_concurrent_requests_to_one_host(
    server: HTTPServer, make_source: Callable[..., SourceConfig]
) -> None:
    lock = threading.Lock()
    state = {"active": 0, "peak": 0, "served": 0}

    def counted(_request: Request) -> Response:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        # Hold the request until a second one is in flight (or briefly, for the last one),
        # so that a broken limit would show as a peak above 2.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with lock:
                if state["active"] >= 2:
                    break
            time.sleep(0.01)
        time.sleep(0.05)
        with lock:
            state["active"] -= 1
            state["served"] += 1
        return Response("ok")

    server.expect_request("/events").respond_with_handler(counted)
    url = server.url_for("/events")

    async def scenario() -> list[FetchResult]:
        fetcher = Fetcher(Defaults(concurrency=16, per_host=2), respect_robots=False)
        try:
            return await asyncio.gather(*(fetcher.fetch(url, source=make_source(url)) for _ in range(6)))
        finally:
            await fetcher.aclose()

    results = asyncio.run(scenario())

    assert [r.status for r in results] == [200] * 6
    assert (state["peak"], state["served"]) == (2, 6)
