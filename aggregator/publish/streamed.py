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
import hashlib
import heapq
import logging
import time
from array import array
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from aggregator.config import Config
from aggregator.dedupe import _publication_day, _series_key, _similar, _start_key, join_equal_keys
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
    item_number,
)
from aggregator.matching import MatchKeys, match_keys, reposted
from aggregator.processes import release_free_memory
from aggregator.publish import (
    _CALENDAR,
    _FEED_SUFFIXES,
    _IN_FLIGHT,
    _IN_FLIGHT_BYTES,
    _TOKEN_FILE,
    _WRITERS,
    PublishInput,
    PublishReport,
    _calendar_spec,
    _common_digest,
    _event_token,
    _feed_meta,
    _files,
    _news_token,
    _Output,
    _own_spec,
    _render_pages,
    _ScopeSpec,
    _shared_specs,
    _spec_digest,
    _valid_until,
    news_per_source,
)
from aggregator.publish._common import EPOCH, FeedMeta, news_date, render_memo, safe_url
from aggregator.publish.atom import ATOM_FOOT, atom_entry, atom_head
from aggregator.publish.ics import (
    ICS_FOOT,
    RenderedEvent,
    ics_event,
    ics_head,
    is_current,
    leaves_window_at,
    moved_occurrences,
    published_vevents,
    vevent_variant,
    widened,
)
from aggregator.publish.index import _UPCOMING_DAYS, listed_events, source_status, upcoming
from aggregator.publish.jsonfeed import (
    JSON_FEED_BETWEEN,
    JSON_FEED_FOOT,
    json_feed_head,
    json_feed_item,
)
from aggregator.publish.rss import RSS_FOOT, rss_head, rss_item
from aggregator.publish.state import STATE_FILE, intact, load_state, save_state, scope_entry
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


class _Texts:
    """Strings kept in the spill file, not as objects: the large store's 103,000 UIDs were 11 MB as ``str``."""

    def __init__(self, spill: SpillFile) -> None:
        self._places = _Places(spill)

    def append(self, text: str) -> None:
        self._places.append(text.encode())

    def __getitem__(self, row: int) -> str:
        return self._places[row].read().decode()


class _NewsRows:
    """One row per news item read, sources in configuration order, each source's in the store's order."""

    def __init__(self, spill: SpillFile) -> None:
        self.source = array("i")  # position of its source in the configuration
        self.position = array("i")  # position in its source's ``sort_news`` order
        self.number = array("q")  # ``fragments.item_number``: its source, kind and key
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
        self.number = array("q")
        self.key_rank = array("i")
        self.first_seen = array("q")
        self.link = array("q")
        self.reposted = bytearray()
        self.title = array("q")
        self.when = array("q")  # start and recurrence (``dedupe._when``)
        self.uid = _Texts(spill)  # read for the few shown apart and to rank UIDs; compared by ``uid_hash``
        self.uid_hash = array("q")
        self.listable = bytearray()  # an occurrence in index.html's next days, or an override
        self.first_entry = array("i")
        self.entries = _Entries(spill)
        self.also_from: dict[int, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self.source)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One VEVENT of a calendar: what orders it, the zone it needs, and its text."""

    suffix: str  # after the event's published UID (``ics.published_vevents``: "-rdate-STAMP", ...)
    tzid: str | None
    years: tuple[int, int] | None
    text: Fragment


class _Entries:
    """Calendar entries of the events in their own scope, in ``published_vevents`` order, as arrays."""

    def __init__(self, spill: SpillFile) -> None:
        self.suffix: dict[int, str] = {}
        self.zone = array("i")  # position in ``zones`` (-1: none)
        self.first_year = array("i")
        self.last_year = array("i")
        self.places = _Places(spill)
        self.zones: list[str] = []
        self._zone_at: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.zone)

    def append(self, entry: _Entry) -> None:
        if entry.suffix:
            self.suffix[len(self)] = entry.suffix
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
            tzid=None if zone < 0 else self.zones[zone],
            years=(self.first_year[index], self.last_year[index]) if zone >= 0 else None,
            text=self.places[index],
        )


def _entries(pairs: Iterable[tuple[StoredEvent, str]], uid: str) -> list[_Entry]:
    """The VEVENTs of one event published under ``uid``: ``pairs`` is ``published_vevents`` of it."""
    out = []
    for entry_item, entry_uid in pairs:
        rendered: RenderedEvent = ics_event(entry_item, entry_uid)
        out.append(
            _Entry(
                suffix=entry_uid[len(uid) :],
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


def _shared_news_output(index: int, path: str, meta: FeedMeta, updated: datetime, items: Sequence[Fragment]) -> _Output:
    """A merged or tag news file: its head, the items' fragments from the spill file, its foot."""
    if index == 0:
        return _Output(path, _parts(rss_head(meta, updated), items, RSS_FOOT))
    if index == 1:
        return _Output(path, _parts(atom_head(meta, updated), items, ATOM_FOOT))
    return _Output(path, _parts(json_feed_head(meta), items, JSON_FEED_FOOT, JSON_FEED_BETWEEN))


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

    def wait(self) -> None:
        """Until every file handed so far is written (their lazy parts are read meanwhile)."""
        self._settle(0)

    def finish(self) -> None:
        try:
            self._settle(0)
        finally:
            self.cancel()

    def cancel(self) -> None:
        for _, _, future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)


