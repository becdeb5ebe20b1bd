"""Publishing: stored records -> RSS, Atom, JSON Feed, iCalendar, index.html and OPML in feeds/.

``publish`` decides what goes where (merged, per source, per tag), calls the
pure renderers and hands the bytes to ``_files``, the only I/O here. Files
whose bytes have not changed are not touched, so their mtime, ETag and
Last-Modified stay as they were for subscribers' conditional requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from aggregator.config import Config, SourceConfig, SourceKind
from aggregator.dedupe import dedupe_memo, merge_events, merge_news
from aggregator.errors import PublishError
from aggregator.fragments import CACHE_FILE, Fragment, code_digest, fragment_cache
from aggregator.fragments import joined as join_fragments
from aggregator.processes import ForkedCall, collector_paused, fork_call, release_free_memory, room_for_copies
from aggregator.publish import _files
from aggregator.publish._common import FeedMeta, file_stem, forget_memoized, pieces_kept, render_memo, sort_news
from aggregator.publish.atom import atom_parts
from aggregator.publish.ics import (
    Moved,
    current_events,
    current_until,
    ics_parts,
    is_current,
    leaves_window_at,
    moved_occurrences,
)
from aggregator.publish.index import (
    _LATEST_NEWS,
    IndexSource,
    IndexTag,
    listed_events,
    render_index,
    source_status,
    stable_until,
)
from aggregator.publish.jsonfeed import json_feed_parts
from aggregator.publish.opml import OpmlEntry, render_opml
from aggregator.publish.rss import rss_parts
from aggregator.publish.state import STATE_FILE, files_intact, intact, load_state, save_state, scope_entry, stamp
from aggregator.records import SourceState
from aggregator.sanitize import clean_text
from aggregator.store.base import StoredEvent, StoredNews
from aggregator.urls import absolute_url

__all__ = [
    "PackedEvents",
    "PublishInput",
    "PublishReport",
    "change_token",
    "events_are_packed",
    "news_per_source",
    "pack_events",
    "publish",
    "published_still_current",
    "remember_publish",
]

GENERATOR = "clusterfeeds 0.1"
_FEED_SUFFIXES = (".xml", ".atom", ".json", ".ics")


def news_per_source(config: Config) -> int:
    """How many of each source's newest news a publish needs: what its capped files can show.

    A source's own files show its newest ``max_items``; the merged and tag feeds de-duplicate
    the newest ``2 * max_items`` of their sources (``_merged_newest``), and an item among those
    is among the newest ``2 * max_items`` of its own source. So reading that many per source
    gives the same files as reading everything (unless over half of the newest items are
    copies of each other), and a daemon's publish no longer grows with years of history.
    """
    return 2 * config.defaults.max_items


@dataclass(frozen=True, slots=True)
class PublishInput:
    config: Config
    news: Sequence[StoredNews]  # stored news: all, or at least each source's newest ``news_per_source``
    events: Sequence[StoredEvent]  # events inside the past window, and all recurring ones
    states: Sequence[SourceState]
    now: datetime
    base_url: str  # absolute, ends with "/"
    # The caller hands ``news`` and ``events`` (lists) over: a process of the publish empties them
    # once it no longer needs them (``_Holders``). A large workload's 100,000 events held 124 MB
    # through the news formats, and its 160,000 news 176 MB through the calendars, in every process.
    handed_over: bool = False
    # Instead of ``events`` (then empty): the events read as a stream and kept compressed
    # (``pack_events``), when decoded they would be more than ``publish_memory_mb``.
    packed_events: PackedEvents | None = None


@dataclass(frozen=True, slots=True)
class PackedEvents:
    """A publish's current events, read one by one and kept compressed until the calendars are rendered.

    Decoded, the large workload's 102,867 events held 123 MB in the publishing process from its
    read to its end, and in the helper that renders no calendar. What the plan needs of them
    (each source's digest, when the first leaves the past window) is taken as they stream by.
    """

    # Pickled and compressed {source: [events in order]}, ``_PARK_EVENTS`` at most each; handed over
    # with the rest, the list is emptied once the events are unpacked or let go.
    chunks: list[bytes]
    pieces: Mapping[str, bytes]  # per source with current events: ``_events_piece`` of them
    leaving: datetime | None  # ``current_until`` of all the events read
    count: int  # events in ``chunks``


def events_are_packed(config: Config, count: int) -> bool:
    """Whether ``count`` events, decoded, would be more than ``publish_memory_mb``: then ``pack_events``."""
    return count * _EVENT_BYTES > (config.defaults.publish_memory_mb << 20)


@dataclass(frozen=True, slots=True)
class PublishReport:
    written: tuple[str, ...]  # paths relative to feeds_dir: format by format, scope by scope, then the pages
    unchanged: int  # files whose bytes were already on disk
    removed: tuple[str, ...] = ()  # stale per-source/per-tag files deleted
    # Until when the files stay right without any record changing (events start, leave the window).
    valid_until: datetime | None = None
    skipped: bool = False  # nothing changed since the last publish: no record was read, nothing rendered
    rendered: tuple[str, ...] = ()  # scopes rendered ("news", "sources/x", "tags/y"); the others were skipped
    # Item fragments (a format's rendering of one item, its de-duplication keys) taken from the
    # fragment cache, and made anew: after a change, only the changed items' are made.
    fragments_reused: int = 0
    fragments_rendered: int = 0
    # Fragments kept in a spill file rather than in memory (past ``publish_memory_mb``).
    fragments_spilled: int = 0
    processes: int = 1  # processes that rendered (this one and forked helpers, each with some formats)
    # Where the time went (wall seconds): reading and decoding the records (``publish_from_store``),
    # merging each scope's news across sources, rendering and writing the files (all processes).
    read_seconds: float = 0.0
    merge_seconds: float = 0.0
    render_seconds: float = 0.0
    read_ahead: bool = False  # the records were read while sources were fetched; only changed rows read again
    events_packed: bool = False  # the events were read as a stream and kept compressed (``PackedEvents``)
    streamed: bool = False  # read a group of sources at a time (``publish.streamed``: a large store)


@dataclass(frozen=True, slots=True)
class _Output:
    """One file to write. (``parts`` is a tuple or list of bytes: a bare ``bytes`` would be read as ints.)"""

    path: str  # relative to feeds_dir, "/"-separated
    parts: Sequence[Fragment]  # the file's bytes in order (item fragments are shared, not copied)

    @property
    def data(self) -> bytes:
        return join_fragments(self.parts)

    @property
    def size(self) -> int:
        return sum(map(len, self.parts))


def _ttl(sources: Sequence[SourceConfig], fallback: timedelta) -> timedelta:
    """How often readers should come back: the shortest interval of the sources behind a file."""
    intervals = [s.interval for s in sources if s.enabled]
    return min(intervals, default=fallback)


def _site(source: SourceConfig) -> str | None:
    url = absolute_url(source.url, None)
    if url is None:
        return None
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}/"


_FORMATS = 4  # the files of a scope: .xml, .atom, .json, .ics, rendered in this order
_CALENDAR = 3  # the .ics file's index: the last a process renders
# What one decoded event holds (the large workload: 124 MB for 102,867). Past ``publish_memory_mb``
# of them, a process that renders news before its calendars keeps them compressed meanwhile.
_EVENT_BYTES = 1_200
# What one decoded news item holds (the large workload: 177 MB for 160,000).
_NEWS_BYTES = 1_100
# What one item's safe pieces (``news_pieces``) take kept in memory (the large workload: 100 MB for
# 160,000). Past ``publish_memory_mb`` of them, each news format makes them again instead.
_PIECES_BYTES = 650
# What each format leaves in the render memo that no later format needs (dropped after it).
_FORMAT_MEMOS: tuple[tuple[str, ...], ...] = (("rss", "sort"), ("atom", "updated"), ("json", "news"), ("vevent",))
_FRAGMENT_KINDS: tuple[tuple[str, ...], ...] = (("rss",), ("atom",), ("json",), ("vevent",))  # the same, stored


def _feed_file(
    index: int,
    prefix: str,
    *,
    title: str,
    description: str,
    news: Callable[[], list[StoredNews]],
    events: Callable[[], list[StoredEvent]],
    moved: Callable[[], Moved],
    sources: Sequence[SourceConfig],
    data: PublishInput,
    origins: dict[str, str],
) -> _Output:
    """File ``index`` (see ``_FORMATS``) of one scope (everything, one source, one tag): prefix.xml/.atom/.json/.ics."""
    if index == _CALENDAR:
        calendar = _calendar_spec(prefix, title, sources, data)
        return _Output(
            calendar.path,
            ics_parts(
                events(),
                name=calendar.name,
                refresh=calendar.refresh,
                fallback_zone=calendar.fallback_zone,
                year=data.now.year,
                moved=moved(),
            ),
        )
    meta = _feed_meta(index, prefix, title, description, sources, data)
    path = prefix + _FEED_SUFFIXES[index]
    if index == 0:
        return _Output(path, rss_parts(meta, news(), origins))
    if index == 1:
        return _Output(path, atom_parts(meta, news()))
    return _Output(path, json_feed_parts(meta, news()))


def _feed_meta(
    index: int, prefix: str, title: str, description: str, sources: Sequence[SourceConfig], data: PublishInput
) -> FeedMeta:
    """What news file ``index`` (0-2) of a scope says about itself."""
    ttl = _ttl(sources, data.config.defaults.interval)
    base = data.base_url
    return FeedMeta(
        title=title,
        description=description,
        home_url=base,
        self_url=base + prefix + _FEED_SUFFIXES[index],
        feed_id=base + prefix + ".atom",
        generator=GENERATOR,
        ttl_minutes=max(int(ttl.total_seconds() // 60), 1),
    )


@dataclass(frozen=True, slots=True)
class _CalendarSpec:
    path: str
    name: str
    refresh: timedelta
    fallback_zone: str  # the zone an empty calendar carries


def _calendar_spec(prefix: str, title: str, sources: Sequence[SourceConfig], data: PublishInput) -> _CalendarSpec:
    defaults = data.config.defaults
    if prefix == "news":
        path, name = "events.ics", f"{defaults.title} events"
    else:
        path, name = prefix + ".ics", f"{defaults.title} events: {title.removeprefix(defaults.title + ': ')}"
    fallback_zone = sources[0].timezone.key if len(sources) == 1 else defaults.timezone.key
    return _CalendarSpec(path, name, _ttl(sources, defaults.interval), fallback_zone)


@dataclass(frozen=True, slots=True)
class _ScopeSpec:
    """One scope's files: where, which sources, and what they say about themselves."""

    prefix: str
    members: Sequence[SourceConfig]
    description: str
    title: str

    @property
    def paths(self) -> tuple[str, ...]:
        calendar = "events.ics" if self.prefix == "news" else self.prefix + ".ics"
        return (self.prefix + ".xml", self.prefix + ".atom", self.prefix + ".json", calendar)


def _tag_sources(sources: Sequence[SourceConfig]) -> dict[str, list[SourceConfig]]:
    """Each tag's sources, in configuration order."""
    tag_sources: dict[str, list[SourceConfig]] = {}
    for source in sources:
        for tag in dict.fromkeys(source.tags):
            tag_sources.setdefault(tag, []).append(source)
    return tag_sources


def _scope_specs(config: Config) -> list[_ScopeSpec]:
    """Every scope in publishing order: merged, each source, each tag (sorted)."""
    shared = _shared_specs(config)
    return [shared[0], *(_own_spec(config, source) for source in config.sources), *shared[1:]]


def _own_spec(config: Config, source: SourceConfig) -> _ScopeSpec:
    """A source's own scope."""
    name = clean_text(source.name)
    title = config.defaults.title
    return _ScopeSpec("sources/" + file_stem(source.name), [source], f"News and events of {name}", f"{title}: {name}")


def _shared_specs(config: Config) -> list[_ScopeSpec]:
    """The scopes of several sources: merged, then each tag (sorted)."""
    sources = config.sources
    title = config.defaults.title
    specs = [_ScopeSpec("news", sources, f"News and events of {len(sources)} European cluster networks, merged", title)]
    tag_sources = _tag_sources(sources)
    for tag in sorted(tag_sources):
        name = clean_text(tag)
        specs.append(
            _ScopeSpec("tags/" + file_stem(tag), tag_sources[tag], f"News and events tagged {name}", f"{title}: {name}")
        )
    return specs


def _common_digest(data: PublishInput) -> bytes:
    """What every scope depends on, digested once (1,000 sources' settings are not re-hashed per file)."""
    defaults = data.config.defaults
    origins = {s.name: s.url for s in data.config.sources}
    common = hashlib.blake2b(code_digest().encode(), digest_size=16)
    common.update(repr((defaults, data.base_url, data.now.year, sorted(origins.items()))).encode())
    return common.digest()


def _spec_digest(
    common: bytes, spec: _ScopeSpec, settings_text: Mapping[str, str], single: bool, pieces: Mapping[str, bytes]
) -> str:
    """The scope's digest: its members' settings (interval -> TTL, zone, name, tags) shape the files too."""
    settings = (spec.prefix, spec.title, spec.description, [settings_text[s.name] for s in spec.members], single)
    return _scope_digest(common, settings, [pieces[s.name] for s in spec.members])


def _render_pages(
    data: PublishInput,
    *,
    latest: Sequence[StoredNews],
    listed: Sequence[StoredEvent],
    news_counts: Mapping[str, int],
    event_counts: Mapping[str, int],
    statuses: Mapping[str, tuple[str, str, str]] | None = None,
) -> Iterator[_Output]:
    """index.html, then sources.opml (each made when the previous is taken).

    ``statuses``: ``source_status`` of each source's state, when not from ``data.states``.
    """
    config = data.config
    sources = config.sources
    cap = config.defaults.max_items
    title = config.defaults.title
    if statuses is None:
        statuses = {s.name: source_status(s) for s in data.states}
    index_sources = [
        IndexSource(
            name=clean_text(s.name),
            stem=file_stem(s.name),
            site=_site(s),
            tags=s.tags,
            status=statuses.get(s.name) or source_status(None),
            items=min(news_counts[s.name], cap) + event_counts[s.name],
        )
        for s in sources
    ]
    index_tags = [IndexTag(clean_text(t), file_stem(t)) for t in sorted(_tag_sources(sources))]
    yield _Output(
        "index.html",
        render_index(
            title=title,
            base_url=data.base_url,
            news=latest,
            events=listed,
            sources=index_sources,
            tags=index_tags,
            now=data.now,
        ),
    )
    del index_sources
    opml_entries = [
        OpmlEntry(
            name=clean_text(s.name),
            xml_url=data.base_url + "sources/" + file_stem(s.name) + ".xml",
            html_url=_site(s),
            tags=tuple(clean_text(t) for t in s.tags),
        )
        for s in sources
        if news_counts[s.name] or s.kind is not SourceKind.ICAL
    ]
    yield _Output("sources.opml", (render_opml(f"{title}: sources", opml_entries),))


def _valid_until(data: PublishInput, listed: Sequence[StoredEvent], leaving: datetime | None) -> datetime:
    """When the output would change with no record changing: the index's next days, the past window."""
    edges = [stable_until(listed, data.now)]
    if leaving is not None:
        edges.append(max(leaving, data.now))
    sources = data.config.sources
    if len(sources) <= 1:
        # A calendar without events names the current year's zone rules.
        edges.append(datetime(data.now.year + 1, 1, 1, tzinfo=UTC))
    return min(edges)


_PARK_EVENTS = 2_000  # events per pickle when they are parked


def _pack(value: object) -> bytes:
    return zlib.compress(pickle.dumps(value, pickle.HIGHEST_PROTOCOL), 1)


def _unpack(packed: bytes) -> Any:
    return pickle.loads(zlib.decompress(packed))


def _merged_newest(items: list[StoredNews], cap: int) -> list[StoredNews]:
    """``merge_news`` over the newest items only, widening until ``cap`` distinct stories remain.

    De-duplicating 100,000 stored items to publish 200 is wasted work; copies
    older than the window cannot reach the feed anyway.
    """
    ordered = sort_news(items, len(items))
    window = max(cap * 2, 1)
    while True:
        merged = merge_news(ordered[:window])
        if len(merged) >= cap or window >= len(ordered):
            return merged[:cap]  # still newest first: the merge keeps its input's order
        window *= 2


@dataclass(frozen=True, slots=True)
class _Scope:
    """The four files of one scope, a digest of everything they are rendered from, and how to render them.

    ``render(i)`` renders file ``i`` (see ``_FORMATS``); the scope's news list is made at the first
    news file and dropped at the calendar, so a publish can go format by format over all scopes.
    """

    prefix: str
    paths: tuple[str, ...]
    digest: str
    render: Callable[[int], _Output]
    prepare: Callable[[], object]  # makes (and keeps) the scope's news list: merged, sorted, capped

    def render_all(self) -> list[_Output]:
        return [self.render(index) for index in range(_FORMATS)]


def _content(item: StoredNews | StoredEvent) -> str:
    """The store's content digest, else (records not from a store) the record's full repr."""
    return item.content_hash or repr(item.record)


def _news_token(item: StoredNews) -> str:
    return f"{item.changed_at.isoformat()}\x1f{item.first_seen.isoformat()}\x1f{_content(item)}"


def _event_token(item: StoredEvent) -> str:
    return f"{item.sequence}\x1f{item.changed_at.isoformat()}\x1f{item.first_seen.isoformat()}\x1f{_content(item)}"


def _events_piece(events: Sequence[StoredEvent]) -> bytes:
    """A digest of a source's current events (``pack_events`` takes the same as they stream by)."""
    return hashlib.blake2b("\x1e".join(map(_event_token, events)).encode(), digest_size=16).digest()


def _source_digest(news: list[StoredNews], events_piece: bytes) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    digest.update("\x1e".join(map(_news_token, news)).encode())
    digest.update(b"\x1d")
    digest.update(events_piece)
    return digest.digest()


def pack_events(
    events: Iterable[StoredEvent],
    *,
    names: Collection[str],
    series: Collection[tuple[str, str]],
    now: datetime,
    past_days: int,
) -> PackedEvents:
    """``events`` (as ``Store.stream_events`` gives them) made into ``PackedEvents``, never all decoded at once.

    The same as ``_plan`` takes from a list: the current events of the sources ``names`` (``series``:
    (source, UID) of every recurring event, known before its overrides come by), in their order,
    each source's digest, and when the first event of all leaves the past window.
    """
    cutoff = now - timedelta(days=past_days)
    hashers: dict[str, Any] = {}
    chunks: list[bytes] = []
    chunk: dict[str, list[StoredEvent]] = {}
    size = count = 0
    leaving: datetime | None = None
    for item in events:
        record = item.record
        edge = leaves_window_at(record, now, past_days)
        if edge is not None and (leaving is None or edge < leaving):
            leaving = edge
        if record.source not in names or not is_current(record, series, cutoff):
            continue
        token = _event_token(item).encode()
        hasher = hashers.get(record.source)
        if hasher is None:
            hashers[record.source] = hashlib.blake2b(token, digest_size=16)
        else:
            hasher.update(b"\x1e" + token)
        chunk.setdefault(record.source, []).append(item)
        size += 1
        count += 1
        if size >= _PARK_EVENTS:
            chunks.append(_pack(chunk))
            chunk, size = {}, 0
    if chunk:
        chunks.append(_pack(chunk))
    return PackedEvents(chunks, {name: h.digest() for name, h in hashers.items()}, leaving, count)


def _scope_digest(common: bytes, settings: Any, pieces: Sequence[bytes]) -> str:
    digest = hashlib.blake2b(common, digest_size=16)
    digest.update(repr(settings).encode())
    for piece in pieces:
        digest.update(piece)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class _NewsFacts:
    """What index.html and OPML need of the news: taken before the news are let go."""

    latest: list[StoredNews]  # the top of the merged feed
    counts: dict[str, int]  # news per source


@dataclass(frozen=True, slots=True)
class _EventFacts:
    """What index.html and ``valid_until`` need of the events."""

    listed: list[StoredEvent]  # the few events index.html shows (``listed_events``)
    counts: dict[str, int]  # current events per source
    leaving: datetime | None  # when the first current event leaves the past window


@dataclass(frozen=True, slots=True)
class _Holders:
    """Lets a process of a publish give back the records it no longer needs (see ``_write_formats``).

    Each empties, in place, every list of that kind the plan holds (and the caller's, handed over).
    The pages go with the calendars (the last format): their process never drops the events, and
    takes what it needs of the news before it drops them.
    """

    drop_news: Callable[[], None]
    drop_events: Callable[[], None]
    park_events: Callable[[], None]  # compressed into bytes until ``unpark_events``
    unpark_events: Callable[[], None]


@dataclass(frozen=True, slots=True)
class _Plan:
    scopes: list[_Scope]
    render_pages: Callable[[], Iterable[_Output]]
    valid_until: Callable[[], datetime]
    holders: _Holders


def _plan(data: PublishInput) -> _Plan:
    """Every scope to publish (merged, per source, per tag) and the renderer of index.html and OPML.

    Pure: rendering happens only when a scope's ``render`` is called, so ``publish`` can skip
    scopes whose digest says their files on disk are already what would be written.
    """
    config = data.config
    defaults = config.defaults
    cap = defaults.max_items
    sources = config.sources
    names = {s.name for s in sources}
    origins = {s.name: s.url for s in sources}

    news_by_source: dict[str, list[StoredNews]] = {s.name: [] for s in sources}
    for item in data.news:
        if item.record.source in names:
            news_by_source[item.record.source].append(item)
    events_by_source: dict[str, list[StoredEvent]] = {s.name: [] for s in sources}
    packed = data.packed_events
    if packed is None:
        for event in current_events([e for e in data.events if e.record.source in names], data.now, defaults.past_days):
            events_by_source[event.record.source].append(event)
        event_pieces = {name: _events_piece(items) for name, items in events_by_source.items()}
        leaving = current_until(data.events, data.now, defaults.past_days)  # now: the events may be let go
    else:  # taken as they were read; the events stay packed until the calendars (``unpark_events``)
        no_events = _events_piece(())
        event_pieces = {s.name: packed.pieces.get(s.name, no_events) for s in sources}
        leaving = packed.leaving
    pieces = {s.name: _source_digest(news_by_source[s.name], event_pieces[s.name]) for s in sources}
    del event_pieces
    made_lists: list[list[list[StoredNews]]] = []  # every scope's news list, once made
    common_digest = _common_digest(data)
    single = len(sources) == 1
    # A source's settings as text, once per publish (a source is in up to four scopes).
    settings_text = {s.name: repr(s) for s in sources}

    def scope(
        spec: _ScopeSpec,
        news: Callable[[], list[StoredNews]],
        events: Callable[[], list[StoredEvent]],
    ) -> _Scope:
        made: list[list[StoredNews]] = []  # the scope's news, shared by its three news files
        made_lists.append(made)

        def scope_news() -> list[StoredNews]:
            if not made:
                made.append(news())
            return made[0]

        def render(index: int) -> _Output:
            return _feed_file(
                index,
                spec.prefix,
                title=spec.title,
                description=spec.description,
                news=scope_news,
                events=events,
                moved=moved,
                sources=spec.members,
                data=data,
                origins=origins,
            )

        digest = _spec_digest(common_digest, spec, settings_text, single, pieces)
        return _Scope(spec.prefix, spec.paths, digest, render, scope_news)

    def all_news() -> list[StoredNews]:
        return [i for s in sources for i in news_by_source[s.name]]

    moved_made: list[Moved] = []

    def moved() -> Moved:
        """The overrides' RECURRENCE-IDs of every source (the events are unpacked when calendars are made)."""
        if not moved_made:
            moved_made.append(moved_occurrences(e.record for items in events_by_source.values() for e in items))
        return moved_made[0]

    merged_events: list[list[StoredEvent]] = []

    def all_events() -> list[StoredEvent]:
        """Every current event, de-duplicated across sources: once per publish (calendar and index share it)."""
        if not merged_events:
            merged_events.append(merge_events([e for s in sources for e in events_by_source[s.name]]))
        return merged_events[0]

    def members_events(members: Sequence[SourceConfig]) -> list[StoredEvent]:
        return merge_events([e for s in members for e in events_by_source[s.name]])

    def members_news(members: Sequence[SourceConfig]) -> list[StoredNews]:
        return _merged_newest([i for s in members for i in news_by_source[s.name]], cap)

    latest: list[list[StoredNews]] = []  # the merged feed's newest few, for index.html
    news_facts: list[_NewsFacts] = []
    event_facts: list[_EventFacts] = []
    events_dropped: list[bool] = []

    def page_news() -> _NewsFacts:
        if not news_facts:
            news_facts.append(
                _NewsFacts(
                    # The top of the merged feed; when that is not made this time, the newest window
                    # de-duplicated alone (de-duplicating 100,000 items for a few is wasted work).
                    latest=latest[0] if latest else _merged_newest(all_news(), min(cap, _LATEST_NEWS)),
                    counts={name: len(items) for name, items in news_by_source.items()},
                )
            )
        return news_facts[0]

    def page_events() -> _EventFacts:
        if not event_facts:
            if events_dropped:  # never with the groups of ``_format_groups``: a loud failure, not wrong pages
                raise RuntimeError("the pages of a publish were rendered by a process without its events")
            event_facts.append(
                _EventFacts(
                    listed=listed_events(all_events(), data.now),
                    counts={name: len(items) for name, items in events_by_source.items()},
                    leaving=leaving,
                )
            )
        return event_facts[0]

    def drop_news() -> None:
        page_news()
        for items in news_by_source.values():
            items.clear()
        for made in made_lists:
            made.clear()
        if isinstance(data.news, list):
            data.news.clear()

    parked: list[bytes] = []
    if packed is not None:  # handed over, the same list: emptied here, the caller holds no copy
        parked = packed.chunks if data.handed_over else list(packed.chunks)

    def empty_event_lists() -> None:
        for items in events_by_source.values():
            items.clear()
        merged_events.clear()
        if isinstance(data.events, list):
            data.events.clear()

    def drop_events() -> None:
        empty_event_lists()
        parked.clear()
        events_dropped.append(True)

    def park_events() -> None:
        # A pickle per _PARK_EVENTS events: one of them all took 130 MB for its memo. (The merged
        # list, a memo, is made again from the sources' lists.)
        if not any(events_by_source.values()):
            return  # none, or still packed as read
        chunk: dict[str, list[StoredEvent]] = {}
        size = 0
        for name, items in events_by_source.items():
            chunk[name] = items
            size += len(items)
            if size >= _PARK_EVENTS:
                parked.append(_pack(chunk))
                chunk, size = {}, 0
        parked.append(_pack(chunk))
        empty_event_lists()

    def unpark_events() -> None:
        for chunk in parked:  # in order: a source's events may span several
            for name, items in _unpack(chunk).items():
                events_by_source[name].extend(items)
        parked.clear()

    def merged_news() -> list[StoredNews]:
        items = _merged_newest(all_news(), cap)
        latest[:] = [items[:_LATEST_NEWS]]
        return items

    specs = _scope_specs(config)
    scopes = [scope(specs[0], merged_news, all_events)]
    for spec in specs[1 : 1 + len(sources)]:
        (source,) = spec.members
        scopes.append(
            scope(
                spec, partial(sort_news, news_by_source[source.name], cap), partial(list, events_by_source[source.name])
            )
        )
    for spec in specs[1 + len(sources) :]:
        scopes.append(scope(spec, partial(members_news, spec.members), partial(members_events, spec.members)))

    def render_pages() -> Iterator[_Output]:
        news_known, events_known = page_news(), page_events()
        return _render_pages(
            data,
            latest=news_known.latest,
            listed=events_known.listed,
            news_counts=news_known.counts,
            event_counts=events_known.counts,
        )

    def valid_until() -> datetime:
        known = page_events()
        return _valid_until(data, known.listed, known.leaving)

    if packed is not None and not data.handed_over:
        unpark_events()  # nothing will let them go: decode them now
    holders = _Holders(drop_news, drop_events, park_events, unpark_events)
    return _Plan(scopes, render_pages, valid_until, holders)


def render_all(data: PublishInput) -> list[_Output]:
    """Every published file as bytes (pure): merged, per source, per tag, index and OPML."""
    plan = _plan(data)
    with render_memo(), dedupe_memo():
        return [output for s in plan.scopes for output in s.render_all()] + list(plan.render_pages())


_WRITERS = 8  # fsync waits on the disk, not the GIL: parallel writers share journal commits
_IN_FLIGHT = 64  # rendered files waiting for a writer at most (bounds memory on large workloads)
_IN_FLIGHT_BYTES = 16 << 20  # and their bytes: a 35 MB merged feed is written before the next is rendered


@dataclass(slots=True)
class _Written:
    """What one process's share of a publish did (sent back from a forked helper, so it pickles)."""

    written: list[str]
    unchanged: int
    touched: set[Path]  # directories that got a new file (fsynced once at the end)
    reused: int
    rendered: int
    used: set[int] | None  # items whose fragments served (None: not tracked, or new ones not all saved)
    spilled: int = 0
    valid_until: datetime | None = None  # from the process that rendered the pages


def _write_formats(
    feeds_dir: Path,
    cache_path: Path,
    cache_usable: bool,
    scopes: Sequence[_Scope],
    formats: Sequence[int],
    *,
    pages: tuple[Callable[[], Iterable[_Output]], Callable[[], datetime]] | None,
    prune: bool,
    memory_budget: int,
    joined: Callable[[], list[_Written]],
    holders: _Holders | None = None,
    park_events: bool = False,
    keep_pieces: bool = True,
) -> _Written:
    """Render files ``formats`` of ``scopes`` (and ``pages``: index.html, OPML, and until when all stay right).

    Format by format over all scopes: an item's fragment of one format serves the merged,
    per-source and per-tag files, and is dropped before the next format is rendered.
    ``joined`` waits for the other processes of this publish (after this one's files are
    written, before the fragment cache closes); ``prune`` deletes the fragments of items
    that none of them used. ``memory_budget``: bytes of one format's fragments held in memory at
    most (the rest wait in the fragment cache's spill file until their files are written).
    ``holders`` (the records handed over): a process that renders no calendar lets the events
    go before it starts, one that renders calendars lets the news go before them; with
    ``park_events`` it keeps the events compressed while it renders news formats.
    ``keep_pieces``: each item's safe pieces are kept from one news format to the next (``pieces_kept``).
    """
    result = _Written([], 0, set(), 0, 0, None)
    pending: list[tuple[str, int, Future[bool]]] = []
    in_flight = 0  # bytes of the pending files

    def settle(keep: int) -> None:
        nonlocal in_flight
        while len(pending) > keep or (pending and in_flight > _IN_FLIGHT_BYTES):
            relative, size, future = pending.pop(0)
            in_flight -= size
            if future.result():
                result.written.append(relative)
                result.touched.add((feeds_dir / relative).parent)
            else:
                result.unchanged += 1

    with (
        render_memo(),
        dedupe_memo(),
        pieces_kept(keep_pieces),
        fragment_cache(
            cache_path, usable=cache_usable, memory_budget=memory_budget, keep_digests=keep_pieces
        ) as fragments,
        ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="publish") as pool,
    ):

        def submit(output: _Output) -> None:
            nonlocal in_flight
            future = pool.submit(_files.write_if_changed, feeds_dir / output.path, output.parts, sync_directory=False)
            size = output.size
            pending.append((output.path, size, future))
            in_flight += size
            settle(_IN_FLIGHT)

        fragments.track_use(prune=prune)
        try:
            if holders is not None:
                if _CALENDAR not in formats:
                    holders.drop_events()
                elif park_events and formats[0] != _CALENDAR:
                    holders.park_events()  # until the calendars, the last format
                release_free_memory()
            for index in formats:
                if index == _CALENDAR and holders is not None:
                    fragments.forget_digests()  # they hold the news items
                    holders.drop_news()  # no news format follows
                    holders.unpark_events()
                for scope in scopes:
                    submit(scope.render(index))
                forget_memoized(_FORMAT_MEMOS[index])
                fragments.drop(_FRAGMENT_KINDS[index])
                # The format's fragments are freed: give their pages back before the next fills
                # memory (a few ms; the large workload's publisher peaked 26 MB lower).
                release_free_memory()
            if pages is not None:
                render_pages, valid_until = pages
                for output in render_pages():
                    submit(output)
                result.valid_until = valid_until()
            settle(0)
        except BaseException:
            for _, _, future in pending:
                future.cancel()
            raise
        for other in joined():
            fragments.add_used(other.used)
            result.written += other.written
            result.unchanged += other.unchanged
            result.touched |= other.touched
            result.reused += other.reused
            result.rendered += other.rendered
            result.spilled += other.spilled
            result.valid_until = result.valid_until or other.valid_until
    result.reused += fragments.hits
    result.rendered += fragments.misses
    result.spilled += fragments.spilled
    result.used = fragments.used_items()
    return result


