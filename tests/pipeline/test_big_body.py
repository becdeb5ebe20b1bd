"""A big body reaches the parse pool through a file in the data directory, and nothing of it stays.

Through the pool's pipe it was pickled into a second copy that the pipe's feeder thread kept until
the next job: for a 33 MB calendar, 37 MB more in the daemon while its 50,000 records came back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import config as config_module
from aggregator.config import Config
from aggregator.fetch import Fetcher
from aggregator.pipeline import SPOOL_BYTES, Outcome, Pipeline, SourceOutcome
from aggregator.processes import parse_pool
from aggregator.store import Store, UpsertSummary, open_store

ITEMS = 2_000


def _feed(cluster: str, items: int, words: int) -> bytes:
    body = " ".join(["Circular plastics, hydrogen valleys and skills for the cluster's members."] * words)
    entries = "".join(
        f"<item><title>{cluster}: news {i}</title><link>https://{cluster}.example.eu/news/{i}</link>"
        f"<guid>{cluster}-{i}</guid><pubDate>Tue, 24 Nov 2026 09:30:00 +0100</pubDate>"
        f"<description>&lt;p&gt;{body}&lt;/p&gt;</description></item>"
        for i in range(items)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>{cluster}</title>'
        f"<link>https://{cluster}.example.eu/</link><description>News</description>{entries}</channel></rss>"
    ).encode()


def _two_sources(httpserver: HTTPServer, tmp_path: Path, name: str, big: bytes, defaults: str = "") -> Config:
    """``name`` serving ``big`` and silicon-saxony serving three items, on the test's loopback server."""
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/big.xml").respond_with_data(big, content_type="application/rss+xml")
    httpserver.expect_request("/small.xml").respond_with_data(
        _feed("silicon-saxony", 3, 1), content_type="application/rss+xml"
    )
    path = tmp_path / "sources.toml"
    path.write_text(
        f'[defaults]\nallow_private = true\ndata_dir = "data"\n{defaults}'
        f'[[source]]\nname = "{name}"\nurl = "{httpserver.url_for("/big.xml")}"\nkind = "feed"\n'
        f'[[source]]\nname = "silicon-saxony"\nurl = "{httpserver.url_for("/small.xml")}"\nkind = "feed"\n',
        encoding="utf-8",
    )
    return config_module.load(path)


def _new_store(config: Config) -> Store:
    """A fresh SQLite store in the configuration's (new) data directory."""
    config.data_dir.mkdir()
    return open_store(f"sqlite:///{config.data_dir / 'db.sqlite3'}")


def test_a_big_body_is_parsed_through_a_file_that_is_removed(httpserver: HTTPServer, tmp_path: Path) -> None:
    big = _feed("plastics-cluster", ITEMS, 10)
    assert len(big) > SPOOL_BYTES
    config = _two_sources(httpserver, tmp_path, "plastics-cluster", big)
    data = config.data_dir
    data.mkdir()
    abandoned, fresh = data / ".body-abandoned", data / ".body-of-a-live-parse"
    abandoned.write_bytes(b"left by a killed daemon")
    fresh.write_bytes(b"being parsed")
    two_hours_ago = time.time() - 7200
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    store = open_store(f"sqlite:///{data / 'db.sqlite3'}")
    pool = parse_pool(1)
    try:
        pipeline = Pipeline(config, store, Fetcher(config.defaults), executor=pool)
        assert not abandoned.exists()
        assert fresh.exists()

        async def run() -> list[SourceOutcome]:
            try:
                return await pipeline.run_all(config.sources)
            finally:
                await pipeline.fetcher.aclose()

        outcomes = asyncio.run(run())
    finally:
        pool.shutdown()
    assert [o.outcome for o in outcomes] == [Outcome.CHANGED, Outcome.CHANGED]
    # Each body's size is reported, though the daemon let go of both before storing (the big one
    # as soon as it was in its file).
    assert [o.nbytes for o in outcomes] == [len(big), len(_feed("silicon-saxony", 3, 1))]
    assert pipeline.bodies_spooled == 1  # the big one; the small one went through the pipe
    assert sorted(p.name for p in data.glob(".body-*")) == [".body-of-a-live-parse"]
    news = store.news(source="plastics-cluster")
    assert len(news) == ITEMS
    first = next(n.record for n in news if n.record.title == "plastics-cluster: news 0")
    assert first.link == "https://plastics-cluster.example.eu/news/0"
    assert first.summary.startswith("<p>Circular plastics, hydrogen valleys")
    assert first.published == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert [n.record.title for n in store.news(source="silicon-saxony")] == [
        f"silicon-saxony: news {i}" for i in range(3)
    ]
    store.close()


