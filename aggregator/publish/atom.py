"""Atom 1.0 renderer (RFC 4287): a news list -> bytes, from the pieces shared with RSS and JSON Feed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aggregator.fragments import Fragment, joined
from aggregator.fragments import fragment as stored_fragment
from aggregator.publish._common import (
    FeedMeta,
    attr,
    feed_updated,
    memoized,
    news_date,
    news_modified,
    news_pieces,
    rfc3339,
    safe_url,
    text,
)
from aggregator.store.base import StoredNews

__all__ = ["ATOM_FOOT", "atom_entry", "atom_head", "atom_parts", "render_atom"]

_ALSO_FROM_SCHEME = "tag:clusterfeeds,2026:source"


def atom_entry(item: StoredNews) -> Fragment:
    """One ``<entry>``, rendered once per publish and reused by every scope that shows it."""
    fragment: Fragment = memoized(
        "atom", item, lambda: stored_fragment("atom", item, "", lambda: _render_entry(item).encode("utf-8"))
    )
    return fragment


def _render_entry(item: StoredNews) -> str:
    record = item.record
    pieces = news_pieces(item)
    published = record.published
    modified = news_modified(item)
    # Required in Atom: the last change when there was one, else the item's own date.
    updated = max(news_date(item), modified) if modified is not None else news_date(item)
    parts = [
        "<entry>\n<id>",
        text(pieces.id),
        '</id>\n<title type="text">',
        text(pieces.title),
        "</title>\n<updated>",
        rfc3339(updated),
        "</updated>\n",
    ]
    if published:
        parts += ["<published>", rfc3339(published), "</published>\n"]
    link = pieces.link
    summary = pieces.summary
    if link:
        parts.append(f'<link rel="alternate" type="text/html" href="{attr(link)}"/>\n')
        if summary:
            parts += ['<summary type="html">', text(summary), "</summary>\n"]
    else:
        # RFC 4287 4.1.2: an entry without an alternate link must carry content.
        parts += ['<content type="html">', text(summary), "</content>\n"]
    for author in pieces.authors:
        parts += ["<author><name>", text(author), "</name></author>\n"]
    for tag in record.tags:
        parts.append(f'<category term="{attr(tag)}"/>\n')
    for other in record.also_from:
        parts.append(f'<category term="{attr(other)}" scheme="{_ALSO_FROM_SCHEME}" label="also from {attr(other)}"/>\n')
    for enclosure in record.enclosures:
        url = safe_url(enclosure.url)
        if url:
            extra = f' type="{attr(enclosure.media_type)}"' if enclosure.media_type else ""
            if enclosure.length:
                extra += f' length="{max(enclosure.length, 0)}"'
            parts.append(f'<link rel="enclosure" href="{attr(url)}"{extra}/>\n')
    parts.append("</entry>\n")
    return "".join(parts)


def render_atom(meta: FeedMeta, items: Sequence[StoredNews]) -> bytes:
    """Atom feed document; ``items`` already ordered and capped."""
    return joined(atom_parts(meta, items))


def atom_parts(meta: FeedMeta, items: Sequence[StoredNews]) -> list[Fragment]:
    """``render_atom`` as the pieces it joins."""
    return [atom_head(meta, feed_updated(items)), *[atom_entry(i) for i in items], ATOM_FOOT]


ATOM_FOOT = b"</feed>\n"


def atom_head(meta: FeedMeta, updated: datetime) -> bytes:
    """Everything before the first entry; ``updated``: ``feed_updated`` of the items."""
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n<id>',
        text(meta.feed_id),
        '</id>\n<title type="text">',
        text(meta.title),
        '</title>\n<subtitle type="text">',
        text(meta.description),
        "</subtitle>\n<updated>",
        rfc3339(updated),
        "</updated>\n",
        f'<link rel="self" type="application/atom+xml" href="{attr(meta.self_url)}"/>\n',
        f'<link rel="alternate" type="text/html" href="{attr(meta.home_url)}"/>\n',
        "<author><name>",
        text(meta.title),
        "</name></author>\n<generator>",
        text(meta.generator),
        "</generator>\n",
    ]
    # Fragments are kept as UTF-8: the document is joined once, as bytes, never as a (wider) str too.
    return "".join(head).encode("utf-8")
