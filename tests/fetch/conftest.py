"""Fetch-test fixtures: threaded loopback HTTP servers on ephemeral ports and a one-shot fetch helper."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from aggregator.config import Defaults, SourceConfig
from aggregator.fetch import Fetcher, FetchResult
from aggregator.records import Validators


def _serve(host: str) -> Iterator[HTTPServer]:
    # Threaded, so a slow handler does not hold the others.  Started once per
    # session: stopping a werkzeug server waits out its 0.5 s poll interval.
    httpd = HTTPServer(host=host, port=0, threaded=True)
    httpd.start()
    yield httpd
    httpd.clear()
    httpd.stop()


@pytest.fixture(scope="session")
def _server_127_0_0_1() -> Iterator[HTTPServer]:
    yield from _serve("127.0.0.1")


@pytest.fixture(scope="session")
def _server_127_0_0_2() -> Iterator[HTTPServer]:
    yield from _serve("127.0.0.2")


@pytest.fixture
def server(_server_127_0_0_1: HTTPServer) -> Iterator[HTTPServer]:
    """A loopback server on 127.0.0.1 with no handlers registered."""
    _server_127_0_0_1.clear()
    yield _server_127_0_0_1
    _server_127_0_0_1.clear()


@pytest.fixture
def other_server(_server_127_0_0_2: HTTPServer) -> Iterator[HTTPServer]:
    """A second host: 127.0.0.2 is another host name, on Linux still the loopback interface."""
    _server_127_0_0_2.clear()
    yield _server_127_0_0_2
    _server_127_0_0_2.clear()


@pytest.fixture
def make_source() -> Callable[..., SourceConfig]:
    """SourceConfig for a test server: private addresses allowed (the servers are on loopback)."""

    def make(url: str = "http://127.0.0.1/", **overrides: Any) -> SourceConfig:
        values: dict[str, Any] = {"name": "silicon-saxony", "url": url, "allow_private": True, "timeout": 5.0}
        values.update(overrides)
        return SourceConfig(**values)

    return make


@pytest.fixture
def fetch_once(make_source: Callable[..., SourceConfig]) -> Callable[..., FetchResult]:
    """Fetch one URL with a fresh Fetcher (robots.txt off unless asked) and close it."""

    def run(
        url: str,
        *,
        source: SourceConfig | None = None,
        validators: Validators | None = None,
        defaults: Defaults | None = None,
        respect_robots: bool = False,
    ) -> FetchResult:
        async def go() -> FetchResult:
            fetcher = Fetcher(defaults or Defaults(), respect_robots=respect_robots)
            try:
                return await fetcher.fetch(url, source=source or make_source(url), validators=validators)
            finally:
                await fetcher.aclose()

        return asyncio.run(go())

    return run
