"""Three sources carrying one story publish it once in the merged feeds; per-source feeds keep their copy."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import icalendar
from pytest_httpserver import HTTPServer

from .conftest import Cli, allow_robots

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "e2e"
TYPES = {
    ".xml": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".json": "application/feed+json",
    ".ics": "text/calendar",
}


def _serve(httpserver: HTTPServer, name: str) -> str:
    path = FIXTURES / name
    httpserver.expect_request(f"/{name}").respond_with_data(path.read_bytes(), content_type=TYPES[path.suffix])
    return httpserver.url_for(f"/{name}")


def test_a_story_reposted_by_three_sources_is_published_once(httpserver: HTTPServer, write_sources, cli: Cli) -> None:  # type: ignore[no-untyped-def]
    allow_robots(httpserver)
    sources = [("original", "original.atom", "feed"), ("reposter-a", "reposter-a.xml", "feed"), ("reposter-b", "reposter-b.json", "feed"),
               ("series-a", "series-a.ics", "ical"), ("series-b", "series-b.ics", "ical")]  # fmt: skip
    write_sources(
        "".join(
            f'\n[[source]]\nname = "{name}"\nurl = "{_serve(httpserver, file)}"\nkind = "{kind}"\ntags = ["clusters"]\n'
            for name, file, kind in sources
        )
    )
    run = cli("fetch")
    assert run.returncode == 0, run.stdout + run.stderr
    feeds = cli.cwd / "feeds"

    merged = feedparser.parse((feeds / "news.xml").read_bytes())
    titles = sorted(entry.title for entry in merged.entries)
    assert titles == ["Euroclusters call 2027 opens for applications", "Regional hydrogen valley report"]
    story = next(e for e in merged.entries if e.title.startswith("Euroclusters"))
    assert story.link == "https://eccp.example/news/euroclusters-call-2027"
    carried = sorted(tag.term for tag in story.tags if tag.get("scheme") == "source")
    assert carried == ["reposter-a", "reposter-b"]
    as_json = json.loads((feeds / "news.json").read_text(encoding="utf-8"))
    assert len(as_json["items"]) == 2
    # Each source's own feed keeps its own copy.
    assert len(feedparser.parse((feeds / "sources" / "reposter-b.xml").read_bytes()).entries) == 1
    assert len(feedparser.parse((feeds / "sources" / "reposter-a.xml").read_bytes()).entries) == 2
    # The tag feed is merged too.
    assert len(feedparser.parse((feeds / "tags" / "clusters.xml").read_bytes()).entries) == 2

    calendar = icalendar.Calendar.from_ical((feeds / "events.ics").read_bytes())
    sessions = sorted(e.decoded("DTSTART").isoformat() for e in calendar.walk("VEVENT"))
    # The re-post at the same instant (14:00 Vienna == 13:00 UTC) merges; next week's session does not.
    assert len(sessions) == 2
    assert sessions[0].startswith("2026-12-03")
    assert sessions[1].startswith("2026-12-10")
    assert len(icalendar.Calendar.from_ical((feeds / "sources" / "series-b.ics").read_bytes()).walk("VEVENT")) == 1
