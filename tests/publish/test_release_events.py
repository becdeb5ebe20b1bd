"""A publish handed its events lets them go once its calendars are written, and writes the same bytes.

A large workload's 100,000 events held 124 MB through the news formats in every process of
the publish; the daemon's publish now hands them over (``PublishInput.release_events``). Each
process writes its calendars first, then empties every list of events it holds; index.html and
the files' validity keep the few events they need (``listed_events``).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.publish import PublishInput, publish
from aggregator.publish.index import listed_events, stable_until, upcoming
from aggregator.store.base import StoredEvent

from .conftest import NOW


def _files(feeds_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in sorted(feeds_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("processes", [1, 2])
def test_a_publish_handed_the_events_empties_their_list_and_writes_the_same_files(
    cluster_input: PublishInput, tmp_path: Path, processes: int
) -> None:
    defaults = dataclasses.replace(cluster_input.config.defaults, publish_processes=processes)
    config = dataclasses.replace(cluster_input.config, defaults=defaults, data_dir=tmp_path / "kept-data")
    kept = dataclasses.replace(cluster_input, config=config, events=list(cluster_input.events))
    handed = dataclasses.replace(
        kept,
        config=dataclasses.replace(config, data_dir=tmp_path / "handed-data"),
        events=list(cluster_input.events),
        release_events=True,
    )
    count = len(kept.events)

    kept_report = publish(tmp_path / "kept", kept)
    handed_report = publish(tmp_path / "handed", handed)

    assert count == 10
    assert (len(kept.events), len(handed.events)) == (count, 0)
    assert _files(tmp_path / "handed") == _files(tmp_path / "kept")
    assert len(_files(tmp_path / "kept")) == 30
    assert handed_report.valid_until == kept_report.valid_until
    index = (tmp_path / "handed" / "index.html").read_text(encoding="utf-8")
    assert "No events in the next 30 days" not in index


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
