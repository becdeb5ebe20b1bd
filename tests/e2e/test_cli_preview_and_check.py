"""`aggregator preview`, `check` and the global options, through the real command line."""

from __future__ import annotations

import json

from pytest_httpserver import HTTPServer

from .conftest import SITES, Cli, serve_site_file


def _preview(cli: Cli, *args: str) -> list[dict[str, object]]:
    run = cli("preview", *args, "--json")
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_preview_json_of_a_feed_gives_news_with_offsets(httpserver: HTTPServer, cli: Cli) -> None:
    url = serve_site_file(httpserver, "clusterland-news.xml")
    records = _preview(cli, url)
    assert len(records) == 3
    first = records[0]
    assert first["type"] == "news"
    assert first["strategy"] == "feed"
    assert first["title"] == "Cluster Academy 2026: Clustermanagement international lernen"
    assert first["link"] == "https://www.clusterland.example/news/cluster-academy-2026/"
    assert first["published"] == "2026-11-24T09:30:00+01:00"
    assert first["authors"] == ["Elisabeth Huber"]
    assert first["enclosures"] == [
        {
            "url": "https://www.clusterland.example/downloads/academy-2026.pdf",
            "type": "application/pdf",
            "length": 482113,
        }
    ]
    assert "<script" not in str(first["summary"])
    assert set(first) >= {
        "type",
        "id",
        "source",
        "title",
        "link",
        "tags",
        "strategy",
        "summary",
        "published",
        "updated",
        "authors",
        "enclosures",
    }


def test_preview_json_of_a_calendar_gives_events_in_their_zone(httpserver: HTTPServer, cli: Cli) -> None:
    url = serve_site_file(httpserver, "eccp-events.ics")
    records = {r["title"]: r for r in _preview(cli, url)}
    webinar = records["Webinar: International cluster matchmaking"]
    assert webinar["start"] == "2026-12-03T14:00:00+01:00"
    assert webinar["end"] == "2026-12-03T15:30:00+01:00"
    assert webinar["all_day"] is False
    assert webinar["timezone"] == "Europe/Brussels"
    assert webinar["strategy"] == "ical"
    conference = records["European Cluster Conference 2026"]
    assert (conference["start"], conference["end"], conference["all_day"]) == ("2026-12-09", "2026-12-11", True)
    assert conference["location"] == "The Square, Mont des Arts, 1000 Brussels, Belgium"
    assert records["Industrial ecosystems round table"]["status"] == "cancelled"
    assert records["ECCP helpdesk: open consultation hour"]["rrule"] == "FREQ=WEEKLY;COUNT=8;BYDAY=TU"
    assert set(webinar) >= {
        "description",
        "start",
        "end",
        "all_day",
        "timezone",
        "location",
        "status",
        "rrule",
        "last_modified",
    }


def test_preview_of_a_page_without_selectors_finds_news_and_the_upcoming_events_box(
    httpserver: HTTPServer, cli: Cli
) -> None:
    url = serve_site_file(httpserver, "cluster-portal.html")
    records = _preview(cli, url)
    news = [r for r in records if r["type"] == "news"]
    events = {r["title"]: r for r in records if r["type"] == "event"}
    assert [n["published"] for n in news] == [
        "2026-11-12T00:00:00+01:00",
        "2026-11-05T00:00:00+01:00",
        "2026-10-28T00:00:00+01:00",
    ]
    assert news[2]["title"] == "Report of the incoming mission of European Aerospace Cluster Partnerships"
    assert news[2]["link"] == httpserver.url_for("/news/aerospace-mission")
    assert len(events) == 3
    day = events["Cluster Excellence Day"]
    assert (day["start"], day["end"], day["all_day"]) == ("2026-12-02T10:30:00+01:00", None, False)
    days = events["European Cluster Days"]
    assert (days["start"], days["end"], days["all_day"]) == ("2026-12-17", "2026-12-18", True)
    hearing = events["Clusters hearing"]
    assert (hearing["start"], hearing["end"]) == ("2027-01-20", "2027-01-21")
    assert hearing["location"] == "Strasbourg, European Parliament"


def test_preview_reads_a_local_file_with_selectors_by_name(cli: Cli) -> None:
    (cli.cwd / "sources.toml").write_text(
        f"""[defaults]
timezone = "Europe/Brussels"

[[source]]
name = "portal-events"
url = "{(SITES / "cluster-portal.html").as_uri()}"
kind = "html"
record = "event"
item = "div.upcoming-events li"
title = "a"
link = "a"
date = "span.event-date"
location = "span.place"
""",
        encoding="utf-8",
    )
    records = _preview(cli, "portal-events")
    assert [r["strategy"] for r in records] == ["selectors"] * 3
    assert [r["start"] for r in records] == ["2026-12-02T10:30:00+01:00", "2026-12-17", "2027-01-20"]
    assert records[2]["location"] == "Strasbourg, European Parliament"


def test_check_reports_every_problem_with_file_line_source_and_key(cli: Cli) -> None:
    (cli.cwd / "sources.toml").write_text(
        """[defaults]
timezone = "Europe/Brussels"

[[source]]
name = "ok"
url = "https://example.org/feed.xml"

[[source]]
name = "bad"
url = "ftp://example.org/x"
interval = "often"
timezone = "Mars/Olympus"
""",
        encoding="utf-8",
    )
    run = cli("check")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert any(line.startswith("sources.toml:10: source 'bad': url: ") for line in lines), lines
    assert any(line.startswith("sources.toml:11: source 'bad': interval: ") for line in lines), lines
    assert any(line.startswith("sources.toml:12: source 'bad': timezone: ") for line in lines), lines
    assert not (cli.cwd / "data").exists()


def test_check_accepts_the_shipped_sources_file(cli: Cli) -> None:
    from .conftest import REPO

    run = cli("--config", str(REPO / "sources.toml"), "check")
    assert run.returncode == 0, run.stderr
    assert "configuration is valid" in run.stdout


def test_version_and_help(cli: Cli) -> None:
    version = cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("clusterfeeds ")
    for command in ("check", "fetch", "publish", "preview", "status", "run"):
        helped = cli(command, "--help")
        assert helped.returncode == 0
        assert "--config" in helped.stdout
