"""JSON Feed 1.1 renderer: a news list -> bytes, from the pieces shared with RSS and Atom."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aggregator.fragments import Fragment, joined
from aggregator.fragments import fragment as stored_fragment
from aggregator.publish._common import (
    FeedMeta,
    memoized,
    news_modified,
    news_pieces,
    rfc3339,
    safe_url,
)
from aggregator.sanitize import clean_text
from aggregator.store.base import StoredNews

__all__ = [
    "JSON_FEED_BETWEEN",
    "JSON_FEED_FOOT",
    "json_feed_head",
    "json_feed_item",
    "json_feed_parts",
    "render_json_feed",
]

VERSION = "https://jsonfeed.org/version/1.1"


def _dumps(value: Any) -> str:
    # ensure_ascii=False keeps umlauts readable; json escapes every control character.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_feed_item(item: StoredNews) -> Fragment:
    """One item object, serialised once per publish and reused by every scope that shows it."""
    fragment: Fragment = memoized(
        "json",
        item,
        lambda: stored_fragment("json", item, "", lambda: _render_item(item).encode("utf-8", "replace")),
    )
    return fragment


def _render_item(item: StoredNews) -> str:
    record = item.record
    pieces = news_pieces(item)
    out: dict[str, Any] = {"id": pieces.id}
    link = pieces.link
    if link:
        out["url"] = link
    out["title"] = pieces.title
    out["content_html"] = pieces.summary
    out["date_published"] = rfc3339(record.published or item.first_seen)
    modified = news_modified(item)
    if modified is not None:  # optional in JSON Feed: left out for an item never seen to change
        out["date_modified"] = rfc3339(modified)
    authors = pieces.authors
    if authors:
        out["authors"] = [{"name": a} for a in authors]
    if record.tags:
        out["tags"] = [clean_text(t) for t in record.tags]
    attachments = []
    for enclosure in record.enclosures:
        url = safe_url(enclosure.url)
        if url:
            attachment: dict[str, Any] = {"url": url, "mime_type": enclosure.media_type or "application/octet-stream"}
            if enclosure.length:
                attachment["size_in_bytes"] = max(enclosure.length, 0)
            attachments.append(attachment)
    if attachments:
        out["attachments"] = attachments
    # JSON Feed extension (keys starting with "_"): where the item came from.
    out["_clusterfeeds"] = {"source": record.source, "also_from": list(record.also_from)}
    return _dumps(out)


def render_json_feed(meta: FeedMeta, items: Sequence[StoredNews]) -> bytes:
    """JSON Feed document; ``items`` already ordered and capped."""
    return joined(json_feed_parts(meta, items))


def json_feed_parts(meta: FeedMeta, items: Sequence[StoredNews]) -> list[Fragment]:
    """``render_json_feed`` as the pieces it joins."""
    parts: list[Fragment] = [json_feed_head(meta)]
    for index, item in enumerate(items):
        if index:
            parts.append(JSON_FEED_BETWEEN)  # a piece of its own: the item's bytes are shared, not copied
        parts.append(json_feed_item(item))
    parts.append(JSON_FEED_FOOT)
    return parts


JSON_FEED_BETWEEN = b",\n"
JSON_FEED_FOOT = b"\n]}\n"


def json_feed_head(meta: FeedMeta) -> bytes:
    """Everything before the first item."""
    head = {
        "version": VERSION,
        "title": meta.title,
        "home_page_url": meta.home_url,
        "feed_url": meta.self_url,
        "description": meta.description,
        "authors": [{"name": meta.title}],
    }
    head_text = _dumps(head)[:-1]  # reopen the object to append "items" without re-serialising them
    # Fragments are kept as UTF-8: the document is joined once, as bytes, never as a (wider) str too.
    return (head_text + ',"items":[\n').encode("utf-8", "replace")
