"""index.html: what this aggregator collects, how to subscribe, what is coming up, how the sources fare.

Pure HTML and inline CSS, no JavaScript and no external resources; every
piece of data is escaped (titles can contain markup). Links are relative so
the page works from any folder; only ``webcal://`` links are absolute, built
from the base URL, because calendar apps need the full address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from urllib.parse import quote, urlsplit, urlunsplit

from dateutil.rrule import rrulestr

from aggregator.publish._common import news_date, plain_text, plain_title, safe_url
from aggregator.publish.ics import event_zone, rrule_value
from aggregator.records import EventRecord, EventStatus, SourceState
from aggregator.store.base import StoredEvent, StoredNews

__all__ = ["IndexSource", "IndexTag", "listed_events", "render_index", "source_status", "stable_until", "upcoming"]

_UPCOMING_DAYS = 30
_LATEST_NEWS = 20
_PER_SERIES = 40


@dataclass(frozen=True, slots=True)
class IndexSource:
    name: str
    stem: str  # file name without extension under sources/
    site: str | None
    tags: tuple[str, ...]
    status: tuple[str, str, str]  # ``source_status`` of its state: a row's worth, not the whole state
    items: int  # news and events published for it


@dataclass(frozen=True, slots=True)
class IndexTag:
    name: str
    stem: str


@dataclass(frozen=True, slots=True)
class _Occurrence:
    start: datetime | date
    end: datetime | date | None
    record: EventRecord


def _sort_key(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def _occurrences(record: EventRecord, lo: datetime, hi: datetime, overridden: set[datetime]) -> list[_Occurrence]:
    """Instances of one event that start in [lo, hi): the event itself, or its series expanded."""
    rule = rrule_value(record.rrule, record.all_day, event_zone(record)) if record.rrule else None
    start = record.start
    if not rule and not record.rdates:
        return [_Occurrence(start, record.end, record)] if lo <= _sort_key(start) < hi else []
    length = None
    if record.end is not None and type(record.end) is type(start):
        length = record.end - start
    anchor = start if isinstance(start, datetime) else datetime.combine(start, time(0))
    instants: set[datetime] = {anchor}
    if rule:
        try:
            window_lo, window_hi = (lo, hi) if anchor.tzinfo else (lo.replace(tzinfo=None), hi.replace(tzinfo=None))
            expanded = rrulestr(rule, dtstart=anchor).between(window_lo, window_hi, inc=True)
            instants.update(expanded[:_PER_SERIES])
        except (ValueError, TypeError):
            pass  # an RRULE dateutil cannot read: the first instance still shows
    for extra in record.rdates:
        instants.add(extra if isinstance(extra, datetime) else datetime.combine(extra, time(0)))
    skipped = {v if isinstance(v, datetime) else datetime.combine(v, time(0)) for v in record.exdates}
    out = []
    for instant in sorted(instants, key=_sort_key):
        if instant in skipped or _sort_key(instant) in overridden:
            continue
        value: datetime | date = instant if isinstance(start, datetime) else instant.date()
        if lo <= _sort_key(value) < hi:
            end = value + length if length is not None else None
            out.append(_Occurrence(value, end, record))
    return out


def upcoming(events: Sequence[StoredEvent], now: datetime, days: int = _UPCOMING_DAYS) -> list[_Occurrence]:
    """Occurrences starting from today (all-day) or now (timed) up to ``days`` ahead, soonest first."""
    lo = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    hi = now + timedelta(days=days)
    overrides: dict[tuple[str, str], set[datetime]] = {}
    for item in events:
        if item.record.recurrence_id is not None:
            key = (item.record.source, item.record.uid)
            overrides.setdefault(key, set()).add(_sort_key(item.record.recurrence_id))
    found: list[_Occurrence] = []
    for item in events:
        record = item.record
        found += _occurrences(record, lo, hi, overrides.get((record.source, record.uid), set()))
    # All-day occurrences count from today; timed ones only if they have not started yet.
    found = [o for o in found if not isinstance(o.start, datetime) or o.start >= now]
    found.sort(key=lambda o: (_sort_key(o.start), o.record.title))
    return found


def _when(occurrence: _Occurrence) -> tuple[str, str]:
    """(machine-readable, human) date of an occurrence, in the event's own zone."""
    start, end = occurrence.start, occurrence.end
    if not isinstance(start, datetime):
        shown = start.strftime("%a %d %b %Y")
        if isinstance(end, date) and not isinstance(end, datetime) and end - start > timedelta(days=1):
            shown += " – " + (end - timedelta(days=1)).strftime("%a %d %b %Y")
        return start.isoformat(), shown
    zone = event_zone(occurrence.record)
    local = start.astimezone(zone) if zone else start.astimezone(UTC)
    shown = local.strftime("%a %d %b %Y, %H:%M")
    if isinstance(end, datetime):
        local_end = end.astimezone(local.tzinfo)
        same_day = local_end.date() == local.date()
        shown += "–" + local_end.strftime("%H:%M" if same_day else "%d %b %H:%M")
    shown += " " + (local.tzname() or "UTC")
    return local.isoformat(), shown


