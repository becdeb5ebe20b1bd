"""A source whose URL was edited (even while no daemon ran) does not send the old address's validators."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import config as config_module
from aggregator.fetch import Fetcher
from aggregator.pipeline import Outcome, Pipeline
from aggregator.store import open_store

FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Cluster news</title><link>https://cluster.example/</link>
<description>News</description>
<item><title>Cluster day</title><link>https://cluster.example/news/day</link>
<pubDate>Tue, 24 Nov 2026 09:30:00 +0100</pubDate></item>
</channel></rss>"""


def _write(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(f'[defaults]\nallow_private = true\n\n[[source]]\nname = "news"\nurl = "{url}"\nkind = "feed"\n')
    return path


def test_a_moved_source_is_fetched_without_the_old_validators(httpserver: HTTPServer, tmp_path: Path) -> None:
    asked: list[tuple[str, str | None]] = []

    def answer(request: Request) -> Response:
        asked.append((request.path, request.headers.get("If-None-Match")))
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(FEED, headers={"ETag": '"v1"'}, content_type="application/rss+xml")

    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/old.xml").respond_with_handler(answer)
    httpserver.expect_request("/new.xml").respond_with_handler(answer)
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}")

    async def cycle(url: str) -> Outcome:
        config = config_module.load(_write(tmp_path, url))
        fetcher = Fetcher(config.defaults)
        try:
            return (await Pipeline(config, store, fetcher).run_source(config.sources[0])).outcome
        finally:
            await fetcher.aclose()

    outcomes = [asyncio.run(cycle(httpserver.url_for(path))) for path in ("/old.xml", "/old.xml", "/new.xml")]
    state = store.state("news")
    store.close()
    assert outcomes == [Outcome.CHANGED, Outcome.NOT_MODIFIED, Outcome.UNCHANGED]
    assert asked == [("/old.xml", None), ("/old.xml", '"v1"'), ("/new.xml", None)]
    assert state.source_url == httpserver.url_for("/new.xml")
