"""One record per story or event, when several sources (or one source twice) carry it.

Rules (each is a dictionary key, so merging stays O(n) over 40,000 news):

News are the same story when
  * their links are the same after ``urls.canonical_url`` (tracking parameters
    such as ``utm_*`` and ``xtor``, fragments, host case and default ports
    removed), or
  * with no link match, their normalised titles (case-folded, punctuation
    stripped, whitespace and no-break spaces collapsed) are equal, they were
    published on the same day (``published`` in its own zone, else the day
    first seen, UTC), and their summaries as plain text are near-identical
    (``difflib`` ratio >= 0.8) or both empty.

Events are the same event when their start matches exactly (the same instant
for timed events, whatever zone each source wrote it in; the same date for
all-day events) and their recurrence matches (same RRULE, same RECURRENCE-ID),
and also
  * their canonical links are equal, or
  * their normalised titles are equal, or
  * their UIDs are equal.
So two sessions of one series on different days, or at different times,
stay apart, and a recurring series merges only with the same rule and the
same first start.

An item read from a store carries its canonical link and title key
(``matching``), computed by the first publish that read its version and saved
in its row. Inside ``dedupe_memo()``
(one publish) every other key (day, start, and the links and titles of records
not from a store) is computed once, however many scopes (merged, per tag) merge
the item; outside it they are computed per call. The memo never changes a
result, only how often the keys are computed.

A link that one source gives to two or more of its own records is a listing
or home page, not the identity of a story, and is ignored for matching.

Of each group the original is kept: a copy whose link carries no tracking
parameters or fragment (re-posters add them) before one whose link does, then
the copy stored first (``first_seen``), then source name, then key;
``record.also_from`` lists the other groups' sources, sorted.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Hashable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TypeVar

from aggregator.matching import MatchKeys, match_keys, reposted
from aggregator.memo import IdentityMemo
from aggregator.records import EventRecord
from aggregator.sanitize import html_to_text
from aggregator.store.base import StoredEvent, StoredNews

__all__ = ["dedupe_memo", "merge_events", "merge_news"]

SUMMARY_SIMILARITY = 0.8

_Stored = TypeVar("_Stored", StoredNews, StoredEvent)

_MEMO = IdentityMemo("clusterfeeds_dedupe_memo")


def dedupe_memo() -> AbstractContextManager[None]:
    """Within the block, every item's de-duplication keys are computed once; afterwards they are dropped.

    A publish merges the same stored items for the merged feed and again for each of their
    tags: with the memo the later merges are dictionary work over keys already known.
    """
    return _MEMO.scope()


_memoized = _MEMO.get


def _keys(item: StoredNews | StoredEvent) -> MatchKeys:
    """The keys stored with the item's row, else (not from a store, or stored under older rules) computed."""
    match = item.match
    if match is not None:
        return match
    record = item.record
    return _memoized("keys", item, lambda: match_keys(record.link, record.title))


class _Groups:
    """Union-find over record positions."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def join_equal_keys(self, keys: Iterable[tuple[int, Hashable]]) -> None:
        join_equal_keys(self.union, keys)


def join_equal_keys(union: Callable[[int, int], None], keys: Iterable[tuple[int, Hashable]]) -> None:
    """``union`` every position with the first one of the same key."""
    first: dict[Hashable, int] = {}
    for i, key in keys:
        if key in first:
            union(first[key], i)
        else:
            first[key] = i


def _link_keys(items: Sequence[StoredNews | StoredEvent], keys: Sequence[MatchKeys]) -> list[str | None]:
    """Each record's canonical link, or None when it has none or it is a listing page (see module doc)."""
    links: list[str | None] = []
    seen: set[tuple[str, str]] = set()
    listing: set[str] = set()
    for item, key in zip(items, keys, strict=True):
        record = item.record
        link = key.canonical if record.link else None
        if link is not None:
            if (record.source, link) in seen:
                listing.add(link)
            seen.add((record.source, link))
        links.append(link)
    if not listing:
        return links
    return [link if link not in listing else None for link in links]


def _with_also_from(item: _Stored, also_from: tuple[str, ...]) -> _Stored:
    """The kept copy with the other sources; one object per publish for the same result.

    The merged feed and a tag feed that both keep this copy with the same other sources get the
    same object, so the renderers' per-publish fragments (keyed by identity) serve both.
    """
    made: dict[tuple[str, ...], _Stored] = _memoized("also_from", item, dict)
    merged = made.get(also_from)
    if merged is None:
        merged = made[also_from] = replace(item, record=replace(item.record, also_from=also_from))
    return merged


