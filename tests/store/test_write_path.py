"""The store's write path as a cycle uses it: many states in one call, and counters of what was written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aggregator.records import NewsRecord, SourceState, Strategy, Validators
from aggregator.store import SqlStore

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _news(title: str) -> NewsRecord:
    return NewsRecord(
        id="https://www.silicon-saxony.de/news/semiconductor-day",
        source="silicon-saxony",
        title=title,
        link="https://www.silicon-saxony.de/news/semiconductor-day",
        strategy=Strategy.FEED,
        published=datetime(2026, 11, 24, 8, 30, tzinfo=UTC),
    )


def test_save_states_writes_many_sources_and_keeps_the_last_of_a_name(store: SqlStore) -> None:
    polled = [
        SourceState(
            name=name,
            validators=Validators(etag=f'"{name}-1"'),
            last_attempt=NOW,
            last_success=NOW,
            next_run=NOW + timedelta(minutes=30),
        )
        for name in ("silicon-saxony", "eccp", "euratex")
    ]
    failed = SourceState(
        name="eccp", last_attempt=NOW, last_error="HTTP 503 Service Unavailable", consecutive_failures=1
    )

    store.save_states([*polled, failed])

    assert store.states() == [failed, polled[2], polled[0]]
    assert store.states_written == 3


def test_save_states_of_nothing_writes_nothing(store: SqlStore) -> None:
    store.save_states([])
    assert store.states() == []
    assert store.states_written == 0


def test_save_states_keeps_the_leases(store: SqlStore) -> None:
    store.ensure_states(["eccp", "euratex"])
    assert store.claim_due("worker-a", NOW, timedelta(minutes=10), 5) == ["eccp", "euratex"]

    store.save_states([SourceState(name="eccp", next_run=NOW), SourceState(name="euratex", next_run=NOW)])

    assert store.claim_due("worker-b", NOW, timedelta(minutes=10), 5) == []


def test_records_written_counts_inserted_and_updated_rows_not_unchanged_ones(store: SqlStore) -> None:
    store.upsert("silicon-saxony", [_news("Semiconductor day")], now=NOW)
    store.upsert("silicon-saxony", [_news("Semiconductor day")], now=NOW + timedelta(hours=1))
    after_unchanged = store.records_written
    store.upsert("silicon-saxony", [_news("Semiconductor day 2026: programme")], now=NOW + timedelta(hours=2))

    assert after_unchanged == 1
    assert store.records_written == 2
    assert store.generation() == 2