def _stamp(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    utc = moment.astimezone(UTC)
    return f'<time datetime="{utc.strftime("%Y-%m-%dT%H:%M:%SZ")}">{utc.strftime("%d %b %Y %H:%M")} UTC</time>'


def _day(moment: datetime | None) -> str:
    """A day, not a time: a source polled every few minutes must not change the page each poll."""
    if moment is None:
        return "never"
    utc = moment.astimezone(UTC)
    return f'<time datetime="{utc.strftime("%Y-%m-%d")}">{utc.strftime("%d %b %Y")}</time>'


def source_status(state: SourceState | None) -> tuple[str, str, str]:
    """(CSS class, health, last success) of a source as index.html shows them (HTML, escaped).

    Only what changes when something happens: a source turning failing or dormant, a new
    error, the day of its last success. Poll times and attempt counts, which move every
    cycle, are left out, so an unchanged cycle leaves index.html (and its ETag) alone;
    publishing digests these cells to tell whether the page needs rendering at all.
    """
    last_success = _day(state.last_success if state else None)
    if state is None or (state.last_attempt is None and state.last_success is None):
        return "idle", "not fetched yet", last_success
    reason = escape(plain_text(state.last_error)[:160]) if state.last_error else ""
    if state.dormant:
        # Dormant: failing longer than dormant_after, or 410 Gone; the daemon still tries once a day.
        return "dormant", "dormant, retried daily" + (f" ({reason})" if reason else ""), last_success
    if state.consecutive_failures:
        began = state.failing_since or state.last_success
        since = f"failing since {_stamp(began)}" if state.last_success else "failing, never succeeded"
        return "failing", since + (f" ({reason})" if reason else ""), last_success
    return "ok", "ok", last_success


def listed_events(events: Sequence[StoredEvent], now: datetime) -> list[StoredEvent]:
    """The few of ``events`` that ``render_index`` and ``stable_until`` at ``now`` look at.

    Those with an occurrence in the next days, and every override (it may hide a series'
    occurrence there); in their order, so both give the same as over all ``events``. What
    index.html needs of the events is taken from these.
    """
    shown = {id(occurrence.record) for occurrence in upcoming(events, now, _UPCOMING_DAYS + 1)}
    return [item for item in events if id(item.record) in shown or item.record.recurrence_id is not None]


def stable_until(events: Sequence[StoredEvent], now: datetime, days: int = _UPCOMING_DAYS) -> datetime:
    """When the "next days" list, rendered at ``now`` from the same events, would first look different.

    The next UTC midnight (all-day events of the day leave, the dates move), the start of a
    listed timed event (it leaves), or the moment an occurrence enters the window. Publishing
    renders again at that time even if no record changed.
    """
    midnight = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(0), tzinfo=UTC)
    edges = [midnight]
    window = timedelta(days=days)
    for occurrence in upcoming(events, now, days + 1):
        start = _sort_key(occurrence.start)
        if start >= now + window:
            edges.append(start - window)
        elif isinstance(occurrence.start, datetime):
            edges.append(start)
    return max(min(edges), now)


