"""A cycle where nothing changed costs fetches and a few state writes: no parsing, no record written.

And the state it saves is enough for a restarted process to wait instead of fetching everything again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import config as config_module
from aggregator.config import Config
from aggregator.fetch import Fetcher
from aggregator.pipeline import Outcome, Pipeline, SourceOutcome
from aggregator.store import SqlStore, open_store

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CLUSTERS = ("silicon-saxony", "eccp", "euratex")


def _feed(cluster: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- A cluster network's news feed, the same bytes on every request. -->
<rss version="2.0"><channel><title>{cluster} news</title><link>https://{cluster}.example.eu/</link>
<description>News</description>
<item><title>{cluster}: matchmaking day</title><link>https://{cluster}.example.eu/news/matchmaking</link>
<pubDate>Tue, 24 Nov 2026 09:30:00 +0100</pubDate></item>
<item><title>{cluster}: annual report</title><link>https://{cluster}.example.eu/news/report</link>
<pubDate>Mon, 23 Nov 2026 14:00:00 +0100</pubDate></item>
</channel></rss>""".encode()


def _serve(httpserver: HTTPServer, asked: list[tuple[str, str | None]]) -> None:
    """silicon-saxony and eccp send ETags (then 304s); euratex sends no validators, only the same bytes."""

    def answer(request: Request) -> Response:
        cluster = request.path.strip("/").removesuffix(".xml")
        asked.append((cluster, request.headers.get("If-None-Match")))
        if cluster == "euratex":
            return Response(_feed(cluster), content_type="application/rss+xml")
        etag = f'"{cluster}-1"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(_feed(cluster), headers={"ETag": etag}, content_type="application/rss+xml")

    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    for cluster in CLUSTERS:
        httpserver.expect_request(f"/{cluster}.xml").respond_with_handler(answer)


def _config(tmp_path: Path, httpserver: HTTPServer) -> Config:
    blocks = "".join(
        f'\n[[source]]\nname = "{c}"\nurl = "{httpserver.url_for(f"/{c}.xml")}"\nkind = "feed"\n' for c in CLUSTERS
    )
    path = tmp_path / "sources.toml"
    path.write_text('[defaults]\nallow_private = true\ninterval = "30m"\n' + blocks, encoding="utf-8")
    return config_module.load(path)


def _cycle(config: Config, store: SqlStore, at: datetime) -> list[SourceOutcome]:
    async def run() -> list[SourceOutcome]:
        fetcher = Fetcher(config.defaults)
        try:
            return await Pipeline(config, store, fetcher, clock=lambda: at).run_all()
        finally:
            await fetcher.aclose()

    return asyncio.run(run())


def test_an_unchanged_cycle_writes_no_record_and_saves_every_state(httpserver: HTTPServer, tmp_path: Path) -> None:
    asked: list[tuple[str, str | None]] = []
    _serve(httpserver, asked)
    config = _config(tmp_path, httpserver)
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        first = _cycle(config, store, NOW)
        written_first, generation_first, states_first = store.records_written, store.generation(), store.states_written
        second = _cycle(config, store, NOW + timedelta(minutes=30))
        states = {s.name: s for s in store.states()}
        assert [(o.source, o.outcome, o.summary.new) for o in first] == [(c, Outcome.CHANGED, 2) for c in CLUSTERS]
        assert [(o.source, o.outcome, o.records) for o in second] == [
            ("silicon-saxony", Outcome.NOT_MODIFIED, 0),
            ("eccp", Outcome.NOT_MODIFIED, 0),
            ("euratex", Outcome.UNCHANGED, 0),  # same bytes: not parsed, so no record count
        ]
        assert (written_first, states_first) == (6, 3)
        assert store.records_written == 6  # nothing written by the unchanged cycle
        assert store.generation() == generation_first == 3  # one rise per source stored in the first cycle
        assert store.states_written == 6
        assert {name: s.last_success for name, s in states.items()} == dict.fromkeys(
            CLUSTERS, NOW + timedelta(minutes=30)
        )
        assert sorted(asked[-3:]) == [("eccp", '"eccp-1"'), ("euratex", None), ("silicon-saxony", '"silicon-saxony-1"')]
    finally:
        store.close()


def test_states_saved_by_a_cycle_let_a_restarted_process_wait(httpserver: HTTPServer, tmp_path: Path) -> None:
    _serve(httpserver, [])
    config = _config(tmp_path, httpserver)
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        outcomes = _cycle(config, store, NOW)
    finally:
        store.close()

    reopened = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        states = {s.name: s for s in reopened.states()}
        due = reopened.claim_due("after-restart", NOW + timedelta(minutes=29), timedelta(minutes=5), 10)
    finally:
        reopened.close()
    assert {o.source: o.next_run for o in outcomes} == {name: s.next_run for name, s in states.items()}
    waits = [s.next_run - NOW for s in states.values() if s.next_run is not None]
    assert len(waits) == 3
    assert all(timedelta(minutes=30) <= wait <= timedelta(minutes=31.5) for wait in waits)  # interval + jitter
    assert {name: s.validators.etag for name, s in states.items()} == {
        "silicon-saxony": '"silicon-saxony-1"',
        "eccp": '"eccp-1"',
        "euratex": None,
    }
    assert due == []  # nothing due before its interval: a restart does not refetch everything