def _records_bytes(data: PublishInput) -> int:
    """What the publish's records take decoded: what each forked helper copies, however it starts.

    A helper shares the records copy-on-write only until it touches them, and rendering touches
    every one (reference counts). On the large workload (160,000 news, 102,867 events) the
    publisher and its helper held 482 and 500 MB at once, and the machine 1,168 MB at the peak.
    """
    events = data.packed_events.count if data.packed_events is not None else len(data.events)
    return len(data.news) * _NEWS_BYTES + events * _EVENT_BYTES


def _format_groups(processes: int) -> list[tuple[int, ...]]:
    """The formats each process renders: RSS (the first, which sanitises each item) alone when it can be."""
    if processes >= _FORMATS:
        return [(index,) for index in range(_FORMATS)]
    if processes == 3:
        return [(0,), (1, 2), (3,)]
    if processes == 2:
        return [(0, 1), (2, 3)]
    return [tuple(range(_FORMATS))]


def publish(feeds_dir: Path, data: PublishInput) -> PublishReport:
    """Render what changed and write it; remove per-source/per-tag files of vanished sources and tags.

    A scope (merged, one source, one tag) whose inputs digest the same as at the
    previous publish, and whose files are untouched since, is neither rendered nor
    read back: an unchanged cycle costs a digest per scope, not a render.
    With ``publish_processes`` above 1 (and a single-threaded process), the formats
    are shared out between this process and forked copies of it, one per core.
    Raises ``PublishError`` when a file cannot be written (the first failure in
    writing order); files already replaced stay replaced, the failing one keeps
    its previous version.
    """
    with collector_paused(freeze=True):  # the records read for it live until it ends
        return _publish(feeds_dir, data)