def webcal(base_url: str, path: str) -> str:
    """Subscribe URL of a calendar: the https/http address with the webcal scheme calendar apps open."""
    parts = urlsplit(base_url + path)
    return urlunsplit(("webcal", parts.netloc, parts.path, parts.query, ""))


_CSS = """
:root { color-scheme: light; --ink: #1b1f24; --muted: #4a5561; --line: #d5dbe1; --accent: #0b5cad; --bg: #fbfcfd; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: var(--bg); }
header, main, footer { max-width: 60rem; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 2rem; }
h1 { font-size: 1.9rem; margin: 0 0 .25rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; }
p.lead { color: var(--muted); margin-top: 0; }
a { color: var(--accent); }
a:focus-visible { outline: 3px solid #f2b705; outline-offset: 2px; }
ul.plain { list-style: none; padding: 0; }
ul.plain li { margin: .35rem 0; }
.buttons a { display: inline-block; padding: .25rem .7rem; margin: .15rem .3rem .15rem 0;
             border: 1px solid var(--accent); border-radius: .35rem; text-decoration: none; font-weight: 600; }
.buttons a:hover { background: var(--accent); color: #fff; }
.meta { color: var(--muted); font-size: .92rem; }
.cancelled { text-decoration: line-through; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef2f6; }
.ok { color: #1d6b2f; } .failing { color: #a3211b; } .dormant, .idle { color: var(--muted); }
code { background: #eef2f6; padding: .05rem .3rem; border-radius: .2rem; word-break: break-all; }
footer { margin: 3rem auto 2rem; color: var(--muted); font-size: .9rem; }
"""


def _feed_links(prefix: str) -> str:
    return f'<a href="{prefix}.xml">RSS</a> <a href="{prefix}.atom">Atom</a> <a href="{prefix}.json">JSON Feed</a>'


