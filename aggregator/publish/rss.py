"""RSS 2.0 renderer: a merged or per-source/per-tag news list -> bytes.

An item's safe pieces (title, link, sanitised summary) are computed once per
publish (``news_pieces``) and shared by the merged, per-source and per-tag files
and the other formats; only the cheap escaping and joining repeats. Strings are escaped by
``_common.text``/``attr``; the tests read every file back with lxml.
"""

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
    news_pieces,
    rfc822,
    safe_url,
    text,
)
from aggregator.store.base import StoredNews

__all__ = ["RSS_FOOT", "render_rss", "rss_head", "rss_item", "rss_parts"]

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
    "<channel>\n"
)


def rss_item(item: StoredNews, origin_url: str | None) -> Fragment:
    """One ``<item>``; ``origin_url`` is the source's own feed, for the ``<source>`` element.

    Rendered once per publish (the origin of a source is fixed within one) and reused by
    every scope that shows the item.
    """
    fragment: Fragment = memoized(
        "rss",
        item,
        lambda: stored_fragment("rss", item, origin_url or "", lambda: _render_item(item, origin_url).encode("utf-8")),
    )
    return fragment


def _render_item(item: StoredNews, origin_url: str | None) -> str:
    record = item.record
    pieces = news_pieces(item)
    parts = ["<item>\n<title>", text(pieces.title), "</title>\n"]
    link = pieces.link
    if link:
        parts += ["<link>", text(link), "</link>\n"]
    parts += ['<guid isPermaLink="false">', text(pieces.id), "</guid>\n"]
    moment = record.published or record.updated or item.first_seen
    parts += ["<pubDate>", rfc822(moment), "</pubDate>\n"]
    summary = pieces.summary
    if summary:
        parts += ["<description>", text(summary), "</description>\n"]
    for author in pieces.authors:
        parts += ["<dc:creator>", text(author), "</dc:creator>\n"]
    for tag in record.tags:
        parts += ["<category>", text(tag), "</category>\n"]
    # Other sources that carried the same story (de-duplication), as categories in their own domain.
    for other in record.also_from:
        parts += ['<category domain="source">', text(other), "</category>\n"]
    # RSS 2.0 has room for one enclosure per item; readers take the first.
    for enclosure in record.enclosures:
        url = safe_url(enclosure.url)
        if url:
            media_type = enclosure.media_type or "application/octet-stream"
            parts += [
                f'<enclosure url="{attr(url)}" type="{attr(media_type)}" length="{max(enclosure.length or 0, 0)}"/>\n'
            ]
            break
    if origin_url:
        parts += [f'<source url="{attr(origin_url)}">', text(record.source), "</source>\n"]
    parts.append("</item>\n")
    return "".join(parts)


def render_rss(meta: FeedMeta, items: Sequence[StoredNews], origins: dict[str, str]) -> bytes:
    """RSS 2.0 document; ``items`` already ordered and capped, ``origins`` maps source name -> its feed URL."""
    return joined(rss_parts(meta, items, origins))


def rss_parts(meta: FeedMeta, items: Sequence[StoredNews], origins: dict[str, str]) -> list[Fragment]:
    """``render_rss`` as the pieces it joins: written one after the other, never copied into one object."""
    origin_urls: dict[str, str | None] = {}  # per source, not per item
    body: list[Fragment] = [rss_head(meta, feed_updated(items))]
    for item in items:
        source = item.record.source
        if source not in origin_urls:
            origin_urls[source] = safe_url(origins.get(source))
        body.append(rss_item(item, origin_urls[source]))
    body.append(RSS_FOOT)
    return body


RSS_FOOT = b"</channel>\n</rss>\n"


def rss_head(meta: FeedMeta, updated: datetime) -> bytes:
    """Everything before the first item; ``updated``: ``feed_updated`` of the items."""
    head = [
        _HEAD,
        "<title>",
        text(meta.title),
        "</title>\n<link>",
        text(meta.home_url),
        "</link>\n<description>",
        text(meta.description),
        "</description>\n<lastBuildDate>",
        rfc822(updated),
        "</lastBuildDate>\n",
        f'<atom:link href="{attr(meta.self_url)}" rel="self" type="application/rss+xml"/>\n',
        "<generator>",
        text(meta.generator),
        "</generator>\n<ttl>",
        str(meta.ttl_minutes),
        "</ttl>\n",
    ]
    # Fragments are kept as UTF-8: the document is joined once, as bytes, never as a (wider) str too.
    return "".join(head).encode("utf-8")
