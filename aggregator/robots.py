"""robots.txt rules per origin (RFC 9309), without I/O.

The ``Fetcher`` downloads ``/robots.txt`` through its own guarded client and
hands the status and bytes to ``rules_from_response``; this module decides
what they mean and remembers the answer for a while.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from protego import Protego

__all__ = [
    "MAX_ROBOTS_BYTES",
    "ROBOTS_TOKEN",
    "RobotsCache",
    "RobotsRules",
    "origin_of",
    "robots_url",
    "rules_from_response",
    "rules_unavailable",
]

ROBOTS_TOKEN = "clusterfeeds"  # the product token matched against User-agent lines
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309 2.5: parse at least the first 500 KiB
DEFAULT_TTL = 24 * 3600.0  # RFC 9309 2.4: do not use a cached copy for more than 24 hours
SERVER_ERROR_TTL = 15 * 60.0  # a 5xx disallows only until we ask again

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, default port dropped: the cache key."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, "", "", ""))


def robots_url(url: str) -> str:
    """Where the robots.txt governing ``url`` lives."""
    return origin_of(url) + "/robots.txt"


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """What one robots.txt answer allows; ``parser`` is None when the answer is all-or-nothing."""

    url: str  # the robots.txt address, quoted in refusals
    status: int | None
    allow_all: bool = False
    parser: Any = field(default=None, compare=False, repr=False)  # protego.Protego

    @property
    def unavailable_server_error(self) -> bool:
        """A 5xx or 429: RFC 9309 2.3.1.4 says assume complete disallow."""
        return self.parser is None and not self.allow_all

    def allows(self, url: str, token: str = ROBOTS_TOKEN) -> bool:
        if self.allow_all:
            return True
        if self.parser is None:
            return False
        return bool(self.parser.can_fetch(url, token))

    @property
    def ttl(self) -> float:
        return SERVER_ERROR_TTL if self.unavailable_server_error else DEFAULT_TTL


def rules_from_response(url: str, status: int, body: bytes) -> RobotsRules:
    """The rules a robots.txt response means (RFC 9309 2.3.1).

    2xx: parse it.  4xx: "unavailable", everything allowed.  5xx, and 429
    (which is a server asking us to slow down, as major crawlers read it):
    "unreachable", everything disallowed until the next try.
    """
    if 200 <= status < 300:
        text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        return RobotsRules(url=url, status=status, parser=Protego.parse(text))
    if 400 <= status < 500 and status != 429:
        return RobotsRules(url=url, status=status, allow_all=True)
    return RobotsRules(url=url, status=status)


def rules_unavailable(url: str) -> RobotsRules:
    """Allow-all rules for a robots.txt we could not follow (too many redirects, refused hop)."""
    return RobotsRules(url=url, status=None, allow_all=True)


class RobotsCache:
    """Rules per origin with their own expiry; the caller passes a monotonic ``now``."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, RobotsRules]] = {}

    def get(self, origin: str, now: float) -> RobotsRules | None:
        entry = self._entries.get(origin)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, origin: str, rules: RobotsRules, now: float) -> None:
        self._entries[origin] = (now + rules.ttl, rules)