def _publish(feeds_dir: Path, data: PublishInput) -> PublishReport:
    plan = _plan(data)
    scopes, render_pages, valid_until = plan.scopes, plan.render_pages, plan.valid_until
    holders = plan.holders if data.handed_over else None
    park_events = len(data.events) * _EVENT_BYTES > (data.config.defaults.publish_memory_mb << 20)
    keep_pieces = len(data.news) * _PIECES_BYTES <= (data.config.defaults.publish_memory_mb << 20)
    state_path = data.config.data_dir / STATE_FILE
    previous = load_state(state_path, feeds_dir)
    # Whatever happens below, the last publish's change token no longer describes feeds/.
    with contextlib.suppress(OSError):
        (data.config.data_dir / _TOKEN_FILE).unlink()
    done_scopes: dict[str, str] = {}  # prefix -> its entry (``state``); the digest alone until written
    rendered: list[str] = []
    to_render: list[_Scope] = []
    unchanged = 0
    for scope in scopes:
        if intact(feeds_dir, previous.get(scope.prefix), scope.digest, scope.paths):
            unchanged += len(scope.paths)
            done_scopes[scope.prefix] = previous[scope.prefix]
            continue
        to_render.append(scope)
        rendered.append(scope.prefix)
        done_scopes[scope.prefix] = scope.digest
    del previous
    cache_path = data.config.data_dir / CACHE_FILE
    processes = min(data.config.defaults.publish_processes, os.cpu_count() or 1) if to_render else 1
    if _records_bytes(data) > data.config.defaults.publish_copy_limit_mb << 20:
        processes = 1  # a helper would hold its own copy of them (``_records_bytes``)
    while processes > 1 and not room_for_copies(processes - 1):
        processes -= 1
    mine, *theirs = _format_groups(processes)
    memory_budget = data.config.defaults.publish_memory_mb << 20
    merge_started = time.perf_counter()
    if to_render:
        # Each scope's news merged across sources and sorted, before any file is rendered: forked
        # helpers share the lists instead of merging again, and the merge's keys and sort keys are
        # freed before the fragments of a format fill memory (a large publish peaks there). This
        # also makes the fragment cache ready (opened, emptied for a new renderer) before two
        # processes use it.
        with render_memo(), dedupe_memo(), fragment_cache(cache_path) as prepared:
            for scope in to_render:
                scope.prepare()
            cache_usable = prepared.usable  # else each process would warn again
        merge_counts = (prepared.hits, prepared.misses)
    else:
        cache_usable, merge_counts = True, (0, 0)
    render_started = time.perf_counter()
    helpers: list[ForkedCall[_Written]] = []
    # The pages go to the last process: RSS (in this one) is the heaviest format.
    pages = (render_pages, valid_until)
    pages_here: tuple[Callable[[], Iterable[_Output]], Callable[[], datetime]] | None = None if theirs else pages
    for number, formats in enumerate(theirs, start=1):
        extra = pages if number == len(theirs) else None
        helper = fork_call(
            partial(
                _write_formats,
                feeds_dir,
                cache_path,
                cache_usable,
                to_render,
                formats,
                pages=extra,
                prune=False,
                memory_budget=memory_budget,
                joined=list,
                holders=holders,
                park_events=park_events,
                keep_pieces=keep_pieces,
            ),
            f"publishing {', '.join(_FEED_SUFFIXES[i] for i in formats)} files",
        )
        if helper is None:  # not safe to fork here: this process renders them too
            mine = tuple(sorted(mine + formats))
            pages_here = pages_here or extra
        else:
            helpers.append(helper)

    def joined() -> list[_Written]:
        try:
            return [helper.result() for helper in helpers]
        except ChildProcessError as error:
            raise PublishError(str(feeds_dir), f"{error}; old files kept") from None

    try:
        # Everything published passes by (over all processes): the fragments of the rest are stale.
        outcome = _write_formats(
            feeds_dir,
            cache_path,
            cache_usable,
            to_render,
            mine,
            pages=pages_here,
            prune=len(to_render) == len(scopes),
            memory_budget=memory_budget,
            joined=joined,
            holders=holders,
            park_events=park_events,
            keep_pieces=keep_pieces,
        )
    except Exception:
        # The helpers finish their files (each complete, or kept as it was) and clean up their
        # temporaries; this failure is the one reported.
        for helper in helpers:
            with contextlib.suppress(Exception):
                helper.result()
        raise
    except BaseException:
        for helper in helpers:  # interrupted: stop them now (a temporary left behind goes within the hour)
            helper.cancel()
        raise
    render_seconds = time.perf_counter() - render_started
    until = outcome.valid_until
    # Format by format, scope by scope, then the pages, whichever process wrote what: each writes its
    # formats in order, the helpers have the later ones, and the last of them the pages.
    written = outcome.written
    unchanged += outcome.unchanged
    touched = outcome.touched
    for directory in sorted(touched):
        _files.fsync_directory(directory)
    paths_of = {s.prefix: s.paths for s in scopes}
    for prefix in rendered:
        done_scopes[prefix] = scope_entry(done_scopes[prefix], feeds_dir, paths_of[prefix])
    save_state(state_path, feeds_dir, done_scopes)
    removed: list[str] = []
    for directory in (feeds_dir, feeds_dir / "sources", feeds_dir / "tags"):
        _files.remove_abandoned_temporaries(directory)
    for folder in ("sources", "tags"):
        keep = {Path(p).name for s in scopes for p in s.paths if p.startswith(folder + "/")}
        removed += [f"{folder}/{name}" for name in _files.remove_stale(feeds_dir / folder, keep, _FEED_SUFFIXES)]
    return PublishReport(
        written=tuple(written),
        unchanged=unchanged,
        removed=tuple(removed),
        valid_until=until,
        rendered=tuple(rendered),
        fragments_reused=outcome.reused + merge_counts[0],
        fragments_rendered=outcome.rendered + merge_counts[1],
        fragments_spilled=outcome.spilled,
        processes=1 + len(helpers),
        merge_seconds=render_started - merge_started,
        render_seconds=render_seconds,
    )


