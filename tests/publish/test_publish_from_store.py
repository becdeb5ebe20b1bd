"""Publishing from a real SQLite store: an unchanged store costs no record read, a change re-renders only its scopes.

Three cluster networks (alpha: energy + hydrogen, beta: energy, gamma: mobility) are
stored with ``upsert`` and published with ``publish_from_store``, as the daemon does.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

from aggregator.config import Config
from aggregator.runtime import publish_from_store
from aggregator.store.sqlalchemy_store import SqlStore

from .conftest import ALPHA, BASE, NOW, cluster_news, event


def _mtimes(feeds_dir: Path) -> dict[str, int]:
    return {p.relative_to(feeds_dir).as_posix(): p.stat().st_mtime_ns for p in feeds_dir.rglob("*") if p.is_file()}


def test_unchanged_store_publishes_nothing_and_reads_no_record(config: Config, store: SqlStore) -> None:
    first = publish_from_store(config, store, now=NOW, base_url=BASE)
    reads = store.records_read
    before = _mtimes(config.feeds_dir)

    second = publish_from_store(config, store, now=NOW + timedelta(minutes=30), base_url=BASE)

    assert (first.skipped, len(first.written), first.unchanged) == (False, 30, 0)
    assert reads == 13  # 6 news + 7 events inside the past window, read once
    assert (second.skipped, second.written, second.unchanged, second.rendered) == (True, (), 30, ())
    assert store.records_read == reads
    assert _mtimes(config.feeds_dir) == before
    # Where the time went is reported for a publish that did the work, and is nothing for a skipped one.
    assert min(first.read_seconds, first.merge_seconds, first.render_seconds) > 0
    assert (second.read_seconds, second.merge_seconds, second.render_seconds) == (0.0, 0.0, 0.0)


def test_poll_times_moving_on_a_304_do_not_count_as_a_change(config: Config, store: SqlStore) -> None:
    publish_from_store(config, store, now=NOW, base_url=BASE)
    reads = store.records_read
    alpha = store.state("alpha")
    later = NOW + timedelta(minutes=30)
    store.save_state(
        dataclasses.replace(alpha, last_attempt=later, last_success=later, next_run=later + ALPHA.interval)
    )

    report = publish_from_store(config, store, now=later, base_url=BASE)

    assert (report.skipped, report.written, store.records_read) == (True, (), reads)


def test_a_source_turning_failing_rewrites_only_the_index(config: Config, store: SqlStore) -> None:
    publish_from_store(config, store, now=NOW, base_url=BASE)
    alpha = store.state("alpha")
    later = NOW + timedelta(minutes=30)
    store.save_state(
        dataclasses.replace(alpha, last_attempt=later, consecutive_failures=1, last_error="HTTP 502 Bad Gateway")
    )

    report = publish_from_store(config, store, now=later, base_url=BASE)

    assert (report.skipped, report.written, report.rendered) == (False, ("index.html",), ())
    page = (config.feeds_dir / "index.html").read_text(encoding="utf-8")
    assert (
        '<td class="failing">failing since <time datetime="2026-11-26T08:30:00Z">26 Nov 2026 08:30 UTC</time> '
        "(HTTP 502 Bad Gateway)</td>"
    ) in page


def test_one_changed_source_rewrites_only_the_merged_its_own_and_its_tags_files(
    config: Config, store: SqlStore
) -> None:
    publish_from_store(config, store, now=NOW, base_url=BASE)
    newest = next(n.record for n in cluster_news() if n.record.id == "hydrogen-test-bed")
    changed = dataclasses.replace(newest, title="Grazer Cluster eröffnet zweites Wasserstoff-Testfeld")
    assert store.upsert("alpha", [changed], now=NOW).updated == 1

    report = publish_from_store(config, store, now=NOW + timedelta(minutes=30), base_url=BASE)

    assert report.skipped is False
    assert report.rendered == ("news", "sources/alpha", "tags/energy", "tags/hydrogen")
    assert sorted(report.written) == sorted(
        [f"{scope}.{ext}" for scope in ("news", "sources/alpha", "tags/energy", "tags/hydrogen") for ext in ("xml", "atom", "json")]
        + ["index.html"]
    )  # fmt: skip
    assert "zweites Wasserstoff-Testfeld" in (config.feeds_dir / "sources/alpha.xml").read_text(encoding="utf-8")


def test_a_deleted_file_is_published_again_although_the_store_did_not_change(config: Config, store: SqlStore) -> None:
    publish_from_store(config, store, now=NOW, base_url=BASE)
    (config.feeds_dir / "tags" / "mobility.ics").unlink()

    report = publish_from_store(config, store, now=NOW, base_url=BASE)

    assert (report.skipped, report.written, report.rendered) == (False, ("tags/mobility.ics",), ("tags/mobility",))


def test_an_event_that_starts_takes_the_index_out_of_date_without_any_store_change(
    config: Config, store: SqlStore
) -> None:
    soon = event("beta", "pitch-night@beta.clusterfeeds.example", "Pitch night", NOW + timedelta(hours=3))
    store.upsert("beta", [soon.record], now=NOW)
    first = publish_from_store(config, store, now=NOW, base_url=BASE)
    assert first.valid_until == NOW + timedelta(hours=3)
    assert "Pitch night" in (config.feeds_dir / "index.html").read_text(encoding="utf-8")

    before_start = publish_from_store(config, store, now=NOW + timedelta(hours=2), base_url=BASE)
    after_start = publish_from_store(config, store, now=NOW + timedelta(hours=3, minutes=1), base_url=BASE)

    assert before_start.skipped is True
    assert (after_start.skipped, after_start.written) == (False, ("index.html",))
    assert "Pitch night" not in (config.feeds_dir / "index.html").read_text(encoding="utf-8")


def test_changed_configuration_is_published_although_the_store_did_not_change(config: Config, store: SqlStore) -> None:
    publish_from_store(config, store, now=NOW, base_url=BASE)
    renamed = dataclasses.replace(config, defaults=dataclasses.replace(config.defaults, title="Cluster news"))

    report = publish_from_store(renamed, store, now=NOW, base_url=BASE)

    assert report.skipped is False
    assert len(report.written) == 30
