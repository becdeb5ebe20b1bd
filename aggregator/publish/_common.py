"""Helpers shared by the renderers: escaping, safe HTML, identities, dates and feed metadata.

Everything here is pure and cheap; the per-item caches live with the renderers
that use them (one rendered fragment serves the merged, per-source and per-tag
files, and every later publish while the record is unchanged).
"""

from __future__ import annotations

import hashlib
import html
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from aggregator.memo import IdentityMemo
from aggregator.records import NewsRecord
from aggregator.sanitize import clean_text, html_to_text, sanitize_html
from aggregator.store.base import StoredNews
from aggregator.urls import absolute_url

__all__ = [
    "EPOCH",
    "FeedMeta",
    "NewsPieces",
    "attr",
    "file_stem",
    "forget_memoized",
    "item_id",
    "memoized",
    "news_date",
    "news_modified",
    "news_pieces",
    "pieces_kept",
    "plain_lines",
    "plain_text",
    "plain_title",
    "render_memo",
    "rfc822",
    "rfc3339",
    "safe_html",
    "safe_url",
    "sort_news",
    "text",
]

# Stable "updated" for a feed without items: anything derived from the clock
# would rewrite unchanged files on every publish.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Characters XML 1.0 forbids (section 2.2) plus lone surrogates; lxml refuses them too.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;"})
# What a reader that unescapes once more than it should would turn into active content.
_ACTIVE_AFTER_UNESCAPE = re.compile(
    r"<\s*/?\s*(?:script|iframe|object|embed|applet|frame|base|meta|form|svg|math|style|link)\b"
    r"|<[a-z][^>]*\son[a-z]+\s*="
    r"|(?:java|vb)script\s*:",
    re.I,
)
_SCRIPT_WORD = re.compile(r"(java|vb)(script)", re.I)
_SCRIPT_SCHEME = re.compile(r"(java|vb)(script\s*:)", re.I)
_STEM_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_QUOTE_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")  # what urllib's quote(..., safe="") leaves as it is
_QUOTE_UNSAFE = re.compile(r"[^A-Za-z0-9_.~-]+")


_MEMO = IdentityMemo("clusterfeeds_render_memo")


def render_memo() -> AbstractContextManager[None]:
    """Within the block, ``memoized`` values are computed once; afterwards they are dropped.

    One item appears in up to four scopes (merged, its source, its tags): within one publish
    its pieces are computed once. Nothing is cached across publishes.
    """
    return _MEMO.scope()


memoized = _MEMO.get
forget_memoized = _MEMO.forget

_PIECES_KEPT: ContextVar[bool] = ContextVar("clusterfeeds_pieces_kept", default=True)


@contextmanager
def pieces_kept(keep: bool) -> Iterator[None]:
    """Whether ``news_pieces`` keeps each item's pieces for the process's later news formats.

    Kept, the large workload's 160,000 items held about 100 MB of pieces in each process of a
    first publish, from its first news format to its last. Not kept, they are made again per
    format (40 microseconds an item) and never held beyond the item being rendered.
    """
    token = _PIECES_KEPT.set(keep)
    try:
        yield
    finally:
        _PIECES_KEPT.reset(token)


def text(value: str) -> str:
    """XML character data: forbidden characters dropped, markup characters escaped."""
    if _NOT_XML.search(value):
        value = _NOT_XML.sub("", value)
    # str.replace runs in C; str.translate with a dict calls back per character (10x slower here).
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def attr(value: str) -> str:
    """XML attribute value for double quotes (newlines kept as references, not normalised away)."""
    return _NOT_XML.sub("", value).translate(_ATTR_ESCAPES)


# Digests of fragments known to come out of ``safe_html`` unchanged (what ingest stores almost
# always is). Keyed with a per-process secret so no crafted input can collide with a known one;
# bounded: cleared when full, which costs one re-sanitising per fragment, never a wrong output.
_SAFE_KEY = os.urandom(16)
_SAFE_LIMIT = 1 << 19
_known_safe: set[bytes] = set()


