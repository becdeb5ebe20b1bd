"""A publish handed its records lets each kind go as soon as it no longer needs it, and writes the same bytes.

A large workload's 100,000 events held 124 MB through the news formats, and its 160,000 news 176 MB
through the calendars, in every process of the publish; the daemon's publish now hands them over
(``PublishInput.handed_over``). index.html, OPML and the files' validity keep the little they need
(``listed_events``, the merged feed's top, counts).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.publish import PublishInput, publish
from aggregator.publish.index import listed_events, stable_until, upcoming
from aggregator.store.base import StoredEvent

from .conftest import ALPHA, BASE, BETA, GAMMA, NOW, event, make_config


def _files(feeds_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in sorted(feeds_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("memory_mb", [64, 0])
def test_a_publish_handed_its_records_lets_them_go_and_writes_the_same_files(
    cluster_input: PublishInput, tmp_path: Path, memory_mb: int
) -> None:
    """One process: news let go before the calendars; with no memory budget the events also wait
    compressed while the news formats render (parked), and come back for the calendars."""
    defaults = dataclasses.replace(cluster_input.config.defaults, publish_processes=1, publish_memory_mb=memory_mb)
    config = dataclasses.replace(cluster_input.config, defaults=defaults, data_dir=tmp_path / "kept-data")
    kept = dataclasses.replace(
        cluster_input, config=config, news=list(cluster_input.news), events=list(cluster_input.events)
    )
    handed = dataclasses.replace(
        kept,
        config=dataclasses.replace(config, data_dir=tmp_path / "handed-data"),
        news=list(cluster_input.news),
        events=list(cluster_input.events),
        handed_over=True,
    )

    kept_report = publish(tmp_path / "kept", kept)
    handed_report = publish(tmp_path / "handed", handed)

    assert (len(kept.news), len(kept.events)) == (4, 10)
    # The news go before the calendars; the events went when they were parked.
    assert (len(handed.news), len(handed.events)) == (0, 0 if memory_mb == 0 else 10)
    assert _files(tmp_path / "handed") == _files(tmp_path / "kept")
    assert len(_files(tmp_path / "kept")) == 30
    assert handed_report.valid_until == kept_report.valid_until
    assert handed_report.written == kept_report.written
    index = (tmp_path / "handed" / "index.html").read_text(encoding="utf-8")
    assert "No events in the next 30 days" not in index
    assert '<h2 id="news">Latest news</h2>\n<ul' in index


def test_events_parked_in_several_pickles_come_back_as_the_same_calendars(tmp_path: Path) -> None:
    """4,000 events over three sources, 200 of them copies across two (merged with ``also_from``):
    parked in pickles of 2,000 and the merged list by reference, the calendars come out the same."""
    vienna = ZoneInfo("Europe/Vienna")
    events: list[StoredEvent] = []
    for source, count in (("alpha", 2_500), ("beta", 1_300), ("gamma", 0)):
        for n in range(count):
            start = datetime(2026, 12, 1, 9, 0, tzinfo=vienna) + timedelta(hours=n)
            events.append(
                event(source, f"{source}-{n}@clusterfeeds", f"{source} workshop {n}", start, start + timedelta(hours=2))
            )
    for n in range(200):  # beta announces 200 of alpha's events too
        start = datetime(2026, 12, 1, 9, 0, tzinfo=vienna) + timedelta(hours=n)
        events.append(
            event(
                "beta",
                f"copy-{n}@clusterfeeds",
                f"alpha workshop {n}",
                start,
                start + timedelta(hours=2),
                link=f"https://alpha.clusterfeeds.example/events/{n}",
            )
        )
        first = events[n]
        events[n] = dataclasses.replace(
            first, record=dataclasses.replace(first.record, link=f"https://alpha.clusterfeeds.example/events/{n}")
        )
    config = make_config(tmp_path, ALPHA, BETA, GAMMA)
    config = dataclasses.replace(
        config, defaults=dataclasses.replace(config.defaults, publish_processes=1, publish_memory_mb=0)
    )
    kept = PublishInput(config=config, news=[], events=list(events), states=[], now=NOW, base_url=BASE)
    handed = dataclasses.replace(
        kept,
        config=dataclasses.replace(config, data_dir=tmp_path / "handed-data"),
        events=list(events),
        handed_over=True,
    )

    publish(tmp_path / "kept", kept)
    publish(tmp_path / "handed", handed)

    assert handed.events == []
    assert _files(tmp_path / "handed") == _files(tmp_path / "kept")
    merged = (tmp_path / "kept" / "events.ics").read_bytes()
    assert merged.count(b"BEGIN:VEVENT") == 3_800  # the 200 copies merged
    assert (tmp_path / "kept" / "sources" / "beta.ics").read_bytes().count(b"BEGIN:VEVENT") == 1_500


def test_the_listed_events_give_the_same_next_days_and_the_same_validity_as_all_of_them(
    cluster_input: PublishInput,
) -> None:
    events: list[StoredEvent] = list(cluster_input.events)
    for days_ahead in (0, 3, 12, 29, 45):
        now = NOW + timedelta(days=days_ahead)
        listed = listed_events(events, now)
        assert len(listed) < len(events)
        assert upcoming(listed, now) == upcoming(events, now)
        assert stable_until(listed, now) == stable_until(events, now)
