"""A publish that reads the sources a group at a time: the records are never all decoded at once.

``publish`` holds every record of every scope as Python objects while it renders: for 10,000
sources (160,000 news, 100,000 events) 450 MB in the publishing process. This one reads a group
of sources, writes each source's files, keeps of each item a row of numbers (an index: its sort
instant, its de-duplication keys, where its fragments wait in a spill file) and lets the records
go. The merged and tag files are then made from the index: ``dedupe``'s rules over the rows, each
file its head, its items' fragments read back in order, and its foot. The few items whose form
there differs from their own (a kept copy with other sources in ``also_from``, an event whose UID
another source owns) or whose text the rules need (same title, same day), and those index.html
shows, are read again from the store.

The files are byte for byte those ``publish`` writes (``tests/publish/test_streamed_publish.py``).
Equal keys are found by their 64-bit hashes within one process: two different links (titles,
UIDs, starts) that hash alike among a publish's 260,000 items are a chance of about 1 in 10^9.
"""

from __future__ import annotations

import contextlib
import logging
import time
from array import array
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, overload

from aggregator.config import Config
from aggregator.dedupe import _publication_day, _series_key, _similar, _start_key
from aggregator.errors import PublishError, StoreError
from aggregator.fragments import (
    CACHE_FILE,
    Fragment,
    FragmentCache,
    Spilled,
    SpillFile,
    fragment_bytes,
    fragment_cache,
    fragment_key,
)
from aggregator.matching import MatchKeys, match_keys, reposted
from aggregator.publish import (
    _CALENDAR,
    _FEED_SUFFIXES,
    _IN_FLIGHT,
    _IN_FLIGHT_BYTES,
    _STATE_FILE,
    _TOKEN_FILE,
    _WRITERS,
    PublishInput,
    PublishReport,
    _calendar_spec,
    _common_digest,
    _events_piece,
    _feed_meta,
    _files,
    _load_state,
    _Output,
    _render_pages,
    _save_state,
    _scope_specs,
    _ScopeSpec,
    _source_digest,
    _spec_digest,
    _stamp,
    _valid_until,
    news_per_source,
)
from aggregator.publish._common import EPOCH, FeedMeta, news_date, render_memo, safe_url, sort_news
from aggregator.publish.atom import ATOM_FOOT, atom_entry, atom_head, atom_parts
from aggregator.publish.ics import (
    ICS_FOOT,
    RenderedEvent,
    _last_instant_start,
    _without_rdates,
    current_events,
    current_until,
    ics_event,
    ics_head,
    widened,
)
from aggregator.publish.index import _UPCOMING_DAYS, listed_events, upcoming
from aggregator.publish.jsonfeed import (
    JSON_FEED_BETWEEN,
    JSON_FEED_FOOT,
    json_feed_head,
    json_feed_item,
    json_feed_parts,
)
from aggregator.publish.rss import RSS_FOOT, rss_head, rss_item, rss_parts
from aggregator.records import SourceState
from aggregator.sanitize import html_to_text
from aggregator.store.base import Store, StoredEvent, StoredNews

__all__ = ["publish_streamed", "publishes_streamed"]

log = logging.getLogger("aggregator.publish")

_Item = TypeVar("_Item", StoredNews, StoredEvent)
_SOURCES_AT_ONCE = 64  # sources read, rendered and let go together (one query per kind)
_MICROSECOND = timedelta(microseconds=1)
_NEWS_KINDS = ("rss", "atom", "json")
_LATEST_NEWS = 20  # as index.html shows (``index._LATEST_NEWS``)


def publishes_streamed(config: Config, records: int) -> bool:
    """Whether a store of ``records`` news and events is published a group of sources at a time."""
    return records > config.defaults.publish_stream_records


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // _MICROSECOND


def _hash(value: Hashable) -> int:
    """A key's 64-bit hash, never 0 (0 marks "none")."""
    return hash(value) or 1


class _Places:
    """Where a fragment of each row waits in the spill file (offset and length), a row at a time."""

    def __init__(self, spill: SpillFile) -> None:
        self._spill = spill
        self.offset = array("q")
        self.length = array("i")

    def append(self, part: Fragment) -> None:
        kept = self._spill.append(fragment_bytes(part))
        self.offset.append(kept.offset)
        self.length.append(kept.length)

    def __getitem__(self, row: int) -> Spilled:
        return Spilled(self._spill, self.offset[row], self.length[row])


class _NewsRows:
    """One row per news item read, sources in configuration order, each source's in the store's order."""

    def __init__(self, spill: SpillFile) -> None:
        self.source = array("i")  # position of its source in the configuration
        self.position = array("i")  # position in its source's ``sort_news`` order
        self.key_hash = array("q")
        self.key_rank = array("i")  # rank of its key among its source's (the tie-break after the source)
        self.newest_first = array("q")  # ``_newest_first``'s microseconds: EPOCH minus its date
        self.first_seen = array("q")
        self.updated = array("q")  # what ``feed_updated`` takes of it
        self.link = array("q")  # canonical link (0: none, or a record without a link)
        self.reposted = bytearray()
        self.title = array("q")  # title key (0: none)
        self.day = array("i")  # publication day (ordinal)
        self.places = tuple(_Places(spill) for _ in _NEWS_KINDS)
        self.also_from: dict[int, tuple[str, ...]] = {}  # rows stored with other sources already (rare)

    def __len__(self) -> int:
        return len(self.source)


