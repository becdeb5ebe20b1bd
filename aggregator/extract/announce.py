"""Events announced inside news: "E4T mid-term open event, 24-25 October 2018, Karlsruhe".

Small clusters often publish an event only as a news item whose title (or
teaser) carries the date and place. The text before the date is the event's
title, the text after it the place. Only the title and teaser text count: the
teaser's publication date line is when the news was written, not when the
event happens (it never reaches the summary text we read here).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import datetime

from aggregator.config import SourceConfig
from aggregator.extract.dates import When, find_when
from aggregator.extract.listing import make_event
from aggregator.records import EventRecord, EventStatus, NewsRecord, Strategy

__all__ = ["announced_events", "event_in_text"]

_SEPARATORS = " \t,;:|–—-·•/([«»\"'"
_TRAILING = " \t,;:|–—-·•/)]«»\"'"
# "Matchmaking day on 14 November 2018 in Linz": the words that tie the date to its sentence.
_LINKING_END = re.compile(r"\s+(on|at|from|am|vom|ab|le|du|les|il|dal|dall'|el|op)\s*$", re.IGNORECASE)
_LINKING_START = re.compile(r"^(in|at|im|in der|à|au|en|a|presso|bei)\s+", re.IGNORECASE)
# A date after these words is a deadline, not the day something happens.
_DEADLINE = re.compile(
    r"\b(deadline|until|till|due|bis|frist|anmeld\w*|jusqu|avant le|date limite|entro|scadenza|termine ultimo)\b"
    r"|\bby\s*$",
    re.IGNORECASE,
)
_OPENERS = {")": "(", "]": "["}
# A teaser mention counts only with a day number besides the year ("in October 2026" is too vague).
_DAY = re.compile(r"(?<!\d)\d{1,2}(?!\d)")


def _trim_end(text: str) -> str:
    """Strip trailing separators and a dangling "(", but keep a bracket that closes one: "Webinar (LIFE)"."""
    text = text.rstrip()
    while text and (text[-1] in _TRAILING or text[-1] in "(["):
        closer = text[-1]
        if closer in _OPENERS and text.count(_OPENERS[closer]) >= text.count(closer):
            break
        text = text[:-1].rstrip()
    return text


def event_in_text(text: str, *, source: SourceConfig, reference: datetime) -> tuple[str, When, str] | None:
    """(title before the date, when, place after the date) of an announcement, or None."""
    if not _DAY.search(text):  # cheap test first: most titles name no day
        return None
    found = find_when(text, tz=source.timezone, reference=reference)
    if found is None:
        return None
    when, matched = found
    at = text.find(matched)
    if at < 0 or not _DAY.search(matched):
        return None
    before = _trim_end(text[:at].lstrip(_TRAILING)).lstrip(_SEPARATORS)
    before = _trim_end(_LINKING_END.sub("", before).lstrip(_TRAILING))
    after = (
        _LINKING_START.sub("", text[at + len(matched) :].lstrip(_SEPARATORS + ")]").strip(_SEPARATORS))
        .rstrip(_TRAILING + ".")
        .strip()
    )
    if _DEADLINE.search(text[:at]):
        return None
    if not before:
        before, after = after, ""
    if not before:
        return None
    return before, when, after


def announced_events(news: Iterable[NewsRecord], *, source: SourceConfig, reference: datetime) -> list[EventRecord]:
    """One event per news item whose title (else teaser) announces a dated event."""
    events: list[EventRecord] = []
    for item in news:
        found = event_in_text(item.title, source=source, reference=reference)
        if found is None and item.summary:
            found = _in_teaser(html.unescape(item.summary), source=source, reference=reference)
        if found is None:
            continue
        title, when, place = found
        events.append(
            make_event(
                title=title,
                link=item.link,
                when=when,
                location=place or None,
                description="",
                status=EventStatus.CONFIRMED,
                source=source,
                strategy=Strategy.TITLE_TEXT,
                announced_by=item.id,
            )
        )
    return events


def _in_teaser(text: str, *, source: SourceConfig, reference: datetime) -> tuple[str, When, str] | None:
    """A teaser sentence is no title: only its first clause before the date can name the event."""
    first = re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]
    found = event_in_text(first, source=source, reference=reference)
    if found is None or len(found[0].split()) > 8:
        return None
    return found
