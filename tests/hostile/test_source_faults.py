"""Every way a source can fail, in one real `aggregator fetch` run: each failure is named in `status`,
the neighbours are unaffected and the failing source's earlier records stay published."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .conftest import BlackHole, Cli, Silent, closed_port, fixture, source_block

MAX_BYTES = 1_000_000
GOOD_TITLES = ["Rückblick: Robotik-Tag in Wels", "Förderaufruf Digitalisierung 2027 geöffnet"]


def _trickle(_request: Request) -> Response:
    def body() -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>slow</title>'
        for _ in range(600):
            time.sleep(0.1)
            yield b" "

    return Response(body(), content_type="application/rss+xml")


def _endless(_request: Request) -> Response:
    def body() -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>big</title>'
        for _ in range(3200):  # 200 MB if it were all read
            yield b"<item><title>" + b"x" * 65_000 + b"</title></item>"

    return Response(body(), content_type="application/rss+xml")


GZIP_BOMB = gzip.compress(b"<rss>" + b"\0" * 100_000_000, compresslevel=9)


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str  # the source's kind
    path: str | None  # served path in phase two (None: the URL is elsewhere)


@dataclass
class Scenario:
    cli: Cli
    base: str
    urls: dict[str, str]
    fetch_good: Any
    fetch_faulty: Any
    publish: Any
    status: dict[str, dict[str, Any]]


def _serve_faults(site: HTTPServer) -> None:
    site.expect_request("/trickle.xml").respond_with_handler(_trickle)
    site.expect_request("/big.xml").respond_with_handler(_endless)
    site.expect_request("/bomb.xml").respond_with_data(
        GZIP_BOMB, headers={"Content-Encoding": "gzip"}, content_type="application/rss+xml"
    )
    site.expect_request("/loop/a").respond_with_data("", status=302, headers={"Location": "/loop/b"})
    site.expect_request("/loop/b").respond_with_data("", status=302, headers={"Location": "/loop/a"})
    for hop in range(1, 12):
        site.expect_request(f"/chain/{hop}").respond_with_data(
            "", status=301, headers={"Location": f"/chain/{hop + 1}"}
        )
    later = fixture("later_news.xml")
    site.expect_request("/as-html.xml").respond_with_data(later, content_type="text/html; charset=utf-8")
    site.expect_request("/untyped.xml").respond_with_response(Response(later, headers={}))
    site.expect_request("/octets.xml").respond_with_data(later, content_type="application/octet-stream")
    site.expect_request("/page-as-rss").respond_with_data(
        fixture("news_page_labelled_rss.html"), content_type="application/rss+xml"
    )
    site.expect_request("/latin1.xml").respond_with_data(
        fixture("wrong_charset_latin1_declared_utf8.xml"), content_type="application/rss+xml; charset=utf-8"
    )
    site.expect_request("/bom.xml").respond_with_data(fixture("bom_utf8.xml"), content_type="application/rss+xml")
    site.expect_request("/mixed.xml").respond_with_data(
        fixture("mixed_utf8_cp1252.xml"), content_type="application/rss+xml"
    )
    site.expect_request("/empty-feed.xml").respond_with_data(b"", content_type="application/rss+xml")
    site.expect_request("/empty-page").respond_with_data(b"", content_type="text/html")
    site.expect_request("/truncated.xml").respond_with_data(
        fixture("truncated_news.xml"), content_type="application/rss+xml"
    )
    site.expect_request("/maintenance").respond_with_data(
        fixture("error_page_200.html"), content_type="text/html; charset=utf-8"
    )
    site.expect_request("/steady.xml").respond_with_data(fixture("good_news.xml"), content_type="application/rss+xml")


@pytest.fixture(scope="module")
def scenario(
    hostile_server: HTTPServer, black_hole: BlackHole, silent_server: Silent, tmp_path_factory: pytest.TempPathFactory
) -> Scenario:
    site = hostile_server
    site.clear()
    site.expect_request("/robots.txt").respond_with_data("not found", status=404)
    good = fixture("good_news.xml")
    for name in FAULT_URLS:
        site.expect_request(f"/good/{name}.xml").respond_with_data(good, content_type="application/rss+xml")
    _serve_faults(site)
    base = site.url_for("/").rstrip("/")
    refused = closed_port()
    phase_two = {
        "refused": f"http://127.0.0.1:{refused}/news.xml",
        "dns": "http://news.cluster-platform.invalid/feed.xml",
        "connect-timeout": f"http://127.0.0.1:{black_hole.port}/news.xml",
        "read-timeout": f"http://127.0.0.1:{silent_server.port}/news.xml",
        **{name: base + path for name, path in FAULT_URLS.items() if path is not None},
    }
    cli = Cli(tmp_path_factory.mktemp("faults"))
    head = f'[defaults]\ntimezone = "Europe/Vienna"\nallow_private = true\nmax_bytes = {MAX_BYTES}\npast_days = 36500\n'

    def config(urls: dict[str, str]) -> None:
        cli.write_sources(
            "".join(
                source_block(name, url, kind=KINDS.get(name, "auto"), timeout=TIMEOUTS.get(name, 10))
                for name, url in urls.items()
            ),
            head=head,
        )

    config({name: f"{base}/good/{name}.xml" for name in FAULT_URLS} | {"steady": f"{base}/steady.xml"})
    fetch_good = cli("fetch")
    config(phase_two | {"steady": f"{base}/steady.xml"})
    fetch_faulty = cli("fetch")
    publish = cli("publish")
    return Scenario(cli, base, phase_two, fetch_good, fetch_faulty, publish, cli.status())


FAULT_URLS: dict[str, str | None] = {
    "refused": None,
    "dns": None,
    "connect-timeout": None,
    "read-timeout": None,
    "trickle": "/trickle.xml",
    "big": "/big.xml",
    "gzip-bomb": "/bomb.xml",
    "redirect-loop": "/loop/a",
    "redirect-chain": "/chain/1",
    "feed-as-html": "/as-html.xml",
    "feed-untyped": "/untyped.xml",
    "feed-as-octets": "/octets.xml",
    "page-as-rss": "/page-as-rss",
    "wrong-charset": "/latin1.xml",
    "bom": "/bom.xml",
    "mixed-encoding": "/mixed.xml",
    "empty-feed": "/empty-feed.xml",
    "empty-page": "/empty-page",
    "truncated": "/truncated.xml",
    "error-page": "/maintenance",
}
KINDS = {"empty-feed": "feed", "error-page": "feed", "truncated": "feed"}
TIMEOUTS = {"connect-timeout": 1, "read-timeout": 1, "trickle": 1}


FAILURES = {
    "refused": "connection refused ({url})",
    "dns": "name not resolved: news.cluster-platform.invalid ({url})",
    "connect-timeout": "timeout: connect took longer than 0.5 s ({url})",
    "read-timeout": "timeout: no data for 0.5 s (read) ({url})",
    "trickle": "timeout: deadline of 1 s exceeded ({url})",
    "big": f"response exceeds {MAX_BYTES} bytes ({{url}})",
    "gzip-bomb": f"response exceeds {MAX_BYTES} bytes ({{url}})",
    "redirect-loop": "redirect loop at {base}/loop/a ({url})",
    "redirect-chain": "more than 5 redirects ({url})",
    "page-as-rss": "not a feed: an HTML page ({url})",
    "empty-feed": "not a feed: empty body ({url})",
    "empty-page": "empty page ({url})",
    "error-page": "not a feed: an HTML page ({url})",
}


def _titles(path: Path) -> list[str]:
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, path
    return sorted(entry.title for entry in parsed.entries)


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_each_failure_is_named_in_status_with_its_cause(scenario: Scenario, name: str) -> None:
    state = scenario.status[name]
    expected = FAILURES[name].format(url=scenario.urls[name], base=scenario.base)

    assert (state["health"], state["last_error"], state["consecutive_failures"]) == ("failing", expected, 1)
    assert state["last_success"] is not None  # the good fetch before the fault


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_a_failing_source_keeps_its_earlier_records_published(scenario: Scenario, name: str) -> None:
    assert scenario.publish.returncode == 0, scenario.publish.stderr
    assert _titles(scenario.cli.feeds / "sources" / f"{name}.xml") == sorted(GOOD_TITLES)
    assert scenario.status[name]["items"] == 2


LATER = "Einladung: Mechatronik-Forum 2027 in Linz"
KUNSTSTOFF = [
    "Kreislaufwirtschaft: Größte Recyclinganlage Österreichs eröffnet",
    "Spritzguss-Workshop für Lehrlinge – Anmeldung läuft",
]
READABLE = {
    "feed-as-html": [LATER],
    "feed-untyped": [LATER],
    "feed-as-octets": [LATER],
    "wrong-charset": [KUNSTSTOFF[0], "Spritzguss-Workshop für Lehrlinge - Anmeldung läuft"],
    "bom": KUNSTSTOFF,
    "mixed-encoding": KUNSTSTOFF,
    "truncated": ["Neues Mitglied: Präzisionsteile Huber GmbH"],
}


@pytest.mark.parametrize("name", sorted(READABLE))
def test_mislabelled_or_damaged_but_readable_documents_are_read_right(scenario: Scenario, name: str) -> None:
    state = scenario.status[name]

    assert (state["health"], state["last_error"], state["items"]) == ("ok", None, 2 + len(READABLE[name]))
    assert _titles(scenario.cli.feeds / "sources" / f"{name}.xml") == sorted(GOOD_TITLES + READABLE[name])


def test_the_run_reports_every_outcome_and_the_healthy_neighbour_is_untouched(scenario: Scenario) -> None:
    assert scenario.fetch_good.returncode == 0, scenario.fetch_good.stderr
    assert "21 sources: 21 changed, 0 unchanged, 0 not modified, 0 failed; 42 new, 0 updated records" in (
        scenario.fetch_good.stdout
    )
    assert scenario.fetch_faulty.returncode == 1, scenario.fetch_faulty.stderr
    assert "21 sources: 7 changed, 1 unchanged, 0 not modified, 13 failed; 10 new, 0 updated records" in (
        scenario.fetch_faulty.stdout
    )
    assert "Traceback" not in scenario.fetch_faulty.stderr
    steady = scenario.status["steady"]
    assert (steady["health"], steady["last_error"], steady["items"]) == ("ok", None, 2)
    assert _titles(scenario.cli.feeds / "sources" / "steady.xml") == sorted(GOOD_TITLES)


def test_damage_is_reported_as_warnings_in_the_fetch_table(scenario: Scenario) -> None:
    rows = {line.split()[0]: line.split(None, 5) for line in scenario.fetch_faulty.stdout.splitlines()[1:22]}

    assert rows["truncated"][1:] == ["changed", "1", "0", "0", "2 warning(s)"]
    assert rows["mixed-encoding"][1:] == ["changed", "2", "0", "0", "1 warning(s)"]
    assert rows["bom"][1:] == ["changed", "2", "0", "0"]


def test_merged_feeds_still_hold_the_failing_sources_records(scenario: Scenario) -> None:
    atom = feedparser.parse((scenario.cli.feeds / "news.atom").read_bytes())
    titles = {entry.title for entry in atom.entries}

    assert atom.bozo == 0
    # Re-posts of one story by several sources are merged, so each title is there once.
    assert sorted(t for t in titles if t in {*GOOD_TITLES, LATER, KUNSTSTOFF[0]}) == sorted(
        [*GOOD_TITLES, LATER, KUNSTSTOFF[0]]
    )
    assert len(atom.entries) == len(titles)
