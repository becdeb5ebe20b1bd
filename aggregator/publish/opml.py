"""OPML 2.0 list of the per-source feeds, for importing every source into a reader at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

__all__ = ["OpmlEntry", "render_opml"]


@dataclass(frozen=True, slots=True)
class OpmlEntry:
    name: str
    xml_url: str  # absolute URL of the published per-source RSS file
    html_url: str | None  # the source's own site
    tags: tuple[str, ...] = ()


def render_opml(title: str, entries: Sequence[OpmlEntry]) -> bytes:
    """OPML document; no creation date, so an unchanged source list gives unchanged bytes."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    body = etree.SubElement(root, "body")
    group = etree.SubElement(body, "outline", text="Sources", title="Sources")
    for entry in entries:
        outline = etree.SubElement(group, "outline", type="rss", text=entry.name, title=entry.name)
        outline.set("xmlUrl", entry.xml_url)
        if entry.html_url:
            outline.set("htmlUrl", entry.html_url)
        if entry.tags:
            # OPML 2.0: comma-separated, slash-delimited category strings.
            outline.set("category", ",".join("/" + t.replace(",", " ") for t in entry.tags))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