def _resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def test_a_big_body_is_parsed_by_a_process_that_ends_and_the_pool_worker_never_holds_it(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """A pool worker that parsed a big document kept tens of MB of it; a fresh process gives all back by ending."""
    items = 6_000
    big = _feed("hydrogen-valley", items, 8)
    assert len(big) > 4 * SPOOL_BYTES
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/big.xml").respond_with_data(big, content_type="application/rss+xml")
    path = tmp_path / "sources.toml"
    path.write_text(
        '[defaults]\nallow_private = true\ndata_dir = "data"\nmax_items = 10000\n'
        f'[[source]]\nname = "hydrogen-valley"\nurl = "{httpserver.url_for("/big.xml")}"\nkind = "feed"\n',
        encoding="utf-8",
    )
    config = config_module.load(path)
    store = _new_store(config)
    pool = parse_pool(1)
    try:
        worker = pool.submit(os.getpid).result()
        forkserver = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
        before = _resident_mib(worker)
        pipeline = Pipeline(config, store, Fetcher(config.defaults), executor=pool)

        async def run() -> list[Outcome]:
            try:
                return [o.outcome for o in await pipeline.run_all(config.sources)]
            finally:
                await pipeline.fetcher.aclose()

        assert asyncio.run(run()) == [Outcome.CHANGED]
        after = _resident_mib(worker)
        assert pool.submit(os.getpid).result() == worker  # the same worker, never replaced
        # The process that parsed it was the forkserver's child too, and it has ended.
        deadline = time.monotonic() + 30
        while _children(forkserver) != {worker} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _children(forkserver) == {worker}
    finally:
        pool.shutdown()
    assert pipeline.bodies_spooled == 1
    assert after - before < 4, f"worker at {after:.0f} MB, {before:.0f} MB before the big feed"
    news = store.news(source="hydrogen-valley")
    assert len(news) == items
    assert sorted(n.record.title for n in news)[:2] == ["hydrogen-valley: news 0", "hydrogen-valley: news 1"]
    store.close()


def test_a_parser_process_killed_mid_parse_fails_its_source_only(httpserver: HTTPServer, tmp_path: Path) -> None:
    """Killed (the kernel's out-of-memory killer picks the biggest process) or crashed: that source
    fails with a clear error, the others and the pool go on."""
    big = _feed("biocluster-nrw", 30_000, 8)
    config = _two_sources(httpserver, tmp_path, "biocluster-nrw", big, "max_bytes = 134217728\n")
    store = _new_store(config)
    pool = parse_pool(1)
    killed: list[int] = []
    try:
        worker = pool.submit(os.getpid).result()
        forkserver = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
        pipeline = Pipeline(config, store, Fetcher(config.defaults), executor=pool)
        stop = threading.Event()

        def kill_the_parser() -> None:
            while not stop.is_set() and not killed:
                for pid in _children(forkserver) - {worker}:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.005)

        killer = threading.Thread(target=kill_the_parser)
        killer.start()

        async def run() -> list[SourceOutcome]:
            try:
                return await pipeline.run_all(config.sources)
            finally:
                await pipeline.fetcher.aclose()

        try:
            outcomes = asyncio.run(run())
        finally:
            stop.set()
            killer.join()
        assert pool.submit(os.getpid).result() == worker  # the pool was not touched
    finally:
        pool.shutdown()
    assert len(killed) == 1
    assert [(o.source, o.outcome) for o in outcomes] == [
        ("biocluster-nrw", Outcome.FAILED),
        ("silicon-saxony", Outcome.CHANGED),
    ]
    assert outcomes[0].error is not None
    assert f"the parser process ended abruptly on this {len(big):,}-byte document" in outcomes[0].error
    assert store.news(source="biocluster-nrw") == []
    assert len(store.news(source="silicon-saxony")) == 3
    assert not list(config.data_dir.glob(".body-*"))
    store.close()


