"""Events past the publish's memory budget are read as a stream and kept compressed, with the same files.

Decoded, the large workload's 102,867 events held 123 MB in the publishing process from its read
to its end (``PublishInput.packed_events``). The plan takes what it needs of them as they stream by:
each source's digest, the current ones in their order, and when the first of all leaves the past
window, a source no longer configured included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator import config as config_module
from aggregator.config import Config
from aggregator.publish import PublishInput, pack_events, publish
from aggregator.records import EventRecord, Record
from aggregator.runtime import publish_from_store
from aggregator.store import SqlStore, open_store

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
VIENNA = ZoneInfo("Europe/Vienna")
BASE = "https://feeds.clusterfeeds.example/"


def _config(tmp_path: Path, name: str, memory_mb: int, processes: int) -> Config:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[defaults]\ndata_dir = "{name}-data"\nfeeds_dir = "{name}-feeds"\npast_days = 30\n'
        f"publish_memory_mb = {memory_mb}\npublish_processes = {processes}\n"
        + "".join(
            f'[[source]]\nname = "{source}"\nurl = "https://{source}.example.eu/events.ics"\nkind = "ical"\n'
            f'tags = ["{tag}"]\n'
            for source, tag in (("alpha", "energy"), ("beta", "energy"), ("gamma", "health"))
        ),
        encoding="utf-8",
    )
    return config_module.load(path)


def _hourly(source: str, uid: str, title: str, first: datetime, count: int, minutes: tuple[int, int]) -> list[Record]:
    """``count`` events an hour apart, each from ``minutes[0]`` to ``minutes[1]`` past its hour."""
    return [
        EventRecord(
            uid=uid.format(n=n),
            source=source,
            title=title.format(n=n),
            start=first + timedelta(hours=n, minutes=minutes[0]),
            end=first + timedelta(hours=n, minutes=minutes[1]),
            timezone="Europe/Vienna",
        )
        for n in range(count)
    ]


def _events() -> dict[str, list[Record]]:
    start = datetime(2026, 12, 1, 9, 30, tzinfo=VIENNA)  # the next to enter the 30 days: at 09:30 UTC
    alpha = _hourly("alpha", "alpha-{n}@clusterfeeds", "Hydrogen workshop {n}", start, 2_300, (0, 90))
    beta = _hourly("beta", "beta-{n}@clusterfeeds", "Textiles meetup {n}", start, 900, (15, 45))
    # beta announces 100 of alpha's workshops too: merged into alpha's, with also_from
    beta += _hourly("beta", "copy-{n}@beta", "Hydrogen workshop {n}", start, 100, (0, 90))
    series_start = datetime(2024, 1, 9, 10, 0, tzinfo=VIENNA)
    gamma: list[Record] = [
        EventRecord(
            uid="jour-fixe@gamma",
            source="gamma",
            title="Jour fixe",
            start=series_start,
            end=series_start + timedelta(hours=1),
            timezone="Europe/Vienna",
            rrule="FREQ=WEEKLY;BYDAY=TU",
        ),
        EventRecord(  # an override from 2024, out of the window: kept with its series (else the RRULE shows it unmoved)
            uid="jour-fixe@gamma",
            source="gamma",
            title="Jour fixe (moved to Wednesday)",
            start=series_start + timedelta(days=8),
            end=series_start + timedelta(days=8, hours=1),
            timezone="Europe/Vienna",
            recurrence_id=series_start + timedelta(days=7),
        ),
        EventRecord(  # a one-off from 2024: out of the window, in no file
            uid="summit-2024@gamma",
            source="gamma",
            title="Health summit 2024",
            start=datetime(2024, 5, 2, 9, 0, tzinfo=VIENNA),
            end=datetime(2024, 5, 2, 17, 0, tzinfo=VIENNA),
            timezone="Europe/Vienna",
        ),
        EventRecord(  # ended 29 days and 20 hours ago: leaves the window in four hours
            uid="webinar@gamma",
            source="gamma",
            title="Webinar on clinical trials",
            start=NOW - timedelta(days=29, hours=22),
            end=NOW - timedelta(days=29, hours=20),
            timezone="UTC",
        ),
    ]
    retired: list[Record] = [  # a source no longer configured: in no file, but it counts for the validity
        EventRecord(
            uid="farewell@retired",
            source="retired",
            title="Farewell",
            start=NOW - timedelta(days=30, hours=1),
            end=NOW - timedelta(days=30) + timedelta(minutes=10),
            timezone="UTC",
        )
    ]
    return {"alpha": alpha, "beta": beta, "gamma": gamma, "retired": retired}


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    opened = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    for source, records in _events().items():
        opened.upsert(source, records, now=NOW - timedelta(days=1))
    return opened


def _files(feeds_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in sorted(feeds_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("processes", [1, 2])
def test_packed_events_give_the_same_files_and_validity_as_decoded_ones(
    store: SqlStore, tmp_path: Path, processes: int
) -> None:
    since = NOW - timedelta(days=30)
    assert store.count_events(since=since) == 3_304  # the 2024 one-off is not read at all
    assert all(e.match is None for e in store.events(since=since))  # no publish has given them keys yet

    packed = publish_from_store(_config(tmp_path, "packed", 0, processes), store, now=NOW, base_url=BASE)
    assert all(e.match is not None for e in store.events(since=since))  # saved while they streamed by
    decoded = publish_from_store(_config(tmp_path, "decoded", 64, processes), store, now=NOW, base_url=BASE)

    assert (packed.events_packed, decoded.events_packed) == (True, False)
    packed_files, decoded_files = _files(tmp_path / "packed-feeds"), _files(tmp_path / "decoded-feeds")
    assert packed_files == decoded_files
    assert len(packed_files) == 1 + 4 + 3 * 4 + 2 * 4 + 1  # merged, sources, tags, index and OPML
    assert packed.written == decoded.written
    # The retired source's event leaves the window first (in ten minutes): before gamma's webinar
    # leaves (at 12:00) and before the next workshop enters the index's 30 days (at 09:30).
    assert packed.valid_until == decoded.valid_until == datetime(2026, 11, 26, 9, 10, tzinfo=UTC)
    merged = packed_files["events.ics"].decode()
    # alpha's, beta's own, gamma's series, its override and the webinar
    assert merged.count("BEGIN:VEVENT") == 2_300 + 900 + 3
    gamma = packed_files["sources/gamma.ics"].decode()
    assert gamma.count("BEGIN:VEVENT") == 3
    assert "RRULE:FREQ=WEEKLY;BYDAY=TU" in gamma
    assert "SUMMARY:Jour fixe (moved to Wednesday)" in gamma
    # The override: an event of its own, and the occurrence it replaces skipped by the series.
    assert "EXDATE;TZID=Europe/Vienna:20240116T100000" in gamma
    assert "-occurrence-20240116T100000\r\n" in gamma
    assert "Health summit 2024" not in gamma
    assert "Farewell" not in merged
    assert packed_files["sources/beta.ics"].decode().count("BEGIN:VEVENT") == 1_000


@pytest.mark.parametrize("handed_over", [True, False])
def test_packed_events_handed_over_are_let_go_and_kept_ones_are_left_alone(
    store: SqlStore, tmp_path: Path, handed_over: bool
) -> None:
    """Handed over, the compressed events are emptied once unpacked (a copy held 20 MB of the large
    workload's calendars through them); not handed over, the caller's are untouched."""
    config = _config(tmp_path, "direct", 0, 1)
    packed = pack_events(
        store.stream_events(since=NOW - timedelta(days=30)),
        names={s.name for s in config.sources},
        series=store.recurring_series(),
        now=NOW,
        past_days=30,
    )
    chunks = list(packed.chunks)
    assert len(chunks) == 2  # 3,203 current events of configured sources, 2,000 to a pickle
    data = PublishInput(
        config=config,
        news=[],
        events=[],
        states=[],
        now=NOW,
        base_url=BASE,
        handed_over=handed_over,
        packed_events=packed,
    )
    publish(tmp_path / "direct-feeds", data)
    assert packed.chunks == ([] if handed_over else chunks)
    calendar = (tmp_path / "direct-feeds" / "events.ics").read_text(encoding="utf-8")
    assert calendar.count("BEGIN:VEVENT") == 3_203
