"""URL canonicalisation: one spelling per resource, tracking parameters removed.

The canonical form is the identity used to recognise re-posts across
sources (issue: duplicates), so it must be stable and idempotent.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

__all__ = ["absolute_url", "canonical_url", "fetchable_url"]

_TRACKING = re.compile(
    r"^(utm_.*|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|mc_.*|pk_.*|piwik_.*|_hsenc|_hsmi|yclid|igshid|ref_src|xtor)$",
    re.I,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def fetchable_url(url: str) -> str:
    """The URL to request: ``webcal://`` and ``webcals://`` become ``https://``."""
    lowered = url[:10].lower()
    if lowered.startswith("webcals://"):
        return "https://" + url[10:]
    if lowered.startswith("webcal://"):
        return "https://" + url[9:]
    return url


def absolute_url(href: str | None, base: str | None) -> str | None:
    """``href`` resolved against ``base``; None for empty, non-http(s) or unparseable links."""
    if not href:
        return None
    href = href.strip()
    try:
        joined = urljoin(base, href) if base else href
        parts = urlsplit(joined)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return joined


def canonical_url(href: str | None, base: str | None = None) -> str | None:
    """Absolute http(s) URL with host lower-cased, default port, fragment and tracking parameters removed."""
    url = absolute_url(href, base)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    path = quote(unquote(parts.path), safe="/:@!$&'()*+,;=~%-._") or "/"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)]
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))
