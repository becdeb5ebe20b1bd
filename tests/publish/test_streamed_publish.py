"""A publish that reads the sources a group at a time writes exactly the bytes of the usual one.

Both read the same real SQLite store. The records are made to meet every de-duplication rule
(the same link with and without tracking parameters, a listing page's link, equal titles on one
day with near-equal and different summaries, events alike by link, title or UID at one start, a
UID two sources use, RDATEs, a series with an override), in sources that share tags, with caps
small enough that the merged feeds' widening window matters and large enough to show all.
"""

from __future__ import annotations

import dataclasses
import random
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import Config, SourceConfig, SourceKind
from aggregator.publish.streamed import publish_streamed
from aggregator.records import EventRecord, EventStatus, NewsRecord, Record
from aggregator.runtime import publish_from_store
from aggregator.store import open_store
from aggregator.store.sqlalchemy_store import SqlStore

from .conftest import ALPHA, BASE, BETA, GAMMA, NOW, cluster_events, cluster_news, make_config
from .test_independent_check import CHECK_FEEDS

VIENNA = ZoneInfo("Europe/Vienna")
LISBON = ZoneInfo("Europe/Lisbon")
HELSINKI = ZoneInfo("Europe/Helsinki")
TAGS = ("energy", "hydrogen", "mobility", "health")


def _sources(count: int) -> list[SourceConfig]:
    picked = random.Random(count)
    return [
        SourceConfig(
            name=f"cluster-{n:02d}" if n % 3 else f"Cluster {n} Ü",
            url=f"https://cluster{n}.example.eu/feed",
            kind=SourceKind.ICAL if n % 4 == 3 else SourceKind.FEED,
            tags=tuple(picked.sample(TAGS, n % 3)),
            interval=timedelta(minutes=30 + 15 * (n % 3)),
            timezone=(VIENNA, LISBON, HELSINKI)[n % 3],
        )
        for n in range(count)
    ]


