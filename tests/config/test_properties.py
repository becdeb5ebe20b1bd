"""Properties: durations round-trip, and no text makes load() fail with anything but ConfigErrors."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import Config, load, parse_interval
from aggregator.errors import ConfigErrors


@given(
    days=st.integers(0, 400),
    hours=st.integers(0, 48),
    minutes=st.integers(0, 180),
    seconds=st.integers(0, 7200),
)
def test_written_durations_read_back_to_the_same_timedelta(days: int, hours: int, minutes: int, seconds: int) -> None:
    expected = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    if expected < timedelta(minutes=1):
        return  # too short (or empty): covered by the explicit rejection tests
    assert parse_interval(text) == expected


# Lines a sources.toml is made of, valid and broken, combined at random.
LINES = [
    "[defaults]",
    "[server]",
    "[[source]]",
    "[source.headers]",
    "[sources]",
    'name = "eccp-news"',
    'name = "ECCP News"',
    "name = 7",
    'url = "https://clustercollaboration.eu/news"',
    'url = "webcals://www.biz-up.at/kalender.ics"',
    'url = "file:../snapshots/eccp.xml"',
    'url = "ftp://x"',
    'kind = "html"',
    'kind = "rss"',
    'item = "div.teaser"',
    'title = "h3..x"',
    'record = "event"',
    'interval = "1h30m"',
    'interval = "5s"',
    "interval = 30",
    'timezone = "Europe/Vienna"',
    'timezone = "Mars/Olympus"',
    'tags = ["eu", "Policy"]',
    "tags = [",
    '  "eu",',
    "]",
    'headers = { "Accept-Language" = "de" }',
    '"Accept-Language" = "de"',
    'summary = """',
    'name = "inside-a-string"',
    '"""',
    "port = 70000",
    'base_url = "https://feeds.example.org"',
    "detail_pages = -1",
    "timeout = 0.5",
    "# a comment",
    "",
    "= broken",
]


@given(st.lists(st.sampled_from(LINES), max_size=25))
def test_any_file_loads_or_raises_config_errors_that_point_at_a_line(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sources.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            outcome: Config | ConfigErrors = load(path)
        except ConfigErrors as errors:
            outcome = errors

    if isinstance(outcome, ConfigErrors):
        assert outcome.errors
        assert all(error.path == str(path) and error.line is not None for error in outcome.errors)
    else:
        assert all(source.url.startswith(("https://", "http://", "file:///")) for source in outcome.sources)
