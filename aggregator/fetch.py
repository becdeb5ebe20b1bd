"""Fetching: one URL in, bytes and cache facts out, or a FetchError saying why not.

The only module that talks HTTP.  It never decodes text (parsers sniff BOMs
and declarations themselves) and never parses documents; it does enforce
the rules a polite, safe fetcher keeps: conditional GETs, a whole-fetch
deadline, a size cap that also holds after decompression, redirects checked
hop by hop against ``netguard``, robots.txt, and limits on concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import io
import os
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx

from aggregator import USER_AGENT
from aggregator.config import Defaults, SourceConfig
from aggregator.errors import FetchError
from aggregator.netguard import GuardedTransport, Policy, Resolutions, pinned, resolve
from aggregator.records import Validators
from aggregator.robots import (
    MAX_ROBOTS_BYTES,
    RobotsCache,
    RobotsRules,
    origin_of,
    robots_url,
    rules_from_response,
    rules_unavailable,
)
from aggregator.urls import fetchable_url

__all__ = ["FetchResult", "Fetcher", "cache_max_age", "retry_after_seconds"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, text/calendar, "
    "application/xml;q=0.9, application/json;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)
# Only codings we can decompress with a bounded output; brotli/zstd are not asked for.
_ACCEPT_ENCODING = "gzip, deflate"
# robots.txt redirects we cannot follow mean "unavailable" (RFC 9309 2.3.1.2: assume allowed).
# Only a redirect loop or chain is remembered: the others depend on the fetching source's policy.
_ROBOTS_UNFOLLOWABLE = frozenset({"redirects", "private-address", "not-allowed"})


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str  # requested
    final_url: str  # after redirects
    status: int  # 200, 304 ...
    body: bytes  # b"" for 304
    content_type: str | None  # media type lower-cased, no parameters
    charset: str | None  # from Content-Type, if any
    validators: Validators  # to store for the next conditional GET
    not_modified: bool
    permanent_redirect: str | None  # 301/308 target to put in sources.toml
    max_age: float | None  # seconds, from Cache-Control max-age / Expires
    elapsed: float  # seconds


# Media types of local files by extension; a fixed table rather than mimetypes,
# whose answers depend on the host's /etc/mime.types.
_FILE_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".xml": "application/xml",
    ".json": "application/json",
    ".ics": "text/calendar",
    ".ical": "text/calendar",
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
}


# --- small pure questions about HTTP headers --------------------------------


def _split_content_type(value: str | None) -> tuple[str | None, str | None]:
    """``text/xml; charset="ISO-8859-1"`` -> ("text/xml", "iso-8859-1")."""
    if not value:
        return None, None
    media, *params = value.split(";")
    media_type = media.strip().lower() or None
    charset = None
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "charset":
            charset = raw.strip().strip("\"'").lower() or None
    return media_type, charset


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _reference_now(headers: httpx.Headers, now: datetime) -> datetime:
    """The server's Date when it sent one: Expires and Retry-After dates are relative to its clock."""
    dates = headers.get_list("date")  # not get(): several values would be joined with commas
    return (_http_date(dates[0]) if dates else None) or now


def cache_max_age(headers: httpx.Headers, now: datetime) -> float | None:
    """Seconds the response stays fresh: Cache-Control max-age, else s-maxage, else Expires - Date."""
    directives: dict[str, str] = {}
    for part in headers.get_list("cache-control", split_commas=True):
        name, _, value = part.partition("=")
        directives.setdefault(name.strip().lower(), value.strip().strip('"'))
    for name in ("max-age", "s-maxage"):
        if name in directives:
            try:
                return float(max(0, int(directives[name])))
            except ValueError:
                continue
    expires = headers.get("expires")
    if expires is None:
        return None
    when = _http_date(expires)
    if when is None:
        return 0.0  # RFC 9111 5.3: an invalid Expires means "already expired"
    return max(0.0, (when - _reference_now(headers, now)).total_seconds())


def retry_after_seconds(headers: httpx.Headers, now: datetime) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP date (RFC 9110 10.2.3)."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    return max(0.0, (when - _reference_now(headers, now)).total_seconds())


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _default_port(url: httpx.URL) -> int:
    return url.port or _DEFAULT_PORTS.get(url.scheme, 80)


