"""Published files over real HTTP: content types, validators and 304s, gzip, HEAD."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.serve import STREAMED_FROM_BYTES

IDENTITY = {"Accept-Encoding": "identity"}
LAST_MODIFIED = "Thu, 26 Nov 2026 11:30:00 GMT"


def strong_etag(path: Path) -> str:
    return '"' + hashlib.sha256(path.read_bytes()).hexdigest()[:32] + '"'


@pytest.mark.parametrize(
    ("url", "file", "content_type"),
    [
        ("/news.xml", "news.xml", "application/rss+xml; charset=utf-8"),
        ("/news.atom", "news.atom", "application/atom+xml; charset=utf-8"),
        ("/news.json", "news.json", "application/feed+json; charset=utf-8"),
        ("/events.ics", "events.ics", "text/calendar; charset=utf-8"),
        ("/sources.opml", "sources.opml", "text/x-opml; charset=utf-8"),
        ("/sources/eccp-news.ics", "sources/eccp-news.ics", "text/calendar; charset=utf-8"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/", "index.html", "text/html; charset=utf-8"),
    ],
)
def test_each_published_file_is_served_with_its_content_type(
    served: Any, url: str, file: str, content_type: str
) -> None:
    with served.client() as client:
        response = client.get(url, headers=IDENTITY)
    expected = (served.feeds / file).read_bytes()
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == expected
    assert response.headers["content-length"] == str(len(expected))
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["last-modified"] == LAST_MODIFIED
    assert response.headers["etag"] == strong_etag(served.feeds / file)
    assert response.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in response.headers


def test_index_page_carries_a_content_security_policy_without_scripts(served: Any) -> None:
    with served.client() as client:
        response = client.get("/", headers=IDENTITY)
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    assert "European cluster news and events" in response.text


def test_feed_response_carries_security_headers(served: Any) -> None:
    with served.client() as client:
        response = client.get("/news.xml", headers=IDENTITY)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "server" not in response.headers


def test_matching_if_none_match_gives_304_with_validators_and_no_body(served: Any) -> None:
    etag = strong_etag(served.feeds / "news.xml")
    with served.client() as client:
        response = client.get("/news.xml", headers={**IDENTITY, "If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["last-modified"] == LAST_MODIFIED
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["vary"] == "Accept-Encoding"
    assert "content-type" not in response.headers


@pytest.mark.parametrize(
    "if_none_match",
    ['"0000", {etag}', "W/{etag}", "*", '"0000",W/{etag}'],
)
def test_if_none_match_lists_weak_tags_and_star_give_304(served: Any, if_none_match: str) -> None:
    etag = strong_etag(served.feeds / "events.ics")
    with served.client() as client:
        response = client.get("/events.ics", headers={"If-None-Match": if_none_match.format(etag=etag)})
    assert response.status_code == 304


def test_stale_if_none_match_gives_200_even_when_if_modified_since_matches(served: Any) -> None:
    with served.client() as client:
        response = client.get(
            "/news.xml", headers={**IDENTITY, "If-None-Match": '"an-older-version"', "If-Modified-Since": LAST_MODIFIED}
        )
    assert response.status_code == 200
    assert response.content == (served.feeds / "news.xml").read_bytes()


@pytest.mark.parametrize(
    ("if_modified_since", "status"),
    [
        (LAST_MODIFIED, 304),
        ("Thu, 26 Nov 2026 12:00:00 GMT", 304),
        ("Thu, 26 Nov 2026 11:29:59 GMT", 200),
        ("Wed, 25 Nov 2026 11:30:00 GMT", 200),
        ("yesterday", 200),
    ],
)
def test_if_modified_since_compares_with_file_mtime(served: Any, if_modified_since: str, status: int) -> None:
    with served.client() as client:
        response = client.get("/news.atom", headers={**IDENTITY, "If-Modified-Since": if_modified_since})
    assert response.status_code == status
    assert response.headers["last-modified"] == LAST_MODIFIED


def test_gzip_client_gets_compressed_body_with_weak_etag(served: Any) -> None:
    original = (served.feeds / "news.xml").read_bytes()
    with served.client() as client, client.stream("GET", "/news.xml", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["etag"] == "W/" + strong_etag(served.feeds / "news.xml")
    assert response.headers["content-length"] == str(len(raw))
    assert len(raw) < len(original)
    assert gzip.decompress(raw) == original


def test_gzip_variant_etag_revalidates_to_304(served: Any) -> None:
    with served.client() as client:
        first = client.get("/news.xml", headers={"Accept-Encoding": "gzip"})
        again = client.get("/news.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["etag"] == "W/" + strong_etag(served.feeds / "news.xml")


@pytest.mark.parametrize("accept_encoding", ["gzip;q=0", "br", "identity", "*;q=0", "gzip;q=0, *"])
def test_client_that_refuses_gzip_gets_identity(served: Any, accept_encoding: str) -> None:
    with served.client() as client:
        response = client.get("/news.xml", headers={"Accept-Encoding": accept_encoding})
    assert "content-encoding" not in response.headers
    assert response.headers["etag"] == strong_etag(served.feeds / "news.xml")
    assert response.content == (served.feeds / "news.xml").read_bytes()


@pytest.mark.parametrize("accept_encoding", ["gzip, deflate, br", "deflate, gzip;q=0.5", "x-gzip", "*"])
def test_client_accepting_gzip_in_any_spelling_gets_gzip(served: Any, accept_encoding: str) -> None:
    with served.client() as client:
        response = client.get("/news.xml", headers={"Accept-Encoding": accept_encoding})
    assert response.headers["content-encoding"] == "gzip"


def test_tiny_file_is_not_gzipped(served: Any) -> None:
    with served.client() as client:
        response = client.get("/sources/eccp-news.ics", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == "229"
    assert response.headers["etag"] == strong_etag(served.feeds / "sources/eccp-news.ics")


@pytest.mark.parametrize("accept_encoding", ["identity", "gzip"])
def test_head_has_the_get_headers_and_no_body(served: Any, accept_encoding: str) -> None:
    with served.client() as client:
        got = client.get("/news.xml", headers={"Accept-Encoding": accept_encoding})
        head = client.head("/news.xml", headers={"Accept-Encoding": accept_encoding})
    assert head.status_code == 200
    assert head.content == b""
    assert {k: v for k, v in head.headers.items() if k != "date"} == {
        k: v for k, v in got.headers.items() if k != "date"
    }


def test_replaced_file_is_served_at_once_with_a_new_etag(served: Any) -> None:
    path = served.feeds / "news.json"
    old_etag = strong_etag(path)
    with served.client() as client:
        assert client.get("/news.json", headers=IDENTITY).headers["etag"] == old_etag
        replacement = path.with_name("news.json.tmp")
        replacement.write_text('{"version": "https://jsonfeed.org/version/1.1", "title": "updated", "items": []}\n')
        os.replace(replacement, path)
        response = client.get("/news.json", headers={**IDENTITY, "If-None-Match": old_etag})
    assert response.status_code == 200
    assert response.json()["title"] == "updated"
    assert response.headers["etag"] == strong_etag(path)
    assert response.headers["etag"] != old_etag


def test_query_string_does_not_change_the_file(served: Any) -> None:
    with served.client() as client:
        response = client.get("/events.ics?utm_source=newsletter", headers=IDENTITY)
    assert response.status_code == 200
    assert response.content == (served.feeds / "events.ics").read_bytes()


def test_get_with_a_request_body_is_answered_and_the_body_ignored(served: Any) -> None:
    with served.client() as client:
        response = client.request("GET", "/news.atom", content=b"x" * 5000, headers=IDENTITY)
        after = client.get("/news.atom", headers=IDENTITY)
    assert response.status_code == 200
    assert response.content == (served.feeds / "news.atom").read_bytes()
    assert after.status_code == 200


def test_missing_file_is_404_and_not_cached(served: Any) -> None:
    with served.client() as client:
        response = client.get("/tags/hydrogen.xml")
    assert response.status_code == 404
    assert response.text == "Not Found\n"
    assert response.headers["cache-control"] == "no-store"


def test_missing_index_is_404(served: Any) -> None:
    (served.feeds / "index.html").unlink()
    with served.client() as client:
        assert client.get("/").status_code == 404


def test_httpx_default_client_decodes_gzip_to_the_file(served: Any) -> None:
    response = httpx.get(served.base_url + "/news.xml", timeout=10.0, verify=False)
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == (served.feeds / "news.xml").read_bytes()


def _big_calendar(path: Path, marker: str) -> bytes:
    """A calendar past ``STREAMED_FROM_BYTES``: what a European platform's merged events.ics grows to."""
    event = (
        "BEGIN:VEVENT\r\nUID:{n}-{marker}@clusters.example.eu\r\nDTSTAMP:20261126T113000Z\r\n"
        "DTSTART;TZID=Europe/Vienna:20270115T090000\r\nSUMMARY:Cluster matchmaking {n}: hydrogen valleys\r\n"
        "LOCATION:Linz\\, Design Center\r\nEND:VEVENT\r\n"
    )
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//clusterfeeds//EN\r\n"
    body += "".join(event.format(n=n, marker=marker) for n in range(STREAMED_FROM_BYTES // 200 + 1))
    data = (body + "END:VCALENDAR\r\n").encode()
    assert len(data) > STREAMED_FROM_BYTES
    path.write_bytes(data)
    return data


def test_a_big_file_is_served_whole_in_both_variants_and_only_its_gzip_is_kept(served: Any) -> None:
    path = served.feeds / "events.ics"
    data = _big_calendar(path, "first")
    with served.client() as client:
        with client.stream("GET", "/events.ics", headers={"Accept-Encoding": "gzip"}) as packed:
            raw = b"".join(packed.iter_raw())
        plain = client.get("/events.ics", headers=IDENTITY)
        head = client.head("/events.ics", headers=IDENTITY)
        again = client.get("/events.ics", headers={**IDENTITY, "If-None-Match": plain.headers["etag"]})
    assert gzip.decompress(raw) == data
    assert packed.headers["content-length"] == str(len(raw))
    assert packed.headers["etag"] == "W/" + strong_etag(path)
    assert plain.status_code == 200
    assert plain.content == data
    assert plain.headers["content-length"] == str(len(data))
    assert plain.headers["etag"] == strong_etag(path)
    assert "content-encoding" not in plain.headers
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(data)))
    assert again.status_code == 304
    # Only the gzip variant is kept: bytes changed in place (same inode, size and mtime, which no
    # publish does) reach an identity client at once, and a gzip client only with a new version.
    stamp = path.stat()
    with path.open("r+b") as f:
        f.write(b"BEGIN:VCALENDAR\r\nVERSION:2.1")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    with served.client() as client:
        plain_now = client.get("/events.ics", headers=IDENTITY).content
        packed_now = client.get("/events.ics", headers={"Accept-Encoding": "gzip"}).content
    assert plain_now.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.1")
    assert packed_now == data


def test_a_big_file_replaced_is_served_in_its_new_version(served: Any) -> None:
    path = served.feeds / "events.ics"
    _big_calendar(path, "first")
    with served.client() as client:
        first = client.get("/events.ics", headers=IDENTITY)
        replacement = path.with_name("events.ics.tmp")
        data = _big_calendar(replacement, "second")
        os.replace(replacement, path)
        second = client.get("/events.ics", headers={**IDENTITY, "If-None-Match": first.headers["etag"]})
    assert second.status_code == 200
    assert second.content == data
    assert b"0-second@clusters.example.eu" in second.content
    assert second.headers["etag"] == strong_etag(path) != first.headers["etag"]