def _records(sources: list[SourceConfig], seed: int) -> dict[str, list[Record]]:
    """News and events drawn from small pools, so that sources collide on links, titles, starts and UIDs."""
    draw = random.Random(seed)
    titles = ["Hydrogen valley call", "Cluster day 2026", "New members", "Hydrogen Valley Call!", "Webinar"]
    summaries = [
        "<p>SMEs can apply until 15 April.</p>",
        "<p>SMEs can apply until 15 April!</p>",
        "<p>Completely different text about mobility.</p>",
        "",
    ]
    links = [f"https://news.example.eu/story/{n}" for n in range(12)]
    zones = [VIENNA, LISBON, HELSINKI, UTC]
    out: dict[str, list[Record]] = {s.name: [] for s in sources}
    for source in sources:
        name = source.name
        for n in range(draw.randint(0, 14)):
            link_choice = draw.random()
            if link_choice < 0.15:
                link: str | None = None
            elif link_choice < 0.3:
                link = draw.choice(links) + "?utm_source=newsletter"
            elif link_choice < 0.4:
                link = f"https://{name.replace(' ', '')}.example.eu/news"  # a listing page, given twice or more
            elif link_choice < 0.7:
                link = draw.choice(links)
            else:
                link = f"https://{name.replace(' ', '')}.example.eu/news/{n}"
            published = None
            if draw.random() < 0.8:
                day = datetime(2026, 11, 20, tzinfo=UTC) + timedelta(hours=draw.choice([0, 1, 23, 24, 47]))
                published = day.astimezone(draw.choice(zones))
            out[name].append(
                NewsRecord(
                    id=f"{name}/news/{n}" if n % 5 else f"https://x.example/ü?id={n}",
                    source=name,
                    title=draw.choice(titles),
                    link=link,
                    summary=draw.choice(summaries),
                    published=published,
                    updated=published + timedelta(hours=2) if published is not None and n % 4 == 0 else None,
                    tags=source.tags[:1],
                    authors=("Jana Novák",) if n % 2 else (),
                )
            )
        starts: list[datetime | date] = [
            datetime(2026, 12, 3, 9, 0, tzinfo=VIENNA),
            datetime(2026, 12, 3, 8, 0, tzinfo=UTC),  # the same instant as the first
            datetime(2026, 11, 28, 14, 0, tzinfo=LISBON),
            date(2026, 12, 10),
            datetime(2026, 6, 1, 10, 0, tzinfo=VIENNA),  # gone out of a 30-day past window
        ]
        for n in range(draw.randint(0, 8)):
            start = draw.choice(starts)
            all_day = not isinstance(start, datetime)
            rdates: tuple[datetime | date, ...] = ()
            rrule = None
            if n == 2 and not all_day:
                assert isinstance(start, datetime)
                rdates = (start + timedelta(days=7), start + timedelta(days=14))
            if n == 3:
                rrule = "FREQ=WEEKLY;COUNT=6"
            uid = draw.choice([f"{name}-event-{n}", "shared-uid@example.eu", f"uid-{n}"])
            out[name].append(
                EventRecord(
                    uid=uid,
                    source=name,
                    title=draw.choice(titles),
                    start=start,
                    end=(start + timedelta(hours=2)) if not all_day else start + timedelta(days=2),
                    timezone=None if all_day or not isinstance(start, datetime) else str(start.tzinfo),
                    link=draw.choice([None, *links[:4]]),
                    description=draw.choice(summaries),
                    status=EventStatus.CANCELLED if n == 4 else EventStatus.CONFIRMED,
                    rrule=rrule,
                    rdates=rdates,
                    location="Linz, Upper Austria" if n % 2 else None,
                    tags=source.tags,
                )
            )
            if rrule is not None and isinstance(start, datetime):
                out[name].append(
                    EventRecord(
                        uid=uid,
                        source=name,
                        title="Moved session",
                        start=start + timedelta(days=7, hours=1),
                        end=start + timedelta(days=7, hours=3),
                        timezone=str(start.tzinfo),
                        recurrence_id=start + timedelta(days=7),
                    )
                )
    return out


def _configs(tmp_path: Path, sources: list[SourceConfig], **settings: int) -> tuple[Config, Config]:
    base = make_config(tmp_path, *sources, **settings)

    def variant(name: str, stream_records: int) -> Config:
        defaults = dataclasses.replace(base.defaults, publish_stream_records=stream_records)
        return dataclasses.replace(
            base, defaults=defaults, data_dir=tmp_path / name / "data", feeds_dir=tmp_path / name / "feeds"
        )

    return variant("usual", 10**9), variant("streamed", 0)


def _files(feeds_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in sorted(feeds_dir.rglob("*")) if p.is_file()}