def _checked_url(error_url: str, url: str) -> httpx.URL:
    """``url`` parsed, or FetchError("not-allowed") when it has no usable host or port.

    httpx accepts ``http://[broken/`` or a port of 99999; urlsplit does not.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError when out of range
        parsed = httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        parsed = None
    if parsed is None or not parts.hostname or "%" in parsed.host or " " in parts.hostname:
        raise FetchError(error_url, f"invalid URL: {url}", reason="not-allowed", permanent=True)
    return parsed


def _without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


# --- bounded decompression ---------------------------------------------------


class _Inflater:
    """One gzip/deflate layer that never yields more output than it is allowed.

    httpx's own decoders inflate a whole network chunk at once, so 64 KiB of
    a gzip bomb could become 64 MiB before any size check; here every call
    to zlib carries ``max_length``.
    """

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._obj = zlib.decompressobj(31 if coding == "gzip" else 15)
        self._started = False

    def push(self, data: bytes, room: int) -> bytes:
        """Inflate ``data``, stopping as soon as more than ``room`` bytes came out."""
        out = bytearray()
        while data:
            try:
                chunk = self._obj.decompress(data, room + 1 - len(out))
            except zlib.error:
                if self._coding == "deflate" and not self._started:
                    # Many servers send raw deflate without the zlib header.
                    self._obj = zlib.decompressobj(-15)
                    self._started = True
                    continue
                raise
            self._started = True
            out += chunk
            if len(out) > room:
                break
            if self._obj.eof and self._obj.unused_data and self._coding == "gzip":
                data = self._obj.unused_data  # another gzip member follows
                self._obj = zlib.decompressobj(31)
            else:
                data = self._obj.unconsumed_tail
        return bytes(out)

    def finish(self) -> None:
        if self._started and not self._obj.eof:
            raise zlib.error(f"truncated {self._coding} stream")


class _BodyReader:
    """Counts (and inflates) a response body against a byte limit."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        for coding in codings:
            if coding not in ("gzip", "x-gzip", "deflate"):
                raise ValueError(f"unsupported Content-Encoding '{coding}'")
        # Codings are listed in the order applied; undo them in reverse.
        self._layers = [_Inflater("gzip" if c == "x-gzip" else c) for c in reversed(codings)]
        self.limit = limit
        # One growing buffer whose bytes ``getvalue`` hands over without a copy: chunks joined at the
        # end held a 33 MB calendar twice (the daemon peaked 66 MB over its size for a moment).
        self._body = io.BytesIO()
        self.size = 0

    def push(self, data: bytes) -> bool:
        """Add raw bytes; False once the decoded body went past the limit."""
        for layer in self._layers:
            data = layer.push(data, self.limit - self.size)
        self.size += len(data)
        self._body.write(data)
        return self.size <= self.limit

    def finish(self) -> bytes:
        for layer in self._layers:
            layer.finish()
        return self._body.getvalue()

    def first(self) -> bytes:
        """The first ``limit`` decoded bytes, for documents read only in part (robots.txt)."""
        return self._body.getvalue()[: self.limit]


# --- transport errors as sentences --------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)


def _transport_error(url: str, exc: httpx.HTTPError, phase_timeout: float) -> FetchError:
    """One FetchError with a distinct reason for each way the network can fail."""
    if isinstance(exc, httpx.ConnectTimeout):
        return FetchError(url, f"timeout: connect took longer than {phase_timeout:g} s", reason="timeout")
    if isinstance(exc, httpx.ReadTimeout):
        return FetchError(url, f"timeout: no data for {phase_timeout:g} s (read)", reason="timeout")
    if isinstance(exc, httpx.WriteTimeout):
        return FetchError(url, f"timeout: sending the request took longer than {phase_timeout:g} s", reason="timeout")
    if isinstance(exc, httpx.PoolTimeout):
        return FetchError(url, f"timeout: no free connection within {phase_timeout:g} s", reason="timeout")
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FetchError(url, f"TLS certificate rejected: {cause.verify_message}", reason="tls")
        if isinstance(cause, ssl.SSLError):
            return FetchError(url, f"TLS handshake failed: {cause.reason or cause}", reason="tls")
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return FetchError(url, f"name not resolved: {httpx.URL(url).host}", reason="dns")
        if isinstance(cause, ConnectionRefusedError):
            return FetchError(url, "connection refused", reason="network")
        if isinstance(cause, ConnectionResetError):
            return FetchError(url, "connection reset by peer", reason="network")
    if isinstance(exc, httpx.RemoteProtocolError):
        return FetchError(url, f"connection closed or broken response: {exc}", reason="network")
    return FetchError(url, f"network error: {exc or type(exc).__name__}", reason="network")


# --- the fetcher -------------------------------------------------------------

IDLE_CONNECTIONS_PER_SLOT = 4
_DRAIN_LIMIT = 64 * 1024  # an unread body up to this size is read so the connection stays open