def _parts(head: bytes, items: Sequence[Fragment], foot: bytes, between: bytes = b"") -> _Lazy:
    """A file's pieces made as they are written: its head, each item's fragment (``between`` them), its foot.

    A merged feed of 160,000 items would otherwise hold a ``Spilled`` per item for as long as it is written.
    """
    count = len(items)
    length = 2 + count + (max(count - 1, 0) if between else 0)

    def part(index: int) -> Fragment:
        if index == 0:
            return head
        if index == length - 1:
            return foot
        if not between:
            return items[index - 1]
        item, separator = divmod(index - 1, 2)
        return between if separator else items[item]

    return _Lazy(length, part)


class _Lazy(Sequence[Fragment]):
    """``get(i)`` for each of ``count`` pieces, made when asked for (``_files.write_if_changed`` takes it)."""

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
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
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
        join_equal_keys(self.union, keys)

    def members(self) -> dict[int, list[int]]:
        """Each group of two or more: its root -> its positions, ascending (as ``dedupe._collapse``)."""
        members: dict[int, list[int]] = {}
        for i in sorted(self.parent):
            root = self.find(i)
            if root != i:
                members.setdefault(root, [root]).append(i)
        return members


@dataclass(slots=True)
class _Scoped:
    """A scope's items after de-duplication: their rows in order, and the kept copies' other sources.

    ``also_from`` holds only the rows shown with other sources than they were stored with (a kept
    copy); every other row is shown as it was read.
    """

    rows: array[int]
    also_from: dict[int, tuple[str, ...]] = field(default_factory=dict)


