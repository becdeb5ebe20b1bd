"""The HTTP front: published files from feeds_dir, plus /healthz, /readyz and /metrics.

``build_app`` assembles a Starlette app from its arguments (nothing global) and
``server_config`` the uvicorn settings that go with it. Files are served by a
small endpoint of our own rather than StaticFiles, because feeds need a strong
content-hash ETag, a weak one for the gzip variant (RFC 9110 §8.8.1), and
refusal of hidden, temporary and escaping paths, which StaticFiles does not
all provide. Representations are cached by (inode, mtime, size), so a
conditional GET costs one ``stat`` and publish's atomic ``os.replace`` is seen
at once. A big file (``STREAMED_FROM_BYTES``) keeps only its gzip variant in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import formatdate, parsedate_to_datetime
from enum import Enum
from functools import partial
from pathlib import Path, PurePath
from typing import Final

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.metrics import Metrics, PathClass

__all__ = [
    "GZIP_MIN_BYTES",
    "H11_MAX_INCOMPLETE_EVENT_SIZE",
    "MAX_HEADER_BYTES",
    "MAX_URL_BYTES",
    "STREAMED_FROM_BYTES",
    "EmbeddedServer",
    "build_app",
    "path_class",
    "server_config",
]

log = logging.getLogger(__name__)

MAX_URL_BYTES: Final = 2048  # path + query; longer is 414 from the app
MAX_HEADER_BYTES: Final = 8192  # all request header names and values; more is 431 from the app
# h11 refuses (uvicorn answers 400) a request head it cannot finish within this many bytes.
H11_MAX_INCOMPLETE_EVENT_SIZE: Final = 16 * 1024
GZIP_MIN_BYTES: Final = 512  # below this, gzip's header and a round trip cost more than they save
_CACHE_MAX_BYTES: Final = 64 * 1024 * 1024  # bodies plus gzip variants kept in memory
# From this size on, only a file's gzip variant is kept; the file itself is read from disk for the
# rare client without gzip. A large workload's 70 MB calendar held 81 MB of the daemon (10 MB gzipped).
STREAMED_FROM_BYTES: Final = 8 * 1024 * 1024
_CHUNK_BYTES: Final = 256 * 1024

_CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".xml": "application/rss+xml; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".ics": "text/calendar; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
_FEED_SUFFIXES: Final = frozenset({".xml", ".atom", ".json", ".opml"})

_HTML_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_OTHER_CSP: Final = "default-src 'none'; frame-ancestors 'none'"
_SECURITY_HEADERS: Final = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
)
_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')


def build_app(
    feeds_dir: Path,
    *,
    metrics: Metrics,
    is_ready: Callable[[], bool],
    max_age: int,
    health: Callable[[], Mapping[str, object]] | None = None,
) -> Starlette:
    """The ASGI app serving ``feeds_dir`` read-only; ``is_ready``/``health`` are asked per request."""
    files = _FileCache(feeds_dir)

    async def serve_file(request: Request) -> Response:
        parts = _request_parts(request.scope["path"])
        for _ in range(3):  # a big file replaced between its load and its opening: load it again
            rep = None if parts is None else await run_in_threadpool(files.load, parts)
            if rep is None:
                return _not_found()
            if (
                rep.body is not None
                or request.method == "HEAD"
                or _not_modified(request, rep)
                or _gets_gzip(request, rep)
            ):
                return _file_response(request, rep, max_age)
            fd = await run_in_threadpool(_open_version, rep)
            if fd is not None:
                return _file_response(request, rep, max_age, open_file=fd)
        return PlainTextResponse("the file is being replaced; try again\n", 503, headers={"retry-after": "1"})

    async def healthz(request: Request) -> Response:
        try:
            return _json({"status": "ok", **(health() if health is not None else {})}, 200)
        except Exception:  # a bug in the callback (or an unencodable value) must not make a live process look dead
            log.exception("healthz", extra={"fields": {"problem": "health callback failed"}})
            return _json({"status": "ok", "health_error": "health callback failed; see the log"}, 200)

    async def readyz(request: Request) -> Response:
        try:
            ready = bool(is_ready())
        except Exception:  # readiness unknown is not ready
            log.exception("readyz", extra={"fields": {"problem": "is_ready callback raised"}})
            ready = False
        return _json({"ready": ready}, 200 if ready else 503)

    async def metrics_endpoint(request: Request) -> Response:
        # In a thread: 10,000 sources' series take a second or two to format, and the event loop
        # also fetches the sources and serves the feeds.
        body = await asyncio.to_thread(metrics.render)
        return Response(body, headers={"cache-control": "no-store", "content-type": CONTENT_TYPE_LATEST})

    routes = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint, methods=["GET", "HEAD"]),
        Route("/{path:path}", serve_file, methods=["GET", "HEAD"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_Guard, metrics=metrics)],
        exception_handlers={404: _on_not_found},
    )


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon that embeds it owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """uvicorn settings for ``app``: h11 with bounded request heads, no server banner, no log config."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http="h11",  # the limit below is h11's; httptools, if installed, has others
        h11_max_incomplete_event_size=H11_MAX_INCOMPLETE_EVENT_SIZE,
        ws="none",
        lifespan="on",
        log_config=None,
        server_header=False,
        timeout_keep_alive=5,
    )