class _Page:
    """A page's text encoded as it is made, in parts of about ``_PART`` bytes.

    10,000 sources' rows were 7 MB held three times at once: the rows, their join, its encoding.
    """

    _PART = 64 << 10

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pending: list[str] = []
        self._size = 0

    def append(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        if self._size >= self._PART:
            self._encode()

    def extend(self, *texts: str) -> None:
        for text in texts:
            self.append(text)

    def _encode(self) -> None:
        self._parts.append("".join(self._pending).encode("utf-8"))
        self._pending.clear()
        self._size = 0

    def done(self) -> list[bytes]:
        self._encode()
        return self._parts


def render_index(
    *,
    title: str,
    base_url: str,
    news: Sequence[StoredNews],
    events: Sequence[StoredEvent],
    sources: Sequence[IndexSource],
    tags: Sequence[IndexTag],
    now: datetime,
) -> list[bytes]:
    """The landing page's bytes in parts; ``news`` merged and newest first, ``events`` merged and current."""
    t = escape(title)
    calendar_https = escape(base_url + "events.ics")
    out = _Page()
    out.extend(
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{t}</title>\n",
        f'<link rel="alternate" type="application/rss+xml" title="{t} (RSS)" href="news.xml">\n',
        f'<link rel="alternate" type="application/atom+xml" title="{t} (Atom)" href="news.atom">\n',
        f'<link rel="alternate" type="application/feed+json" title="{t} (JSON Feed)" href="news.json">\n',
        f"<style>{_CSS}</style>\n</head>\n<body>\n",
        f"<header>\n<h1>{t}</h1>\n",
        f'<p class="lead">News and events of {len(sources)} European cluster network'
        f"{'s' if len(sources) != 1 else ''}, collected into one feed and one calendar.</p>\n</header>\n",
        "<main>\n",
        '<section aria-labelledby="subscribe">\n<h2 id="subscribe">Subscribe</h2>\n<ul class="plain">\n',
        f'<li><strong>All news:</strong> <span class="buttons">{_feed_links("news")}</span></li>\n',
        f'<li><strong>All events:</strong> <span class="buttons"><a href="{escape(webcal(base_url, "events.ics"))}">'
        'Add to calendar</a> <a href="events.ics">Download .ics</a></span></li>\n',
        '<li><strong>Every source for your reader:</strong> <span class="buttons">'
        '<a href="sources.opml">OPML</a></span></li>\n</ul>\n',
        '<p class="meta">Google Calendar: <em>Other calendars › + › From URL</em>, '
        f"paste <code>{calendar_https}</code>. "
        "Outlook: <em>Add calendar › Subscribe from web</em>, same address.</p>\n</section>\n",
    )

    out.append('<section aria-labelledby="events">\n<h2 id="events">Next 30 days</h2>\n')
    coming = upcoming(events, now)
    if coming:
        out.append('<ul class="plain">\n')
        for occurrence in coming:
            record = occurrence.record
            machine, human = _when(occurrence)
            name = escape(plain_title(record.title))
            link = safe_url(record.link)
            label = f'<a href="{escape(link)}">{name}</a>' if link else name
            cancelled = record.status is EventStatus.CANCELLED
            place = plain_text(record.location or "")
            extra = [escape(place)] if place else []
            extra.append(escape(record.source))
            css = ' class="cancelled"' if cancelled else ""
            out.append(
                f'<li{css}><time datetime="{escape(machine)}">{escape(human)}'
                f"</time> · {label}{' (cancelled)' if cancelled else ''}"
                f' <span class="meta">· {" · ".join(extra)}</span></li>\n'
            )
        out.append("</ul>\n")
    else:
        out.append("<p>No events in the next 30 days.</p>\n")
    out.append("</section>\n")

    out.append('<section aria-labelledby="news">\n<h2 id="news">Latest news</h2>\n')
    if news:
        out.append('<ul class="plain">\n')
        for item in news[:_LATEST_NEWS]:
            story = item.record
            name = escape(plain_title(story.title))
            link = safe_url(story.link)
            label = f'<a href="{escape(link)}">{name}</a>' if link else name
            day = news_date(item).astimezone(UTC)
            out.append(
                f'<li>{label} <span class="meta">· {escape(story.source)} · '
                f'<time datetime="{day.strftime("%Y-%m-%dT%H:%M:%SZ")}">{day.strftime("%d %b %Y")}</time></span></li>\n'
            )
        out.append("</ul>\n")
    else:
        out.append("<p>No news yet.</p>\n")
    out.append("</section>\n")

    out.append(
        '<section aria-labelledby="sources">\n<h2 id="sources">Sources</h2>\n<table>\n'
        '<thead><tr><th scope="col">Source</th><th scope="col">Health</th><th scope="col">Last success</th>'
        '<th scope="col">Items</th><th scope="col">Subscribe</th></tr></thead>\n<tbody>\n'
    )
    for source in sources:
        css, health, last_success = source.status
        name = escape(source.name)
        label = f'<a href="{escape(source.site)}">{name}</a>' if source.site else name
        prefix = "sources/" + quote(source.stem)
        out.append(
            f'<tr><th scope="row">{label}</th><td class="{css}">{health}</td>'
            f"<td>{last_success}</td><td>{source.items}</td>"
            f'<td class="buttons">{_feed_links(prefix)} '
            f'<a href="{escape(webcal(base_url, prefix + ".ics"))}">Calendar</a></td></tr>\n'
        )
    out.append("</tbody>\n</table>\n</section>\n")

    if tags:
        out.append('<section aria-labelledby="tags">\n<h2 id="tags">Topics</h2>\n<ul class="plain">\n')
        for tag in tags:
            prefix = "tags/" + quote(tag.stem)
            out.append(
                f'<li><strong>{escape(tag.name)}</strong> <span class="buttons">{_feed_links(prefix)} '
                f'<a href="{escape(webcal(base_url, prefix + ".ics"))}">Calendar</a></span></li>\n'
            )
        out.append("</ul>\n</section>\n")
    out.append("</main>\n")
    out.append(
        f"<footer>\n<p>Built by clusterfeeds from {len(sources)} source{'s' if len(sources) != 1 else ''}. "
        "Feeds are refreshed automatically; times are shown in each event's own time zone.</p>\n</footer>\n"
    )
    out.append("</body>\n</html>\n")
    return out.done()
