"""Plain HTTP behaviour: bodies, validators and 304, status errors, cache lifetimes, network failures."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import USER_AGENT
from aggregator.errors import FetchError
from aggregator.fetch import FetchResult, cache_max_age, retry_after_seconds
from aggregator.records import Validators

Fetch = Callable[..., FetchResult]
RSS = "application/rss+xml; charset=UTF-8"
LAST_MODIFIED = "Tue, 24 Nov 2026 08:31:07 GMT"


def test_200_returns_body_media_type_charset_and_validators(
    server: HTTPServer, fetch_once: Fetch, fixture_bytes: Callable[[str], bytes]
) -> None:
    feed = fixture_bytes("fetch/cluster_news.rss")
    server.expect_request("/en/news/feed.xml").respond_with_data(
        feed, headers={"Content-Type": RSS, "ETag": '"ss-4711"', "Last-Modified": LAST_MODIFIED}
    )
    url = server.url_for("/en/news/feed.xml")

    result = fetch_once(url)

    assert result.url == url
    assert result.final_url == url
    assert result.status == 200
    assert result.body == feed
    assert result.content_type == "application/rss+xml"
    assert result.charset == "utf-8"
    assert result.validators == Validators(etag='"ss-4711"', last_modified=LAST_MODIFIED)
    assert result.not_modified is False
    assert result.permanent_redirect is None
    assert result.max_age is None


def test_request_carries_user_agent_and_source_headers(
    server: HTTPServer, fetch_once: Fetch, make_source: Callable[..., object]
) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response("ok", content_type="text/plain")

    server.expect_request("/feed").respond_with_handler(handler)
    url = server.url_for("/feed")

    fetch_once(url, source=make_source(url, headers=(("Authorization", "Bearer cluster-members"),)))

    assert seen[0].headers["User-Agent"] == USER_AGENT
    assert seen[0].headers["Authorization"] == "Bearer cluster-members"
    assert seen[0].headers["Accept-Encoding"] == "gzip, deflate"
    assert "If-None-Match" not in seen[0].headers


def test_refetch_sends_etag_and_last_modified_and_accepts_304(
    server: HTTPServer, fetch_once: Fetch, fixture_bytes: Callable[[str], bytes]
) -> None:
    feed = fixture_bytes("fetch/cluster_news.rss")
    server.expect_ordered_request("/feed.xml").respond_with_data(
        feed, headers={"Content-Type": RSS, "ETag": '"v1"', "Last-Modified": LAST_MODIFIED}
    )
    server.expect_ordered_request(
        "/feed.xml", headers={"If-None-Match": '"v1"', "If-Modified-Since": LAST_MODIFIED}
    ).respond_with_data("", status=304, headers={"Cache-Control": "max-age=900"})
    url = server.url_for("/feed.xml")

    first = fetch_once(url)
    second = fetch_once(url, validators=first.validators)

    server.check_assertions()
    assert second.status == 304
    assert second.not_modified is True
    assert second.body == b""
    assert second.validators == Validators(etag='"v1"', last_modified=LAST_MODIFIED)
    assert second.max_age == 900.0


def test_304_with_new_etag_replaces_the_stored_one(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/feed.xml", headers={"If-None-Match": '"v1"'}).respond_with_data(
        "", status=304, headers={"ETag": '"v2"'}
    )

    result = fetch_once(server.url_for("/feed.xml"), validators=Validators(etag='"v1"', last_modified=LAST_MODIFIED))

    assert result.validators == Validators(etag='"v2"', last_modified=LAST_MODIFIED)


def test_404_is_an_http_error_with_status_text(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/agenda.ics").respond_with_data("missing", status=404)
    url = server.url_for("/agenda.ics")

    with pytest.raises(FetchError) as caught:
        fetch_once(url)

    assert caught.value.reason == "http"
    assert caught.value.message == "HTTP 404 Not Found"
    assert caught.value.status == 404
    assert caught.value.permanent is False
    assert str(caught.value) == f"HTTP 404 Not Found ({url})"


def test_500_is_an_http_error(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/news").respond_with_data("oops", status=500)

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/news"))

    assert (caught.value.reason, caught.value.message, caught.value.status) == (
        "http",
        "HTTP 500 Internal Server Error",
        500,
    )
    assert caught.value.retry_after is None


def test_410_is_gone_and_permanent(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/old-feed.xml").respond_with_data("", status=410)

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/old-feed.xml"))

    assert (caught.value.reason, caught.value.message, caught.value.permanent, caught.value.status) == (
        "gone",
        "HTTP 410 Gone",
        True,
        410,
    )


def test_429_with_retry_after_seconds(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/feed").respond_with_data("slow down", status=429, headers={"Retry-After": "120"})

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed"))

    assert (caught.value.reason, caught.value.message, caught.value.retry_after) == (
        "http",
        "HTTP 429 Too Many Requests",
        120.0,
    )


def test_503_with_retry_after_http_date_in_the_past_means_retry_now(server: HTTPServer, fetch_once: Fetch) -> None:
    # The arithmetic against the server's Date is covered by test_retry_after_reads_seconds_or_http_date;
    # the test server always adds its own Date, so only a past date gives an exact answer here.
    server.expect_request("/feed").respond_with_data(
        "maintenance", status=503, headers={"Retry-After": "Wed, 25 Nov 2026 10:30:00 GMT"}
    )

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed"))

    assert (caught.value.message, caught.value.status, caught.value.retry_after) == (
        "HTTP 503 Service Unavailable",
        503,
        0.0,
    )


def test_503_without_retry_after_has_none(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/feed").respond_with_data("maintenance", status=503)

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed"))

    assert (caught.value.reason, caught.value.retry_after) == ("http", None)


def test_cache_control_max_age_becomes_max_age(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/feed").respond_with_data("x", headers={"Cache-Control": "public, max-age=3600"})

    assert fetch_once(server.url_for("/feed")).max_age == 3600.0


def test_expires_in_the_past_gives_max_age_zero(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/feed").respond_with_data("x", headers={"Expires": "Thu, 01 Jan 2026 00:00:00 GMT"})

    assert fetch_once(server.url_for("/feed")).max_age == 0.0


def test_max_age_comes_with_a_304_too(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/feed").respond_with_data("", status=304, headers={"Cache-Control": "s-maxage=300"})

    assert fetch_once(server.url_for("/feed"), validators=Validators(etag='"v1"')).max_age == 300.0


NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Cache-Control": "max-age=600, s-maxage=60"}, 600.0),
        ({"Cache-Control": "public, s-maxage=60"}, 60.0),
        ({"Cache-Control": "no-cache"}, None),
        ({"Expires": "0"}, 0.0),  # RFC 9111 5.3: an invalid date means already expired
        ({"Expires": "Thu, 26 Nov 2026 10:15:00 GMT"}, 900.0),  # no Date: counted from now
        ({"Date": "Thu, 26 Nov 2026 09:00:00 GMT", "Expires": "Thu, 26 Nov 2026 10:00:00 GMT"}, 3600.0),
        ({"Cache-Control": "max-age=120", "Expires": "Thu, 26 Nov 2026 11:00:00 GMT"}, 120.0),
        ({}, None),
    ],
)
def test_cache_max_age_reads_cache_control_then_expires(headers: dict[str, str], expected: float | None) -> None:
    assert cache_max_age(httpx.Headers(headers), NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("90", 90.0), ("Thu, 26 Nov 2026 10:02:00 GMT", 120.0), ("Wed, 25 Nov 2026 10:00:00 GMT", 0.0), ("soon", None)],
)
def test_retry_after_reads_seconds_or_http_date(value: str, expected: float | None) -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": value}), NOW) == expected


def test_retry_after_date_counts_from_the_server_date_not_our_clock() -> None:
    headers = httpx.Headers({"Date": "Thu, 26 Nov 2026 10:00:00 GMT", "Retry-After": "Thu, 26 Nov 2026 10:30:00 GMT"})

    assert retry_after_seconds(headers, datetime(2026, 11, 26, 10, 20, tzinfo=UTC)) == 1800.0


def test_gzip_body_is_returned_decompressed(
    server: HTTPServer, fetch_once: Fetch, fixture_bytes: Callable[[str], bytes]
) -> None:
    feed = fixture_bytes("fetch/cluster_news.rss")
    server.expect_request("/feed.xml").respond_with_data(
        gzip.compress(feed), headers={"Content-Encoding": "gzip", "Content-Type": RSS}
    )

    assert fetch_once(server.url_for("/feed.xml")).body == feed


def test_unsupported_content_encoding_is_refused(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/feed.xml").respond_with_data(b"\x1b\x00", headers={"Content-Encoding": "br"})

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed.xml"))

    assert (caught.value.reason, caught.value.message) == ("http", "unsupported Content-Encoding 'br'")


def test_charset_is_reported_and_body_left_undecoded(server: HTTPServer, fetch_once: Fetch) -> None:
    body = "<rss><channel><title>Pôle Véhicule du Futur</title></channel></rss>".encode("iso-8859-1")
    server.expect_request("/rss").respond_with_data(body, headers={"Content-Type": 'text/xml; charset="ISO-8859-1"'})

    result = fetch_once(server.url_for("/rss"))

    assert (result.content_type, result.charset, result.body) == ("text/xml", "iso-8859-1", body)


def test_closed_port_is_connection_refused(fetch_once: Fetch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed.xml"

    with pytest.raises(FetchError) as caught:
        fetch_once(url)

    assert (caught.value.reason, caught.value.message, caught.value.url) == ("network", "connection refused", url)


def test_unresolvable_name_is_a_dns_error(fetch_once: Fetch) -> None:
    url = "http://news.cluster-network.invalid/feed.xml"

    with pytest.raises(FetchError) as caught:
        fetch_once(url, respect_robots=True)

    assert (caught.value.reason, caught.value.message, caught.value.url) == (
        "dns",
        "name not resolved: news.cluster-network.invalid",
        url,
    )


def test_https_to_a_plain_http_server_is_a_tls_error(server: HTTPServer, fetch_once: Fetch) -> None:
    server.expect_request("/feed").respond_with_data("plain")
    url = server.url_for("/feed").replace("http://", "https://")

    with pytest.raises(FetchError) as caught:
        fetch_once(url)

    assert caught.value.reason == "tls"
    # OpenSSL names the garbage record differently across versions.
    assert caught.value.message in {
        "TLS handshake failed: WRONG_VERSION_NUMBER",
        "TLS handshake failed: RECORD_LAYER_FAILURE",
        "TLS handshake failed: PACKET_LENGTH_TOO_LONG",
    }


def test_unsupported_scheme_is_not_allowed(fetch_once: Fetch) -> None:
    with pytest.raises(FetchError) as caught:
        fetch_once("ftp://ftp.cluster.example/news.xml")

    assert (caught.value.reason, caught.value.message, caught.value.permanent) == (
        "not-allowed",
        "unsupported URL scheme 'ftp'",
        True,
    )


@pytest.mark.parametrize("url", ["http:///feed.xml", "http://news cluster.example/feed.xml"])
def test_url_without_a_usable_host_is_refused(url: str, fetch_once: Fetch) -> None:
    with pytest.raises(FetchError) as caught:
        fetch_once(url)

    assert (caught.value.reason, caught.value.message, caught.value.permanent) == (
        "not-allowed",
        f"invalid URL: {url}",
        True,
    )