class _EventRows:
    """One row per current event, as ``_NewsRows``; each with its calendar entries as published alone."""

    def __init__(self, spill: SpillFile) -> None:
        self.source = array("i")
        self.key_hash = array("q")
        self.key_rank = array("i")
        self.first_seen = array("q")
        self.link = array("q")
        self.reposted = bytearray()
        self.title = array("q")
        self.when = array("q")  # start and recurrence (``dedupe._when``)
        self.uid: list[str] = []
        self.listable = bytearray()  # an occurrence in index.html's next days, or an override
        self.first_entry = array("i")
        self.entries = _Entries(spill)
        self.also_from: dict[int, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self.source)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One VEVENT of a calendar: what orders it, the zone it needs, and its text."""

    suffix: str  # after the event's published UID ("-rdate-STAMP" for an RDATE's own event)
    override: bool
    recurrence: int  # microseconds of its RECURRENCE-ID (``ics._order``)
    tzid: str | None
    years: tuple[int, int] | None
    text: Fragment


class _Entries:
    """Calendar entries of the events in their own scope, in ``_without_rdates`` order, as arrays."""

    def __init__(self, spill: SpillFile) -> None:
        self.suffix: dict[int, str] = {}
        self.override = bytearray()
        self.recurrence = array("q")
        self.zone = array("i")  # position in ``zones`` (-1: none)
        self.first_year = array("i")
        self.last_year = array("i")
        self.places = _Places(spill)
        self.zones: list[str] = []
        self._zone_at: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.override)

    def append(self, entry: _Entry) -> None:
        if entry.suffix:
            self.suffix[len(self)] = entry.suffix
        self.override.append(entry.override)
        self.recurrence.append(entry.recurrence)
        if entry.tzid is None:
            self.zone.append(-1)
        else:
            if entry.tzid not in self._zone_at:
                self._zone_at[entry.tzid] = len(self.zones)
                self.zones.append(entry.tzid)
            self.zone.append(self._zone_at[entry.tzid])
        first, last = entry.years or (0, 0)
        self.first_year.append(first)
        self.last_year.append(last)
        self.places.append(entry.text)

    def __getitem__(self, index: int) -> _Entry:
        zone = self.zone[index]
        return _Entry(
            suffix=self.suffix.get(index, ""),
            override=bool(self.override[index]),
            recurrence=self.recurrence[index],
            tzid=None if zone < 0 else self.zones[zone],
            years=(self.first_year[index], self.last_year[index]) if zone >= 0 else None,
            text=self.places[index],
        )


def _entries(pairs: Iterable[tuple[StoredEvent, str]], uid: str) -> list[_Entry]:
    """The VEVENTs of one event published under ``uid``: ``pairs`` is ``_without_rdates`` of it."""
    out = []
    for entry_item, entry_uid in pairs:
        rendered: RenderedEvent = ics_event(entry_item, entry_uid)
        recurrence_id = entry_item.record.recurrence_id
        out.append(
            _Entry(
                suffix=entry_uid[len(uid) :],
                override=recurrence_id is not None,
                recurrence=_micros(_last_instant_start(recurrence_id)),
                tzid=rendered.tzid,
                years=(min(rendered.years), max(rendered.years)) if rendered.years else None,
                text=rendered.text,
            )
        )
    return out


def _plain_news(item: StoredNews, index: int, origin: str | None) -> Fragment:
    """The item's fragment for news file ``index`` (RSS, Atom, JSON Feed)."""
    if index == 0:
        return rss_item(item, origin)
    if index == 1:
        return atom_entry(item)
    return json_feed_item(item)


def _news_output(index: int, path: str, meta: FeedMeta, items: list[StoredNews], origins: dict[str, str]) -> _Output:
    """A source's own news file, by the usual renderers (its items' fragments are in the render memo)."""
    if index == 0:
        return _Output(path, rss_parts(meta, items, origins))
    if index == 1:
        return _Output(path, atom_parts(meta, items))
    return _Output(path, json_feed_parts(meta, items))


def _shared_news_output(index: int, path: str, meta: FeedMeta, updated: datetime, items: Sequence[Fragment]) -> _Output:
    """A merged or tag news file: its head, the items' fragments from the spill file, its foot."""
    if index == 0:
        return _Output(path, _Parts(rss_head(meta, updated), items, RSS_FOOT))
    if index == 1:
        return _Output(path, _Parts(atom_head(meta, updated), items, ATOM_FOOT))
    return _Output(path, _Parts(json_feed_head(meta), items, JSON_FEED_FOOT, JSON_FEED_BETWEEN))


def _listing(linked: Iterable[tuple[int, int]], rows: Sequence[int], source: array[int]) -> set[int]:
    """Links that one source gives to two or more of its rows here: listing pages, not stories (``dedupe``)."""
    seen: set[tuple[int, int]] = set()
    listing: set[int] = set()
    for i, link in linked:
        pair = (source[rows[i]], link)
        if pair in seen:
            listing.add(link)
        seen.add(pair)
    return listing


def _intact(feeds_dir: Path, entry: Any, digest: str, paths: Sequence[str]) -> bool:
    """The scope's files are still exactly the ones the previous publish left (same size and mtime)."""
    if not isinstance(entry, dict) or entry.get("digest") != digest:
        return False
    stamps = entry.get("files")
    if not isinstance(stamps, dict):
        return False
    return all(stamps.get(p) is not None and stamps.get(p) == _stamp(feeds_dir / p) for p in paths)


