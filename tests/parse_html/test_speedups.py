"""Shortcuts taken for speed give exactly what the long way gives.

Plain text skips the HTML parse in ``html_to_text``; ``kind = "html"`` reuses
compiled CSS selectors; the listing heuristics keep every element's proxy alive.
"""

from __future__ import annotations

import html
from dataclasses import replace

import nh3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parse_html.html_support import at, page, source

from aggregator.config import Selectors, SourceKind
from aggregator.parse import parse_document
from aggregator.records import RecordKind
from aggregator.sanitize import _CONTROL, clean_text, html_to_text

URL = "https://www.clusterland.example/en/news/"
FETCHED = at("Europe/Brussels", 2015, 1, 20, 10)
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every character but "<", "&" and the byte-order mark: the input the shortcut is taken for.
_plain = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<&\ufeff")
    | st.sampled_from(["\r", "\n", "\x00", "\x0b", "\x1c", "\x85", "\u00a0", "\u2028", "\ufffe", '"', "'", ">", "="]),
    max_size=60,
)


def _by_parsing(fragment: str) -> str:
    """What html_to_text returned for every input before the shortcut: html5ever, then unescape."""
    return clean_text(html.unescape(nh3.clean(_CONTROL.sub("", fragment), tags=set())))


@SETTINGS
@given(_plain)
def test_plain_text_reads_the_same_without_the_html_parse(text):
    assert html_to_text(text) == _by_parsing(text)


def test_text_with_markup_entities_or_a_byte_order_mark_is_still_parsed():
    assert html_to_text("\ufeffCluster Day") == "Cluster Day"
    assert html_to_text("R&amp;D <b>day</b> &lt;Graz&gt;") == "R&D day <Graz>"
    assert html_to_text("Matchmaking<script>alert(1)</script> Linz") == "Matchmaking Linz"


def _selectors_source(item: str, title: str, date: str, record: RecordKind):  # type: ignore[no-untyped-def]
    return replace(
        source("clusterland", URL),
        kind=SourceKind.HTML,
        selectors=Selectors(item=item, title=title, date=date, record=record),
    )


def test_compiled_selectors_of_one_source_never_answer_for_another():
    body = page("seed_clusterland_news.html")
    news = _selectors_source("div.teaser", "h3.teaser-title", "span.teaser-date", RecordKind.NEWS)
    other = _selectors_source("div.teaser", "h3.teaser-title", "span.nothing-here", RecordKind.NEWS)
    first = parse_document(body, source=news, url=URL, content_type="text/html", fetched_at=FETCHED)
    between = parse_document(body, source=other, url=URL, content_type="text/html", fetched_at=FETCHED)
    again = parse_document(body, source=news, url=URL, content_type="text/html", fetched_at=FETCHED)
    assert again == first
    assert len(first.news) == 4
    assert all(n.published is not None for n in first.news)
    assert [p.message for p in between.problems] == ["no date found"] * len(between.records)
    assert [n.published for n in between.news] == [None] * len(between.records)
    assert [n.title for n in between.news] == [n.title for n in first.news]