def _store(tmp_path: Path, records: dict[str, list[Record]], seed: int, url: str | None = None) -> SqlStore:
    store = open_store(url or f"sqlite:///{tmp_path / 'shared.sqlite3'}")
    clock = random.Random(seed)
    for name, items in records.items():
        # Stored over three fetches: first sights and change times differ between and within sources.
        for part in range(3):
            stored_at = datetime(2026, 11, 20, 7, 0, tzinfo=UTC) + timedelta(hours=clock.choice([0, 0, 5, 30]))
            store.upsert(name, items[: len(items) * (part + 1) // 3], now=stored_at)
    return store


@pytest.mark.parametrize(
    ("seed", "max_items", "count", "backend"),
    [
        (1, 200, 9, "sqlite"),
        (2, 3, 9, "sqlite"),
        (3, 5, 9, "sqlite"),
        (4, 1, 9, "sqlite"),
        (5, 50, 9, "sqlite"),
        (6, 20, 70, "sqlite"),
        (7, 7, 70, "sqlite"),
        pytest.param(8, 20, 70, "postgresql", marks=pytest.mark.postgres),
    ],
)
def test_streamed_publish_writes_the_bytes_of_the_usual_publish(
    tmp_path: Path, seed: int, max_items: int, count: int, backend: str, request: pytest.FixtureRequest
) -> None:
    """(70 sources: more than one group of sources is read.)"""
    sources = _sources(count)
    records = _records(sources, seed)
    url = request.getfixturevalue("postgres_server").create_database() if backend == "postgresql" else None
    store = _store(tmp_path, records, seed, url)
    usual, streamed = _configs(tmp_path, sources, max_items=max_items, past_days=30)
    try:
        plain = publish_from_store(usual, store, now=NOW, base_url=BASE)
        report = publish_from_store(streamed, store, now=NOW, base_url=BASE)
        expected = _files(usual.feeds_dir)
        assert len(expected) == 4 * (1 + count + 4) + 2
        assert plain.fragments_rendered > 0
        assert _files(streamed.feeds_dir) == expected
        assert (len(report.written), report.unchanged, len(report.rendered)) == (len(expected), 0, 1 + count + 4)
        assert report.valid_until == plain.valid_until

        # One source changes: the same files again, and only the changed scopes are rendered.
        name = sources[1].name
        changed = [dataclasses.replace(r, title=r.title + " (updated)") for r in records[name]]
        store.upsert(name, changed, now=NOW)
        later = NOW + timedelta(hours=1)
        plain = publish_from_store(usual, store, now=later, base_url=BASE)
        report = publish_from_store(streamed, store, now=later, base_url=BASE)
        assert _files(streamed.feeds_dir) == _files(usual.feeds_dir)
        assert sorted(report.rendered) == sorted(plain.rendered)
        assert sorted(report.written) == sorted(plain.written)
    finally:
        store.close()


def test_the_cluster_fixtures_publish_the_same_streamed(tmp_path: Path) -> None:
    records: dict[str, list[Record]] = {"alpha": [], "beta": [], "gamma": []}
    for item in [*cluster_news(), *cluster_events()]:
        records[item.record.source].append(item.record)
    store = _store(tmp_path, records, 0)
    usual, streamed = _configs(tmp_path, [ALPHA, BETA, GAMMA])
    try:
        publish_from_store(usual, store, now=NOW, base_url=BASE)
        report = publish_streamed(streamed.feeds_dir, streamed, store, now=NOW, base_url=BASE)
        assert _files(streamed.feeds_dir) == _files(usual.feeds_dir)
        assert report.fragments_rendered > 0
        # Unchanged: nothing rendered, nothing written, every fragment found in the render cache.
        again = publish_streamed(streamed.feeds_dir, streamed, store, now=NOW, base_url=BASE)
        assert (again.written, again.rendered, again.unchanged) == ((), (), 30)
    finally:
        store.close()


def test_without_a_usable_render_cache_the_streamed_files_are_the_same(tmp_path: Path) -> None:
    """The render cache is only a cache: a directory in its place switches it off, with the same bytes."""
    sources = _sources(9)
    store = _store(tmp_path, _records(sources, 3), 3)
    usual, streamed = _configs(tmp_path, sources, max_items=5, past_days=30)
    (streamed.data_dir / "render-cache.sqlite3").mkdir(parents=True)
    try:
        publish_from_store(usual, store, now=NOW, base_url=BASE)
        report = publish_from_store(streamed, store, now=NOW, base_url=BASE)
        assert _files(streamed.feeds_dir) == _files(usual.feeds_dir)
        assert report.fragments_reused == 0
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.skipif(not CHECK_FEEDS.exists(), reason=f"independent checker not found at {CHECK_FEEDS}")
def test_streamed_files_pass_check_feeds_with_no_failure(tmp_path: Path) -> None:
    sources = _sources(9)
    store = _store(tmp_path, _records(sources, 5), 5)
    _, streamed = _configs(tmp_path, sources, max_items=50, past_days=30)
    try:
        publish_from_store(streamed, store, now=NOW, base_url=BASE)
    finally:
        store.close()
    result = subprocess.run(
        [str(CHECK_FEEDS), str(streamed.feeds_dir)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed"), result.stdout
