"""Allow-list HTML sanitising (nh3, the Rust ammonia sanitiser) and plain-text cleaning.

Every HTML fragment we publish passes through ``sanitize_html``: scripts,
event handlers, styles and javascript:/data: URLs never reach a reader.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

import nh3

__all__ = ["clean_text", "html_to_text", "sanitize_html"]

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div", "dl",
    "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "time": {"datetime"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "blockquote": {"cite"},
    "q": {"cite"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
_URL_ATTRIBUTES = {("a", "href"), ("img", "src"), ("blockquote", "cite"), ("q", "cite")}
# C0 controls except TAB/LF/CR, DEL, C1 controls, and lone surrogates: none is valid in XML 1.0.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACE = re.compile(r"\s+")
# Elements nested deeper than this lose their tags (their text stays): html5ever, inside nh3, takes
# quadratic time in the nesting depth, so 1 MB of "<div>" would hold a parser process for minutes.
_MAX_DEPTH = 256
# A start or end tag; "[^<>]*" stops at the next "<", so a scan of hostile input stays linear.
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^<>]*>")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)


def _absolutiser(base_url: str | None):  # type: ignore[no-untyped-def]
    def resolve(element: str, attribute: str, value: str) -> str | None:
        if "<" in value or ">" in value:
            # Markup inside an attribute (the <noscript> mutation trick) is inert here, but becomes
            # live in any reader that unescapes once too often: no tooltip is worth that.
            return None
        if (element, attribute) not in _URL_ATTRIBUTES:
            return value
        value = value.strip()
        if base_url:
            try:
                value = urljoin(base_url, value)
            except ValueError:
                return None
        return value

    return resolve


def _shallow(fragment: str) -> str:
    """``fragment`` with the tags below ``_MAX_DEPTH`` levels of nesting removed, in linear time."""
    if fragment.count("<") <= _MAX_DEPTH:
        return fragment
    parts: list[str] = []
    depth = kept_until = 0
    for match in _TAG.finditer(fragment):
        closing, name = match.group(1), match.group(2).lower()
        if name in _VOID or match.group(0).endswith("/>"):
            continue
        if closing:
            deep = depth > _MAX_DEPTH
            depth = max(0, depth - 1)
        else:
            depth += 1
            deep = depth > _MAX_DEPTH
        if deep:
            parts.append(fragment[kept_until : match.start()])
            kept_until = match.end()
    if not parts:
        return fragment
    parts.append(fragment[kept_until:])
    return "".join(parts)


def sanitize_html(fragment: str, *, base_url: str | None = None) -> str:
    """Return ``fragment`` with only allow-listed tags, attributes and URL schemes.

    Relative links and image sources are made absolute against ``base_url``;
    links get ``rel="noopener noreferrer nofollow"``.
    """
    if not fragment:
        return ""

    def clean(text: str) -> str:
        return nh3.clean(
            _shallow(text),
            tags=_TAGS,
            clean_content_tags={"script", "style"},
            attributes=_ATTRIBUTES,
            url_schemes=_URL_SCHEMES,
            link_rel="noopener noreferrer nofollow",
            attribute_filter=_absolutiser(base_url),
            strip_comments=True,
        )

    cleaned = clean(_CONTROL.sub("", fragment))
    if _shallow(cleaned) is not cleaned:
        # Broken tags hid markup from the depth count; now well-formed, it is cut like the rest,
        # so that sanitising the result again changes nothing.
        cleaned = clean(cleaned)
    return cleaned.strip()


def html_to_text(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed (for titles, ICS, index)."""
    if not fragment:
        return ""
    if "<" not in fragment and "&" not in fragment and "\ufeff" not in fragment:
        # No tag, no entity, no byte-order mark for html5ever to drop: the parse would only
        # remove control characters, as clean_text does (tests/parse_html/test_speedups.py).
        return clean_text(fragment)
    no_tags = nh3.clean(_shallow(_CONTROL.sub("", fragment)), tags=set(), clean_content_tags={"script", "style"})
    return clean_text(html.unescape(no_tags))


def clean_text(text: str | None) -> str:
    """Text safe for any output format: no control characters, whitespace collapsed."""
    if not text:
        return ""
    return _SPACE.sub(" ", _CONTROL.sub("", text)).strip()