def path_class(path: str) -> PathClass:
    """The metrics label for a request path: a small fixed set, never the path itself."""
    if path in ("/healthz", "/readyz"):
        return "health"
    if path == "/metrics":
        return "metrics"
    if path in ("/", "/index.html"):
        return "index"
    suffix = PurePath(path).suffix
    if suffix == ".ics":
        return "calendar"
    if suffix in _FEED_SUFFIXES:
        return "feed"
    return "other"


class _Guard:
    """Refuses what no route should see (other methods, huge URLs or headers), adds headers, counts."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = path_class(scope["path"])
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS:
                    headers.setdefault(name, value)
                headers.setdefault("content-security-policy", _OTHER_CSP)
                # Counted before the response leaves, so a client that has the
                # response in hand always finds it in /metrics.
                self.metrics.observe_http(message["status"], kind)
            await send(message)

        refusal = _refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:  # ServerErrorMiddleware, outside us, sends the 500
                self.metrics.observe_http(500, kind)
            raise


def _refusal(scope: Scope) -> Response | None:
    """A 414, 431 or 405 for requests refused before routing; None to let the request through."""
    # "Connection: close" so uvicorn drops the connection instead of reading an
    # unwanted request body to its end (a POST may announce gigabytes).
    if len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"]) > MAX_URL_BYTES:
        return _plain("URI Too Long", 414, connection="close")
    if sum(len(name) + len(value) + 4 for name, value in scope["headers"]) > MAX_HEADER_BYTES:
        return _plain("Request Header Fields Too Large", 431, connection="close")
    if scope["method"] not in ("GET", "HEAD"):
        return _plain("Method Not Allowed", 405, allow="GET, HEAD", connection="close")
    return None


def _plain(text: str, status: int, **headers: str) -> Response:
    return PlainTextResponse(text + "\n", status, headers={"cache-control": "no-store", **headers})


def _not_found() -> Response:
    return _plain("Not Found", 404)


async def _on_not_found(request: Request, exc: Exception) -> Response:
    """The router's own 404 (a request target no route matches, e.g. absolute-form) looks like ours."""
    return _not_found()


def _allowed_name(name: str) -> bool:
    """A path segment we may serve: not empty, not hidden (so no . or ..), not a publish temp file."""
    return bool(name) and not name.startswith(".") and not name.endswith(".tmp") and "\\" not in name


def _request_parts(path: str) -> tuple[str, ...] | None:
    """The decoded request path as file-name segments under feeds_dir, or None if it may not be served.

    uvicorn has already percent-decoded the path, so ``%2e%2e%2f`` arrives as
    ``../`` and is refused here like the literal form.
    """
    if path == "/":
        return ("index.html",)
    if not path.startswith("/") or "\x00" in path:
        return None
    parts = tuple(path[1:].split("/"))
    if not all(_allowed_name(p) for p in parts) or PurePath(parts[-1]).suffix not in _CONTENT_TYPES:
        return None
    return parts


@dataclass(frozen=True, slots=True)
class _Representation:
    """One file's bytes as last read, with its validators and gzip variant."""

    key: tuple[int, int, int, int]  # st_dev, st_ino, st_mtime_ns, st_size
    body: bytes | None  # None from ``STREAMED_FROM_BYTES`` on: read from ``path`` when asked for
    gzipped: bytes | None  # None when the body is too small to be worth compressing
    etag: str  # strong, quoted: '"<sha256 prefix>"'
    mtime: int  # whole seconds, as Last-Modified can say
    content_type: str
    path: Path

    @property
    def size(self) -> int:
        return len(self.body or b"") + len(self.gzipped or b"")


def _open_version(rep: _Representation) -> int | None:
    """A descriptor of the file ``rep`` describes, or None when it has been replaced since (or is gone)."""
    try:
        fd = os.open(rep.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) != rep.key:
        os.close(fd)
        return None
    return fd


def _etag_and_gzip(chunks: Iterable[bytes], size: int) -> tuple[str, bytes | None]:
    """A file's strong ETag and its gzip variant (None below ``GZIP_MIN_BYTES``), from its bytes in
    order: a big file is read a chunk at a time and never held whole."""
    digest = hashlib.sha256()
    packer = zlib.compressobj(6, zlib.DEFLATED, 31) if size >= GZIP_MIN_BYTES else None  # 31: gzip, mtime 0
    packed: list[bytes] = []
    for chunk in chunks:
        digest.update(chunk)
        if packer is not None:
            packed.append(packer.compress(chunk))
    if packer is None:
        return '"' + digest.hexdigest()[:32] + '"', None
    packed.append(packer.flush())
    return '"' + digest.hexdigest()[:32] + '"', b"".join(packed)


