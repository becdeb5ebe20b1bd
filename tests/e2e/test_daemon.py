"""`aggregator run` as a real process: it fetches, publishes, serves, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import feedparser
import httpx
from pytest_httpserver import HTTPServer

from .conftest import serve_site_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(predicate, what: str, limit: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_daemon_fetches_publishes_serves_and_stops_on_sigterm(httpserver: HTTPServer, tmp_path: Path) -> None:
    news = serve_site_file(httpserver, "clusterland-news.xml")
    events = serve_site_file(httpserver, "eccp-events.ics")
    port = _free_port()
    (tmp_path / "sources.toml").write_text(
        f"""[defaults]
interval = "1m"
allow_private = true
past_days = 36500

[server]
host = "127.0.0.1"
port = {port}

[[source]]
name = "clusterland-news"
url = "{news}"
kind = "feed"

[[source]]
name = "eccp-events"
url = "{events}"
kind = "ical"
""",
        encoding="utf-8",
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, "/healthz")
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"

        def has_news() -> bool:
            response = httpx.get(f"{base}/news.xml")
            return response.status_code == 200 and len(feedparser.parse(response.content).entries) == 3

        _wait_for(has_news, "three news items over HTTP")
        assert httpx.get(f"{base}/readyz").status_code == 200
        feed = httpx.get(f"{base}/news.xml")
        assert feed.headers["content-type"] == "application/rss+xml; charset=utf-8"
        again = httpx.get(f"{base}/news.xml", headers={"If-None-Match": feed.headers["etag"]})
        assert again.status_code == 304

        def has_calendar() -> bool:
            response = httpx.get(f"{base}/events.ics")
            return response.status_code == 200 and response.text.count("BEGIN:VEVENT") == 4

        _wait_for(has_calendar, "four events over HTTP")
        assert httpx.get(f"{base}/events.ics").headers["content-type"] == "text/calendar; charset=utf-8"
        assert httpx.get(f"{base}/metrics").status_code == 200
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, output
    assert "stopped" in output
    published = feedparser.parse((tmp_path / "feeds" / "news.xml").read_bytes())
    assert published.bozo == 0
    assert len(published.entries) == 3
    assert not list((tmp_path / "feeds").rglob("*.tmp"))
