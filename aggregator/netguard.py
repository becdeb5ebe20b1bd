"""Refuse to fetch from addresses a public feed has no business pointing at.

A source URL, or any redirect hop, could name an intranet host or a cloud
metadata endpoint (169.254.169.254).  The check runs on the addresses DNS
returns, not on the name, and the connection is then made to exactly those
checked addresses (``GuardedTransport``), so a name that re-resolves to a
private address between check and connect (DNS rebinding) is not followed.

The one remaining window is a pooled keep-alive connection: it is reused
for a host whose fresh resolution passed the check, but it points at the
address that passed when it was opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import select
import socket
import ssl
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
from httpcore import SOCKET_OPTION, AnyIOBackend, AsyncNetworkBackend, AsyncNetworkStream

from aggregator.errors import FetchError

__all__ = [
    "GuardedTransport",
    "Policy",
    "Resolutions",
    "address_category",
    "check_host",
    "is_fetchable_address",
    "is_public_address",
    "pinned",
    "resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598 shared address space
_ULA = ipaddress.IPv6Network("fc00::/7")  # RFC 4193 unique local
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the embedded IPv4 is the real target
RESOLUTION_TTL_S = 30.0  # how long a DNS answer is reused (a short time: names do move)
MAX_RESOLUTIONS = 10_000  # expired answers are dropped when the cache grows past this


def _v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    return ip if isinstance(ip, ipaddress.IPv4Address) else None


def _v6(ip: IPAddress) -> ipaddress.IPv6Address | None:
    return ip if isinstance(ip, ipaddress.IPv6Address) else None


# Ordered: the first matching category names the address in messages.
_CATEGORIES: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("shared (CGNAT)", lambda ip: (v4 := _v4(ip)) is not None and v4 in _CGNAT),
    ("unique-local", lambda ip: (v6 := _v6(ip)) is not None and v6 in _ULA),
    ("reserved", lambda ip: ip.is_reserved),
    ("private", lambda ip: ip.is_private),
    ("non-global", lambda ip: not ip.is_global),
)

# Never a unicast host: refused even when private addresses are allowed
# (connecting to 0.0.0.0 reaches the local machine on Linux).
_NEVER = frozenset({"unspecified", "multicast", "reserved"})


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address really designates (mapped or NAT64), else itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _parse(ip: IPAddress | str) -> IPAddress:
    if isinstance(ip, str):
        return ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id
    return ip


def address_category(ip: IPAddress | str) -> str | None:
    """Why ``ip`` is not public ("loopback", "private", ...), or None for a public address."""
    address = _unwrap(_parse(ip))
    return next((name for name, test in _CATEGORIES if test(address)), None)


def is_public_address(ip: IPAddress | str) -> bool:
    """True for a globally routable unicast address; False for private, loopback, CGNAT, ULA..."""
    return address_category(ip) is None


def is_fetchable_address(ip: IPAddress | str, *, allow_private: bool) -> bool:
    """Whether a fetch may connect to ``ip`` under the given policy."""
    category = address_category(ip)
    if category is None:
        return True
    return allow_private and category not in _NEVER


@dataclass(frozen=True, slots=True)
class Policy:
    """Where one fetch may go: private addresses allowed? only these host names?"""

    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()


def _norm_host(host: str) -> str:
    return host.strip().lower().rstrip(".").strip("[]")


def check_host(url: str, host: str, policy: Policy) -> None:
    """Raise FetchError("not-allowed") when an allow-list is set and ``host`` is not on it."""
    if policy.allowed_hosts and _norm_host(host) not in {_norm_host(h) for h in policy.allowed_hosts}:
        raise FetchError(
            url, f"host '{_norm_host(host)}' is not in allowed_hosts", reason="not-allowed", permanent=True
        )


class Resolutions:
    """DNS answers per (host, port), kept for a few seconds.

    A cycle asks for the same few hosts hundreds of times, and each lookup is a
    thread hop. Only the lookup is cached: the policy check still runs on every
    call (sources differ in ``allow_private``), and connections still go only to
    the checked addresses, so a cached answer cannot be steered anywhere new.
    """

    def __init__(self, ttl: float = RESOLUTION_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._answers: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}

    def get(self, host: str, port: int) -> tuple[str, ...] | None:
        entry = self._answers.get((_norm_host(host), port))
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def put(self, host: str, port: int, addresses: tuple[str, ...]) -> None:
        now = self._clock()
        if len(self._answers) > MAX_RESOLUTIONS:
            self._answers = {key: entry for key, entry in self._answers.items() if entry[0] > now}
        self._answers[(_norm_host(host), port)] = (now + self.ttl, addresses)


def _literal(host: str) -> str | None:
    """``host`` as an address when it is one (no lookup needed), else None."""
    name = _norm_host(host)
    if "%" in name:
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return None
    return name


async def _lookup(url: str, host: str, port: int) -> tuple[str, ...]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(url, f"name not resolved: {host}", reason="dns") from exc
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchError(url, f"name not resolved: {host}", reason="dns")
    return addresses


async def resolve(
    url: str, host: str, port: int, policy: Policy, *, cache: Resolutions | None = None
) -> tuple[str, ...]:
    """Addresses of ``host`` that the policy allows connecting to; raises FetchError otherwise.

    Every address must pass: a name that resolves to one public and one
    private address is refused rather than raced. ``cache`` (optional) saves
    repeated lookups of one name; failed lookups are not kept.
    """
    check_host(url, host, policy)
    literal = _literal(host)
    if literal is not None:
        addresses: tuple[str, ...] = (literal,)
    else:
        cached = cache.get(host, port) if cache is not None else None
        if cached is not None:
            addresses = cached
        else:
            addresses = await _lookup(url, host, port)
            if cache is not None:
                cache.put(host, port, addresses)
    for address in addresses:
        if is_fetchable_address(address, allow_private=policy.allow_private):
            continue
        category = address_category(address)
        named = address if _norm_host(host) == _norm_host(address) else f"{host} resolves to {address}, which"
        if category in _NEVER:
            message = f"{named} is not a public address ({category}); never fetched, even with allow_private"
        else:
            message = f"{named} is not a public address ({category}); set allow_private to fetch it"
        raise FetchError(url, message, reason="private-address", permanent=True)
    return addresses


# (host, port) -> addresses checked by ``resolve`` for the request being sent
# in this task.  httpcore opens connections in the task that sends the request,
# so the pin set around ``client.send`` is visible to the backend below.
_PINS: contextvars.ContextVar[Mapping[tuple[str, int], tuple[str, ...]]] = contextvars.ContextVar(
    "clusterfeeds_netguard_pins", default=types.MappingProxyType({})
)


@contextlib.contextmanager
def pinned(host: str, port: int, addresses: tuple[str, ...]) -> Iterator[None]:
    """Within this block, connections to ``host:port`` go only to ``addresses``."""
    token = _PINS.set({**_PINS.get(), (_norm_host(host), port): addresses})
    try:
        yield
    finally:
        _PINS.reset(token)


def _readable(sock: socket.socket) -> bool:
    """True when a read would not block: on an idle keep-alive connection, the server closed it."""
    fd = sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(AsyncNetworkStream):
    """httpcore's anyio stream, answering "is the idle socket readable?" cheaply.

    httpcore asks that of every pooled connection each time it assigns a request;
    anyio builds all of a socket's attributes (getpeername included) to answer it.
    Here the raw socket is looked up once.
    """

    def __init__(self, inner: AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self._socket is None or _readable(self._socket)
        if info == "socket":
            return self._socket
        return self._inner.get_extra_info(info)


class _PinnedBackend(AsyncNetworkBackend):
    """Connects to the addresses pinned for a host, never to a fresh DNS answer.

    A host without a pin is refused: every connection must have been checked.
    """

    def __init__(self) -> None:
        self._backend = AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        addresses = _PINS.get().get((_norm_host(host), port))
        if not addresses:
            raise httpcore.ConnectError(f"no checked address for {host}:{port}")
        last: Exception | None = None
        for address in addresses:
            try:
                stream = await self._backend.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
                return _Stream(stream)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP/1.1 transport whose connections go only to addresses ``resolve`` checked.

    httpx does not expose httpcore's ``network_backend``, so the pool is
    rebuilt with the same settings and the pinning backend.  No proxy: a
    proxy would resolve names itself and defeat the check.
    """

    def __init__(self, *, limits: httpx.Limits) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, http1=True, http2=False, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=_PinnedBackend(),
        )