def safe_html(fragment: str) -> str:
    """Sanitised HTML that stays inert even for a reader that unescapes it one more time.

    The stored summary is already sanitised; we sanitise again (defence in depth)
    and then strip one encoding level at a time while the unescaped form still
    looks like markup that could run (``&lt;script&gt;`` written as text). A
    remaining ``javascript:`` in plain text gets a zero-width space so that no
    reader can turn it into a link. A fragment seen to pass unchanged before is
    returned at once (the same object): the expensive part runs once per content.
    """
    if not fragment:
        return ""
    digest = hashlib.blake2b(fragment.encode("utf-8", "surrogatepass"), key=_SAFE_KEY, digest_size=16).digest()
    if digest in _known_safe:
        return fragment
    cleaned = _safe_html(fragment)
    if cleaned == fragment:
        if len(_known_safe) >= _SAFE_LIMIT:
            _known_safe.clear()
        _known_safe.add(digest)
        return fragment
    return cleaned


def _safe_html(fragment: str) -> str:
    cleaned = sanitize_html(fragment)
    for _ in range(4):
        if not _ACTIVE_AFTER_UNESCAPE.search(html.unescape(cleaned)):
            return cleaned
        cleaned = sanitize_html(html.unescape(cleaned))
    return _SCRIPT_WORD.sub(r"\1&#8203;\2", cleaned)


@lru_cache(maxsize=1 << 14)
def plain_text(value: str) -> str:
    """Plain text safe wherever a client might render it as HTML.

    Markup, also entity-encoded markup, is removed one level at a time, and a
    ``javascript:`` left in the words gets a zero-width space.
    """
    if "<" not in value and "&" not in value:
        # Nothing an HTML parser would read as markup: html_to_text would only clean it. Already
        # plain (most titles): the same string, not a copy held beside the record's.
        plain = _SCRIPT_SCHEME.sub("\\1\u200b\\2", clean_text(value))
        return value if plain == value else plain
    current = value
    for _ in range(4):
        following = html_to_text(current)
        if following == current:
            break
        current = following
    return _SCRIPT_SCHEME.sub("\\1\u200b\\2", current)


# Where a line ends in HTML: a break, or the end of a block (``plain_lines`` marks it there).
_LINE_END = re.compile(r"<br\s*/?>|</(?:p|div|li|h[1-6]|tr|blockquote|pre|dd|dt)\s*>", re.IGNORECASE)


_LINE_MARK = "\ue000"  # a private-use character: survives markup removal and white-space collapsing


def plain_lines(value: str) -> str:
    """``plain_text`` that keeps the fragment's paragraphs and line breaks as ``\n`` (empty lines dropped).

    For calendar descriptions: an agenda of five lines should not reach Outlook as one. Line
    ends are marked, the whole text made plain once (not line by line: each pass is an HTML
    parse), then split at the marks.
    """
    text = value.replace(_LINE_MARK, "")
    marked = _LINE_END.sub(_LINE_MARK, text) if "<" in text else _LINE_MARK.join(text.splitlines())
    lines = (line.strip() for line in plain_text(marked).split(_LINE_MARK))
    return "\n".join(line for line in lines if line)


def plain_title(title: str) -> str:
    """A title as plain text (see ``plain_text``), never empty."""
    return plain_text(title) or "(untitled)"


def safe_url(url: str | None) -> str | None:
    """An absolute http(s) URL without characters that could break out of a value, else None."""
    if not url or _NOT_XML.search(url) or any(c in url for c in ' \r\n\t"<>'):
        return None
    return absolute_url(url, None)


def item_id(source: str, record_id: str) -> str:
    """Globally unique, stable id of a news item: a tag: URI (RFC 4151) from source and id."""
    return f"tag:clusterfeeds,2026:{_quote(source)}/{_quote(record_id)}"


def _quote(value: str) -> str:
    """``quote(value, safe="")``, without its per-character work: only the unsafe runs are escaped."""
    if _QUOTE_SAFE.fullmatch(value):
        return value
    return _QUOTE_UNSAFE.sub(_percent_run, value)


def _percent_run(match: re.Match[str]) -> str:
    """A run of characters ``quote`` escapes: each UTF-8 byte as ``%XX`` (upper-case hex, as urllib)."""
    return "".join([_PERCENT[byte] for byte in match.group().encode("utf-8")])


_PERCENT = tuple(f"%{byte:02X}" for byte in range(256))