class _Digest:
    """``"\x1e".join(tokens)`` digested as the tokens come, one at a time."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)
        self._first = True

    def add(self, token: str) -> None:
        self._hash.update(token.encode() if self._first else ("\x1e" + token).encode())
        self._first = False

    def digest(self) -> bytes:
        return self._hash.digest()

    def hasher(self) -> Any:
        return self._hash.copy()


_VARIANTS_AT_ONCE = 1_000  # items read again and rendered in another form together
_CHUNK = 256  # records decoded, looked up in the render cache and rendered together


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
    ) -> None:
        self.feeds_dir = feeds_dir
        self.config = config
        self.store = store
        self.cache = cache
        self.spill = spill
        self.news_order = array("i")
        self.entry_row = array("i")  # each calendar entry's event row
        self.entry_rank = array("i")  # the rank of each calendar entry's UID among them all
        # Keys given more than once (``_prepare_news_rules``, ``_prepare_event_rules``): who can meet.
        self.repeated_links: set[int] = set()
        self.repeated_event_links: set[int] = set()
        self.repeated_when: set[int] = set()
        self.repeated_uids: set[int] = set()
        self.now = now
        self.data = PublishInput(config=config, news=[], events=[], states=(), now=now, base_url=base_url)
        self.sources = config.sources
        self.cap = config.defaults.max_items
        self.names = [s.name for s in self.sources]
        self.number_of = {name: number for number, name in enumerate(self.names)}
        rank_of = {name: rank for rank, name in enumerate(sorted(self.names))}
        self.source_rank = array("i", [rank_of[name] for name in self.names])
        self.origin_urls = [safe_url(s.url) for s in self.sources]
        self.since = now - timedelta(days=config.defaults.past_days)
        self.per_source = news_per_source(config)
        self.series = store.recurring_series()
        self.moved = moved_occurrences(store.overrides())
        self.news = _NewsRows(spill)
        self.events = _EventRows(spill)
        empty = (0, 0)
        self.news_range: list[tuple[int, int]] = [empty] * len(self.sources)  # per source: its rows
        self.event_range: list[tuple[int, int]] = [empty] * len(self.sources)
        self.pieces: dict[str, bytes] = {}
        self.news_counts: dict[str, int] = dict.fromkeys(self.names, 0)
        self.event_counts: dict[str, int] = dict.fromkeys(self.names, 0)
        self.leaving: datetime | None = None
        self.writer = _Writer(feeds_dir)
        self.read_seconds = 0.0
        self.common = _common_digest(self.data)
        # Each source's settings digested (not its text: 10,000 sources' were 6 MB).
        self.settings_text = {
            s.name: hashlib.blake2b(repr(s).encode(), digest_size=16).hexdigest() for s in self.sources
        }
        self.single = len(self.sources) == 1
        self.previous = load_state(config.data_dir / STATE_FILE, feeds_dir)
        self.done_scopes: dict[str, str] = {}  # prefix -> its entry (``state``); the digest alone until written
        self.rendered: list[str] = []
        self.unchanged_files = 0
        self.texts: dict[int, str] = {}
        self.news_variants: dict[tuple[int, tuple[str, ...]], tuple[Spilled, ...]] = {}
        self.event_variants: dict[tuple[int, tuple[str, ...], str], list[_Entry]] = {}
        self.keys_to_save: list[tuple[StoredNews | StoredEvent, MatchKeys]] = []
        self.latest: _Scoped | None = None  # the merged feed's top, for index.html
        self.all_events: _Scoped | None = None
        self.valid_until: datetime | None = None

    # -- the pass over the sources ----------------------------------------------------------

    def read_sources(self) -> None:
        """Every source's rows into the index, a group of sources at a time; each source's own files."""
        for start in range(0, len(self.sources), _SOURCES_AT_ONCE):
            names = self.names[start : start + _SOURCES_AT_ONCE]
            news_digests = {name: _Digest() for name in names}
            event_digests = {name: _Digest() for name in names}
            started = time.perf_counter()
            self._read_news(names, news_digests)
            self._read_events(names, event_digests)
            self.read_seconds += time.perf_counter() - started
            self._save_keys()
            for name in names:
                number = self.number_of[name]
                piece = news_digests[name].hasher()
                piece.update(b"\x1d")
                piece.update(event_digests[name].digest())
                self.pieces[name] = piece.digest()
                self._write_own(number, _own_spec(self.config, self.sources[number]))
            # The group's records and fragments are garbage now, scattered over the heap: malloc
            # keeps the pages free between them unless asked. The large store's publisher peaked
            # at 186 MB instead of 215 MB with this here and after each shared scope.
            release_free_memory()

    def _with_keys(self, items: Iterable[_Item]) -> Iterator[_Item]:
        """``items``, each read without de-duplication keys given them (saved in groups: ``_save_keys``)."""
        for item in items:
            if item.match is None:
                keys = match_keys(item.record.link, item.record.title)
                item = replace(item, match=keys)
                self.keys_to_save.append((item, keys))
            yield item

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

    def _read_news(self, names: Sequence[str], digests: Mapping[str, _Digest]) -> None:
        """The group's news, one source after the other, into the index (``_NewsRows``)."""
        news = self._with_keys(self.store.stream_news(sources=names, per_source=self.per_source))
        self._take(news, digests, _news_token, self._index_news, self._close_news_source, self.news)

    def _take(
        self,
        items: Iterable[_Item],
        digests: Mapping[str, _Digest],
        token: Callable[[_Item], str],
        index: Callable[[list[_Item]], None],
        close: Callable[[int, int, list[str]], None],
        rows: _NewsRows | _EventRows,
    ) -> None:
        """``items`` (a group's, source by source) into the index, ``_CHUNK`` at a time; each source closed after its last."""
        chunk: list[_Item] = []
        keys: list[str] = []  # the current source's keys, for its ranks
        current = -1
        first_row = 0
        for item in items:
            number = self.number_of[item.record.source]
            if number != current:
                index(chunk)  # (empties it)
                if current >= 0:
                    close(current, first_row, keys)
                current, first_row, keys = number, len(rows), []
            digests[item.record.source].add(token(item))
            keys.append(item.record.key)
            chunk.append(item)
            if len(chunk) >= _CHUNK:
                index(chunk)
            self._save_keys()
        index(chunk)
        if current >= 0:
            close(current, first_row, keys)

    def _index_news(self, chunk: list[StoredNews]) -> None:
        """Rows and fragments of ``chunk`` (then emptied); ranks come when the source is closed."""
        if not chunk:
            return
        rows = self.news
        origins = [self.origin_urls[self.number_of[item.record.source]] for item in chunk]
        wanted: dict[str, list[bytes]] = {kind: [] for kind in _NEWS_KINDS}
        for item, origin in zip(chunk, origins, strict=True):
            for kind, variant in zip(_NEWS_KINDS, (origin or "", "", ""), strict=True):
                key = fragment_key(kind, item, variant)
                if key is not None:
                    wanted[kind].append(key)
        for kind, keys in wanted.items():
            self.cache.prefetch(kind, keys)
        with render_memo():
            for item, origin in zip(chunk, origins, strict=True):
                record = item.record
                keys_ = item.match
                assert keys_ is not None  # given by ``_with_keys``
                date = news_date(item)
                canonical = keys_.canonical if record.link else None
                if record.also_from:
                    rows.also_from[len(rows)] = record.also_from
                rows.source.append(self.number_of[record.source])
                rows.position.append(0)
                rows.number.append(item_number(item))
                rows.key_rank.append(0)
                rows.newest_first.append((EPOCH - date) // _MICROSECOND)
                rows.first_seen.append(_micros(item.first_seen))
                rows.updated.append(_micros(max(date, item.changed_at, record.updated or EPOCH)))
                rows.link.append(0 if canonical is None else _hash(canonical))
                rows.reposted.append(reposted(record.link, keys_.canonical))
                rows.title.append(keys_.title)
                rows.day.append(_publication_day(item).toordinal())
                for index in range(_CALENDAR):
                    rows.places[index].append(_plain_news(item, index, origin))
        chunk.clear()
        self.cache.forget_prefetched()
        self.cache.forget_digests()

    def _close_news_source(self, number: int, first_row: int, keys: list[str]) -> None:
        """The source's ranks: of its keys, and in ``sort_news`` order (newest first, then by id)."""
        rows = self.news
        count = len(keys)
        newest_first = rows.newest_first
        for rank, k in enumerate(sorted(range(count), key=keys.__getitem__)):
            rows.key_rank[first_row + k] = rank
        ordered = sorted(range(count), key=lambda k: (newest_first[first_row + k], keys[k]))
        for position, k in enumerate(ordered):
            rows.position[first_row + k] = position
        self.news_range[number] = (first_row, first_row + count)
        self.news_counts[self.names[number]] = count

    def _read_events(self, names: Sequence[str], digests: Mapping[str, _Digest]) -> None:
        """The group's current events, one source after the other, into the index (``_EventRows``)."""
        now, past_days = self.now, self.config.defaults.past_days
        cutoff = now - timedelta(days=past_days)

        def current(events: Iterable[StoredEvent]) -> Iterator[StoredEvent]:
            for event in events:
                edge = leaves_window_at(event.record, now, past_days)
                if edge is not None and (self.leaving is None or edge < self.leaving):
                    self.leaving = edge
                if is_current(event.record, self.series, cutoff):
                    yield event

        events = current(self._with_keys(self.store.stream_events(since=self.since, sources=names)))
        self._take(events, digests, _event_token, self._index_events, self._close_event_source, self.events)

    def _index_events(self, chunk: list[StoredEvent]) -> None:
        if not chunk:
            return
        rows = self.events
        own = [published_vevents(event, event.record.uid, self.moved) for event in chunk]
        keys = [fragment_key("vevent", item, vevent_variant(item, uid)) for pairs in own for item, uid in pairs]
        self.cache.prefetch("vevent", [key for key in keys if key is not None])
        with render_memo():
            for event, pairs in zip(chunk, own, strict=True):
                record = event.record
                keys_ = event.match
                assert keys_ is not None
                canonical = keys_.canonical if record.link else None
                if record.also_from:
                    rows.also_from[len(rows)] = record.also_from
                rows.source.append(self.number_of[record.source])
                rows.number.append(item_number(event))
                rows.key_rank.append(0)
                rows.first_seen.append(_micros(event.first_seen))
                rows.link.append(0 if canonical is None else _hash(canonical))
                rows.reposted.append(reposted(record.link, keys_.canonical))
                rows.title.append(keys_.title)
                rows.when.append(_hash((_start_key(record.start), _series_key(record))))
                rows.uid.append(record.uid)
                rows.uid_hash.append(_hash(record.uid))
                listable = record.recurrence_id is not None or bool(upcoming([event], self.now, _UPCOMING_DAYS + 1))
                rows.listable.append(listable)
                rows.first_entry.append(len(rows.entries))
                for entry in _entries(pairs, record.uid):
                    rows.entries.append(entry)
        chunk.clear()
        self.cache.forget_prefetched()
        self.cache.forget_digests()

    def _close_event_source(self, number: int, first_row: int, keys: list[str]) -> None:
        for rank, k in enumerate(sorted(range(len(keys)), key=keys.__getitem__)):
            self.events.key_rank[first_row + k] = rank
        self.event_range[number] = (first_row, first_row + len(keys))
        self.event_counts[self.names[number]] = len(keys)

    def _write_own(self, number: int, spec: _ScopeSpec) -> None:
        """A source's own four files, if they changed: its newest news (no de-duplication), all its events."""
        digest = _spec_digest(self.common, spec, self.settings_text, self.single, self.pieces)
        if not self._begin_scope(spec, digest):
            return
        position = self.news.position
        shown = sorted(range(*self.news_range[number]), key=position.__getitem__)[: self.cap]
        self._write_news_files(spec, _Scoped(array("i", shown)))
        self._write_calendar(spec, _Scoped(array("i", range(*self.event_range[number]))), {})

    # -- files ----------------------------------------------------------------------------------

    def _begin_scope(self, spec: _ScopeSpec, digest: str) -> bool:
        """Whether the scope's files must be rendered (else they are what the previous publish left)."""
        entry = self.previous.pop(spec.prefix, None)  # each scope is begun once
        if entry is not None and intact(self.feeds_dir, entry, digest, spec.paths):
            self.unchanged_files += len(spec.paths)
            self.done_scopes[spec.prefix] = entry
            return False
        self.rendered.append(spec.prefix)
        self.done_scopes[spec.prefix] = digest  # its entry once its files are written
        return True

    def _write_news_files(self, spec: _ScopeSpec, scoped: _Scoped) -> None:
        rows = scoped.rows
        newest = max((self.news.updated[row] for row in rows), default=0)
        updated = EPOCH + timedelta(microseconds=newest)  # ``feed_updated``: EPOCH without items
        for index in range(_CALENDAR):
            meta = _feed_meta(index, spec.prefix, spec.title, spec.description, spec.members, self.data)
            fragments = _Lazy(len(rows), partial(self._news_fragment, scoped, index))
            self.writer.submit(_shared_news_output(index, spec.paths[index], meta, updated, fragments))

    def _news_fragment(self, scoped: _Scoped, index: int, position: int) -> Fragment:
        row = scoped.rows[position]
        also_from = scoped.also_from.get(row)
        if also_from is None:
            return self.news.places[index][row]
        return self.news_variants[(row, also_from)][index]

    def _write_calendar(self, spec: _ScopeSpec, scoped: _Scoped, renamed: Mapping[int, str]) -> None:
        """The scope's calendar: its events' VEVENTs in ``ics.calendar_entries``' order, and their zones."""
        ix = self.events
        entries = ix.entries
        # Each VEVENT's place in the order as one number (its UID's rank among all UIDs, then its place
        # before sorting: the sort is stable); the few shown under another UID or with other sources
        # sorted apart, by their UID, and merged in.
        # (A source's own calendar is written before the ranks are known: its few sorted as text.)
        ranked = len(self.entry_rank) == len(entries)
        plain: list[Any] = []
        plain_entry = array("i")  # by place before sorting: the entry
        others: list[tuple[str, int, _Entry]] = []
        for row in scoped.rows:
            also_from = scoped.also_from.get(row)
            uid = renamed.get(row)
            if also_from is None and uid is None:
                for at in range(ix.first_entry[row], self._entries_end(row)):
                    place = len(plain_entry)
                    if ranked:
                        plain.append((self.entry_rank[at] << 32) | place)
                    else:
                        plain.append(self._entry_key(at, place, row))
                    plain_entry.append(at)
            else:
                shown_uid = uid or ix.uid[row]
                context = (row, ix.also_from.get(row, ()) if also_from is None else also_from, shown_uid)
                for entry in self.event_variants[context]:
                    place = len(plain_entry)
                    plain_entry.append(-1)
                    others.append((shown_uid + entry.suffix, place, entry))
        plain.sort()
        others.sort(key=lambda other: other[:2])
        low = 0xFFFFFFFF
        places: Iterable[int]
        if not ranked:
            places = (key[1] for key in heapq.merge(plain, (other[:2] for other in others)))
        elif not others:
            places = (key & low for key in plain)
        else:
            plain_keys = (self._entry_key(plain_entry[key & low], key & low) for key in plain)
            places = (key[1] for key in heapq.merge(plain_keys, (other[:2] for other in others)))
        variant_at = {other[1]: other[2] for other in others}
        refs = array("i")  # an entry, or -1 - its place in ``variants``
        variants: list[_Entry] = []
        zones: dict[str, tuple[int, int]] = {}
        for place in places:
            at = plain_entry[place]
            if at >= 0:
                refs.append(at)
                zone = entries.zone[at]
                if zone >= 0:
                    tzid = entries.zones[zone]
                    zones[tzid] = widened(zones.get(tzid), (entries.first_year[at], entries.last_year[at]))
            else:
                entry = variant_at[place]
                refs.append(-1 - len(variants))
                variants.append(entry)
                if entry.tzid and entry.years is not None:
                    zones[entry.tzid] = widened(zones.get(entry.tzid), entry.years)
        plain.clear()
        others.clear()
        calendar = _calendar_spec(spec.prefix, spec.title, spec.members, self.data)
        head = ics_head(
            name=calendar.name,
            refresh=calendar.refresh,
            zones=zones,
            fallback_zone=calendar.fallback_zone,
            year=self.now.year,
            empty=not refs,
        )

        def text(position: int) -> Fragment:
            ref = refs[position]
            return entries.places[ref] if ref >= 0 else variants[-1 - ref].text

        self.writer.submit(_Output(calendar.path, _parts(head, _Lazy(len(refs), text), ICS_FOOT)))

    def _entry_key(self, at: int, place: int, row: int | None = None) -> tuple[str, int]:
        """A calendar entry's place in the order spelled out (its UID as text): to merge the few apart in."""
        entries = self.events.entries
        uid = self.events.uid[self.entry_row[at] if row is None else row] + entries.suffix.get(at, "")
        return (uid, place)

    def _entries_end(self, row: int) -> int:
        ix = self.events
        return ix.first_entry[row + 1] if row + 1 < len(ix) else len(ix.entries)

    def write_shared_scopes(self, shared: Sequence[_ScopeSpec]) -> None:
        """The merged and tag scopes whose files changed, from the index, one scope at a time."""
        self._prepare_news_rules()
        self._prepare_event_rules()
        for spec in shared:
            digest = _spec_digest(self.common, spec, self.settings_text, self.single, self.pieces)
            if not self._begin_scope(spec, digest):
                continue
            members = [self.number_of[s.name] for s in spec.members]
            news = self._scope_news(members, self.cap)
            if spec.prefix == "news":
                self.latest = _Scoped(news.rows[:_LATEST_NEWS], news.also_from)
            self._make_news_variants(news)
            self._write_news_files(spec, news)
            del news
            events = self._scope_events(members)
            if spec.prefix == "news":
                self.all_events = events
            renamed = self._renamed_uids(events)
            self._make_event_variants(events, renamed)
            self._write_calendar(spec, events, renamed)
            del events
            release_free_memory()
        if self.latest is not None and self.all_events is not None:
            self._drop_merge_rules()

    def _drop_merge_rules(self) -> None:
        """Let go of what merging scopes needed, once the pages have what they show of the merged scope.

        The pages' moment is the publish's highest: 10,000 sources' states and their rows of
        index.html came on top of these 25 MB (a large forced publish: 152 MB, then 187 at its peak).
        """
        self.writer.wait()  # the merged files read their items' variants as they are written
        self.news_order = array("i")
        self.entry_row = array("i")
        self.entry_rank = array("i")
        self.texts = {}
        self.news_variants = {}
        self.event_variants = {}
        self.repeated_links = set()
        self.repeated_event_links = set()
        self.repeated_when = set()
        self.repeated_uids = set()
        release_free_memory()

    def write_pages(self) -> None:
        """index.html and OPML, and until when everything stays right."""
        everything = list(range(len(self.sources)))
        latest = self.latest or self._scope_news(everything, min(self.cap, _LATEST_NEWS))
        all_events = self.all_events or self._scope_events(everything)
        listed_rows = [row for row in all_events.rows if self.events.listable[row]]
        news_items = self._read_again("news", latest.rows)
        event_items = self._read_again("events", listed_rows)
        shown_news = [_shown(news_items[row], latest.also_from.get(row)) for row in latest.rows]
        shown_events = [_shown(event_items[row], all_events.also_from.get(row)) for row in listed_rows]
        listed = listed_events(shown_events, self.now)
        # Read now, never held through the pass; and only what index.html shows of each (10,000 states: 14 MB).
        statuses = {state.name: source_status(state) for state in self.store.states()}
        for output in _render_pages(
            self.data,
            latest=shown_news,
            listed=listed,
            news_counts=self.news_counts,
            event_counts=self.event_counts,
            statuses=statuses,
        ):
            self.writer.submit(output)
        self.valid_until = _valid_until(self.data, listed, self.leaving)

    # -- news of a scope ------------------------------------------------------------------------

    def _prepare_news_rules(self) -> None:
        """Which rows can meet another (a link or a title and day given twice), and the texts the rules compare."""
        rows = self.news
        self.news_order = array("i", sorted(range(len(rows)), key=self._news_order))  # every row, ``sort_news``
        self.repeated_links = _repeated(rows.link)
        title, day = rows.title, rows.day
        repeated = _repeated((title[r] << 22) | day[r] if title[r] else 0 for r in range(len(rows)))
        texted = [r for r in range(len(rows)) if title[r] and (title[r] << 22) | day[r] in repeated]
        items = self._read_again("news", texted)
        self.texts = {row: html_to_text(item.record.summary) for row, item in items.items()}

    def _news_order(self, row: int) -> int:
        """``sort_news``'s order as one number: newest first, then source name, then the source's own order."""
        rows = self.news
        newest = rows.newest_first[row] + (1 << 62)
        return (newest << 44) | (self.source_rank[rows.source[row]] << 22) | rows.position[row]

    def _scope_news(self, members: Sequence[int], cap: int) -> _Scoped:
        """``_merged_newest`` of the members' news: merged over the newest first, widening until ``cap`` remain."""
        if len(members) == len(self.sources):
            ordered = self.news_order
        else:
            member = bytearray(len(self.sources))
            for number in members:
                member[number] = 1
            source = self.news.source
            ordered = array("i", (row for row in self.news_order if member[source[row]]))
        window = max(cap * 2, 1)
        while True:
            merged = self._merge_news(ordered[:window])
            if len(merged.rows) >= cap or window >= len(ordered):
                rows = merged.rows[:cap]
                kept = set(rows) if merged.also_from else set()
                return _Scoped(rows, {row: af for row, af in merged.also_from.items() if row in kept})
            window *= 2

    def _merge_news(self, rows: array[int]) -> _Scoped:
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
                    # A link match is the stronger evidence: two different links are two stories.
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
    ) -> _Scoped:
        """``dedupe._collapse``: the kept copy of each group with the others' sources, in input order."""
        also_from: dict[int, tuple[str, ...]] = {}
        dropped: set[int] = set()
        rank = self.source_rank
        for group in groups.members().values():
            keeper = min(
                group,
                key=lambda i: (reposted_[rows[i]], first_seen[rows[i]], rank[source[rows[i]]], key_rank[rows[i]]),
            )
            others = {self.names[source[rows[i]]] for i in group}
            others |= {name for i in group for name in stored_also_from.get(rows[i], ())}
            others.discard(self.names[source[rows[keeper]]])
            shown = tuple(sorted(others))
            if shown != stored_also_from.get(rows[keeper], ()):
                also_from[rows[keeper]] = shown
            dropped.update(i for i in group if i != keeper)
        if not dropped:
            return _Scoped(rows if isinstance(rows, array) else array("i", rows), also_from)
        return _Scoped(array("i", (r for i, r in enumerate(rows) if i not in dropped)), also_from)

    def _make_news_variants(self, scoped: _Scoped) -> None:
        """Render the kept copies shown with other sources (read again from the store), once per publish."""
        needs = sorted((row, af) for row, af in scoped.also_from.items() if (row, af) not in self.news_variants)
        for start in range(0, len(needs), _VARIANTS_AT_ONCE):  # rows in order: a group's sources are read once
            self._render_news_variants(needs[start : start + _VARIANTS_AT_ONCE])

    def _render_news_variants(self, needs: Sequence[tuple[int, tuple[str, ...]]]) -> None:
        items = self._read_again("news", [row for row, _ in needs])
        shown = [_shown(items[row], also_from) for row, also_from in needs]
        del items
        origins = [self.origin_urls[self.news.source[row]] for row, _ in needs]
        for kind, index in zip(_NEWS_KINDS, range(_CALENDAR), strict=True):
            keys = [
                fragment_key(kind, item, (origin or "") if index == 0 else "")
                for item, origin in zip(shown, origins, strict=True)
            ]
            self.cache.prefetch(kind, [key for key in keys if key is not None])
        with render_memo():
            for need, item, origin in zip(needs, shown, origins, strict=True):
                self.news_variants[need] = tuple(
                    self.spill.append(fragment_bytes(_plain_news(item, index, origin))) for index in range(_CALENDAR)
                )
        self.cache.forget_prefetched()
        self.cache.forget_digests()

    # -- events of a scope ------------------------------------------------------------------------

    def _prepare_event_rules(self) -> None:
        """Which rows can meet another (a start given twice), and each calendar entry's UID rank and row."""
        rows = self.events
        entries = rows.entries
        self.entry_row = array("i")
        for row in range(len(rows)):
            self.entry_row.extend([row] * (self._entries_end(row) - rows.first_entry[row]))
        uids: list[str] = []
        for row in range(len(rows)):
            uid = rows.uid[row]
            uids.extend(uid + entries.suffix.get(at, "") for at in range(rows.first_entry[row], self._entries_end(row)))
        # Equal UIDs share a rank; ranked in one sort of positions (a set and a dict of 100,000 UIDs cost 15 MB).
        self.entry_rank = array("i", bytes(4 * len(uids)))
        rank, previous = -1, None
        for at in sorted(range(len(uids)), key=uids.__getitem__):
            if uids[at] != previous:
                rank, previous = rank + 1, uids[at]
            self.entry_rank[at] = rank
        del uids, previous
        self.repeated_event_links = _repeated(rows.link)
        self.repeated_when = _repeated(rows.when)
        self.repeated_uids = _repeated(rows.uid_hash)

    def _scope_events(self, members: Sequence[int]) -> _Scoped:
        """``merge_events`` of the members' current events (in configuration order, each source's in its order)."""
        ix = self.events
        rows = array("i")
        for number in members:
            rows.extend(range(*self.event_range[number]))
        linked = [(i, ix.link[r]) for i, r in enumerate(rows) if ix.link[r] in self.repeated_event_links]
        listing = _listing(linked, rows, ix.source)
        links = {i: link for i, link in linked if link not in listing}
        meeting = [i for i, r in enumerate(rows) if ix.when[r] in self.repeated_when]
        groups = _SparseGroups()
        keyers: tuple[Callable[[int], int], ...] = (
            lambda i: links.get(i, 0),
            lambda i: ix.title[rows[i]],
            lambda i: ix.uid_hash[rows[i]],
        )
        for number, keyer in enumerate(keyers):
            keyed = ((i, keyer(i)) for i in meeting)
            groups.join_equal_keys((i, (number, key, ix.when[rows[i]])) for i, key in keyed if key)
        return self._collapse(rows, groups, ix.source, ix.reposted, ix.first_seen, ix.key_rank, ix.also_from)

    def _renamed_uids(self, scoped: _Scoped) -> dict[int, str]:
        """``unique_uids``: a UID two sources use is suffixed with the source, but for its first user's."""
        ix = self.events
        rank = self.source_rank
        owners: dict[str, tuple[int, int]] = {}
        shared = {row: ix.uid[row] for row in scoped.rows if ix.uid_hash[row] in self.repeated_uids}
        for row, uid in shared.items():
            claim = (ix.first_seen[row], rank[ix.source[row]])
            current = owners.get(uid)
            if current is None or claim < current:
                owners[uid] = claim
        return {
            row: f"{uid}-{self.names[ix.source[row]]}"
            for row, uid in shared.items()
            if owners[uid][1] != rank[ix.source[row]]
        }

    def _make_event_variants(self, scoped: _Scoped, renamed: Mapping[int, str]) -> None:
        """Render the events shown with other sources or another UID (read again from the store)."""
        ix = self.events
        needs = set()
        for row in {*scoped.also_from, *renamed}:
            also_from = scoped.also_from.get(row, ix.also_from.get(row, ()))
            context = (row, also_from, renamed.get(row, ix.uid[row]))
            if context not in self.event_variants:
                needs.add(context)
        if not needs:
            return
        ordered = sorted(needs)
        for start in range(0, len(ordered), _VARIANTS_AT_ONCE):
            self._render_event_variants(ordered[start : start + _VARIANTS_AT_ONCE])

    def _render_event_variants(self, contexts: Sequence[tuple[int, tuple[str, ...], str]]) -> None:
        items = self._read_again("events", [row for row, _, _ in contexts])
        own = [
            published_vevents(
                _shown(items[row], also_from if also_from != items[row].record.also_from else None), uid, self.moved
            )
            for row, also_from, uid in contexts
        ]
        del items
        keys = [fragment_key("vevent", item, vevent_variant(item, uid)) for pairs in own for item, uid in pairs]
        self.cache.prefetch("vevent", [key for key in keys if key is not None])
        with render_memo():
            for context, pairs in zip(contexts, own, strict=True):
                self.event_variants[context] = [
                    replace(entry, text=self.spill.append(fragment_bytes(entry.text)))
                    for entry in _entries(pairs, context[2])
                ]
        self.cache.forget_prefetched()
        self.cache.forget_digests()

    # -- items read again ---------------------------------------------------------------------------

    @overload
    def _read_again(self, kind: Literal["news"], rows: Iterable[int]) -> dict[int, StoredNews]: ...

    @overload
    def _read_again(self, kind: Literal["events"], rows: Iterable[int]) -> dict[int, StoredEvent]: ...

    def _read_again(self, kind: str, rows: Iterable[int]) -> dict[int, Any]:
        """The items of ``rows`` read again from the store, a group of sources at a time, as they stream by."""
        ix: _NewsRows | _EventRows = self.news if kind == "news" else self.events
        wanted: dict[int, int] = {ix.number[row]: row for row in rows}  # item number -> row
        found: dict[int, Any] = {}
        sources = sorted({ix.source[row] for row in wanted.values()})
        for start in range(0, len(sources), _SOURCES_AT_ONCE):
            group = sources[start : start + _SOURCES_AT_ONCE]
            self._collect(kind, [self.names[n] for n in group], wanted, found, limited=True)
        missing = {ix.source[row] for row in wanted.values() if row not in found}
        for number in sorted(missing):  # a newer item pushed it out of its source's newest meanwhile
            self._collect(kind, [self.names[number]], wanted, found, limited=False)
        for row in wanted.values():
            if row not in found:
                raise PublishError(self.names[ix.source[row]], "an item vanished from the store during the publish")
        return found

    def _collect(
        self, kind: str, names: list[str], wanted: Mapping[int, int], found: dict[int, Any], *, limited: bool
    ) -> None:
        items: Iterator[StoredNews | StoredEvent]
        if kind == "news":
            per_source = self.per_source if limited else None
            items = self._with_keys(self.store.stream_news(sources=names, per_source=per_source))
        else:
            items = self._with_keys(self.store.stream_events(since=self.since, sources=names))
        for item in items:
            row = wanted.get(item_number(item))
            if row is not None:
                found[row] = item


