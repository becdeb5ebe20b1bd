"""Publishing inputs built directly as stored records: three cluster networks, news and events.

``cluster_input`` is the rich data set every publish test starts from: timed
events in two zones across the 2027 DST change, all-day and multi-day events,
a weekly series with an EXDATE and a moved instance, a cancelled event, news
with enclosures, umlauts and emoji, and source tags for per-tag files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import Config, Defaults, ServerSettings, SourceConfig, SourceKind
from aggregator.publish import PublishInput
from aggregator.records import Enclosure, EventRecord, EventStatus, NewsRecord, SourceState
from aggregator.store import open_store
from aggregator.store.base import StoredEvent, StoredNews
from aggregator.store.sqlalchemy_store import SqlStore

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
BASE = "https://feeds.clusterfeeds.example/"
VIENNA = ZoneInfo("Europe/Vienna")
HELSINKI = ZoneInfo("Europe/Helsinki")
SEEN = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
CHANGED = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)


def news(
    source: str,
    ident: str,
    title: str,
    *,
    published: datetime | None = None,
    first_seen: datetime = SEEN,
    changed_at: datetime = CHANGED,
    **fields: object,
) -> StoredNews:
    record = NewsRecord(
        id=ident,
        source=source,
        title=title,
        link=fields.pop("link", f"https://{source}.clusterfeeds.example/news/{ident}"),  # type: ignore[arg-type]
        published=published,
        **fields,  # type: ignore[arg-type]
    )
    return StoredNews(record=record, first_seen=first_seen, changed_at=changed_at)


def event(
    source: str,
    uid: str,
    title: str,
    start: datetime | date,
    end: datetime | date | None = None,
    *,
    sequence: int = 0,
    first_seen: datetime = SEEN,
    changed_at: datetime = CHANGED,
    **fields: object,
) -> StoredEvent:
    timezone = None
    if isinstance(start, datetime) and isinstance(start.tzinfo, ZoneInfo) and start.tzinfo.key != "UTC":
        timezone = start.tzinfo.key
    record = EventRecord(uid=uid, source=source, title=title, start=start, end=end, timezone=timezone, **fields)  # type: ignore[arg-type]
    return StoredEvent(record=record, sequence=sequence, first_seen=first_seen, changed_at=changed_at)


def make_config(tmp_path: Path, *sources: SourceConfig, max_items: int = 200, past_days: int = 90) -> Config:
    return Config(
        path=tmp_path / "sources.toml",
        data_dir=tmp_path / "data",
        feeds_dir=tmp_path / "feeds",
        defaults=Defaults(max_items=max_items, past_days=past_days, title="Cluster feeds"),
        server=ServerSettings(base_url=BASE),
        sources=sources,
    )


ALPHA = SourceConfig(
    name="alpha",
    url="https://alpha.clusterfeeds.example/feed.xml",
    kind=SourceKind.FEED,
    tags=("energy", "hydrogen"),
    interval=timedelta(minutes=30),
    timezone=VIENNA,
)
BETA = SourceConfig(
    name="beta",
    url="https://beta.clusterfeeds.example/events/",
    kind=SourceKind.AUTO,
    tags=("energy",),
    interval=timedelta(hours=2),
    timezone=HELSINKI,
)
GAMMA = SourceConfig(
    name="gamma",
    url="https://gamma.clusterfeeds.example/calendar.ics",
    kind=SourceKind.ICAL,
    tags=("mobility",),
    interval=timedelta(hours=1),
    timezone=VIENNA,
)


def cluster_news() -> list[StoredNews]:
    return [
        news(
            "alpha",
            "hydrogen-test-bed",
            "Grazer Cluster eröffnet Wasserstoff-Testfeld 🚀",
            published=datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
            summary='<p>Das Testfeld in <a href="https://alpha.clusterfeeds.example/labs">Graz</a> '
            "ist offen für KMU.</p>",
            authors=("Jana Novák",),
            tags=("hydrogen",),
            enclosures=(
                Enclosure("https://alpha.clusterfeeds.example/media/testbed.pdf", "application/pdf", 482133),
                Enclosure("https://alpha.clusterfeeds.example/media/testbed.jpg", "image/jpeg"),
            ),
        ),
        news(
            "beta",
            "pilots-call",
            "Call for cross-border pilots – deadline in April",
            published=datetime(2026, 11, 20, 13, 0, tzinfo=ZoneInfo("Europe/Helsinki")),
            summary="<p>Pilots pairing SMEs from two countries can apply until <strong>15 April</strong>.</p>",
        ),
        news(
            "beta",
            "krakow-brno",
            "Kraków and Brno clusters sign cooperation",
            first_seen=datetime(2026, 11, 22, 6, 0, tzinfo=UTC),
            summary="Plain-text summary without markup.",
            link=None,
        ),
        news(
            "gamma",
            "e-mobility-report",
            "E-mobility report 2026 published",
            published=datetime(2026, 10, 2, 8, 0, tzinfo=UTC),
        ),
    ]


def cluster_events() -> list[StoredEvent]:
    return [
        # Vienna, before and after the switch to summer time on 28 March 2027.
        event(
            "alpha",
            "h2-webinar-1@alpha.clusterfeeds.example",
            "Hydrogen valleys webinar, part 1",
            datetime(2027, 3, 25, 14, 0, tzinfo=VIENNA),
            datetime(2027, 3, 25, 16, 0, tzinfo=VIENNA),
            sequence=1,
            location="Online",
            link="https://alpha.clusterfeeds.example/events/h2-webinar-1",
            tags=("hydrogen",),
        ),
        event(
            "alpha",
            "h2-webinar-2@alpha.clusterfeeds.example",
            "Hydrogen valleys webinar, part 2",
            datetime(2027, 4, 1, 14, 0, tzinfo=VIENNA),
            datetime(2027, 4, 1, 16, 0, tzinfo=VIENNA),
        ),
        # Helsinki: another zone, same DST rules shifted by an hour.
        event(
            "beta",
            "nordic-matchmaking@beta.clusterfeeds.example",
            "Nordic–Baltic matchmaking",
            datetime(2026, 12, 9, 9, 0, tzinfo=HELSINKI),
            datetime(2026, 12, 9, 17, 30, tzinfo=HELSINKI),
            location="Messukeskus, Messuaukio 1, 00520 Helsinki",
            description="<p>Meet clusters from Suomi, Eesti and Latvija; <em>free</em> entry.</p>",
        ),
        # All-day, one day, no end given: published with the exclusive next day.
        event("beta", "open-day@beta.clusterfeeds.example", "Open lab day", date(2026, 12, 3)),
        # Multi-day, end exclusive.
        event(
            "gamma",
            "cluster-days-2026@gamma.clusterfeeds.example",
            "European Cluster Days – Graz",
            date(2026, 12, 8),
            date(2026, 12, 11),
            location="Congress Graz; Sparkassenplatz 1, 8010 Graz, Österreich",
        ),
        # Weekly series across the DST change, one instance skipped, one moved.
        event(
            "gamma",
            "funding-clinic@gamma.clusterfeeds.example",
            "Funding clinic (weekly)",
            datetime(2027, 3, 16, 10, 0, tzinfo=VIENNA),
            datetime(2027, 3, 16, 11, 30, tzinfo=VIENNA),
            rrule="FREQ=WEEKLY;COUNT=6;BYDAY=TU",
            exdates=(datetime(2027, 3, 30, 10, 0, tzinfo=VIENNA),),
        ),
        event(
            "gamma",
            "funding-clinic@gamma.clusterfeeds.example",
            "Funding clinic (moved)",
            datetime(2027, 4, 6, 11, 30, tzinfo=VIENNA),
            datetime(2027, 4, 6, 13, 0, tzinfo=VIENNA),
            sequence=2,
            recurrence_id=datetime(2027, 4, 6, 10, 0, tzinfo=VIENNA),
        ),
        event(
            "gamma",
            "battery-summit@gamma.clusterfeeds.example",
            "Battery summit",
            datetime(2026, 12, 15, 8, 0, tzinfo=UTC),
            status=EventStatus.CANCELLED,
            sequence=3,
        ),
        # Inside the past window (kept) and far older than it (dropped).
        event(
            "alpha",
            "autumn-forum@alpha.clusterfeeds.example",
            "Autumn forum",
            datetime(2026, 10, 1, 9, 0, tzinfo=VIENNA),
            datetime(2026, 10, 1, 12, 0, tzinfo=VIENNA),
        ),
        event(
            "alpha",
            "old-forum@alpha.clusterfeeds.example",
            "Forum from long ago",
            datetime(2026, 5, 1, 9, 0, tzinfo=VIENNA),
            datetime(2026, 5, 1, 12, 0, tzinfo=VIENNA),
        ),
    ]


def cluster_states() -> list[SourceState]:
    return [
        SourceState(
            name="alpha",
            last_attempt=datetime(2026, 11, 26, 8, 30, tzinfo=UTC),
            last_success=datetime(2026, 11, 26, 8, 30, tzinfo=UTC),
            items=12,
        ),
        SourceState(
            name="beta",
            last_attempt=datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
            last_success=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
            last_error="HTTP 503 <b>Service Unavailable</b>",
            consecutive_failures=4,
        ),
        SourceState(name="gamma", last_success=datetime(2026, 9, 1, 8, 0, tzinfo=UTC), dormant=True),
    ]


@pytest.fixture
def cluster_input(tmp_path: Path) -> PublishInput:
    return PublishInput(
        config=make_config(tmp_path, ALPHA, BETA, GAMMA),
        news=cluster_news(),
        events=cluster_events(),
        states=cluster_states(),
        now=NOW,
        base_url=BASE,
    )


@pytest.fixture
def feeds_dir(tmp_path: Path) -> Path:
    return tmp_path / "feeds"


@pytest.fixture
def read_text(feeds_dir: Path) -> Callable[[str], str]:
    def read(relative: str) -> str:
        return (feeds_dir / relative).read_bytes().decode("utf-8")

    return read


@pytest.fixture
def make_news() -> Callable[..., StoredNews]:
    return news


@pytest.fixture
def make_event() -> Callable[..., StoredEvent]:
    return event


@pytest.fixture
def publish_input(tmp_path: Path) -> Callable[..., PublishInput]:
    """publish_input(news=[...], events=[...], sources=(ALPHA,), max_items=..) -> PublishInput at NOW."""

    def build(
        *,
        news: list[StoredNews] | None = None,
        events: list[StoredEvent] | None = None,
        sources: tuple[SourceConfig, ...] = (ALPHA, BETA, GAMMA),
        states: list[SourceState] | None = None,
        now: datetime = NOW,
        **config: int,
    ) -> PublishInput:
        return PublishInput(
            config=make_config(tmp_path, *sources, **config),
            news=news or [],
            events=events or [],
            states=states or [],
            now=now,
            base_url=BASE,
        )

    return build


@pytest.fixture
def configured() -> dict[str, SourceConfig]:
    """The three configured sources by name."""
    return {"alpha": ALPHA, "beta": BETA, "gamma": GAMMA}


CLUSTERS_STORED_AT = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """alpha, beta and gamma with their data and feeds folders under tmp_path."""
    return make_config(tmp_path, ALPHA, BETA, GAMMA)


@pytest.fixture
def store(config: Config) -> Iterator[SqlStore]:
    """A real SQLite store holding the three networks' news, events and states, as the pipeline leaves it."""
    opened = open_store(f"sqlite:///{config.data_dir / 'aggregator.sqlite3'}")
    records = [n.record for n in cluster_news()] + [e.record for e in cluster_events()]
    for name in ("alpha", "beta", "gamma"):
        opened.upsert(name, [r for r in records if r.source == name], now=CLUSTERS_STORED_AT)
    for state in cluster_states():
        opened.save_state(state)
    yield opened
    opened.close()