class _Writer:
    """Files handed to a few writer threads; at most ``_IN_FLIGHT`` files (``_IN_FLIGHT_BYTES``) wait."""

    def __init__(self, feeds_dir: Path) -> None:
        self._feeds_dir = feeds_dir
        self._pool = ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="publish")
        self._pending: deque[tuple[str, int, Future[bool]]] = deque()
        self._in_flight = 0
        self.written: list[str] = []
        self.unchanged = 0
        self.touched: set[Path] = set()

    def submit(self, output: _Output) -> None:
        path = self._feeds_dir / output.path
        future = self._pool.submit(_files.write_if_changed, path, output.parts, sync_directory=False)
        size = output.size
        self._pending.append((output.path, size, future))
        self._in_flight += size
        self._settle(_IN_FLIGHT)

    def _settle(self, keep: int) -> None:
        while len(self._pending) > keep or (self._pending and self._in_flight > _IN_FLIGHT_BYTES):
            relative, size, future = self._pending.popleft()
            self._in_flight -= size
            if future.result():
                self.written.append(relative)
                self.touched.add((self._feeds_dir / relative).parent)
            else:
                self.unchanged += 1

    def finish(self) -> None:
        try:
            self._settle(0)
        finally:
            self.cancel()

    def cancel(self) -> None:
        for _, _, future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)


class _Parts(Sequence[Fragment]):
    """A file's pieces made as they are written: its head, each item's fragment (``between`` them), its foot.

    A merged feed of 160,000 items would otherwise hold a ``Spilled`` per item for as long as it is written.
    """

    def __init__(self, head: bytes, items: Sequence[Fragment], foot: bytes, between: bytes = b"") -> None:
        self._head = head
        self._items = items
        self._foot = foot
        self._between = between
        count = len(items)
        self._length = 2 + count + (max(count - 1, 0) if between else 0)

    def __len__(self) -> int:
        return self._length

    def _part(self, index: int) -> Fragment:
        if index == 0:
            return self._head
        if index == self._length - 1:
            return self._foot
        if not self._between:
            return self._items[index - 1]
        item, separator = divmod(index - 1, 2)
        return self._between if separator else self._items[item]

    @overload
    def __getitem__(self, index: int) -> Fragment: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Fragment]: ...

    def __getitem__(self, index: int | slice) -> Fragment | Sequence[Fragment]:
        if isinstance(index, slice):
            return [self._part(i) for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self._part(index)


class _Lazy(Sequence[Fragment]):
    """``get(i)`` for each of ``count`` items, made when asked for."""

    def __init__(self, count: int, get: Callable[[int], Fragment]) -> None:
        self._count = count
        self._get = get

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Fragment: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Fragment]: ...

    def __getitem__(self, index: int | slice) -> Fragment | Sequence[Fragment]:
        if isinstance(index, slice):
            return [self._get(i) for i in range(*index.indices(self._count))]
        return self._get(index)


def _repeated(values: Iterable[int]) -> set[int]:
    """The values (not 0) that occur more than once, found by sorting (no dictionary of every value)."""
    ordered = sorted(v for v in values if v)
    return {ordered[i] for i in range(1, len(ordered)) if ordered[i] == ordered[i - 1]}


