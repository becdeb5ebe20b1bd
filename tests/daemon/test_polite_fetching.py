"""Polite, adaptive fetching: robots.txt, Retry-After, max-age, backoff, dormancy, redirects, limits.

Each test drives ``Pipeline.run_source`` in-process against a real loopback server and a real
SQLite store, moving the injected clock to each computed ``next_run``; what ``status`` reports is
read back through the real CLI.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.config import load
from aggregator.fetch import Fetcher
from aggregator.pipeline import Outcome, Pipeline, SourceOutcome
from aggregator.runtime import open_configured_store
from aggregator.store.base import Store

from .conftest import RSS, Clock, Reply, Site, fixture_bytes, run_cli, sources_toml, status_json

NEWS = fixture_bytes("vienna_news.xml")


@asynccontextmanager
async def rig(tmp_path: Path, toml: str, clock: Clock) -> AsyncIterator[tuple[Pipeline, Store]]:
    """A pipeline over the sources in ``toml`` with its own store in ``tmp_path/data``."""
    path = tmp_path / "sources.toml"
    path.write_text(toml, encoding="utf-8")
    config = load(path)
    store = open_configured_store(config)
    fetcher = Fetcher(config.defaults)
    try:
        yield Pipeline(config, store, fetcher, clock=clock), store
    finally:
        await fetcher.aclose()
        store.close()


def one_source(name: str, url: str, extra: str = "") -> str:
    return f'[[source]]\nname = "{name}"\nurl = "{url}"\nkind = "feed"\n{extra}\n'


async def run(pipeline: Pipeline, name: str) -> SourceOutcome:
    source = pipeline.config.source(name)
    assert source is not None
    return await pipeline.run_source(source)


def sequence(*replies: Reply) -> Callable[[dict[str, str]], Reply]:
    """Answer with each reply in turn, repeating the last one."""
    queue = list(replies)
    lock = threading.Lock()

    def respond(_headers: dict[str, str]) -> Reply:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


OK = Reply(200, NEWS, (("Content-Type", RSS),))
BROKEN = Reply(500, b"<h1>Internal Server Error</h1>", (("Content-Type", "text/html"),))


def test_robots_txt_disallowing_the_path_is_reported_and_the_path_never_fetched(site: Site, tmp_path: Path) -> None:
    site.serve("/robots.txt", fixture_bytes("robots_disallow_members.txt"), "text/plain")
    site.serve("/members/news.xml", NEWS, RSS)
    clock = Clock()
    toml = sources_toml(8080, one_source("members-news", site.url("/members/news.xml")))

    async def scenario() -> list[SourceOutcome]:
        async with rig(tmp_path, toml, clock) as (pipeline, _store):
            first = await run(pipeline, "members-news")
            assert first.next_run is not None
            clock.advance_to(first.next_run)
            return [first, await run(pipeline, "members-news")]

    outcomes = asyncio.run(scenario())

    expected = f"disallowed by robots.txt ({site.url('/robots.txt')}) ({site.url('/members/news.xml')})"
    assert [(o.outcome, o.error) for o in outcomes] == [(Outcome.FAILED, expected)] * 2
    assert site.hits["/members/news.xml"] == 0
    assert site.hits["/robots.txt"] == 1  # cached with its own expiry, not asked again a minute later
    row = status_json(tmp_path)["members-news"]
    assert (row["health"], row["last_error"], row["consecutive_failures"]) == ("failing", expected, 2)


def test_429_retry_after_puts_the_next_run_after_it(site: Site, tmp_path: Path) -> None:
    site.route("/news.xml", lambda _h: Reply(429, b"slow down", (("Retry-After", "7200"),)))
    clock = Clock()
    toml = sources_toml(8080, one_source("vienna", site.url("/news.xml")))

    async def scenario() -> SourceOutcome:
        async with rig(tmp_path, toml, clock) as (pipeline, _store):
            return await run(pipeline, "vienna")

    outcome = asyncio.run(scenario())

    assert outcome.outcome is Outcome.FAILED
    assert outcome.error == f"HTTP 429 Too Many Requests ({site.url('/news.xml')})"
    assert outcome.next_run is not None
    # The interval is one minute and this is the first failure: only Retry-After explains two hours.
    assert clock.now + timedelta(seconds=7200) <= outcome.next_run <= clock.now + timedelta(seconds=7920)
    row = status_json(tmp_path)["vienna"]
    assert row["next_run"] == outcome.next_run.isoformat()


def test_503_retry_after_as_an_http_date_counts_from_the_server_date(site: Site, tmp_path: Path) -> None:
    headers = (("Date", "Thu, 26 Nov 2026 09:00:00 GMT"), ("Retry-After", "Thu, 26 Nov 2026 10:30:00 GMT"))
    site.route("/news.xml", lambda _h: Reply(503, b"maintenance", headers))
    clock = Clock()

    async def scenario() -> SourceOutcome:
        async with rig(tmp_path, sources_toml(8080, one_source("vienna", site.url("/news.xml"))), clock) as (p, _s):
            return await run(p, "vienna")

    outcome = asyncio.run(scenario())

    assert outcome.error == f"HTTP 503 Service Unavailable ({site.url('/news.xml')})"
    assert outcome.next_run is not None
    assert clock.now + timedelta(minutes=90) <= outcome.next_run <= clock.now + timedelta(minutes=99)


def test_cache_control_max_age_stretches_the_interval(site: Site, tmp_path: Path) -> None:
    site.serve("/news.xml", NEWS, RSS, headers=(("Cache-Control", "public, max-age=5400"),))
    clock = Clock()

    async def scenario() -> SourceOutcome:
        async with rig(tmp_path, sources_toml(8080, one_source("vienna", site.url("/news.xml"))), clock) as (p, _s):
            return await run(p, "vienna")

    outcome = asyncio.run(scenario())

    assert (outcome.outcome, outcome.summary.new) == (Outcome.CHANGED, 3)
    assert outcome.next_run is not None
    assert clock.now + timedelta(seconds=5400) <= outcome.next_run <= clock.now + timedelta(seconds=5670)


def test_expires_stretches_the_interval_but_a_short_max_age_does_not_shorten_it(site: Site, tmp_path: Path) -> None:
    expires = (("Date", "Thu, 26 Nov 2026 09:00:00 GMT"), ("Expires", "Thu, 26 Nov 2026 11:00:00 GMT"))
    site.serve("/expires.xml", NEWS, RSS, headers=expires)
    site.serve("/short.xml", NEWS, RSS, headers=(("Cache-Control", "max-age=10"),))
    clock = Clock()
    toml = sources_toml(
        8080, one_source("expires", site.url("/expires.xml")) + one_source("short", site.url("/short.xml"))
    )

    async def scenario() -> list[SourceOutcome]:
        async with rig(tmp_path, toml, clock) as (pipeline, _store):
            return [await run(pipeline, "expires"), await run(pipeline, "short")]

    expires_outcome, short_outcome = asyncio.run(scenario())

    assert expires_outcome.next_run is not None
    assert short_outcome.next_run is not None
    assert clock.now + timedelta(hours=2) <= expires_outcome.next_run <= clock.now + timedelta(hours=2.1)
    assert clock.now + timedelta(minutes=1) <= short_outcome.next_run <= clock.now + timedelta(minutes=1.05)


def test_flapping_source_backs_off_exponentially_and_resets_on_success(site: Site, tmp_path: Path) -> None:
    site.route("/news.xml", sequence(BROKEN, BROKEN, BROKEN, OK, BROKEN))
    clock = Clock()
    seen: list[tuple[Outcome, int, float]] = []

    async def scenario() -> None:
        async with rig(tmp_path, sources_toml(8080, one_source("vienna", site.url("/news.xml"))), clock) as (p, store):
            for _ in range(5):
                outcome = await run(p, "vienna")
                assert outcome.next_run is not None
                state = store.state("vienna")
                seen.append(
                    (outcome.outcome, state.consecutive_failures, (outcome.next_run - clock.now).total_seconds())
                )
                clock.advance_to(outcome.next_run)

    asyncio.run(scenario())

    assert [(o, f) for o, f, _ in seen] == [
        (Outcome.FAILED, 1),
        (Outcome.FAILED, 2),
        (Outcome.FAILED, 3),
        (Outcome.CHANGED, 0),
        (Outcome.FAILED, 1),
    ]
    delays = [d for _, _, d in seen]
    for delay, base, share in zip(delays, (60, 120, 240, 60, 60), (0.1, 0.1, 0.1, 0.05, 0.1), strict=True):
        assert base <= delay <= base * (1 + share), delays
    assert site.hits["/news.xml"] == 5


def test_backoff_stops_growing_at_backoff_cap(site: Site, tmp_path: Path) -> None:
    site.route("/news.xml", lambda _h: BROKEN)
    clock = Clock()
    toml = sources_toml(8080, one_source("vienna", site.url("/news.xml")), backoff_cap='"5m"')
    delays: list[float] = []

    async def scenario() -> None:
        async with rig(tmp_path, toml, clock) as (pipeline, _store):
            for _ in range(6):
                outcome = await run(pipeline, "vienna")
                assert outcome.next_run is not None
                delays.append((outcome.next_run - clock.now).total_seconds())
                clock.advance_to(outcome.next_run)

    asyncio.run(scenario())

    bases = [60, 120, 240, 300, 300, 300]
    assert all(base <= d <= base * 1.1 for d, base in zip(delays, bases, strict=True)), delays


def test_source_that_never_succeeded_goes_dormant_after_dormant_after(site: Site, tmp_path: Path) -> None:
    site.route("/news.xml", lambda _h: BROKEN)
    clock = Clock()
    first_failure = clock.now
    toml = sources_toml(8080, one_source("vienna", site.url("/news.xml")), dormant_after='"1h"', backoff_cap='"10m"')
    trace: list[tuple[float, bool]] = []

    async def scenario() -> None:
        async with rig(tmp_path, toml, clock) as (pipeline, store):
            while True:
                outcome = await run(pipeline, "vienna")
                state = store.state("vienna")
                assert state.failing_since == first_failure
                assert outcome.next_run is not None
                trace.append(((clock.now - first_failure).total_seconds(), state.dormant))
                if state.dormant:
                    # Still retried, once a day.
                    delay = outcome.next_run - clock.now
                    assert timedelta(days=1) <= delay <= timedelta(days=1.1)
                    return
                clock.advance_to(outcome.next_run)

    asyncio.run(scenario())

    assert all(not dormant for elapsed, dormant in trace[:-1])
    assert all(elapsed <= 3600 for elapsed, _ in trace[:-1])
    assert trace[-1][0] > 3600
    row = status_json(tmp_path)["vienna"]
    assert (row["health"], row["dormant"], row["last_success"]) == ("dormant", True, None)
    assert row["consecutive_failures"] == len(trace)
    assert row["last_error"] == f"HTTP 500 Internal Server Error ({site.url('/news.xml')})"
    assert row["failing_since"] == "2026-11-26T09:00:00+00:00"
    line = run_cli(tmp_path, "status").stdout.splitlines()[1]
    assert line.split()[:4] == ["vienna", "dormant", "-", "0"]
    assert "dormant: failing since 2026-11-26 09:00 UTC, retried daily; HTTP 500 Internal Server Error" in line


def test_dormant_source_that_answers_again_is_healthy(site: Site, tmp_path: Path) -> None:
    site.route("/news.xml", sequence(OK, BROKEN, BROKEN, BROKEN, OK))
    clock = Clock()
    toml = sources_toml(8080, one_source("vienna", site.url("/news.xml")), dormant_after='"2m"')
    states = []

    async def scenario() -> None:
        async with rig(tmp_path, toml, clock) as (pipeline, store):
            for _ in range(5):
                outcome = await run(pipeline, "vienna")
                states.append(store.state("vienna"))
                assert outcome.next_run is not None
                clock.advance_to(outcome.next_run)

    asyncio.run(scenario())

    assert [(s.dormant, s.consecutive_failures) for s in states] == [
        (False, 0),
        (False, 1),  # failing for 0 s
        (False, 2),  # about 1 minute
        (True, 3),  # about 3 minutes > 2 minutes
        (False, 0),
    ]
    assert states[-1].failing_since is None
    assert states[1].failing_since == states[0].last_success + (states[1].last_attempt - states[0].last_success)


def test_410_gone_marks_the_source_dormant_at_once(site: Site, tmp_path: Path) -> None:
    site.route("/news.xml", lambda _h: Reply(410, b"This feed has been retired."))
    clock = Clock()

    async def scenario() -> SourceOutcome:
        async with rig(tmp_path, sources_toml(8080, one_source("retired", site.url("/news.xml"))), clock) as (p, _s):
            return await run(p, "retired")

    outcome = asyncio.run(scenario())

    assert outcome.error == f"HTTP 410 Gone ({site.url('/news.xml')})"
    assert outcome.next_run is not None
    assert timedelta(days=1) <= outcome.next_run - clock.now <= timedelta(days=1.1)
    row = status_json(tmp_path)["retired"]
    assert (row["health"], row["dormant"], row["consecutive_failures"]) == ("dormant", True, 1)


def test_301_and_308_chain_is_followed_and_status_names_the_new_address(site: Site, tmp_path: Path) -> None:
    site.route("/feed", lambda _h: Reply(301, b"", (("Location", "/news/feed"),)))
    site.route("/news/feed", lambda _h: Reply(308, b"", (("Location", site.url("/news/feed.xml")),)))
    site.serve("/news/feed.xml", NEWS, RSS)
    clock = Clock()

    async def scenario() -> SourceOutcome:
        async with rig(tmp_path, sources_toml(8080, one_source("vienna", site.url("/feed"))), clock) as (p, _s):
            return await run(p, "vienna")

    outcome = asyncio.run(scenario())

    assert (outcome.outcome, outcome.summary.new) == (Outcome.CHANGED, 3)
    row = status_json(tmp_path)["vienna"]
    assert (row["health"], row["redirected_to"]) == ("ok", site.url("/news/feed.xml"))
    table = run_cli(tmp_path, "status").stdout
    assert f'moved permanently: put url = "{site.url("/news/feed.xml")}" in sources.toml' in table


def test_a_temporary_hop_ends_what_a_permanent_redirect_can_name(site: Site, tmp_path: Path) -> None:
    site.route("/feed", lambda _h: Reply(308, b"", (("Location", "/feed-2026"),)))
    site.route("/feed-2026", lambda _h: Reply(302, b"", (("Location", "/cdn/feed.xml"),)))
    site.serve("/cdn/feed.xml", NEWS, RSS)
    clock = Clock()

    async def scenario() -> SourceOutcome:
        async with rig(tmp_path, sources_toml(8080, one_source("vienna", site.url("/feed"))), clock) as (p, _s):
            return await run(p, "vienna")

    assert asyncio.run(scenario()).outcome is Outcome.CHANGED
    assert status_json(tmp_path)["vienna"]["redirected_to"] == site.url("/feed-2026")


def test_a_slow_host_does_not_hold_the_fast_ones(site: Site, other_site: Site, tmp_path: Path) -> None:
    release = threading.Event()
    for i in range(3):
        other_site.route(f"/slow/{i}.xml", lambda _h: (release.wait(60), OK)[1])
    for i in range(4):
        site.serve(f"/fast/{i}.xml", NEWS, RSS)
    body = "".join(one_source(f"slow-{i}", other_site.url(f"/slow/{i}.xml")) for i in range(3))
    body += "".join(one_source(f"fast-{i}", site.url(f"/fast/{i}.xml")) for i in range(4))
    toml = sources_toml(8080, body, per_host="1", concurrency="2")
    clock = Clock()
    finished: list[str] = []

    async def scenario() -> list[SourceOutcome]:
        async with rig(tmp_path, toml, clock) as (pipeline, _store):
            fast_done = asyncio.Event()

            def done(outcome: SourceOutcome) -> None:
                finished.append(outcome.source)
                if sum(1 for name in finished if name.startswith("fast-")) == 4:
                    fast_done.set()

            everything = asyncio.create_task(pipeline.run_all(on_done=done))
            await asyncio.wait_for(fast_done.wait(), 30)
            # Every fast source is done while the slow host still holds its first request.
            assert sorted(finished) == ["fast-0", "fast-1", "fast-2", "fast-3"]
            assert sum(other_site.hits[f"/slow/{i}.xml"] for i in range(3)) == 1
            release.set()
            return await everything

    outcomes = asyncio.run(scenario())

    assert [o.outcome for o in outcomes] == [Outcome.CHANGED] * 7
    assert sorted(finished[4:]) == ["slow-0", "slow-1", "slow-2"]
    assert other_site.max_in_flight == 1  # per_host = 1, counted server-side
    assert sum(site.hits[f"/fast/{i}.xml"] for i in range(4)) == 4


def test_each_source_sends_its_own_headers_and_keeps_its_own_timeout(site: Site, tmp_path: Path) -> None:
    site.serve("/de/news.xml", NEWS, RSS)
    hang = threading.Event()
    site.route("/hanging.xml", lambda _h: (hang.wait(30), OK)[1])
    body = one_source("vienna-de", site.url("/de/news.xml"), 'headers = { "Accept-Language" = "de-AT" }')
    body += one_source("hanging", site.url("/hanging.xml"), "timeout = 1")
    clock = Clock()

    async def scenario() -> list[SourceOutcome]:
        async with rig(tmp_path, sources_toml(8080, body), clock) as (pipeline, _store):
            return [await run(pipeline, "vienna-de"), await run(pipeline, "hanging")]

    try:
        german, hanging = asyncio.run(scenario())
    finally:
        hang.set()

    assert german.outcome is Outcome.CHANGED
    assert site.headers_seen["/de/news.xml"][0]["accept-language"] == "de-AT"
    assert hanging.outcome is Outcome.FAILED
    assert hanging.error == f"timeout: no data for 0.5 s (read) ({site.url('/hanging.xml')})"


def test_status_table_shows_health_last_error_in_words_and_next_run(site: Site, tmp_path: Path) -> None:
    site.serve("/news.xml", NEWS, RSS)
    site.route("/missing.xml", lambda _h: Reply(404, b"not here"))
    clock = Clock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    body = one_source("vienna", site.url("/news.xml")) + one_source("missing", site.url("/missing.xml"))
    body += one_source("later", site.url("/later.xml"), "enabled = false")

    async def scenario() -> None:
        async with rig(tmp_path, sources_toml(8080, body), clock) as (pipeline, _store):
            await run(pipeline, "vienna")
            await run(pipeline, "missing")

    asyncio.run(scenario())

    lines = run_cli(tmp_path, "status").stdout.splitlines()
    assert lines[0].split() == [
        "source",
        "health",
        "last",
        "success",
        "items",
        "next",
        "run",
        "last",
        "error",
        "/",
        "note",
    ]
    vienna, missing, later = lines[1:]
    assert vienna.split()[:6] == ["vienna", "ok", "2026-11-26", "09:00", "UTC", "3"]
    assert missing.split()[:4] == ["missing", "failing", "-", "0"]
    assert missing.endswith(f"HTTP 404 Not Found ({site.url('/missing.xml')})")
    assert later.split() == ["later", "disabled", "-", "0", "-"]