async def _drain_and_close(response: httpx.Response) -> None:
    """Close ``response``, first reading a small unread body (304, redirect, error page).

    httpcore keeps a connection for reuse only when the response was read to its end;
    closing a 304 unread costs a new TCP connection for the next request to that host.
    A body larger than the limit is not read: closing the connection is cheaper.
    """
    if not response.is_stream_consumed and not response.is_closed:
        declared = response.headers.get("content-length", "")
        if response.status_code in (204, 304) or not declared or (declared.isdigit() and int(declared) <= _DRAIN_LIMIT):
            size = 0
            with contextlib.suppress(httpx.HTTPError):
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > _DRAIN_LIMIT:
                        break
    await response.aclose()


@dataclass(frozen=True, slots=True)
class _Landing:
    """Where a chain of redirects ended: the open response and what the chain showed."""

    response: httpx.Response
    final_url: str
    permanent_redirect: str | None


@dataclass(frozen=True, slots=True)
class _Request:
    """Everything one request chain needs besides the URL."""

    url: str  # as requested by the caller: the URL errors are reported against
    policy: Policy
    headers: tuple[tuple[str, str], ...]
    phase_timeout: float
    robots: bool  # check robots.txt before each hop


class Fetcher:
    """Fetches source URLs over one pooled HTTP/1.1 client; safe to share between tasks.

    At most ``defaults.concurrency`` fetches run at once and at most
    ``defaults.per_host`` per host name, so one slow host fills only its own
    slots.  Call ``aclose()`` when done.
    """

    def __init__(self, defaults: Defaults, *, user_agent: str = USER_AGENT, respect_robots: bool = True) -> None:
        self.defaults = defaults
        self.user_agent = user_agent
        self.respect_robots = respect_robots
        # Idle connections are kept for several hosts at once: with room for only
        # ``concurrency`` of them, fetches spread over many hosts evicted each other's
        # connections and almost every request opened a new one. The pool's total must
        # leave room for the busy ones beside the idle ones, or httpcore closes idle ones.
        idle = defaults.concurrency * IDLE_CONNECTIONS_PER_SLOT
        limits = httpx.Limits(
            max_connections=idle + defaults.concurrency + 4,  # + robots.txt requests beside the fetches
            max_keepalive_connections=idle,
            keepalive_expiry=30.0,
        )
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(limits=limits),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": user_agent, "Accept": _ACCEPT, "Accept-Encoding": _ACCEPT_ENCODING},
        )
        self._slots = asyncio.Semaphore(defaults.concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._robots = RobotsCache()
        self._resolutions = Resolutions()
        self._robots_locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, *, source: SourceConfig, validators: Validators | None = None) -> FetchResult:
        """GET ``url`` for ``source``; raises FetchError with a ``reason`` on any failure.

        ``source.timeout`` bounds the whole fetch (robots.txt, every redirect
        hop and the body), so a server trickling bytes cannot hold a slot;
        waiting for a free slot does not count against it.
        """
        url = fetchable_url(url.strip())
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            return await self._fetch_file(url, validators)
        if scheme not in _DEFAULT_PORTS:
            raise FetchError(url, f"unsupported URL scheme '{scheme}'", reason="not-allowed", permanent=True)
        host = _checked_url(url, url).host
        # Host slot first: fetches queued behind a slow host must not sit on global slots.
        async with self._host_slot(host), self._slots:
            started = time.monotonic()
            try:
                async with asyncio.timeout(source.timeout):
                    return await self._fetch_http(url, source, validators or Validators(), started)
            except TimeoutError:
                raise FetchError(url, f"timeout: deadline of {source.timeout:g} s exceeded", reason="timeout") from None

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = asyncio.Semaphore(self.defaults.per_host)
        return slot

    async def _fetch_http(self, url: str, source: SourceConfig, validators: Validators, started: float) -> FetchResult:
        headers: list[tuple[str, str]] = []
        if validators.etag:
            headers.append(("If-None-Match", validators.etag))
        if validators.last_modified:
            headers.append(("If-Modified-Since", validators.last_modified))
        headers.extend(source.headers)  # the source's own headers win
        request = _Request(
            url=url,
            policy=Policy(
                allow_private=source.allow_private or self.defaults.allow_private,
                allowed_hosts=self.defaults.allowed_hosts,
            ),
            headers=tuple(headers),
            phase_timeout=source.timeout / 2,  # a stall is a connect/read timeout; a trickle hits the deadline
            robots=self.respect_robots,
        )
        async with self._follow(request, url) as landing:
            response = landing.response
            status = response.status_code
            now = datetime.now(UTC)
            if status == 304:
                return FetchResult(
                    url=url,
                    final_url=landing.final_url,
                    status=304,
                    body=b"",
                    content_type=None,
                    charset=None,
                    validators=Validators(
                        etag=response.headers.get("etag") or validators.etag,
                        last_modified=response.headers.get("last-modified") or validators.last_modified,
                    ),
                    not_modified=True,
                    permanent_redirect=landing.permanent_redirect,
                    max_age=cache_max_age(response.headers, now),
                    elapsed=time.monotonic() - started,
                )
            if not 200 <= status < 300:
                raise self._status_error(url, landing, now)
            body = await self._read_body(url, response, self.defaults.max_bytes, request.phase_timeout)
            content_type, charset = _split_content_type(response.headers.get("content-type"))
            return FetchResult(
                url=url,
                final_url=landing.final_url,
                status=status,
                body=body,
                content_type=content_type,
                charset=charset,
                validators=Validators(
                    etag=response.headers.get("etag"), last_modified=response.headers.get("last-modified")
                ),
                not_modified=False,
                permanent_redirect=landing.permanent_redirect,
                max_age=cache_max_age(response.headers, now),
                elapsed=time.monotonic() - started,
            )

    @staticmethod
    def _status_error(url: str, landing: _Landing, now: datetime) -> FetchError:
        status = landing.response.status_code
        message = _status_text(status)
        if landing.final_url != url:
            message += f" at {landing.final_url}"
        if status == 410:
            return FetchError(url, message, reason="gone", permanent=True, status=status)
        retry_after = retry_after_seconds(landing.response.headers, now) if status in (429, 503) else None
        return FetchError(url, message, reason="http", status=status, retry_after=retry_after)

    @contextlib.asynccontextmanager
    async def _follow(self, request: _Request, start: str) -> AsyncIterator[_Landing]:
        """Send GETs from ``start`` along redirects; yields the first non-redirect answer, stream open.

        Each hop is checked again (allow-list, DNS + address policy, then
        robots.txt) because a redirect can point anywhere.
        """
        current = start
        seen = {_without_fragment(current)}
        permanent: str | None = None
        only_permanent_so_far = True
        for _hop in range(self.defaults.max_redirects + 1):
            target_url = _checked_url(request.url, current)
            host = target_url.raw_host.decode("ascii")
            port = _default_port(target_url)
            addresses = await resolve(request.url, host, port, request.policy, cache=self._resolutions)
            if request.robots:
                await self._check_robots(request, current)
            response = await self._send(request, target_url, host, port, addresses)
            try:
                status = response.status_code
                if status not in _REDIRECTS:
                    yield _Landing(response=response, final_url=current, permanent_redirect=permanent)
                    return
                location = response.headers.get("location", "").strip()
                if not location:
                    raise FetchError(
                        request.url, f"{_status_text(status)} without a Location header", reason="http", status=status
                    )
                try:
                    target = _without_fragment(urljoin(current, location))
                except ValueError:
                    raise FetchError(
                        request.url, f"invalid redirect Location: {location}", reason="http", status=status
                    ) from None
                if urlsplit(target).scheme.lower() not in _DEFAULT_PORTS:
                    raise FetchError(request.url, f"redirect to a non-HTTP URL: {target}", reason="not-allowed")
                if only_permanent_so_far and status in _PERMANENT:
                    permanent = target
                else:
                    only_permanent_so_far = False
                if target in seen:
                    raise FetchError(request.url, f"redirect loop at {target}", reason="redirects")
                seen.add(target)
                current = target
            finally:
                await _drain_and_close(response)
        raise FetchError(request.url, f"more than {self.defaults.max_redirects} redirects", reason="redirects")

    async def _send(
        self, request: _Request, target: httpx.URL, host: str, port: int, addresses: tuple[str, ...]
    ) -> httpx.Response:
        """One GET whose connection may only go to ``addresses``, already checked by ``netguard``."""
        built = self._client.build_request(
            "GET", target, headers=list(request.headers), timeout=httpx.Timeout(request.phase_timeout)
        )
        with pinned(host, port, addresses):
            try:
                return await self._client.send(built, stream=True)
            except httpx.HTTPError as exc:
                raise _transport_error(request.url, exc, request.phase_timeout) from exc

    async def _read_body(
        self, url: str, response: httpx.Response, limit: int, phase_timeout: float, *, truncate: bool = False
    ) -> bytes:
        """The decoded body, refused (or cut, for robots.txt) once it passes ``limit`` bytes.

        Streams and stops early: neither a huge body nor a gzip bomb is ever
        held in memory beyond the limit.
        """
        too_large = FetchError(url, f"response exceeds {limit} bytes", reason="too-large")
        declared = response.headers.get("content-length", "")
        encoded = bool(response.headers.get("content-encoding"))
        if declared.isdigit() and int(declared) > limit and not encoded and not truncate:
            raise too_large
        try:
            reader = _BodyReader(response.headers.get("content-encoding"), limit)
        except ValueError as exc:
            raise FetchError(url, str(exc), reason="http", status=response.status_code) from exc
        try:
            async for chunk in response.aiter_raw():
                if not reader.push(chunk):
                    if truncate:
                        return reader.first()
                    raise too_large
            return reader.finish()
        except httpx.HTTPError as exc:
            raise _transport_error(url, exc, phase_timeout) from exc
        except zlib.error as exc:
            coding = response.headers.get("content-encoding", "").strip()
            raise FetchError(url, f"cannot decode {coding} body: {exc}", reason="network") from exc

    # --- robots.txt ---------------------------------------------------------

    async def _check_robots(self, request: _Request, url: str) -> None:
        rules = await self._robots_rules(request, url)
        if rules.allows(url):
            return
        if rules.unavailable_server_error:
            message = f"robots.txt unavailable ({_status_text(rules.status or 0)}), so disallowed ({rules.url})"
        else:
            message = f"disallowed by robots.txt ({rules.url})"
        raise FetchError(request.url, message, reason="robots")

    async def _robots_rules(self, request: _Request, url: str) -> RobotsRules:
        """Cached rules for the origin of ``url``, fetched once at a time per origin."""
        origin = origin_of(url)
        lock = self._robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            cached = self._robots.get(origin, time.monotonic())
            if cached is not None:
                return cached
            rules, cacheable = await self._download_robots(request, robots_url(url))
            if cacheable:
                self._robots.put(origin, rules, time.monotonic())
            return rules

    async def _download_robots(self, request: _Request, address: str) -> tuple[RobotsRules, bool]:
        """robots.txt through the same guarded client, without the source's own headers.

        Network failures propagate (the host is unreachable for the fetch
        too, reported against the requested URL); redirects we may not follow
        count as "unavailable", which RFC 9309 treats as allow-all.
        """
        robots_request = _Request(
            url=request.url,
            policy=request.policy,
            headers=(("Accept", "text/plain, */*;q=0.5"),),
            phase_timeout=request.phase_timeout,
            robots=False,
        )
        try:
            async with self._follow(robots_request, address) as landing:
                status = landing.response.status_code
                if not 200 <= status < 300:
                    return rules_from_response(address, status, b""), True
                body = await self._read_body(
                    request.url, landing.response, MAX_ROBOTS_BYTES, request.phase_timeout, truncate=True
                )
                return rules_from_response(address, status, body), True
        except FetchError as exc:
            if exc.reason in _ROBOTS_UNFOLLOWABLE:
                return rules_unavailable(address), exc.reason == "redirects"
            raise

    # --- file:// --------------------------------------------------------------

    async def _fetch_file(self, url: str, validators: Validators | None) -> FetchResult:
        """A local file, for offline use and tests: same size cap, mtime as Last-Modified."""
        started = time.monotonic()
        path = Path(unquote(urlsplit(url).path))
        limit = self.defaults.max_bytes

        def read() -> tuple[bytes | None, str]:
            with path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
                if validators is not None and validators.last_modified == last_modified:
                    return None, last_modified
                if stat.st_size > limit:
                    raise _FileTooLarge
                data = handle.read(limit + 1)
                if len(data) > limit:  # grew while we looked
                    raise _FileTooLarge
                return data, last_modified

        try:
            body, last_modified = await asyncio.to_thread(read)
        except _FileTooLarge:
            raise FetchError(url, f"response exceeds {limit} bytes", reason="too-large") from None
        except OSError as exc:
            raise FetchError(url, f"cannot read {path}: {exc.strerror}", reason="network") from exc
        content_type = _FILE_TYPES.get(path.suffix.lower())
        return FetchResult(
            url=url,
            final_url=url,
            status=200 if body is not None else 304,
            body=body or b"",
            content_type=content_type if body is not None else None,
            charset=None,
            validators=Validators(last_modified=last_modified),
            not_modified=body is None,
            permanent_redirect=None,
            max_age=None,
            elapsed=time.monotonic() - started,
        )


class _FileTooLarge(Exception):
    """Internal signal from the file reader thread; becomes FetchError("too-large")."""