def news_date(item: StoredNews) -> datetime:
    """The date a news item is sorted and dated by: published, else when we first saw it."""
    return item.record.published or item.first_seen


def news_modified(item: StoredNews) -> datetime | None:
    """When a news item last changed: the later of its source's own date and the change we saw.

    None when neither says it ever changed. The moment we first stored an item is not a
    modification: a feed's items would all look "updated" at the first fetch.
    """
    seen_change = item.changed_at if item.changed_at > item.first_seen else None
    stamps = [d for d in (item.record.updated, seen_change) if d is not None]
    return max(stamps) if stamps else None


_MICROSECOND = timedelta(microseconds=1)


def _newest_first(item: StoredNews) -> tuple[int, str, str]:
    """Sort key: microseconds before the epoch (an exact integer: aware datetimes compare slowly), source, id."""

    def compute() -> tuple[int, str, str]:
        return ((EPOCH - news_date(item)) // _MICROSECOND, item.record.source, item.record.id)

    return memoized("sort", item, compute)


def sort_news(items: list[StoredNews], cap: int) -> list[StoredNews]:
    """Newest first (published, else first_seen), ties by source and id so the output is stable; at most ``cap``."""
    return sorted(items, key=_newest_first)[:cap]


def feed_updated(items: Sequence[StoredNews]) -> datetime:
    """The newest change among the items (stable across publishes while nothing changes).

    Memoized on the list itself: a scope's RSS and Atom files are made from the same list,
    and 160,000 items' aware-datetime comparisons are not cheap.
    """

    def newest() -> datetime:
        stamps = [max(news_date(i), i.changed_at, i.record.updated or EPOCH) for i in items]
        return max(stamps, default=EPOCH)

    return memoized("updated", items, newest)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc822(moment: datetime) -> str:
    """RSS date (RFC 822 with a four-digit year), in UTC as ``+0000``; the same text as ``email.utils.format_datetime``.

    Spelled out with fixed English names: ``strftime("%a")`` follows the process locale.
    """
    utc = moment.astimezone(UTC)
    return (
        f"{_DAYS[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} +0000"
    )


def rfc3339(moment: datetime) -> str:
    """Atom / JSON Feed date (RFC 3339), UTC with ``Z``, whole seconds."""
    utc = moment.astimezone(UTC)
    if utc.year < 1000:  # strftime's own (platform) spelling of a short year
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"


def file_stem(name: str) -> str:
    """A safe file name for a source or tag; names that need changing get a short hash against collisions."""
    stem = _STEM_UNSAFE.sub("-", name).strip(".-")
    if stem == name and stem:
        return stem
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{stem or 'x'}-{digest}"


def record_authors(record: NewsRecord) -> tuple[str, ...]:
    return tuple(a for a in (plain_text(a) for a in record.authors) if a)


@dataclass(frozen=True, slots=True)
class NewsPieces:
    """What every news format shows of one item, made safe once (RSS, Atom and JSON Feed share it).

    Held for every item until the last news format of a first publish is done (unless there are
    too many for the memory budget: ``pieces_kept``), so it keeps references, not copies: the tag: URI is made on use (a copy per item was 42 MB of a large
    first publish), and a title that is already plain is the record's own string.
    """

    source: str
    record_id: str
    title: str  # plain_title
    link: str | None  # safe_url
    summary: str  # safe_html
    authors: tuple[str, ...]

    @property
    def id(self) -> str:
        """The item's ``item_id``."""
        return item_id(self.source, self.record_id)


def news_pieces(item: StoredNews) -> NewsPieces:
    """The item's safe pieces, computed once per publish (see ``render_memo``)."""

    def compute() -> NewsPieces:
        record = item.record
        return NewsPieces(
            source=record.source,
            record_id=record.id,
            title=plain_title(record.title),
            link=safe_url(record.link),
            summary=safe_html(record.summary),
            authors=record_authors(record),
        )

    return memoized("news", item, compute) if _PIECES_KEPT.get() else compute()


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What one published news feed says about itself."""

    title: str
    description: str
    home_url: str  # the index page (absolute)
    self_url: str  # this file (absolute)
    feed_id: str  # tag: URI, stable
    generator: str
    ttl_minutes: int