_TOKEN_FILE = "publish-token.json"  # beside publish-state.json: what the files in feeds/ were made from
_PAGES = ("index.html", "sources.opml")


def change_token(config: Config, base_url: str, generation: int, states: Sequence[SourceState]) -> str:
    """Digest of everything a publish depends on except the records themselves.

    ``generation`` is the store's record counter (it rises on every record change); states
    count only through what index.html shows of them (``source_status``), so a 304 that
    moves poll times leaves the token alone while a source turning failing changes it.
    """
    digest = hashlib.blake2b(code_digest().encode(), digest_size=16)
    digest.update(repr((generation, base_url, str(config.feeds_dir), config.defaults, len(config.sources))).encode())
    for source in config.sources:  # one at a time: 10,000 sources' repr in one string took 7 MB at every cycle
        digest.update(repr(source).encode())
    for state in sorted(states, key=lambda s: s.name):
        digest.update(repr((state.name, source_status(state))).encode())
    return digest.hexdigest()


def published_still_current(config: Config, token: str, now: datetime) -> int | None:
    """The number of files in feeds/ if they are what a publish with ``token`` at ``now`` would write, else None.

    True when the last publish recorded the same token, its files are untouched (size and
    mtime of each), and no event has started or left a window since (``valid_until``).
    Costs one stat per file and reads no record.
    """
    try:
        saved = json.loads((config.data_dir / _TOKEN_FILE).read_text(encoding="utf-8"))
        valid_until = datetime.fromisoformat(saved["valid_until"])
        pages = saved["pages"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if saved.get("token") != token or saved.get("feeds_dir") != str(config.feeds_dir.resolve()) or now >= valid_until:
        return None
    feeds_dir = config.feeds_dir
    count = 0
    for page in _PAGES:
        known = pages.get(page)
        if known is None or tuple(known) != stamp(feeds_dir / page):
            return None
        count += 1
    scopes = load_state(config.data_dir / STATE_FILE, feeds_dir)
    if not scopes:
        return None
    files = files_intact(feeds_dir, scopes)
    return None if files is None else count + files


def remember_publish(config: Config, token: str, report: PublishReport) -> None:
    """Record that feeds/ now holds what ``token`` describes, until ``report.valid_until``."""
    if report.valid_until is None:
        return
    body = {
        "token": token,
        "feeds_dir": str(config.feeds_dir.resolve()),
        "valid_until": report.valid_until.isoformat(),
        "pages": {page: stamp(config.feeds_dir / page) for page in _PAGES},
    }
    with contextlib.suppress(OSError, PublishError):
        _files.write_if_changed(
            config.data_dir / _TOKEN_FILE, json.dumps(body, sort_keys=True).encode(), sync_directory=False
        )
