"""The running daemon after one batch of fetches: one publish, metrics, logs, and index.html in Chromium.

One daemon serves the whole module: four sources are held server-side until all four requests
have arrived, then released together, so "one batch" is made by the test, not by timing.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from bs4 import BeautifulSoup
from processtree import children, forkserver_of
from prometheus_client.parser import text_string_to_metric_families

from aggregator.processes import RESOURCE_TRACKER_NAME

from .conftest import ICS, REPO, RSS, DaemonProcess, Reply, Site, fixture_bytes, free_port, sources_toml

BATCH = ("vienna-news", "eccp-events", "clusterland-news", "vienna-news-de")


@dataclass
class Running:
    daemon: DaemonProcess
    site: Site
    cwd: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    cwd = tmp_path_factory.mktemp("front")
    site = Site("127.0.0.1")
    barrier = threading.Barrier(len(BATCH))
    bodies = {
        "/vienna/news.xml": (fixture_bytes("vienna_news.xml"), RSS),
        "/eccp/events.ics": (fixture_bytes("eccp_events.ics"), ICS),
        "/clusterland/news.xml": ((REPO / "demo" / "sites" / "clusterland-news.xml").read_bytes(), RSS),
        "/vienna/de/news.xml": (fixture_bytes("vienna_news.xml"), RSS),
    }
    for path, (body, media) in bodies.items():

        def held(_headers: dict[str, str], body: bytes = body, media: str = media) -> Reply:
            barrier.wait(60)
            return Reply(200, body, (("Content-Type", media),))

        site.route(path, held)
    urls = [site.url(p) for p in bodies]
    body = "".join(
        f'[[source]]\nname = "{name}"\nurl = "{url}"\ntags = ["{name.split("-")[0]}"]\n\n'
        for name, url in zip(BATCH, urls, strict=True)
    )
    body += f'[[source]]\nname = "missing"\nurl = "{site.url("/missing.xml")}"\n'
    port = free_port()
    (cwd / "sources.toml").write_text(sources_toml(port, body, per_host="8"), encoding="utf-8")
    daemon = DaemonProcess(cwd, port)
    try:
        daemon.wait_ready()
        daemon.wait_for_event("fetched", count=len(BATCH))
        daemon.wait_for_event("fetch-failed", source="missing")
        daemon.wait_for_event("published", count=2)
        yield Running(daemon, site, cwd)
    finally:
        daemon.stop()
        site.close()


def test_a_batch_of_changed_sources_is_published_once(running: Running) -> None:
    lines = [e["event"] for e in running.daemon.events() if e["event"] in ("fetched", "published")]
    # Once at start (what the store holds), once after the batch; never once per source.
    assert lines == ["published", "fetched", "fetched", "fetched", "fetched", "published"]
    # The batch's first change started the publishing process, which read the store meanwhile.
    assert [e["read_ahead"] for e in running.daemon.events("published")] == [False, True]
    assert sorted(e["source"] for e in running.daemon.events("fetched")) == sorted(BATCH)
    assert {e["outcome"] for e in running.daemon.events("fetched")} == {"changed"}


def test_fetch_log_lines_carry_source_url_status_duration_and_counts(running: Running) -> None:
    vienna = next(e for e in running.daemon.events("fetched") if e["source"] == "vienna-news")
    assert (vienna["url"], vienna["status"], vienna["new"], vienna["updated"]) == (
        running.site.url("/vienna/news.xml"),
        200,
        3,
        0,
    )
    assert isinstance(vienna["duration"], float)
    missing = running.daemon.events("fetch-failed")[0]
    assert (missing["source"], missing["url"], missing["status"], missing["error"], missing["failures"]) == (
        "missing",
        running.site.url("/missing.xml"),
        404,
        "HTTP 404 Not Found",
        1,
    )
    # An expected failure is one line, never a traceback.
    assert "Traceback" not in running.daemon.text()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_parse_and_count_fetches_items_publishes_and_requests(running: Running) -> None:
    before = _samples(running.daemon.get("/metrics").text)
    for _ in range(3):
        assert running.daemon.get("/news.xml").status_code == 200
    after = _samples(running.daemon.get("/metrics").text)

    for name in BATCH:
        assert after[("fetches_total", (("outcome", "ok"), ("source", name)))] == 1.0
    assert after[("fetches_total", (("outcome", "http"), ("source", "missing")))] == 1.0
    assert after[("source_items", (("source", "vienna-news"),))] == 3.0
    assert after[("source_items", (("source", "eccp-events"),))] == 2.0
    assert after[("source_consecutive_failures", (("source", "missing"),))] == 1.0
    assert after[("publish_duration_seconds_count", ())] == 2.0
    feed_ok = ("http_requests_total", (("path", "feed"), ("status", "200")))
    assert after[feed_ok] - before.get(feed_ok, 0.0) == 3.0
    metrics_ok = ("http_requests_total", (("path", "metrics"), ("status", "200")))
    assert after[metrics_ok] - before.get(metrics_ok, 0.0) == 1.0


def test_status_json_lines_have_the_documented_fields(running: Running) -> None:
    from .conftest import status_json

    rows = status_json(running.cwd)
    assert sorted(rows) == sorted([*BATCH, "missing"])
    assert {k: rows["vienna-news"][k] for k in ("health", "last_error", "consecutive_failures", "items")} == {
        "health": "ok",
        "last_error": None,
        "consecutive_failures": 0,
        "items": 3,
    }
    assert rows["missing"]["health"] == "failing"
    assert rows["missing"]["last_error"] == f"HTTP 404 Not Found ({running.site.url('/missing.xml')})"
    for row in rows.values():
        assert {"name", "health", "last_success", "last_error", "consecutive_failures", "items", "next_run"} <= set(row)
        assert row["next_run"] is not None


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_index_html_renders_in_chromium_and_every_link_answers(running: Running, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it as root)")
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "daemon-index.png"
    shot.unlink(missing_ok=True)
    url = running.daemon.base + "/"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = shot.read_bytes()
    assert len(data) > 10_000
    assert _png_size(data) == (1280, 2000)

    page = running.daemon.get("/")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    soup = BeautifulSoup(page.text, "html.parser")
    hrefs = [a["href"] for a in soup.find_all("a", href=True)]
    own = [h for h in hrefs if "://" not in h or h.startswith(running.daemon.base)]
    webcal = [h for h in hrefs if h.startswith("webcal://")]
    assert "news.xml" in own
    assert "events.ics" in own
    assert "sources/vienna-news.xml" in own
    for href in own:
        answer = httpx.get(httpx.URL(url).join(href), timeout=10)
        assert answer.status_code == 200, href
    assert f"webcal://127.0.0.1:{running.daemon.port}/tags/eccp.ics" in webcal
    feeds = running.cwd / "feeds"
    for href in webcal:
        parts = urlsplit(href)
        assert parts.netloc == f"127.0.0.1:{running.daemon.port}", href
        assert parts.path.endswith(".ics"), href
        assert (feeds / parts.path.lstrip("/")).is_file(), href
        assert running.daemon.get(parts.path).text.startswith("BEGIN:VCALENDAR"), href


def test_the_daemons_child_processes_start_with_two_malloc_arenas(running: Running) -> None:
    """Forks (the resource tracker, the forkserver, and from it the workers and publishers) copy
    malloc's own setting from the daemon; started programs, if any, have it in their environment."""
    daemon = running.daemon.process.pid
    own_command = Path(f"/proc/{daemon}/cmdline").read_bytes()
    forks = []
    for child in children(daemon):
        if Path(f"/proc/{child}/cmdline").read_bytes() == own_command:  # forked after ``limit_malloc_arenas``
            forks.append(Path(f"/proc/{child}/comm").read_text().strip())
        else:
            environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            assert b"MALLOC_ARENA_MAX=2" in environment, child
    assert RESOURCE_TRACKER_NAME in forks
    assert len(forks) == 2  # and the forkserver
    assert forkserver_of(daemon)