class _SparseGroups:
    """``dedupe._Groups`` over the few positions that take part: union-find in a dictionary."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        parent = self.parent
        while parent.get(i, i) != i:
            parent[i] = parent.get(parent[i], parent[i])
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        self.parent.setdefault(a, a)
        self.parent.setdefault(b, b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def join_equal_keys(self, keys: Iterable[tuple[int, Hashable]]) -> None:
        first: dict[Hashable, int] = {}
        for i, key in keys:
            if key in first:
                self.union(first[key], i)
            else:
                first[key] = i

    def members(self) -> dict[int, list[int]]:
        """Each group of two or more: its root -> its positions, ascending (as ``dedupe._collapse``)."""
        members: dict[int, list[int]] = {}
        for i in sorted(self.parent):
            root = self.find(i)
            if root != i:
                members.setdefault(root, [root]).append(i)
        return members


_Kept = tuple[int, tuple[str, ...]]  # a row and the other sources it is shown with


def _ics_span(years: tuple[int, int] | None) -> tuple[int, ...]:
    return () if years is None else years


class _Publish:
    """One streamed publish: the index made in one pass over the sources, then the merged and tag files."""

    def __init__(
        self,
        feeds_dir: Path,
        config: Config,
        store: Store,
        cache: FragmentCache,
        spill: SpillFile,
        now: datetime,
        base_url: str,
        states: Sequence[SourceState],
    ) -> None:
        self.feeds_dir = feeds_dir
        self.config = config
        self.store = store
        self.cache = cache
        self.spill = spill
        self.now = now
        self.data = PublishInput(config=config, news=[], events=[], states=states, now=now, base_url=base_url)
        self.sources = config.sources
        self.cap = config.defaults.max_items
        self.names = [s.name for s in self.sources]
        rank_of = {name: rank for rank, name in enumerate(sorted(self.names))}
        self.source_rank = array("i", [rank_of[name] for name in self.names])
        self.origins = {s.name: s.url for s in self.sources}
        self.origin_urls = [safe_url(s.url) for s in self.sources]
        self.merged_news: list[_Kept] | None = None
        self.since = now - timedelta(days=config.defaults.past_days)
        self.per_source = news_per_source(config)
        self.news = _NewsRows(spill)
        self.events = _EventRows(spill)
        self.news_range: list[tuple[int, int]] = []  # per source (configuration order): its rows
        self.event_range: list[tuple[int, int]] = []
        self.pieces: dict[str, bytes] = {}
        self.news_counts: dict[str, int] = {}
        self.event_counts: dict[str, int] = {}
        self.leaving: datetime | None = None
        self.writer = _Writer(feeds_dir)
        self.read_seconds = 0.0
        self.common = _common_digest(self.data)
        self.settings_text = {s.name: repr(s) for s in self.sources}
        self.single = len(self.sources) == 1
        self.previous = _load_state(config.data_dir / _STATE_FILE, feeds_dir)
        self.done_scopes: dict[str, Any] = {}
        self.rendered: list[str] = []
        self.unchanged_files = 0
        self.reread_news: dict[int, StoredNews] = {}
        self.reread_events: dict[int, StoredEvent] = {}
        self.news_variants: dict[_Kept, tuple[Spilled, ...]] = {}
        self.event_variants: dict[tuple[int, tuple[str, ...], str], list[_Entry]] = {}
        self.keys_to_save: list[tuple[StoredNews | StoredEvent, MatchKeys]] = []

    # -- the pass over the sources ----------------------------------------------------------

    def read_sources(self, specs: Sequence[_ScopeSpec]) -> None:
        """Every source's rows into the index; each source's own files written where they changed."""
        own_specs = specs[1 : 1 + len(self.sources)]
        for start in range(0, len(self.sources), _SOURCES_AT_ONCE):
            group = self.sources[start : start + _SOURCES_AT_ONCE]
            names = [s.name for s in group]
            started = time.perf_counter()
            news = self._with_keys(self.store.news(sources=names, per_source=self.per_source))
            events = self._with_keys(self.store.events(since=self.since, sources=names))
            self.read_seconds += time.perf_counter() - started
            self._save_keys()
            news_of: dict[str, list[StoredNews]] = {name: [] for name in names}
            for item in news:
                news_of[item.record.source].append(item)
            events_of: dict[str, list[StoredEvent]] = {name: [] for name in names}
            for event in events:
                events_of[event.record.source].append(event)
            del news, events
            with render_memo():
                for offset, source in enumerate(group):
                    number = start + offset
                    self._read_source(number, own_specs[number], news_of.pop(source.name), events_of.pop(source.name))
            self.cache.forget_prefetched()
            self.cache.forget_digests()

    def _with_keys(self, items: list[_Item]) -> list[_Item]:
        """``items``, each read without de-duplication keys given them (saved in groups: ``_save_keys``)."""
        for index, item in enumerate(items):
            if item.match is None:
                keys = match_keys(item.record.link, item.record.title)
                items[index] = replace(item, match=keys)
                self.keys_to_save.append((items[index], keys))
        return items

    def save_keys(self) -> None:
        self._save_keys(at_least=1)

    def _save_keys(self, *, at_least: int = 2_000) -> None:
        if len(self.keys_to_save) < at_least:
            return
        try:
            self.store.save_match_keys(self.keys_to_save)
        except StoreError as error:  # computed again next time: speed lost, not output
            log.warning("de-duplication keys not saved: %s", error)
        self.keys_to_save.clear()

    def _prefetch(
        self, news: Sequence[StoredNews], origin: str | None, entries: Sequence[tuple[StoredEvent, str]]
    ) -> None:
        """Read this source's stored fragments of every kind in one query each (``FragmentCache.prefetch``)."""
        kinds: dict[str, list[bytes]] = {kind: [] for kind in (*_NEWS_KINDS, "vevent")}
        for item in news:
            for kind, variant in zip(_NEWS_KINDS, (origin or "", "", ""), strict=True):
                key = fragment_key(kind, item, variant)
                if key is not None:
                    kinds[kind].append(key)
        for entry_item, entry_uid in entries:
            key = fragment_key("vevent", entry_item, entry_uid)
            if key is not None:
                kinds["vevent"].append(key)
        for kind, keys in kinds.items():
            if keys:
                self.cache.prefetch(kind, keys)

    def _read_source(self, number: int, spec: _ScopeSpec, news: list[StoredNews], read: list[StoredEvent]) -> None:
        """One source: its digest, its rows and fragments in the index, its own four files if they changed."""
        name = self.names[number]
        now, past_days = self.now, self.config.defaults.past_days
        edge = current_until(read, now, past_days)
        if edge is not None and (self.leaving is None or edge < self.leaving):
            self.leaving = edge
        events = current_events(read, now, past_days)
        del read
        self.pieces[name] = _source_digest(news, _events_piece(events))
        self.news_counts[name] = len(news)
        self.event_counts[name] = len(events)
        origin = self.origin_urls[number]
        own = [_without_rdates([(event, event.record.uid)]) for event in events]
        self._prefetch(news, origin, [pair for pairs in own for pair in pairs])
        self.news_range.append(self._index_news(number, news, origin))
        entries = self._index_events(number, events, own)
        digest = _spec_digest(self.common, spec, self.settings_text, self.single, self.pieces)
        if not self._begin_scope(spec, digest):
            return
        shown = sort_news(news, self.cap)
        for index in range(_CALENDAR):
            meta = _feed_meta(index, spec.prefix, spec.title, spec.description, spec.members, self.data)
            self.writer.submit(_news_output(index, spec.paths[index], meta, shown, self.origins))
        entries.sort(key=lambda pair: (pair[0] + pair[1].suffix, pair[1].override, pair[1].recurrence))
        self.writer.submit(self._calendar_output(spec, [entry for _, entry in entries]))

    def _index_news(self, number: int, news: Sequence[StoredNews], origin: str | None) -> tuple[int, int]:
        rows = self.news
        first_row = len(rows)
        position = {id(item): at for at, item in enumerate(sort_news(list(news), len(news)))}
        key_rank = {key: rank for rank, key in enumerate(sorted(item.record.key for item in news))}
        for item in news:
            record = item.record
            keys = item.match
            assert keys is not None  # given by ``_with_keys``
            date = news_date(item)
            canonical = keys.canonical if record.link else None
            if record.also_from:
                rows.also_from[len(rows)] = record.also_from
            rows.source.append(number)
            rows.position.append(position[id(item)])
            rows.key_hash.append(_hash(record.key))
            rows.key_rank.append(key_rank[record.key])
            rows.newest_first.append((EPOCH - date) // _MICROSECOND)
            rows.first_seen.append(_micros(item.first_seen))
            rows.updated.append(_micros(max(date, item.changed_at, record.updated or EPOCH)))
            rows.link.append(0 if canonical is None else _hash(canonical))
            rows.reposted.append(reposted(record.link, keys.canonical))
            rows.title.append(keys.title)
            rows.day.append(_publication_day(item).toordinal())
            for index in range(_CALENDAR):
                rows.places[index].append(_plain_news(item, index, origin))
        return first_row, len(rows)

    def _index_events(
        self, number: int, events: Sequence[StoredEvent], own: Sequence[Sequence[tuple[StoredEvent, str]]]
    ) -> list[tuple[str, _Entry]]:
        """The events' rows and calendar entries; returns the entries with their UIDs (the source's calendar)."""
        rows = self.events
        first_row = len(rows)
        key_rank = {key: rank for rank, key in enumerate(sorted(e.record.key for e in events))}
        calendar: list[tuple[str, _Entry]] = []
        for event, pairs in zip(events, own, strict=True):
            record = event.record
            keys = event.match
            assert keys is not None
            canonical = keys.canonical if record.link else None
            if record.also_from:
                rows.also_from[len(rows)] = record.also_from
            rows.source.append(number)
            rows.key_hash.append(_hash(record.key))
            rows.key_rank.append(key_rank[record.key])
            rows.first_seen.append(_micros(event.first_seen))
            rows.link.append(0 if canonical is None else _hash(canonical))
            rows.reposted.append(reposted(record.link, keys.canonical))
            rows.title.append(keys.title)
            rows.when.append(_hash((_start_key(record.start), _series_key(record))))
            rows.uid.append(record.uid)
            listable = record.recurrence_id is not None or bool(upcoming([event], self.now, _UPCOMING_DAYS + 1))
            rows.listable.append(listable)
            rows.first_entry.append(len(rows.entries))
            for entry in _entries(pairs, record.uid):
                rows.entries.append(entry)
                calendar.append((record.uid, entry))
        self.event_range.append((first_row, len(rows)))
        return calendar

    # -- scopes -------------------------------------------------------------------------------

    def _begin_scope(self, spec: _ScopeSpec, digest: str) -> bool:
        """Whether the scope's files must be rendered (else they are what the previous publish left)."""
        entry = self.previous.get(spec.prefix)
        if _intact(self.feeds_dir, entry, digest, spec.paths):
            self.unchanged_files += len(spec.paths)
            self.done_scopes[spec.prefix] = entry
            return False
        self.rendered.append(spec.prefix)
        self.done_scopes[spec.prefix] = {"digest": digest, "files": {}}
        return True

    def _calendar_output(self, spec: _ScopeSpec, entries: Sequence[_Entry]) -> _Output:
        calendar = _calendar_spec(spec.prefix, spec.title, spec.members, self.data)
        zones: dict[str, tuple[int, int]] = {}
        for entry in entries:
            if entry.tzid and entry.years is not None:
                zones[entry.tzid] = widened(zones.get(entry.tzid), entry.years)
        head = ics_head(
            name=calendar.name,
            refresh=calendar.refresh,
            zones=zones,
            fallback_zone=calendar.fallback_zone,
            year=self.now.year,
            empty=not entries,
        )
        return _Output(calendar.path, _Parts(head, _Lazy(len(entries), lambda i: entries[i].text), ICS_FOOT))

    def write_shared_scopes(self, specs: Sequence[_ScopeSpec]) -> None:
        """The merged and tag scopes whose files changed, from the index."""
        shared = [specs[0], *specs[1 + len(self.sources) :]]
        positions = {name: number for number, name in enumerate(self.names)}
        to_render = []
        for spec in shared:
            digest = _spec_digest(self.common, spec, self.settings_text, self.single, self.pieces)
            if self._begin_scope(spec, digest):
                to_render.append(spec)
        self._prepare_news_rules()
        self._prepare_event_rules()
        plans = []
        for spec in to_render:
            members = [positions[s.name] for s in spec.members]
            kept_news = self._scope_news(members, self.cap)
            if spec.prefix == "news":
                self.merged_news = kept_news
            plans.append((spec, kept_news, self._scope_events(members)))
        self._make_variants(plans)
        for spec, kept_news, kept_events in plans:
            newest = max((self.news.updated[row] for row, _ in kept_news), default=0)
            updated = EPOCH + timedelta(microseconds=newest)  # ``feed_updated``: EPOCH without items
            for index in range(_CALENDAR):
                meta = _feed_meta(index, spec.prefix, spec.title, spec.description, spec.members, self.data)
                fragments = _Lazy(len(kept_news), partial(self._news_fragment_at, kept_news, index))
                self.writer.submit(_shared_news_output(index, spec.paths[index], meta, updated, fragments))
            self.writer.submit(self._calendar_output(spec, self._calendar(kept_events)))

    def write_pages(self) -> None:
        """index.html and OPML, and until when everything stays right."""
        everything = list(range(len(self.sources)))
        latest_rows = (
            self.merged_news[:_LATEST_NEWS]
            if self.merged_news is not None
            else self._scope_news(everything, min(self.cap, _LATEST_NEWS))
        )
        all_events = self._scope_events(everything)
        listed_rows = [kept for kept in all_events if self.events.listable[kept[0]]]
        self._reread("news", [row for row, _ in latest_rows])
        self._reread("events", [row for row, _ in listed_rows])
        latest = [self._shown_news(kept) for kept in latest_rows]
        listed = listed_events([self._shown_event(kept) for kept in listed_rows], self.now)
        for output in _render_pages(
            self.data, latest=latest, listed=listed, news_counts=self.news_counts, event_counts=self.event_counts
        ):
            self.writer.submit(output)
        self.valid_until = _valid_until(self.data, listed, self.leaving)

    # -- news of a scope ------------------------------------------------------------------------

    def _prepare_news_rules(self) -> None:
        """The rows that can meet another (a link or a title and day given twice), and the texts the rules compare."""
        rows = self.news
        self.repeated_links = _repeated(rows.link)
        title_days = [(rows.title[r] << 22) | rows.day[r] if rows.title[r] else 0 for r in range(len(rows))]
        repeated = _repeated(title_days)
        texted = [r for r in range(len(rows)) if title_days[r] in repeated]
        del title_days
        self._reread("news", texted)
        self.texts = {r: html_to_text(self.reread_news[r].record.summary) for r in texted}

    def _news_order(self, row: int) -> int:
        """``sort_news``'s order as one number: newest first, then source name, then the source's own order."""
        rows = self.news
        return (
            ((rows.newest_first[row] + (1 << 62)) << 44)
            | (self.source_rank[rows.source[row]] << 22)
            | rows.position[row]
        )

    def _scope_news(self, members: Sequence[int], cap: int) -> list[_Kept]:
        """``_merged_newest`` of the members' news: merged over the newest first, widening until ``cap`` remain."""
        ordered = sorted((r for m in members for r in range(*self.news_range[m])), key=self._news_order)
        window = max(cap * 2, 1)
        while True:
            merged = self._merge_news(ordered[:window])
            if len(merged) >= cap or window >= len(ordered):
                return merged[:cap]
            window *= 2

    def _merge_news(self, rows: Sequence[int]) -> list[_Kept]:
        """``dedupe.merge_news`` over rows of the index (the same groups, kept copies and order)."""
        ix = self.news
        linked = [(i, ix.link[r]) for i, r in enumerate(rows) if ix.link[r] in self.repeated_links]
        listing = _listing(linked, rows, ix.source)
        groups = _SparseGroups()
        groups.join_equal_keys((i, link) for i, link in linked if link not in listing)
        first: dict[tuple[int, int], int] = {}
        repeated: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(rows):
            if r in self.texts:
                title_day = (ix.title[r], ix.day[r])
                earlier = first.setdefault(title_day, i)
                if earlier != i:
                    repeated.setdefault(title_day, [earlier]).append(i)

        def link(i: int) -> int:
            value = ix.link[rows[i]]
            return 0 if value in listing else value

        for candidates in repeated.values():
            if len({groups.find(i) for i in candidates}) < 2:
                continue
            texts = [self.texts[rows[i]] for i in candidates]
            for a in range(len(candidates)):
                for b in range(a + 1, len(candidates)):
                    i, j = candidates[a], candidates[b]
                    if groups.find(i) == groups.find(j):
                        continue
                    if link(i) and link(j) and link(i) != link(j):
                        continue
                    if _similar(texts[a], texts[b]):
                        groups.union(i, j)
        return self._collapse(rows, groups, ix.source, ix.reposted, ix.first_seen, ix.key_rank, ix.also_from)

    def _collapse(
        self,
        rows: Sequence[int],
        groups: _SparseGroups,
        source: array[int],
        reposted_: bytearray,
        first_seen: array[int],
        key_rank: array[int],
        stored_also_from: Mapping[int, tuple[str, ...]],
    ) -> list[_Kept]:
        """``dedupe._collapse``: the kept copy of each group with the others' sources, in input order."""
        kept_at: dict[int, tuple[str, ...]] = {}
        dropped: set[int] = set()
        for group in groups.members().values():
            keeper = min(
                group,
                key=lambda i: (
                    reposted_[rows[i]],
                    first_seen[rows[i]],
                    self.source_rank[source[rows[i]]],
                    key_rank[rows[i]],
                ),
            )
            others = {self.names[source[rows[i]]] for i in group}
            others |= {name for i in group for name in stored_also_from.get(rows[i], ())}
            others.discard(self.names[source[rows[keeper]]])
            kept_at[keeper] = tuple(sorted(others))
            dropped.update(i for i in group if i != keeper)
        return [
            (r, kept_at[i] if i in kept_at else stored_also_from.get(r, ()))
            for i, r in enumerate(rows)
            if i not in dropped
        ]

    def _news_fragment_at(self, kept: Sequence[_Kept], index: int, position: int) -> Fragment:
        row, also_from = kept[position]
        if also_from == self.news.also_from.get(row, ()):
            return self.news.places[index][row]
        return self.news_variants[(row, also_from)][index]

    def _shown_news(self, kept: _Kept) -> StoredNews:
        row, also_from = kept
        item = self.reread_news[row]
        if also_from == item.record.also_from:
            return item
        return replace(item, record=replace(item.record, also_from=also_from))

    # -- events of a scope ------------------------------------------------------------------------

    def _prepare_event_rules(self) -> None:
        rows = self.events
        self.repeated_event_links = _repeated(rows.link)
        self.repeated_when = _repeated(rows.when)
        self.repeated_uids = _repeated(_hash(uid) for uid in rows.uid)

    def _scope_events(self, members: Sequence[int]) -> list[_Kept]:
        """``merge_events`` of the members' current events (in configuration order, each source's in its order)."""
        ix = self.events
        rows = [r for m in members for r in range(*self.event_range[m])]
        linked = [(i, ix.link[r]) for i, r in enumerate(rows) if ix.link[r] in self.repeated_event_links]
        listing = _listing(linked, rows, ix.source)
        links = {i: link for i, link in linked if link not in listing}
        meeting = [i for i, r in enumerate(rows) if ix.when[r] in self.repeated_when]
        groups = _SparseGroups()
        keyers: tuple[Callable[[int], int], ...] = (
            lambda i: links.get(i, 0),
            lambda i: ix.title[rows[i]],
            lambda i: _hash(ix.uid[rows[i]]),
        )
        for number, keyer in enumerate(keyers):
            keyed = ((i, keyer(i)) for i in meeting)
            groups.join_equal_keys((i, (number, key, ix.when[rows[i]])) for i, key in keyed if key)
        return self._collapse(rows, groups, ix.source, ix.reposted, ix.first_seen, ix.key_rank, ix.also_from)

    def _published_uids(self, kept: Sequence[_Kept]) -> list[str]:
        """``unique_uids``: a UID that two sources use is suffixed with the source, but for its first user's."""
        ix = self.events
        owners: dict[str, tuple[int, int]] = {}
        for row, _ in kept:
            uid = ix.uid[row]
            if _hash(uid) in self.repeated_uids:
                claim = (ix.first_seen[row], self.source_rank[ix.source[row]])
                current = owners.get(uid)
                if current is None or claim < current:
                    owners[uid] = claim
        out = []
        for row, _ in kept:
            uid = ix.uid[row]
            owner = owners.get(uid)
            if owner is not None and owner[1] != self.source_rank[ix.source[row]]:
                uid = f"{uid}-{self.names[ix.source[row]]}"
            out.append(uid)
        return out

    def _calendar(self, kept: Sequence[_Kept]) -> list[_Entry]:
        """The calendar's VEVENTs in ``ics.calendar_entries``' order."""
        ix = self.events
        entries = ix.entries
        keyed: list[tuple[tuple[str, bool, int], _Entry]] = []
        for (row, also_from), uid in zip(kept, self._published_uids(kept), strict=True):
            if also_from == ix.also_from.get(row, ()) and uid == ix.uid[row]:
                end = ix.first_entry[row + 1] if row + 1 < len(ix) else len(entries)
                own = [entries[e] for e in range(ix.first_entry[row], end)]
            else:
                own = self.event_variants[(row, also_from, uid)]
            keyed += [((uid + entry.suffix, entry.override, entry.recurrence), entry) for entry in own]
        keyed.sort(key=lambda pair: pair[0])
        return [entry for _, entry in keyed]

    def _shown_event(self, kept: _Kept) -> StoredEvent:
        row, also_from = kept
        item = self.reread_events[row]
        if also_from == item.record.also_from:
            return item
        return replace(item, record=replace(item.record, also_from=also_from))

    # -- items read again ---------------------------------------------------------------------------

    def _make_variants(self, plans: Sequence[tuple[_ScopeSpec, list[_Kept], list[_Kept]]]) -> None:
        """Render the items whose form in a merged or tag file is not their own (read again from the store)."""
        news_needs: set[_Kept] = set()
        event_needs: set[tuple[int, tuple[str, ...], str]] = set()
        for _, kept_news, kept_events in plans:
            for row, also_from in kept_news:
                if also_from != self.news.also_from.get(row, ()):
                    news_needs.add((row, also_from))
            for (row, also_from), uid in zip(kept_events, self._published_uids(kept_events), strict=True):
                if also_from != self.events.also_from.get(row, ()) or uid != self.events.uid[row]:
                    event_needs.add((row, also_from, uid))
        self._reread("news", [row for row, _ in news_needs])
        self._reread("events", [row for row, _, _ in event_needs])
        with render_memo():
            for row, also_from in sorted(news_needs):
                item = self.reread_news[row]
                shown = replace(item, record=replace(item.record, also_from=also_from))
                origin = self.origin_urls[self.news.source[row]]
                self.news_variants[(row, also_from)] = tuple(
                    self.spill.append(fragment_bytes(_plain_news(shown, index, origin))) for index in range(_CALENDAR)
                )
            for row, also_from, uid in sorted(event_needs):
                event = self.reread_events[row]
                if also_from != self.events.also_from.get(row, ()):
                    event = replace(event, record=replace(event.record, also_from=also_from))
                self.event_variants[(row, also_from, uid)] = [
                    replace(entry, text=self.spill.append(fragment_bytes(entry.text)))
                    for entry in _entries(_without_rdates([(event, uid)]), uid)
                ]
        self.cache.forget_prefetched()
        self.cache.forget_digests()

    def _reread(self, kind: str, rows: Iterable[int]) -> None:
        """The items of ``rows`` read again from the store (a group of sources at a time)."""
        news = kind == "news"
        ix: _NewsRows | _EventRows = self.news if news else self.events
        known: dict[int, Any] = self.reread_news if news else self.reread_events
        wanted: dict[int, list[int]] = {}
        for row in rows:
            if row not in known:
                wanted.setdefault(ix.source[row], []).append(row)
        numbers = sorted(wanted)
        for start in range(0, len(numbers), _SOURCES_AT_ONCE):
            group = numbers[start : start + _SOURCES_AT_ONCE]
            found = self._read_again(news, [self.names[n] for n in group], limited=True)
            for number in group:
                missing = [row for row in wanted[number] if (number, ix.key_hash[row]) not in found]
                if missing:  # a newer item pushed it out of the newest of its source meanwhile
                    found.update(self._read_again(news, [self.names[number]], limited=False))
                for row in wanted[number]:
                    item = found.get((number, ix.key_hash[row]))
                    if item is None:
                        raise PublishError(self.names[number], "an item vanished from the store during the publish")
                    known[row] = item

    def _read_again(self, news: bool, names: list[str], *, limited: bool) -> dict[tuple[int, int], Any]:
        positions = {name: number for number, name in enumerate(self.names)}
        items: list[Any]
        if news:
            items = self.store.news(sources=names, per_source=self.per_source if limited else None)
        else:
            items = self.store.events(since=self.since, sources=names)
        items = self._with_keys(items)
        return {(positions[i.record.source], _hash(i.record.key)): i for i in items}


def publish_streamed(
    feeds_dir: Path,
    config: Config,
    store: Store,
    *,
    now: datetime,
    base_url: str,
    states: Sequence[SourceState],
) -> PublishReport:
    """``publish`` of everything in ``store``, reading it a group of sources at a time (see the module doc).

    Raises ``PublishError`` when a file cannot be written; files already replaced stay replaced.
    """
    with contextlib.suppress(OSError):  # whatever happens below, the last token no longer describes feeds/
        (config.data_dir / _TOKEN_FILE).unlink()
    specs = _scope_specs(config)
    started = time.perf_counter()
    spill = SpillFile(config.data_dir)
    try:
        with fragment_cache(config.data_dir / CACHE_FILE, keep_digests=True, scan=False) as cache:
            cache.track_use(prune=False)
            run = _Publish(feeds_dir, config, store, cache, spill, now, base_url, states)
            try:
                run.read_sources(specs)
                run.save_keys()
                merge_started = time.perf_counter()
                run.write_shared_scopes(specs)
                run.write_pages()
                run.writer.finish()
            except BaseException:
                run.writer.cancel()
                raise
            if len(run.rendered) == len(specs):
                cache.prune_at_close()  # every item published passed by: the fragments of the rest are stale
            hits, misses = cache.hits, cache.misses
    finally:
        spill.close()
    writer = run.writer
    for directory in sorted(writer.touched):
        _files.fsync_directory(directory)
    for spec in specs:
        entry = run.done_scopes[spec.prefix]
        if not entry["files"]:
            entry["files"] = {p: _stamp(feeds_dir / p) for p in spec.paths}
    _save_state(config.data_dir / _STATE_FILE, feeds_dir, run.done_scopes)
    removed: list[str] = []
    for directory in (feeds_dir, feeds_dir / "sources", feeds_dir / "tags"):
        _files.remove_abandoned_temporaries(directory)
    for folder in ("sources", "tags"):
        keep = {Path(p).name for s in specs for p in s.paths if p.startswith(folder + "/")}
        removed += [f"{folder}/{name}" for name in _files.remove_stale(feeds_dir / folder, keep, _FEED_SUFFIXES)]
    finished = time.perf_counter()
    return PublishReport(
        written=tuple(writer.written),
        unchanged=run.unchanged_files + writer.unchanged,
        removed=tuple(removed),
        valid_until=run.valid_until,
        rendered=tuple(run.rendered),
        fragments_reused=hits,
        fragments_rendered=misses,
        processes=1,
        read_seconds=run.read_seconds,
        merge_seconds=finished - merge_started,
        render_seconds=merge_started - started - run.read_seconds,
    )