def _shown(item: _Item, also_from: tuple[str, ...] | None) -> _Item:
    """``item`` as a scope shows it: with ``also_from`` (None: as stored)."""
    if also_from is None or also_from == item.record.also_from:
        return item
    return replace(item, record=replace(item.record, also_from=also_from))


def publish_streamed(feeds_dir: Path, config: Config, store: Store, *, now: datetime, base_url: str) -> PublishReport:
    """``publish`` of everything in ``store``, reading it a group of sources at a time (see the module doc).

    The source states index.html shows are read from ``store`` when it is rendered. Raises
    ``PublishError`` when a file cannot be written; files already replaced stay replaced.
    """
    with contextlib.suppress(OSError):  # whatever happens below, the last token no longer describes feeds/
        (config.data_dir / _TOKEN_FILE).unlink()
    shared = _shared_specs(config)

    def every_spec() -> Iterator[_ScopeSpec]:  # made again when needed: 10,000 sources' are 7 MB
        yield shared[0]
        for source in config.sources:
            yield _own_spec(config, source)
        yield from shared[1:]

    started = time.perf_counter()
    spill = SpillFile(config.data_dir)
    try:
        with fragment_cache(config.data_dir / CACHE_FILE, keep_digests=True, scan=False) as cache:
            run = _Publish(feeds_dir, config, store, cache, spill, now, base_url)
            try:
                run.read_sources()
                run.save_keys()
                merge_started = time.perf_counter()
                run.write_shared_scopes(shared)
                run.write_pages()
                run.writer.finish()
            except BaseException:
                run.writer.cancel()
                raise
            if len(run.rendered) == len(shared) + len(config.sources):
                # Every item published passed by: the fragments of the rest are stale.
                cache.prune_at_close(run.news.number + run.events.number)
            hits, misses = cache.hits, cache.misses
    finally:
        spill.close()
    writer = run.writer
    for directory in sorted(writer.touched):
        _files.fsync_directory(directory)
    keep: dict[str, set[str]] = {"sources": set(), "tags": set()}
    written_now = set(run.rendered)
    for spec in every_spec():
        if spec.prefix in written_now:
            run.done_scopes[spec.prefix] = scope_entry(run.done_scopes[spec.prefix], feeds_dir, spec.paths)
        folder, _, _ = spec.prefix.partition("/")
        if folder in keep:
            keep[folder].update(Path(p).name for p in spec.paths)
    save_state(config.data_dir / STATE_FILE, feeds_dir, run.done_scopes)
    removed: list[str] = []
    for directory in (feeds_dir, feeds_dir / "sources", feeds_dir / "tags"):
        _files.remove_abandoned_temporaries(directory)
    for folder, names in keep.items():
        removed += [f"{folder}/{name}" for name in _files.remove_stale(feeds_dir / folder, names, _FEED_SUFFIXES)]
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
        streamed=True,
        read_seconds=run.read_seconds,
        merge_seconds=finished - merge_started,
        render_seconds=merge_started - started - run.read_seconds,
    )
