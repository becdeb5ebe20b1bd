"""A big cycle keeps a bounded number of sources between fetch and store, whatever the parse backlog.

The parse pool here is one slow thread, so fetching (fast, loopback) outruns parsing: without a bound
every fetched body would wait in memory for its turn.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pytest_httpserver import HTTPServer

from aggregator import config as config_module
from aggregator.fetch import Fetcher
from aggregator.pipeline import Outcome, Pipeline
from aggregator.store import open_store

SOURCES = 90
P = ParamSpec("P")
T = TypeVar("T")


class SlowCountingPool(ThreadPoolExecutor):
    """One worker that takes 20 ms per parse, and counts how many parses wait at most."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.waiting = 0
        self.most_waiting = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)

        def slow() -> T:
            time.sleep(0.02)
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.waiting -= 1

        return super().submit(slow)


def _feed(n: int) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Cluster {n}</title>'
        f"<link>https://cluster-{n}.example.eu/</link><description>News</description>"
        f"<item><title>Cluster {n}: open call</title><link>https://cluster-{n}.example.eu/news/call</link>"
        "<pubDate>Tue, 24 Nov 2026 09:30:00 +0100</pubDate></item></channel></rss>"
    ).encode()


def test_sources_between_fetch_and_store_stay_bounded_while_parsing_lags(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    for n in range(SOURCES):
        httpserver.expect_request(f"/cluster-{n}.xml").respond_with_data(_feed(n), content_type="application/rss+xml")
    blocks = "".join(
        f'\n[[source]]\nname = "cluster-{n}"\nurl = "{httpserver.url_for(f"/cluster-{n}.xml")}"\nkind = "feed"\n'
        for n in range(SOURCES)
    )
    path = tmp_path / "sources.toml"
    path.write_text("[defaults]\nallow_private = true\nconcurrency = 8\nper_host = 8\n" + blocks, encoding="utf-8")
    config = config_module.load(path)
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    pool = SlowCountingPool()

    async def run() -> list[Any]:
        fetcher = Fetcher(config.defaults)
        try:
            return await Pipeline(config, store, fetcher, executor=pool).run_all()
        finally:
            await fetcher.aclose()

    try:
        outcomes = asyncio.run(run())
    finally:
        pool.shutdown()
        store.close()

    assert [o.outcome for o in outcomes] == [Outcome.CHANGED] * SOURCES
    assert 1 < pool.most_waiting <= 32  # max(4 x concurrency, 32) sources in flight, all of them parsing here
