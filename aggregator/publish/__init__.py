"""Publishing: stored records -> RSS, Atom, JSON Feed, iCalendar, index.html and OPML in feeds/.

``publish`` decides what goes where (merged, per source, per tag), calls the
pure renderers and hands the bytes to ``_files``, the only I/O here. Files
whose bytes have not changed are not touched, so their mtime, ETag and
Last-Modified stay as they were for subscribers' conditional requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aggregator.config import Config, SourceConfig, SourceKind
from aggregator.dedupe import merge_events, merge_news
from aggregator.publish import _files
from aggregator.publish._common import FeedMeta, file_stem, sort_news
from aggregator.publish.atom import render_atom
from aggregator.publish.ics import current_events, render_ics
from aggregator.publish.index import IndexSource, IndexTag, render_index
from aggregator.publish.jsonfeed import render_json_feed
from aggregator.publish.opml import OpmlEntry, render_opml
from aggregator.publish.rss import render_rss
from aggregator.records import SourceState
from aggregator.sanitize import clean_text
from aggregator.store.base import StoredEvent, StoredNews
from aggregator.urls import absolute_url

__all__ = ["PublishInput", "PublishReport", "publish"]

GENERATOR = "clusterfeeds 0.1"
_FEED_SUFFIXES = (".xml", ".atom", ".json", ".ics")


@dataclass(frozen=True, slots=True)
class PublishInput:
    config: Config
    news: Sequence[StoredNews]  # all stored news
    events: Sequence[StoredEvent]  # events inside the past window, and all recurring ones
    states: Sequence[SourceState]
    now: datetime
    base_url: str  # absolute, ends with "/"


@dataclass(frozen=True, slots=True)
class PublishReport:
    written: tuple[str, ...]  # paths relative to feeds_dir, in writing order
    unchanged: int  # files whose bytes were already on disk
    removed: tuple[str, ...] = ()  # stale per-source/per-tag files deleted


@dataclass(frozen=True, slots=True)
class _Output:
    path: str  # relative to feeds_dir, "/"-separated
    data: bytes


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


def _feed_set(
    prefix: str,
    *,
    title: str,
    description: str,
    news: list[StoredNews],
    events: list[StoredEvent],
    sources: Sequence[SourceConfig],
    data: PublishInput,
    origins: dict[str, str],
) -> list[_Output]:
    """The four files of one scope (everything, one source, one tag): prefix.xml/.atom/.json/.ics."""
    defaults = data.config.defaults
    ttl = _ttl(sources, defaults.interval)
    base = data.base_url
    if prefix == "news":
        calendar_path = "events.ics"
        calendar_name = f"{defaults.title} events"
    else:
        calendar_path = prefix + ".ics"
        calendar_name = f"{defaults.title} events: {title.removeprefix(defaults.title + ': ')}"

    def meta(ext: str) -> FeedMeta:
        return FeedMeta(
            title=title,
            description=description,
            home_url=base,
            self_url=base + prefix + ext,
            feed_id=base + prefix + ".atom",
            generator=GENERATOR,
            ttl_minutes=max(int(ttl.total_seconds() // 60), 1),
        )

    fallback_zone = sources[0].timezone.key if len(sources) == 1 else defaults.timezone.key
    return [
        _Output(prefix + ".xml", render_rss(meta(".xml"), news, origins)),
        _Output(prefix + ".atom", render_atom(meta(".atom"), news)),
        _Output(prefix + ".json", render_json_feed(meta(".json"), news)),
        _Output(
            calendar_path,
            render_ics(events, name=calendar_name, refresh=ttl, fallback_zone=fallback_zone, year=data.now.year),
        ),
    ]


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
            return sort_news(merged, cap)
        window *= 2


def render_all(data: PublishInput) -> list[_Output]:
    """Every published file as bytes (pure): merged, per source, per tag, index and OPML."""
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
    for event in current_events([e for e in data.events if e.record.source in names], data.now, defaults.past_days):
        events_by_source[event.record.source].append(event)

    all_news = [i for s in sources for i in news_by_source[s.name]]
    all_events = [e for s in sources for e in events_by_source[s.name]]
    merged_news = _merged_newest(all_news, cap)
    merged_events = merge_events(all_events)
    title = defaults.title
    outputs = _feed_set(
        "news",
        title=title,
        description=f"News and events of {len(sources)} European cluster networks, merged",
        news=merged_news,
        events=merged_events,
        sources=sources,
        data=data,
        origins=origins,
    )

    for source in sources:
        outputs += _feed_set(
            "sources/" + file_stem(source.name),
            title=f"{title}: {clean_text(source.name)}",
            description=f"News and events of {clean_text(source.name)}",
            news=sort_news(news_by_source[source.name], cap),
            events=events_by_source[source.name],
            sources=[source],
            data=data,
            origins=origins,
        )

    tag_sources: dict[str, list[SourceConfig]] = {}
    for source in sources:
        for tag in dict.fromkeys(source.tags):
            tag_sources.setdefault(tag, []).append(source)
    for tag in sorted(tag_sources):
        members = tag_sources[tag]
        outputs += _feed_set(
            "tags/" + file_stem(tag),
            title=f"{title}: {clean_text(tag)}",
            description=f"News and events tagged {clean_text(tag)}",
            news=_merged_newest([i for s in members for i in news_by_source[s.name]], cap),
            events=merge_events([e for s in members for e in events_by_source[s.name]]),
            sources=members,
            data=data,
            origins=origins,
        )

    states = {s.name: s for s in data.states}
    index_sources = [
        IndexSource(
            name=clean_text(s.name),
            stem=file_stem(s.name),
            site=_site(s),
            tags=s.tags,
            state=states.get(s.name),
            items=len(news_by_source[s.name]) + len(events_by_source[s.name]),
        )
        for s in sources
    ]
    index_tags = [IndexTag(clean_text(t), file_stem(t)) for t in sorted(tag_sources)]
    outputs.append(
        _Output(
            "index.html",
            render_index(
                title=title,
                base_url=data.base_url,
                news=merged_news,
                events=merged_events,
                sources=index_sources,
                tags=index_tags,
                now=data.now,
            ),
        )
    )
    opml_entries = [
        OpmlEntry(
            name=clean_text(s.name),
            xml_url=data.base_url + "sources/" + file_stem(s.name) + ".xml",
            html_url=_site(s),
            tags=tuple(clean_text(t) for t in s.tags),
        )
        for s in sources
        if news_by_source[s.name] or s.kind is not SourceKind.ICAL
    ]
    outputs.append(_Output("sources.opml", render_opml(f"{title}: sources", opml_entries)))
    return outputs


def publish(feeds_dir: Path, data: PublishInput) -> PublishReport:
    """Render everything and write what changed; remove per-source/per-tag files of vanished sources and tags.

    Raises ``PublishError`` when a file cannot be written; files already
    replaced stay replaced, the failing one keeps its previous version.
    """
    outputs = render_all(data)
    written: list[str] = []
    unchanged = 0
    touched: set[Path] = set()
    for output in outputs:
        path = feeds_dir / output.path
        if _files.write_if_changed(path, output.data, sync_directory=False):
            written.append(output.path)
            touched.add(path.parent)
        else:
            unchanged += 1
    for directory in sorted(touched):
        _files.fsync_directory(directory)
    removed: list[str] = []
    for folder in ("sources", "tags"):
        keep = {Path(o.path).name for o in outputs if o.path.startswith(folder + "/")}
        removed += [f"{folder}/{name}" for name in _files.remove_stale(feeds_dir / folder, keep, _FEED_SUFFIXES)]
    return PublishReport(written=tuple(written), unchanged=unchanged, removed=tuple(removed))
