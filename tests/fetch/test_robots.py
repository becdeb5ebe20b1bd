"""robots.txt: parsed per origin with Protego, cached, and RFC 9309's 4xx/5xx rules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer

from aggregator.config import Defaults, SourceConfig
from aggregator.errors import FetchError
from aggregator.fetch import Fetcher, FetchResult
from aggregator.robots import (
    DEFAULT_TTL,
    SERVER_ERROR_TTL,
    RobotsCache,
    origin_of,
    robots_url,
    rules_from_response,
)

Fetch = Callable[..., FetchResult]
ROBOTS_URL = "https://www.cluster.example/robots.txt"


def _robots_requests(server: HTTPServer) -> int:
    return sum(1 for request, _ in server.log if request.path == "/robots.txt")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://WWW.Cluster.example/en/news?page=2", "https://www.cluster.example/robots.txt"),
        ("http://www.cluster.example:80/feed", "http://www.cluster.example/robots.txt"),
        ("http://127.0.0.1:8081/feed", "http://127.0.0.1:8081/robots.txt"),
        ("https://[2a00:1450::1]:8443/x", "https://[2a00:1450::1]:8443/robots.txt"),
    ],
)
def test_robots_url_is_per_scheme_host_and_port(url: str, expected: str) -> None:
    assert robots_url(url) == expected


def test_named_group_rules_apply_to_clusterfeeds(fixture_bytes: Callable[[str], bytes]) -> None:
    rules = rules_from_response(ROBOTS_URL, 200, fixture_bytes("fetch/robots_cluster_site.txt"))

    assert rules.allows("https://www.cluster.example/en/news/feed.xml") is True
    assert rules.allows("https://www.cluster.example/events/2026/cluster-days.ics") is True
    assert rules.allows("https://www.cluster.example/events/register?id=17") is False
    assert rules.allows("https://www.cluster.example/members/newsletter.rss") is False
    assert rules.allows("https://www.cluster.example/en/news/feed.xml", "BadBot") is False


@pytest.mark.parametrize(("status", "allowed"), [(404, True), (401, True), (403, True), (429, False), (503, False)])
def test_4xx_allows_everything_and_5xx_or_429_disallows_everything(status: int, allowed: bool) -> None:
    rules = rules_from_response(ROBOTS_URL, status, b"")

    assert rules.allows("https://www.cluster.example/feed.xml") is allowed


def test_cache_expires_after_24_hours_and_server_errors_sooner() -> None:
    cache = RobotsCache()
    origin = origin_of(ROBOTS_URL)
    cache.put(origin, rules_from_response(ROBOTS_URL, 200, b"User-agent: *\nDisallow:\n"), now=1000.0)

    assert cache.get(origin, 1000.0 + DEFAULT_TTL - 1) is not None
    assert cache.get(origin, 1000.0 + DEFAULT_TTL) is None

    cache.put(origin, rules_from_response(ROBOTS_URL, 503, b""), now=5000.0)
    assert cache.get(origin, 5000.0 + SERVER_ERROR_TTL - 1) is not None
    assert cache.get(origin, 5000.0 + SERVER_ERROR_TTL) is None
    assert (DEFAULT_TTL, SERVER_ERROR_TTL) == (86400.0, 900.0)


def _fetch_many(urls: list[str], make_source: Callable[..., SourceConfig]) -> list[FetchResult | FetchError]:
    """Fetch in order with one Fetcher (robots on), collecting results or errors."""

    async def go() -> list[FetchResult | FetchError]:
        fetcher = Fetcher(Defaults())
        outcomes: list[FetchResult | FetchError] = []
        try:
            for url in urls:
                try:
                    outcomes.append(await fetcher.fetch(url, source=make_source(url)))
                except FetchError as exc:
                    outcomes.append(exc)
        finally:
            await fetcher.aclose()
        return outcomes

    return asyncio.run(go())


def test_disallowed_url_is_refused_and_robots_txt_fetched_once(
    server: HTTPServer, fixture_bytes: Callable[[str], bytes], make_source: Callable[..., SourceConfig]
) -> None:
    server.expect_request("/robots.txt").respond_with_data(
        fixture_bytes("fetch/robots_cluster_site.txt"), content_type="text/plain"
    )
    server.expect_request("/events/2026.ics").respond_with_data("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    server.expect_request("/members/news.rss").respond_with_data("<rss/>")

    allowed, refused = _fetch_many(
        [server.url_for("/events/2026.ics"), server.url_for("/members/news.rss")], make_source
    )

    assert isinstance(allowed, FetchResult)
    assert allowed.status == 200
    assert isinstance(refused, FetchError)
    assert (refused.reason, refused.message) == (
        "robots",
        f"disallowed by robots.txt ({server.url_for('/robots.txt')})",
    )
    assert _robots_requests(server) == 1
    assert [request.path for request, _ in server.log] == ["/robots.txt", "/events/2026.ics"]


def test_missing_robots_txt_allows_the_fetch(server: HTTPServer, make_source: Callable[..., SourceConfig]) -> None:
    server.expect_request("/robots.txt").respond_with_data("Not Found", status=404)
    server.expect_request("/feed.xml").respond_with_data("<rss/>")

    (result,) = _fetch_many([server.url_for("/feed.xml")], make_source)

    assert isinstance(result, FetchResult)
    assert result.body == b"<rss/>"


def test_robots_txt_server_error_disallows_for_now(
    server: HTTPServer, make_source: Callable[..., SourceConfig]
) -> None:
    server.expect_request("/robots.txt").respond_with_data("busy", status=503)
    server.expect_request("/feed.xml").respond_with_data("<rss/>")

    (refused,) = _fetch_many([server.url_for("/feed.xml")], make_source)

    assert isinstance(refused, FetchError)
    assert (refused.reason, refused.message) == (
        "robots",
        f"robots.txt unavailable (HTTP 503 Service Unavailable), so disallowed ({server.url_for('/robots.txt')})",
    )
    assert [request.path for request, _ in server.log] == ["/robots.txt"]


def test_robots_txt_redirect_is_followed(server: HTTPServer, make_source: Callable[..., SourceConfig]) -> None:
    server.expect_request("/robots.txt").respond_with_data("", status=301, headers={"Location": "/static/robots.txt"})
    server.expect_request("/static/robots.txt").respond_with_data("User-agent: clusterfeeds\nDisallow: /private/\n")
    server.expect_request("/feed.xml").respond_with_data("<rss/>")

    ok, refused = _fetch_many([server.url_for("/feed.xml"), server.url_for("/private/feed.xml")], make_source)

    assert isinstance(ok, FetchResult)
    assert isinstance(refused, FetchError)
    assert refused.reason == "robots"


def test_robots_of_the_redirect_target_host_is_honoured(
    server: HTTPServer, other_server: HTTPServer, make_source: Callable[..., SourceConfig]
) -> None:
    server.expect_request("/robots.txt").respond_with_data("User-agent: *\nAllow: /\n")
    server.expect_request("/feed.xml").respond_with_data(
        "", status=301, headers={"Location": other_server.url_for("/archive/feed.xml")}
    )
    other_server.expect_request("/robots.txt").respond_with_data("User-agent: *\nDisallow: /archive/\n")

    (refused,) = _fetch_many([server.url_for("/feed.xml")], make_source)

    assert isinstance(refused, FetchError)
    assert (refused.reason, refused.message) == (
        "robots",
        f"disallowed by robots.txt ({other_server.url_for('/robots.txt')})",
    )


def test_respect_robots_false_skips_robots_txt(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/robots.txt").respond_with_data("User-agent: *\nDisallow: /\n")
    server.expect_request("/feed.xml").respond_with_data("<rss/>")

    result = fetch_once(server.url_for("/feed.xml"), respect_robots=False)

    assert result.body == b"<rss/>"
    assert [request.path for request, _ in server.log] == ["/feed.xml"]