def _collapse(items: Sequence[_Stored], keys: Sequence[MatchKeys], groups: _Groups) -> list[_Stored]:
    """The kept copy of every group, in the input order of the kept copies.

    Only groups of two or more are gathered: most items stand alone, and a list per item (with
    the pairs sorted afterwards) held 40 MB of 160,000 news for a moment.
    """
    members: dict[int, list[int]] = {}
    for i in range(len(items)):
        root = groups.find(i)
        if root != i:
            members.setdefault(root, [root]).append(i)
    kept_at: dict[int, _Stored] = {}  # position of the kept copy -> it, with the others' sources
    for group in members.values():
        keeper = min(
            group,
            key=lambda i: (
                reposted(items[i].record.link, keys[i].canonical),
                items[i].first_seen,
                items[i].record.source,
                items[i].record.key,
            ),
        )
        record = items[keeper].record
        sources = {items[i].record.source for i in group} | {s for i in group for s in items[i].record.also_from}
        sources.discard(record.source)
        kept_at[keeper] = _with_also_from(items[keeper], tuple(sorted(sources)))
    if not kept_at:
        return list(items)
    parent = groups.parent  # a root is its own parent
    return [
        kept_at[i] if i in kept_at else items[i]
        for i in range(len(items))
        if i in kept_at or (parent[i] == i and i not in members)
    ]


def _publication_day(item: StoredNews) -> date:
    published = item.record.published
    if published is not None:
        return published.date()
    return item.first_seen.astimezone(UTC).date()


def _similar(a: str, b: str) -> bool:
    if not a and not b:
        return True
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return matcher.real_quick_ratio() >= SUMMARY_SIMILARITY and matcher.ratio() >= SUMMARY_SIMILARITY


def _summary_text(item: StoredNews) -> str:
    return _memoized("summary", item, lambda: html_to_text(item.record.summary))


def merge_news(items: Sequence[StoredNews]) -> list[StoredNews]:
    """One StoredNews per story; the others' sources go to ``record.also_from``."""
    keys = [_keys(item) for item in items]
    groups = _Groups(len(items))
    links = _link_keys(items, keys)
    groups.join_equal_keys((i, link) for i, link in enumerate(links) if link is not None)
    for candidates in _same_title_and_day(items, keys):
        if len({groups.find(i) for i in candidates}) < 2:
            continue  # already one story by link
        texts = [_summary_text(items[i]) for i in candidates]
        for a in range(len(candidates)):
            for b in range(a + 1, len(candidates)):
                i, j = candidates[a], candidates[b]
                if groups.find(i) == groups.find(j):
                    continue
                # A link match is the stronger evidence: two different links are two stories.
                if links[i] is not None and links[j] is not None and links[i] != links[j]:
                    continue
                if _similar(texts[a], texts[b]):
                    groups.union(i, j)
    return _collapse(items, keys, groups)


def _same_title_and_day(items: Sequence[StoredNews], keys: Sequence[MatchKeys]) -> list[list[int]]:
    """Positions of items sharing a title key and publication day, two or more, in input order.

    A dict of every item's (title, day) to a list held 43 MB of 160,000 news for a moment; the first
    position of each key is an int, and only keys met again get a list.
    """
    first: dict[tuple[int, date], int] = {}
    repeated: dict[tuple[int, date], list[int]] = {}
    for i, key in enumerate(keys):
        if key.title:
            title_day = (key.title, _publication_day(items[i]))
            earlier = first.setdefault(title_day, i)
            if earlier != i:
                repeated.setdefault(title_day, [earlier]).append(i)
    return list(repeated.values())


def _start_key(start: datetime | date) -> tuple[str, datetime | date]:
    if isinstance(start, datetime):
        return "at", start.astimezone(UTC)
    return "day", start


def _series_key(record: EventRecord) -> tuple[str, tuple[str, datetime | date] | None]:
    recurrence = None if record.recurrence_id is None else _start_key(record.recurrence_id)
    return record.rrule or "", recurrence


def _when(item: StoredEvent) -> tuple[tuple[str, datetime | date], tuple[str, tuple[str, datetime | date] | None]]:
    record = item.record
    return _memoized("when", item, lambda: (_start_key(record.start), _series_key(record)))


def merge_events(items: Sequence[StoredEvent]) -> list[StoredEvent]:
    """One StoredEvent per event (same start and recurrence, and same link, title or UID)."""
    records = [item.record for item in items]
    keys = [_keys(item) for item in items]
    groups = _Groups(len(items))
    when = [_when(item) for item in items]
    links = _link_keys(items, keys)
    keyers: tuple[Callable[[int], Hashable | None], ...] = (
        lambda i: links[i],
        lambda i: keys[i].title or None,
        lambda i: records[i].uid,
    )
    for number, keyer in enumerate(keyers):
        keyed = ((i, keyer(i)) for i in range(len(records)))
        groups.join_equal_keys((i, (number, key, when[i])) for i, key in keyed if key is not None)
    return _collapse(items, keys, groups)