LISBON = ZoneInfo("Europe/Lisbon")


def overlapping_series() -> list[StoredEvent]:
    """Weekly series whose overrides meet other series: what ical.js related across UIDs.

    alpha's webinar moves its 5 December session an hour later, while beta's stand-up (another
    event) meets at the webinar's usual 14:00 every week. alpha and gamma both carry one meetup
    series and its moved 8 December session: alpha's series was seen first, gamma's override.
    """
    hour = timedelta(hours=1)
    weekly, meetup = "FREQ=WEEKLY;COUNT=6", "FREQ=WEEKLY;COUNT=4"
    nov28, dec5 = datetime(2026, 11, 28, 14, 0, tzinfo=LISBON), datetime(2026, 12, 5, 14, 0, tzinfo=LISBON)
    dec1, dec8 = datetime(2026, 12, 1, 10, 0, tzinfo=LISBON), datetime(2026, 12, 8, 10, 0, tzinfo=LISBON)
    return [
        event("alpha", "webinar@alpha.example", "Hydrogen webinar", nov28, nov28 + 2 * hour, rrule=weekly),
        event(
            "alpha", "webinar@alpha.example", "Hydrogen webinar (an hour later)", dec5 + hour, dec5 + 3 * hour,
            recurrence_id=dec5, sequence=1,
        ),
        event("beta", "standup@beta.example", "Cluster stand-up", nov28, nov28 + hour, rrule=weekly),
        event("alpha", "meetup@example.eu", "Mobility meetup", dec1, dec1 + hour, rrule=meetup),
        event(
            "alpha", "meetup@example.eu", "Mobility meetup (moved)", dec8 + hour, dec8 + 2 * hour,
            recurrence_id=dec8, first_seen=SEEN + 2 * hour,
        ),
        event("gamma", "meetup@example.eu", "Mobility meetup", dec1, dec1 + hour, rrule=meetup, first_seen=SEEN + hour),
        event(
            "gamma", "meetup@example.eu", "Mobility meetup (moved)", dec8 + hour, dec8 + 2 * hour,
            recurrence_id=dec8, first_seen=SEEN + hour,
        ),
    ]  # fmt: skip
