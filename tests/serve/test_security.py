"""Requests that must never reach a file outside feeds_dir, a hidden one, or crash the server.

Traversal attempts go over a raw socket so that no client library normalises
the path before it reaches uvicorn.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class RawResponse:
    status: int | None  # None when the server closed without answering
    headers: Mapping[str, str]
    body: bytes


def raw_request(port: int, request: bytes) -> RawResponse:
    """Send bytes exactly as given and read until the server closes the connection."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(request)
            while data := sock.recv(65536):
                chunks.append(data)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server may answer and close while a huge request is still being sent
    raw = b"".join(chunks)
    if not raw:
        return RawResponse(None, {}, b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


def get(target: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n".encode()


@pytest.mark.parametrize(
    "target",
    [
        "/../outside.xml",
        "/../../etc/passwd",
        "/../../../../../../etc/passwd",
        "/%2e%2e/outside.xml",
        "/%2e%2e%2foutside.xml",
        "/%2E%2E%2Foutside.xml",
        "/..%5coutside.xml",
        "/%2e%2e%5coutside.xml",
        "/sources/../../outside.xml",
        "/sources/%2e%2e/%2e%2e/outside.xml",
        "/sources/..%2f..%2foutside.xml",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/news.xml%00.html",
        "/./news.xml",
        "http://127.0.0.1/../outside.xml",
    ],
)
def test_traversal_attempt_is_404_and_never_leaks_a_file(served: Any, target: str) -> None:
    response = raw_request(served.port, get(target))
    assert response.status == 404
    assert response.body == b"Not Found\n"


def test_symlink_pointing_outside_feeds_dir_is_404(served: Any) -> None:
    (served.feeds / "leak.xml").symlink_to(served.feeds.parent / "outside.xml")
    (served.feeds / "etc").symlink_to("/etc", target_is_directory=True)
    with served.client() as client:
        assert client.get("/leak.xml").status_code == 404
        assert client.get("/etc/passwd").status_code == 404


def test_symlinked_directory_pointing_outside_is_404(served: Any) -> None:
    elsewhere = served.feeds.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "news.xml").write_text("<secret>TOPSECRET</secret>\n")
    (served.feeds / "tags").symlink_to(elsewhere, target_is_directory=True)
    with served.client() as client:
        assert client.get("/tags/news.xml").status_code == 404


def test_symlink_inside_feeds_dir_is_served(served: Any) -> None:
    (served.feeds / "latest.xml").symlink_to("news.xml")
    with served.client() as client:
        response = client.get("/latest.xml", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.content == (served.feeds / "news.xml").read_bytes()


def test_symlink_loop_is_404_and_the_server_carries_on(served: Any) -> None:
    (served.feeds / "a.xml").symlink_to("b.xml")
    (served.feeds / "b.xml").symlink_to("a.xml")
    with served.client() as client:
        assert client.get("/a.xml").status_code == 404
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("name", "url"),
    [
        (".hidden.xml", "/.hidden.xml"),
        ("news.xml.tmp", "/news.xml.tmp"),
        (".news.xml.3f2a.tmp", "/.news.xml.3f2a.tmp"),
        ("events.ics.tmp", "/events.ics.tmp"),
        (".drafts/news.xml", "/.drafts/news.xml"),
        ("notes.txt", "/notes.txt"),
        ("clusterfeeds.db", "/clusterfeeds.db"),
    ],
)
def test_hidden_temporary_and_unpublished_files_are_404(served: Any, name: str, url: str) -> None:
    path = served.feeds / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("<rss>draft TOPSECRET</rss>\n")
    with served.client() as client:
        response = client.get(url)
    assert response.status_code == 404
    assert response.text == "Not Found\n"


def test_symlink_to_hidden_file_is_404(served: Any) -> None:
    (served.feeds / ".draft.xml").write_text("<rss>draft</rss>\n")
    (served.feeds / "public.xml").symlink_to(".draft.xml")
    with served.client() as client:
        assert client.get("/public.xml").status_code == 404


@pytest.mark.parametrize("url", ["/sources", "/sources/", "/sources.xml/"])
def test_directories_are_never_listed(served: Any, url: str) -> None:
    (served.feeds / "sources.xml").mkdir()
    with served.client() as client:
        response = client.get(url)
    assert response.status_code == 404
    assert response.text == "Not Found\n"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods_other_than_get_and_head_are_405(served: Any, method: str) -> None:
    with served.client() as client:
        response = client.request(method, "/news.xml", content=b"<rss/>")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.text == "Method Not Allowed\n"
    assert (served.feeds / "news.xml").read_bytes().startswith(b"<?xml")


def test_post_announcing_a_huge_body_is_answered_405_and_the_connection_closed(served: Any) -> None:
    head = b"POST /news.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000000000\r\n\r\n"
    response = raw_request(served.port, head + b"<rss>" * 1000)
    assert response.status == 405
    assert response.headers["connection"] == "close"
    assert response.body == b"Method Not Allowed\n"


def test_post_to_health_endpoints_is_405(served: Any) -> None:
    with served.client() as client:
        assert client.post("/healthz").status_code == 405
        assert client.post("/metrics").status_code == 405


def test_url_over_the_app_limit_is_414(served: Any) -> None:
    response = raw_request(served.port, get("/news.xml?" + "q" * 4000))
    assert response.status == 414
    assert response.body == b"URI Too Long\n"


def test_100_kb_url_is_refused_and_the_server_survives(served: Any) -> None:
    response = raw_request(served.port, get("/" + "a" * 100_000 + ".xml"))
    # Arriving in one read, the request reaches the app (414); split over reads,
    # h11 gives up after 16 kB of head (400). A reset may swallow the answer.
    assert response.status in (414, 400, None)
    assert b"TOPSECRET" not in response.body
    with served.client() as client:
        assert client.get("/healthz").status_code == 200


def test_unfinished_request_line_over_the_h11_limit_is_400(served: Any) -> None:
    # No line end ever comes, so h11 must judge the 20 kB it holds: too long.
    response = raw_request(served.port, b"GET /" + b"a" * 20_000)
    assert response.status == 400
    assert response.body == b"Invalid HTTP request received."
    with served.client() as client:
        assert client.get("/healthz").status_code == 200


def test_headers_over_the_app_limit_are_431(served: Any) -> None:
    response = raw_request(served.port, get("/news.xml", extra="X-Padding: " + "p" * 10_000 + "\r\n"))
    assert response.status == 431
    assert response.body == b"Request Header Fields Too Large\n"


def test_unfinished_headers_over_the_h11_limit_are_400(served: Any) -> None:
    many = "".join(f"X-Padding-{i}: {'p' * 1000}\r\n" for i in range(20))
    head = f"GET /news.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}".encode()
    response = raw_request(served.port, head)
    assert response.status == 400
    assert response.body == b"Invalid HTTP request received."


def test_not_found_carries_security_headers(served: Any) -> None:
    response = raw_request(served.port, get("/../outside.xml"))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
