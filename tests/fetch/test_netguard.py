"""netguard: which addresses are public, and the fetcher refusing the others on every hop.

These tests use sources WITHOUT allow_private unless they say otherwise: the
loopback test server is exactly the kind of address the guard must refuse.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import httpx
import pytest
from pytest_httpserver import HTTPServer

from aggregator.config import Defaults, SourceConfig
from aggregator.errors import FetchError
from aggregator.fetch import FetchResult
from aggregator.netguard import (
    GuardedTransport,
    Policy,
    Resolutions,
    address_category,
    is_fetchable_address,
    is_public_address,
    resolve,
)

Fetch = Callable[..., FetchResult]


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "193.105.164.130", "2a00:1450:4001:82b::200e", "64:ff9b::808:808", "100.63.255.255", "100.128.0.1"],
)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(address) is True
    assert address_category(address) is None


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.10", "private"),
        ("127.0.0.1", "loopback"),
        ("127.0.0.2", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoint
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "private"),  # documentation range
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1%eth0", "link-local"),
        ("fd12:3456:789a::1", "unique-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.7", "private"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2001:db8::1", "private"),  # documentation range
    ],
)
def test_non_public_addresses_are_named_by_category(address: str, category: str) -> None:
    assert is_public_address(address) is False
    assert address_category(address) == category


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("10.1.2.3", True), ("127.0.0.1", True), ("fd00::5", True), ("0.0.0.0", False), ("224.0.0.1", False)],
)
def test_allow_private_never_allows_unspecified_or_multicast(address: str, allowed: bool) -> None:
    assert is_fetchable_address(address, allow_private=True) is allowed
    assert is_fetchable_address(address, allow_private=False) is False


def test_loopback_address_is_refused_without_allow_private(
    server: HTTPServer, fetch_once: Fetch, make_source: Callable[..., SourceConfig]
) -> None:
    server.expect_request("/feed").respond_with_data("internal")
    url = server.url_for("/feed")

    with pytest.raises(FetchError) as caught:
        fetch_once(url, source=make_source(url, allow_private=False), respect_robots=True)

    assert (caught.value.reason, caught.value.message, caught.value.permanent) == (
        "private-address",
        "127.0.0.1 is not a public address (loopback); set allow_private to fetch it",
        True,
    )
    assert server.log == []  # refused before connecting, robots.txt included


def test_name_is_checked_after_dns_resolution(
    server: HTTPServer, fetch_once: Fetch, make_source: Callable[..., SourceConfig]
) -> None:
    port = server.port
    url = f"http://localhost:{port}/feed"
    first = socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0][4][0]

    with pytest.raises(FetchError) as caught:
        fetch_once(url, source=make_source(url, allow_private=False))

    assert (caught.value.reason, caught.value.message) == (
        "private-address",
        f"localhost resolves to {first}, which is not a public address (loopback); set allow_private to fetch it",
    )


def test_source_allow_private_lets_the_fetch_through(
    server: HTTPServer, fetch_once: Fetch, make_source: Callable[..., SourceConfig]
) -> None:
    server.expect_request("/feed").respond_with_data("intranet news")
    url = server.url_for("/feed")

    assert fetch_once(url, source=make_source(url, allow_private=True)).body == b"intranet news"


def test_defaults_allow_private_lets_the_fetch_through(
    server: HTTPServer, fetch_once: Fetch, make_source: Callable[..., SourceConfig]
) -> None:
    server.expect_request("/feed").respond_with_data("intranet news")
    url = server.url_for("/feed")

    result = fetch_once(url, source=make_source(url, allow_private=False), defaults=Defaults(allow_private=True))

    assert result.body == b"intranet news"


def test_redirect_hop_is_checked_again_and_unspecified_address_refused(
    server: HTTPServer, fetch_once: Fetch, make_source: Callable[..., SourceConfig]
) -> None:
    # Even a source trusted with private addresses may not be bounced to 0.0.0.0,
    # which Linux routes to the local machine.
    target = f"http://0.0.0.0:{server.port}/admin"
    server.expect_request("/feed").respond_with_data("", status=302, headers={"Location": target})
    url = server.url_for("/feed")

    with pytest.raises(FetchError) as caught:
        fetch_once(url, source=make_source(url, allow_private=True))

    assert (caught.value.reason, caught.value.message, caught.value.url) == (
        "private-address",
        "0.0.0.0 is not a public address (unspecified); never fetched, even with allow_private",
        url,
    )
    assert len(server.log) == 1


def test_redirect_to_a_host_outside_allowed_hosts_is_refused_at_the_hop(
    server: HTTPServer, other_server: HTTPServer, fetch_once: Fetch
) -> None:
    other_server.expect_request("/feed").respond_with_data("elsewhere")
    server.expect_request("/feed").respond_with_data(
        "", status=301, headers={"Location": other_server.url_for("/feed")}
    )

    with pytest.raises(FetchError) as caught:
        fetch_once(server.url_for("/feed"), defaults=Defaults(allowed_hosts=("127.0.0.1",)))

    assert (caught.value.reason, caught.value.message) == ("not-allowed", "host '127.0.0.2' is not in allowed_hosts")
    assert len(server.log) == 1
    assert other_server.log == []


def test_first_host_outside_allowed_hosts_is_refused(other_server: HTTPServer, fetch_once: Fetch) -> None:
    with pytest.raises(FetchError) as caught:
        fetch_once(other_server.url_for("/feed"), defaults=Defaults(allowed_hosts=("news.cluster.example",)))

    assert (caught.value.reason, caught.value.message, caught.value.permanent) == (
        "not-allowed",
        "host '127.0.0.2' is not in allowed_hosts",
        True,
    )


def test_transport_refuses_a_connection_nobody_checked(server: HTTPServer) -> None:
    server.expect_request("/feed").respond_with_data("unchecked")

    async def unchecked_get() -> None:
        async with httpx.AsyncClient(transport=GuardedTransport(limits=httpx.Limits())) as client:
            await client.get(server.url_for("/feed"))

    with pytest.raises(httpx.ConnectError) as caught:
        asyncio.run(unchecked_get())

    assert str(caught.value) == f"no checked address for 127.0.0.1:{server.port}"
    assert server.log == []


def test_a_cached_dns_answer_is_still_checked_against_each_sources_policy() -> None:
    # "cluster.invalid" cannot resolve: only the cached answer (a private address) can be used.
    cache = Resolutions(ttl=30.0, clock=lambda: 100.0)
    cache.put("Cluster.Invalid.", 443, ("10.20.30.40",))
    url = "https://cluster.invalid/feed.xml"

    allowed = asyncio.run(resolve(url, "cluster.invalid", 443, Policy(allow_private=True), cache=cache))
    with pytest.raises(FetchError) as refused:
        asyncio.run(resolve(url, "cluster.invalid", 443, Policy(), cache=cache))

    assert allowed == ("10.20.30.40",)
    assert refused.value.reason == "private-address"
    assert refused.value.message == (
        "cluster.invalid resolves to 10.20.30.40, which is not a public address (private); set allow_private to fetch it"
    )


def test_a_dns_answer_is_looked_up_again_after_its_time() -> None:
    now = [100.0]
    cache = Resolutions(ttl=30.0, clock=lambda: now[0])
    cache.put("cluster.invalid", 443, ("10.20.30.40",))
    now[0] = 129.9
    kept = cache.get("cluster.invalid", 443)
    now[0] = 130.0
    url = "https://cluster.invalid/feed.xml"
    with pytest.raises(FetchError) as lookup:
        asyncio.run(resolve(url, "cluster.invalid", 443, Policy(allow_private=True), cache=cache))

    assert kept == ("10.20.30.40",)
    assert (lookup.value.reason, lookup.value.message) == ("dns", "name not resolved: cluster.invalid")
    assert cache.get("cluster.invalid", 443) is None  # a failed lookup is not kept


def test_an_address_literal_needs_no_lookup_and_is_checked() -> None:
    with pytest.raises(FetchError) as refused:
        asyncio.run(resolve("http://169.254.169.254/latest", "169.254.169.254", 80, Policy()))
    assert refused.value.message == (
        "169.254.169.254 is not a public address (link-local); set allow_private to fetch it"
    )
    assert asyncio.run(resolve("http://[::1]/", "::1", 80, Policy(allow_private=True))) == ("::1",)