def test_a_big_documents_records_are_stored_by_the_process_that_parsed_them(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 50,000 records of a 33 MB calendar went back to the daemon only to be stored: its peak rose
    from 72 to 219 MB. Now the parser's process stores them, and the daemon sees counts only."""
    items = 3_000
    versions = [_feed("circular-plastics", items, 8), _feed("circular-plastics", items, 8) + b"\n"]
    assert len(versions[0]) > 2 * SPOOL_BYTES
    served: list[int] = []

    def big(_request: Request) -> Response:
        served.append(len(served))
        return Response(versions[min(len(served) - 1, 1)], content_type="application/rss+xml")

    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/big.xml").respond_with_handler(big)
    httpserver.expect_request("/small.xml").respond_with_data(
        _feed("silicon-saxony", 3, 1), content_type="application/rss+xml"
    )
    path = tmp_path / "sources.toml"
    path.write_text(
        '[defaults]\nallow_private = true\ndata_dir = "data"\nmax_items = 10000\n'
        f'[[source]]\nname = "circular-plastics"\nurl = "{httpserver.url_for("/big.xml")}"\nkind = "feed"\n'
        f'[[source]]\nname = "silicon-saxony"\nurl = "{httpserver.url_for("/small.xml")}"\nkind = "feed"\n',
        encoding="utf-8",
    )
    config = config_module.load(path)
    config.data_dir.mkdir()
    monkeypatch.chdir(tmp_path)  # a relative SQLite path: the parser's process opens the same file
    store = open_store("sqlite:///data/db.sqlite3")
    pool = parse_pool(1)
    try:
        pipeline = Pipeline(config, store, Fetcher(config.defaults), executor=pool)

        async def run() -> list[list[SourceOutcome]]:
            try:
                return [await pipeline.run_all(config.sources), await pipeline.run_all(config.sources[:1])]
            finally:
                await pipeline.fetcher.aclose()

        first, second = asyncio.run(run())
    finally:
        pool.shutdown()
    assert [(o.source, o.outcome, o.summary, o.records) for o in first] == [
        ("circular-plastics", Outcome.CHANGED, UpsertSummary(new=items), items),
        ("silicon-saxony", Outcome.CHANGED, UpsertSummary(new=3), 3),
    ]
    # Fetched again with other bytes (a new body hash) but the same items: parsed and compared there.
    assert [(o.outcome, o.summary, o.records) for o in second] == [
        (Outcome.UNCHANGED, UpsertSummary(unchanged=items), items)
    ]
    assert served == [0, 1]
    assert store.records_written == 3  # silicon-saxony's: the others were written by the parser's process
    assert pipeline.bodies_spooled == 2
    news = store.news(source="circular-plastics")
    assert len(news) == items
    first_item = next(n for n in news if n.record.title == "circular-plastics: news 0")
    assert first_item.record.link == "https://circular-plastics.example.eu/news/0"
    assert first_item.record.published == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert store.state("circular-plastics").body_hash is not None
    store.close()


def test_a_parse_worker_killed_between_batches_costs_no_later_source(httpserver: HTTPServer, tmp_path: Path) -> None:
    """A pool whose worker the kernel killed was broken for good: every later source failed to parse."""
    version = {"items": 3}
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    for name in ("plastics-cluster", "silicon-saxony"):
        httpserver.expect_request(f"/{name}.xml").respond_with_handler(
            lambda request, name=name: Response(_feed(name, version["items"], 1), content_type="application/rss+xml")
        )
    path = tmp_path / "sources.toml"
    path.write_text(
        '[defaults]\nallow_private = true\ndata_dir = "data"\n'
        + "".join(
            f'[[source]]\nname = "{name}"\nurl = "{httpserver.url_for(f"/{name}.xml")}"\nkind = "feed"\n'
            for name in ("plastics-cluster", "silicon-saxony")
        ),
        encoding="utf-8",
    )
    config = config_module.load(path)
    store = _new_store(config)
    pool = parse_pool(1)
    try:
        pipeline = Pipeline(config, store, Fetcher(config.defaults), executor=pool)

        async def batches() -> tuple[list[Outcome], list[Outcome]]:
            try:
                first = [o.outcome for o in await pipeline.run_all(config.sources)]
                [worker] = pool.worker_pids()
                os.kill(worker, signal.SIGKILL)  # as the OOM killer would, while the pool waits for work
                while Path(f"/proc/{worker}").exists() and _state(worker) != "Z":
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # the pool's manager thread sees the worker gone
                version["items"] = 5
                second = [o.outcome for o in await pipeline.run_all(config.sources)]
                return first, second
            finally:
                await pipeline.fetcher.aclose()

        first, second = asyncio.run(batches())
    finally:
        pool.shutdown()
    assert first == [Outcome.CHANGED, Outcome.CHANGED]
    assert second == [Outcome.CHANGED, Outcome.CHANGED]
    assert pool.started == 2
    assert [n.record.title for n in store.news(source="silicon-saxony")] == [
        f"silicon-saxony: news {i}" for i in range(5)
    ]
    store.close()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _settled_ticks(pid: int) -> int:
    """The CPU ticks of ``pid`` once they stay the same for 0.3 s (an idle process)."""
    ticks = _cpu_ticks(pid)
    while True:
        time.sleep(0.3)
        now = _cpu_ticks(pid)
        if now == ticks:
            return ticks
        ticks = now


def test_a_parse_worker_killed_mid_parse_fails_its_source_with_a_clear_error(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """Below the size of a process of its own, a document is parsed by a pool worker: killed while it
    parses, that source fails and says so, and the next source parses in a new worker."""
    doomed = _feed("biocluster-nrw", 1_200, 8)
    assert len(doomed) < SPOOL_BYTES
    config = _two_sources(httpserver, tmp_path, "biocluster-nrw", doomed)
    store = _new_store(config)
    pool = parse_pool(1)
    killed: list[int] = []
    try:
        worker = pool.submit(os.getpid).result()
        idle = _settled_ticks(worker)  # after its start-up (the initializer's thread reads its size once)
        pipeline = Pipeline(config, store, Fetcher(config.defaults), executor=pool)
        stop = threading.Event()

        def kill_the_worker_once_it_parses() -> None:
            while not stop.is_set():
                if _cpu_ticks(worker) > idle:
                    os.kill(worker, signal.SIGKILL)
                    killed.append(worker)
                    return
                time.sleep(0.001)

        killer = threading.Thread(target=kill_the_worker_once_it_parses)
        killer.start()

        async def run(sources: list[str]) -> list[SourceOutcome]:
            return await pipeline.run_all([s for s in config.sources if s.name in sources])

        async def both() -> tuple[list[SourceOutcome], list[SourceOutcome]]:
            try:
                first = await run(["biocluster-nrw"])
                return first, await run(["silicon-saxony"])
            finally:
                await pipeline.fetcher.aclose()

        try:
            first, second = asyncio.run(both())
        finally:
            stop.set()
            killer.join()
    finally:
        pool.shutdown()
    assert killed == [worker]
    assert [(o.source, o.outcome) for o in first + second] == [
        ("biocluster-nrw", Outcome.FAILED),
        ("silicon-saxony", Outcome.CHANGED),
    ]
    assert first[0].error is not None
    assert f"the parser process ended abruptly on this {len(doomed):,}-byte document" in first[0].error
    assert store.news(source="biocluster-nrw") == []
    assert len(store.news(source="silicon-saxony")) == 3
    assert pool.started == 2
    store.close()