class _OpenFileResponse(Response):
    """A 200 whose body is read from an open descriptor as it is sent, and closed however the send ends."""

    def __init__(self, fd: int, headers: Mapping[str, str]) -> None:
        super().__init__(None, 200, headers=dict(headers))
        self._fd = fd

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            while True:
                chunk = await run_in_threadpool(os.read, self._fd, _CHUNK_BYTES)
                await send({"type": "http.response.body", "body": chunk, "more_body": bool(chunk)})
                if not chunk:
                    break
        finally:
            os.close(self._fd)


class _FileCache:
    """Reads files under one root for the thread pool, caching each until its inode, mtime or size changes."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._entries: dict[Path, _Representation] = {}
        self._lock = threading.Lock()

    def load(self, parts: tuple[str, ...]) -> _Representation | None:
        """The file at ``parts`` if it is a regular file whose real path stays under the root."""
        root = self._root.resolve()
        try:
            real = root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
            return None
        if not real.is_relative_to(root):  # a symlink pointing out of feeds_dir
            return None
        inside = real.relative_to(root).parts
        if not inside or not all(_allowed_name(p) for p in inside) or real.suffix not in _CONTENT_TYPES:
            return None
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            with self._lock:
                cached = self._entries.get(real)
            if cached is not None and cached.key == key:
                return cached
            body = None if st.st_size >= STREAMED_FROM_BYTES else f.read()
            chunks = iter(partial(f.read, _CHUNK_BYTES), b"") if body is None else (body,)
            etag, gzipped = _etag_and_gzip(chunks, st.st_size if body is None else len(body))
        rep = _Representation(
            key=key,
            body=body,
            gzipped=gzipped,
            etag=etag,
            mtime=int(st.st_mtime),
            content_type=_CONTENT_TYPES[real.suffix],
            path=real,
        )
        self._remember(real, rep)
        return rep

    def _remember(self, path: Path, rep: _Representation) -> None:
        with self._lock:
            self._entries.pop(path, None)
            self._entries[path] = rep
            total = sum(r.size for r in self._entries.values())
            while total > _CACHE_MAX_BYTES and len(self._entries) > 1:
                oldest = next(iter(self._entries))
                total -= self._entries.pop(oldest).size


def _gets_gzip(request: Request, rep: _Representation) -> bool:
    return rep.gzipped is not None and _accepts_gzip(request.headers.get("accept-encoding", ""))


def _file_response(request: Request, rep: _Representation, max_age: int, open_file: int | None = None) -> Response:
    """200 with the chosen variant, or 304 if the client's validators still match (RFC 9110 §13.2.2).

    ``open_file``: the file itself, open, for a big file's identity body (``STREAMED_FROM_BYTES``).
    """
    use_gzip = _gets_gzip(request, rep)
    # The gzip bytes differ from the file's, so their tag is the same hash marked weak.
    etag = "W/" + rep.etag if use_gzip else rep.etag
    headers = {
        "etag": etag,
        "last-modified": formatdate(rep.mtime, usegmt=True),
        "cache-control": f"public, max-age={max_age}",
        "vary": "Accept-Encoding",
    }
    if rep.content_type.startswith("text/html"):
        headers["content-security-policy"] = _HTML_CSP
    if _not_modified(request, rep):
        return Response(status_code=304, headers=headers)
    body = rep.gzipped if use_gzip and rep.gzipped is not None else rep.body
    headers["content-type"] = rep.content_type
    headers["content-length"] = str(rep.key[3] if body is None else len(body))
    if use_gzip:
        headers["content-encoding"] = "gzip"
    if open_file is not None:
        return _OpenFileResponse(open_file, headers)
    return Response(b"" if request.method == "HEAD" or body is None else body, 200, headers=headers)


def _not_modified(request: Request, rep: _Representation) -> bool:
    """If-None-Match (weak comparison) decides when present; otherwise If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return if_none_match.strip() == "*" or rep.etag in _ENTITY_TAG.findall(if_none_match)
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):  # an unreadable date is ignored, as RFC 9110 §13.1.3 says
        return False
    if since.tzinfo is None:
        return False
    return rep.mtime <= since.timestamp()


def _accepts_gzip(accept_encoding: str) -> bool:
    """True if Accept-Encoding allows gzip: named (or x-gzip, or *) with a q-value above 0."""
    qualities: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding:
            qualities[coding.strip().lower()] = q
    for coding in ("gzip", "x-gzip", "*"):
        if coding in qualities:
            return qualities[coding] > 0
    return False


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"{type(value).__name__} in health() result is not JSON-serialisable")


def _json(data: Mapping[str, object], status: int) -> Response:
    body = json.dumps(data, default=_json_default, ensure_ascii=False).encode()
    return Response(body, status, headers={"cache-control": "no-store", "content-type": "application/json"})
