"""Helpers the parsers share: stable ids, tag lists, fallback titles, bounded HTML, feed dates.

All pure. Dates are read by an ordered tuple of small readers so a caller can
tell which one answered; a zone-less date is read in the source's zone, never
silently in UTC.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aggregator.sanitize import clean_text, html_to_text, sanitize_html

__all__ = [
    "DATE_READERS",
    "MAX_SUMMARY",
    "UNTITLED",
    "as_aware",
    "bounded_html",
    "hash_id",
    "merge_tags",
    "read_feed_date",
    "split_author",
    "text_to_html",
    "title_from_summary",
]

# An e-mail address inside an author string ("office@cluster.berlin (Eva Gruber)", "Eva <eva@x.at>").
# Any top-level domain: feedparser 6.0's own pattern stops after four letters, so ".example",
# ".berlin" or ".swiss" left "ple (Eva Gruber" as the name. Labels are split by dots, so the domain
# part cannot backtrack; strings are bounded (feedparser's nested groups take seconds on a crafted
# 30 KB author: kurtmckee/feedparser#580).
_AUTHOR_EMAIL = re.compile(
    r"(?:mailto:)?[A-Za-z0-9_.+-]+@(?:\[\d{1,3}(?:\.\d{1,3}){3}\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?:\?subject=\S+)?"
)
_AUTHOR_SCAN_LIMIT = 512  # longer author strings are kept whole as the name (no address is that long)
MAX_SUMMARY = 20_000  # characters of sanitised HTML kept per summary/description
UNTITLED = "(untitled)"
_TITLE_CHARS = 80

# Zone abbreviations European feeds write after RFC 822 dates; email.utils knows only US ones.
_ZONE_ABBREVIATIONS = {
    "CET": "+0100", "MEZ": "+0100", "CEST": "+0200", "MESZ": "+0200", "WET": "+0000",
    "WEST": "+0100", "BST": "+0100", "IST": "+0100", "EET": "+0200", "EEST": "+0300",
    "MSK": "+0300", "UTC": "+0000",
}  # fmt: skip
_TRAILING_ZONE = re.compile(r"\s([A-Za-z]{3,4})\s*$")


def hash_id(*parts: str | None) -> str:
    """A stable id from ``parts`` (order matters); used when a document gives no usable identity."""
    digest = hashlib.sha256("\x1f".join(p or "" for p in parts).encode("utf-8")).hexdigest()
    return f"hash:{digest[:32]}"


def merge_tags(first: Iterable[str], more: Iterable[str]) -> tuple[str, ...]:
    """``first`` then ``more``, as written, without empty or case-insensitively repeated tags."""
    seen: set[str] = set()
    tags: list[str] = []
    for raw in (*first, *more):
        tag = clean_text(raw)
        if tag and tag.casefold() not in seen:
            seen.add(tag.casefold())
            tags.append(tag)
    return tuple(tags)


def split_author(author: str) -> tuple[str, str | None]:
    """(name, address) of an RSS author string, split the way feedparser splits it, with a sound address pattern.

    "office@cluster.example (Eva Gruber)" -> ("Eva Gruber", "office@cluster.example"); a string
    without an address comes back unchanged as the name. Both feed paths (feedparser's, patched
    in ``parse/feed.py``, and ``parse/fastfeed.py``) use it, so they still agree.
    """
    match = _AUTHOR_EMAIL.search(author) if len(author) <= _AUTHOR_SCAN_LIMIT else None
    if match is None:
        return author, None
    found = match.group(0)
    name = author.replace(found, "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "").strip()
    if name and name[0] == "(":
        name = name[1:]
    if name and name[-1] == ")":
        name = name[:-1]
    return name.strip(), found.removeprefix("mailto:")


def title_from_summary(summary_html: str) -> str:
    """A stand-in title for an untitled item: the start of its summary text, or ``(untitled)``."""
    text = html_to_text(summary_html)
    if not text:
        return UNTITLED
    if len(text) <= _TITLE_CHARS:
        return text
    cut = text[:_TITLE_CHARS]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:.-") + "…"


def bounded_html(fragment: str, *, base_url: str | None, limit: int = MAX_SUMMARY) -> str:
    """``fragment`` sanitised and cut to about ``limit`` characters (cut between tags, then repaired)."""
    cleaned = sanitize_html(fragment, base_url=base_url)
    if len(cleaned) <= limit:
        return cleaned
    cut = cleaned[:limit]
    # Never cut inside a tag or an entity; nh3 closes whatever the cut left open.
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    if cut.rfind("&") > cut.rfind(";"):
        cut = cut[: cut.rfind("&")]
    return sanitize_html(cut + "…", base_url=base_url)


def text_to_html(text: str) -> str:
    """Plain text as escaped HTML paragraphs: blank lines split paragraphs, single newlines become ``<br>``."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [p.strip("\n") for p in re.split(r"\n[ \t]*\n", normalised)]
    parts = []
    for paragraph in paragraphs:
        if not paragraph.strip():
            continue
        lines = "<br>\n".join(html.escape(line, quote=False) for line in paragraph.split("\n"))
        parts.append(f"<p>{lines}</p>")
    return "\n".join(parts)


def as_aware(value: datetime, tz: ZoneInfo) -> datetime:
    """``value`` with ``tz`` attached when it has no zone; aware values are returned unchanged."""
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _iso8601(text: str, tz: ZoneInfo) -> datetime | None:
    """ISO 8601 / W3C-DTF, as Atom, JSON Feed and dc:date write them."""
    try:
        value = datetime.fromisoformat(text)  # a bare date reads as its midnight
    except ValueError:
        return None
    return as_aware(value, tz)


def _rfc822(text: str, tz: ZoneInfo) -> datetime | None:
    """RFC 822/2822 as RSS writes it, including the European zone names email.utils lacks."""
    match = _TRAILING_ZONE.search(text)
    if match and match.group(1).upper() in _ZONE_ABBREVIATIONS:
        text = text[: match.start(1)] + _ZONE_ABBREVIATIONS[match.group(1).upper()]
    try:
        value = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if value.tzinfo is None and re.search(r"[+-]0000\s*$", text):
        # RFC 2822 section 3.3: -0000 means "UTC, local zone unknown".
        return value.replace(tzinfo=UTC)
    return as_aware(value, tz)


DATE_READERS: tuple[Callable[[str, ZoneInfo], datetime | None], ...] = (_iso8601, _rfc822)


def read_feed_date(text: str | None, tz: ZoneInfo) -> tuple[datetime | None, str]:
    """A publication date with its own offset kept, and the name of the reader that read it.

    Zone-less values are taken in ``tz`` (the source's zone). Returns ``(None, "unparsed")``.
    """
    text = (text or "").strip()
    if not text:
        return None, "unparsed"
    for reader in DATE_READERS:
        value = reader(text, tz)
        if value is not None:
            return value, reader.__name__.lstrip("_")
    return None, "unparsed"
