"""An event a page moves to another day is updated in place (same UID, higher SEQUENCE), not duplicated."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import config as config_module
from aggregator.fetch import Fetcher
from aggregator.pipeline import Pipeline
from aggregator.store import open_store

PAGE = """<!DOCTYPE html>
<!-- An events box whose first entry the organiser moves by a week between two fetches. -->
<html lang="en"><head><meta charset="utf-8"><title>Events</title></head><body>
<div class="box"><h2>Upcoming Events</h2><ul>
<li><a href="/events/hydrogen-day">Hydrogen Day</a> <span class="date">{first}</span> <span class="place">Linz, Tabakfabrik</span></li>
<li><a href="/events/textile-forum">Textile Forum</a> <span class="date">14 January 2027</span> <span class="place">Dornbirn</span></li>
<li><a href="/events/clusters-meet">Clusters meet regions</a> <span class="date">2 February 2027</span> <span class="place">Graz</span></li>
</ul></div></body></html>"""


def test_a_moved_event_keeps_its_uid_and_its_sequence_rises(httpserver: HTTPServer, tmp_path: Path) -> None:
    pages = iter([PAGE.format(first="3 December 2026"), PAGE.format(first="10 December 2026")])
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)

    def answer(_request: Request) -> Response:
        return Response(next(pages), content_type="text/html; charset=utf-8")

    httpserver.expect_request("/events").respond_with_handler(answer)
    path = tmp_path / "sources.toml"
    path.write_text(
        f'[defaults]\nallow_private = true\ntimezone = "Europe/Vienna"\n\n'
        f'[[source]]\nname = "upper-austria"\nurl = "{httpserver.url_for("/events")}"\n',
        encoding="utf-8",
    )
    config = config_module.load(path)
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}")

    async def twice() -> None:
        fetcher = Fetcher(config.defaults)
        pipeline = Pipeline(config, store, fetcher)
        for _ in range(2):
            await pipeline.run_source(config.sources[0])
        await fetcher.aclose()

    asyncio.run(twice())
    from datetime import UTC, datetime

    events = {e.record.title: e for e in store.events(since=datetime(2026, 1, 1, tzinfo=UTC))}
    store.close()
    assert sorted(events) == ["Clusters meet regions", "Hydrogen Day", "Textile Forum"]
    moved = events["Hydrogen Day"]
    assert moved.record.start.isoformat() == "2026-12-10"
    assert moved.record.location == "Linz, Tabakfabrik"
    assert moved.sequence == 1
    assert events["Textile Forum"].sequence == 0
