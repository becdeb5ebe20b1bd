"""sources.toml -> fetch -> store -> publish, through the real CLI against a real HTTP server."""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import feedparser
import icalendar
import pytest
from pytest_httpserver import HTTPServer

from .conftest import SHARED, Cli, serve_site_file

BRUSSELS = ZoneInfo("Europe/Brussels")


def _three_sources(httpserver: HTTPServer, write_sources, *, broken: bool = False) -> Path:  # type: ignore[no-untyped-def]
    news = serve_site_file(httpserver, "clusterland-news.xml")
    events = serve_site_file(httpserver, "eccp-events.ics")
    page = serve_site_file(httpserver, "cluster-portal.html")
    extra = ""
    if broken:
        httpserver.expect_request("/broken.xml").respond_with_data("upstream exploded", status=500)
        extra = f'\n[[source]]\nname = "broken"\nurl = "{httpserver.url_for("/broken.xml")}"\nkind = "feed"\n'
    return write_sources(  # type: ignore[no-any-return]
        f"""
[[source]]
name = "clusterland-news"
url = "{news}"
kind = "feed"
tags = ["at"]
timezone = "Europe/Vienna"

[[source]]
name = "eccp-events"
url = "{events}"
kind = "ical"
tags = ["eu"]

[[source]]
name = "portal"
url = "{page}"
tags = ["eu"]
{extra}"""
    )


def test_fetch_stores_and_publishes_every_kind_of_source(httpserver: HTTPServer, write_sources, cli: Cli) -> None:  # type: ignore[no-untyped-def]
    _three_sources(httpserver, write_sources)
    run = cli("fetch")
    assert run.returncode == 0, run.stderr
    assert "3 sources: 3 changed" in run.stdout
    feeds = cli.cwd / "feeds"
    parsed = feedparser.parse((feeds / "news.xml").read_bytes())
    assert parsed.bozo == 0
    titles = [e.title for e in parsed.entries]
    assert titles[0] == "Cluster Academy 2026: Clustermanagement international lernen"
    assert len(titles) == 6
    assert "<script" not in (feeds / "news.xml").read_text(encoding="utf-8")
    calendar = icalendar.Calendar.from_ical((feeds / "events.ics").read_bytes())
    events = {str(e["SUMMARY"]): e for e in calendar.walk("VEVENT")}
    assert len(events) == 7
    webinar = events["Webinar: International cluster matchmaking"]
    assert webinar.decoded("DTSTART") == datetime(2026, 12, 3, 14, 0, tzinfo=BRUSSELS)
    conference = events["European Cluster Conference 2026"]
    assert conference.decoded("DTSTART") == date(2026, 12, 9)
    assert conference.decoded("DTEND") == date(2026, 12, 11)
    assert str(events["Cancelled: Industrial ecosystems round table"]["STATUS"]) == "CANCELLED"
    assert (
        str(events["ECCP helpdesk: open consultation hour"]["RRULE"].to_ical().decode())
        == "FREQ=WEEKLY;COUNT=8;BYDAY=TU"
    )
    for name in ("clusterland-news.xml", "eccp-events.ics", "portal.xml", "portal.ics"):
        assert (feeds / "sources" / name).exists(), name
    assert (feeds / "tags" / "eu.ics").exists()
    assert (feeds / "news.atom").exists()
    assert (feeds / "news.json").exists()
    assert (
        json.loads((feeds / "news.json").read_text(encoding="utf-8"))["version"] == "https://jsonfeed.org/version/1.1"
    )


def test_second_fetch_uses_conditional_get_and_rewrites_nothing(
    httpserver: HTTPServer, write_sources, cli: Cli
) -> None:  # type: ignore[no-untyped-def]
    _three_sources(httpserver, write_sources)
    assert cli("fetch").returncode == 0
    feeds = cli.cwd / "feeds"
    before = {p: p.stat().st_mtime_ns for p in feeds.rglob("*") if p.is_file()}
    second = cli("fetch")
    assert second.returncode == 0, second.stderr
    assert "3 sources: 0 changed, 0 unchanged, 3 not modified, 0 failed" in second.stdout
    # Nothing at all changes: index.html shows the day of the last success, not the poll time.
    assert "published 0 file(s), 26 unchanged" in second.stdout
    after = {p: p.stat().st_mtime_ns for p in feeds.rglob("*") if p.is_file()}
    changed = [p.name for p in after if before.get(p) != after[p]]
    assert changed == []


def test_a_failing_source_does_not_stop_the_others_and_keeps_its_records(
    httpserver: HTTPServer, write_sources, cli: Cli
) -> None:  # type: ignore[no-untyped-def]
    _three_sources(httpserver, write_sources, broken=True)
    run = cli("fetch")
    assert run.returncode == 1
    assert "4 sources: 3 changed, 0 unchanged, 0 not modified, 1 failed" in run.stdout
    assert "HTTP 500" in run.stdout
    status = cli("status", "--json")
    assert status.returncode == 0, status.stderr
    rows = {row["name"]: row for row in map(json.loads, status.stdout.splitlines())}
    assert rows["broken"]["health"] == "failing"
    assert rows["broken"]["consecutive_failures"] == 1
    assert "HTTP 500" in rows["broken"]["last_error"]
    assert rows["clusterland-news"]["health"] == "ok"
    assert rows["clusterland-news"]["items"] == 3


def test_records_survive_when_a_source_later_fails(httpserver: HTTPServer, write_sources, cli: Cli) -> None:  # type: ignore[no-untyped-def]
    _three_sources(httpserver, write_sources)
    assert cli("fetch").returncode == 0
    httpserver.clear()
    httpserver.expect_request("/clusterland-news.xml").respond_with_data("<html>maintenance</html>", status=200)
    httpserver.expect_request("/eccp-events.ics").respond_with_data("", status=503, headers={"Retry-After": "120"})
    httpserver.expect_request("/cluster-portal.html").respond_with_data("gone", status=404)
    run = cli("fetch")
    assert run.returncode == 1
    assert cli("publish").returncode == 0
    parsed = feedparser.parse((cli.cwd / "feeds" / "news.xml").read_bytes())
    assert len(parsed.entries) == 6
    calendar = icalendar.Calendar.from_ical((cli.cwd / "feeds" / "events.ics").read_bytes())
    assert len(calendar.walk("VEVENT")) == 7


def test_published_output_passes_the_independent_checks(httpserver: HTTPServer, write_sources, cli: Cli) -> None:  # type: ignore[no-untyped-def]
    checker = SHARED / "eval" / "check-feeds"
    if not checker.exists():
        pytest.skip(f"{checker} is not beside the repository")
    _three_sources(httpserver, write_sources)
    assert cli("fetch").returncode == 0
    result = subprocess.run(
        [str(checker), str(cli.cwd / "feeds")], capture_output=True, text=True, timeout=600, check=False
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary.endswith(" 0 failed") or " 0 failed" in summary, summary
