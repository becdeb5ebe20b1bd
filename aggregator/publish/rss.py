"""RSS 2.0 renderer: a merged or per-source/per-tag news list -> bytes.

Items are rendered once into escaped XML fragments and cached: the same
record appears in the merged, its source's and its tags' files, and stays the
same across publishes until the store changes it. Strings are escaped by
``_common.text``/``attr``; the tests read every file back with lxml.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from aggregator.publish._common import (
    FeedMeta,
    attr,
    feed_updated,
    item_id,
    plain_title,
    record_authors,
    rfc822,
    safe_html,
    safe_url,
    text,
)
from aggregator.store.base import StoredNews

__all__ = ["render_rss"]

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
    "<channel>\n"
)


@lru_cache(maxsize=1 << 17)
def _item(item: StoredNews, origin_url: str | None) -> str:
    """One ``<item>``; ``origin_url`` is the source's own feed, for the ``<source>`` element."""
    record = item.record
    parts = ["<item>\n<title>", text(plain_title(record.title)), "</title>\n"]
    link = safe_url(record.link)
    if link:
        parts += ["<link>", text(link), "</link>\n"]
    parts += ['<guid isPermaLink="false">', text(item_id(record.source, record.id)), "</guid>\n"]
    moment = record.published or record.updated or item.first_seen
    parts += ["<pubDate>", rfc822(moment), "</pubDate>\n"]
    summary = safe_html(record.summary)
    if summary:
        parts += ["<description>", text(summary), "</description>\n"]
    for author in record_authors(record):
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
    updated = feed_updated(list(items))
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
    body = [_item(i, safe_url(origins.get(i.record.source))) for i in items]
    return "".join([*head, *body, "</channel>\n</rss>\n"]).encode("utf-8")
