"""Redirects: followed by hand, permanent moves reported, loops and long chains refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response
from werkzeug.datastructures import Headers

from aggregator.config import Defaults
from aggregator.errors import FetchError
from aggregator.fetch import FetchResult

Fetch = Callable[..., FetchResult]


def _redirect(server: HTTPServer, path: str, status: int, location: str) -> None:
    server.expect_request(path).respond_with_data("", status=status, headers={"Location": location})


class _RawLocation(Response):
    """A response whose Location is sent byte for byte (werkzeug would try to normalise it)."""

    def get_wsgi_headers(self, environ: object) -> Headers:
        return Headers(self.headers)


def _raw_redirect(server: HTTPServer, path: str, status: int, location: str) -> None:
    def handler(_request: Request) -> Response:
        return _RawLocation("", status=status, headers={"Location": location})

    server.expect_request(path).respond_with_handler(handler)


def test_chain_of_301_and_308_reports_the_final_address_as_permanent(server: HTTPServer, fetch_once: Fetch) -> None:
    _redirect(server, "/feed.rss", 301, "/news/feed.rss")
    _redirect(server, "/news/feed.rss", 308, server.url_for("/en/news/feed.xml"))
    server.expect_request("/en/news/feed.xml").respond_with_data("<rss/>", content_type="application/rss+xml")
    new_address = server.url_for("/en/news/feed.xml")

    result = fetch_once(server.url_for("/feed.rss"))

    assert (result.status, result.body, result.final_url, result.permanent_redirect) == (
        200,
        b"<rss/>",
        new_address,
        new_address,
    )


def test_permanent_redirect_stops_at_the_first_temporary_hop(server: HTTPServer, fetch_once: Fetch) -> None:
    _redirect(server, "/feed", 301, "/moved/feed")
    _redirect(server, "/moved/feed", 302, "/cdn/feed?v=2026-11-26")
    server.expect_request("/cdn/feed").respond_with_data("<rss/>")

    result = fetch_once(server.url_for("/feed"))

    assert result.final_url == server.url_for("/cdn/feed?v=2026-11-26")
    assert result.permanent_redirect == server.url_for("/moved/feed")


def test_temporary_redirect_is_followed_but_not_reported(server: HTTPServer, fetch_once: Fetch) -> None:
    _redirect(server, "/agenda.ics", 302, "/calendar/export.ics")
    server.expect_request("/calendar/export.ics").respond_with_data("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")

    result = fetch_once(server.url_for("/agenda.ics"))

    assert (result.final_url, result.permanent_redirect) == (server.url_for("/calendar/export.ics"), None)


def test_301_after_a_temporary_hop_is_not_permanent_for_the_source(server: HTTPServer, fetch_once: Fetch) -> None:
    _redirect(server, "/a", 307, "/b")
    _redirect(server, "/b", 301, "/c")
    server.expect_request("/c").respond_with_data("ok")

    assert fetch_once(server.url_for("/a")).permanent_redirect is None


def test_relative_location_is_resolved_against_the_current_url(server: HTTPServer, fetch_once: Fetch) -> None:
    _redirect(server, "/en/news/index.rss", 301, "../events/../news/feed.xml#latest")
    server.expect_request("/en/news/feed.xml").respond_with_data("<rss/>")

    result = fetch_once(server.url_for("/en/news/index.rss"))

    assert result.final_url == server.url_for("/en/news/feed.xml")


def test_redirect_loop_is_refused(server: HTTPServer, fetch_once: Fetch) -> None:
    _redirect(server, "/a", 302, "/b")
    _redirect(server, "/b", 302, "/a")
    url = server.url_for("/a")

    with pytest.raises(FetchError) as caught:
        fetch_once(url)

    assert (caught.value.reason, caught.value.message, caught.value.url) == (
        "redirects",
        f"redirect loop at {url}",
        url,
    )


def test_more_redirects_than_max_redirects_is_refused(server: HTTPServer, fetch_once: Fetch) -> None:
    for hop in range(6):
        _redirect(server, f"/hop{hop}", 302, f"/hop{hop + 1}")
    server.expect_request("/hop6").respond_with_data("too far")

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/hop0"), defaults=Defaults(max_redirects=5))

    assert (caught.value.reason, caught.value.message) == ("redirects", "more than 5 redirects")


def test_exactly_max_redirects_is_followed(server: HTTPServer, fetch_once: Fetch) -> None:
    for hop in range(5):
        _redirect(server, f"/hop{hop}", 302, f"/hop{hop + 1}")
    server.expect_request("/hop5").respond_with_data("arrived")

    assert fetch_once(server.url_for("/hop0"), defaults=Defaults(max_redirects=5)).body == b"arrived"


def test_redirect_without_location_is_an_http_error(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/feed").respond_with_data("", status=302)

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed"))

    assert (caught.value.reason, caught.value.message) == ("http", "HTTP 302 Found without a Location header")


def test_redirect_to_a_file_url_is_refused(server: HTTPServer, fetch_once: Fetch) -> None:
    _redirect(server, "/feed", 302, "file:///etc/passwd")

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed"))

    assert (caught.value.reason, caught.value.message) == (
        "not-allowed",
        "redirect to a non-HTTP URL: file:///etc/passwd",
    )


def test_error_after_a_redirect_names_where_it_happened(server: HTTPServer, fetch_once: Fetch) -> None:
    _redirect(server, "/feed", 301, "/new-feed")
    server.expect_request("/new-feed").respond_with_data("", status=404)

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed"))

    assert caught.value.message == f"HTTP 404 Not Found at {server.url_for('/new-feed')}"


def test_redirect_to_an_unparseable_location_is_an_http_error(server: HTTPServer, fetch_once: Fetch) -> None:
    _raw_redirect(server, "/feed", 301, "http://[cluster-news/feed.xml")

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed"))

    assert (caught.value.reason, caught.value.message, caught.value.status) == (
        "http",
        "invalid redirect Location: http://[cluster-news/feed.xml",
        301,
    )


def test_redirect_to_an_invalid_port_is_refused(server: HTTPServer, fetch_once: Fetch) -> None:
    _raw_redirect(server, "/feed", 302, "http://news.cluster.example:99999/feed.xml")

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed"))

    assert (caught.value.reason, caught.value.message) == (
        "not-allowed",
        "invalid URL: http://news.cluster.example:99999/feed.xml",
    )
