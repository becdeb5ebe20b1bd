"""codec: records <-> JSON text, exactly (zones, folds, dates, enums, tuples, enclosures)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import StoreError
from aggregator.records import Enclosure, EventRecord, EventStatus, NewsRecord, Record, RecordKind, Strategy
from aggregator.store import codec

PAYLOADS = Path(__file__).parents[1] / "fixtures" / "store" / "payloads_v1.json"
VIENNA = ZoneInfo("Europe/Vienna")
BERLIN = ZoneInfo("Europe/Berlin")


def _fixture() -> dict[str, Any]:
    return json.loads(PAYLOADS.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _assert_identical(left: object, right: object) -> None:
    """Equality plus what ``==`` ignores: datetime vs date, tzinfo object, UTC offset."""
    assert left == right
    assert type(left) is type(right)
    if isinstance(left, datetime):
        assert isinstance(right, datetime)
        assert (left.tzinfo, left.utcoffset()) == (right.tzinfo, right.utcoffset())
    elif isinstance(left, tuple):
        assert isinstance(right, tuple)
        for a, b in zip(left, right, strict=True):
            _assert_identical(a, b)
    elif dataclasses.is_dataclass(left):
        for f in dataclasses.fields(left):
            _assert_identical(getattr(left, f.name), getattr(right, f.name))


# -- the stored fixture ----------------------------------------------------------------------


def test_stored_news_payload_decodes_to_the_exact_record() -> None:
    payload = _fixture()["news"][0]

    record = codec.decode("news", json.dumps(payload))

    _assert_identical(
        record,
        NewsRecord(
            id="https://www.silicon-saxony.de/news/halbleiterstandort-sachsen-2026",
            source="silicon-saxony",
            title="Halbleiterstandort Sachsen: 2026 in Zahlen",
            link="https://www.silicon-saxony.de/news/halbleiterstandort-sachsen-2026",
            summary="<p>Über 3.600 Unternehmen und 81.000 Beschäftigte: der Branchenreport ist online.</p>",
            published=datetime(2026, 11, 24, 9, 30, tzinfo=BERLIN),
            updated=datetime(2026, 11, 24, 10, 5, 12, tzinfo=UTC),
            authors=("Silicon Saxony Redaktion",),
            tags=("Mikroelektronik", "Standort"),
            enclosures=(
                Enclosure("https://www.silicon-saxony.de/media/branchenreport-2026.pdf", "application/pdf", 482113),
            ),
            strategy=Strategy.FEED,
        ),
    )
    assert json.loads(codec.encode(record)) == payload


def test_repeated_names_are_held_once_across_records() -> None:
    """Two records decoded apart share their source, tag, author and zone strings (memory on 200,000 records)."""
    fixture = _fixture()
    first, second = (codec.decode("news", json.dumps(fixture["news"][0])) for _ in range(2))
    assert isinstance(first, NewsRecord)
    assert isinstance(second, NewsRecord)

    assert first.source is second.source
    assert first.tags[1] is second.tags[1] == "Standort"
    assert first.authors[0] is second.authors[0] == "Silicon Saxony Redaktion"
    assert first.title == second.title
    assert first.title is not second.title  # the text of one item is not interned
    events = [codec.decode("event", json.dumps(payload)) for payload in fixture["events"] * 2]
    zoned = [e for e in events if isinstance(e, EventRecord) and e.timezone]
    assert [e.timezone for e in zoned] == ["Europe/Vienna", "Europe/Vienna", "Europe/Berlin"] * 2
    assert zoned[0].timezone is zoned[3].timezone


def test_a_guid_equal_to_the_link_is_held_as_one_string() -> None:
    """Most feeds' guid is the item's link: one string instead of two (27 MB of the large workload's news)."""
    payload = _fixture()["news"][0]
    record = codec.decode("news", json.dumps(payload))
    assert isinstance(record, NewsRecord)
    assert record.id is record.link
    assert record.id == "https://www.silicon-saxony.de/news/halbleiterstandort-sachsen-2026"

    other = codec.decode("news", json.dumps({**payload, "id": "urn:uuid:2f1c0b9e-silicon-saxony-0042"}))
    assert isinstance(other, NewsRecord)
    assert (other.id, other.link) == ("urn:uuid:2f1c0b9e-silicon-saxony-0042", record.link)


def test_old_payload_without_optional_fields_gets_their_defaults() -> None:
    record = codec.decode(RecordKind.NEWS, json.dumps(_fixture()["news"][1]))

    assert record == NewsRecord(
        id="eccp-escp-research-paper",
        source="eccp",
        title="Research paper on cluster manager internationalisation skills",
        link=None,
    )


def test_stored_recurring_event_keeps_its_zone_dates_and_exceptions() -> None:
    payload = _fixture()["events"][0]

    record = codec.decode("event", json.dumps(payload))

    assert isinstance(record, EventRecord)
    _assert_identical(record.start, datetime(2026, 1, 15, 16, 0, tzinfo=VIENNA))
    _assert_identical(record.rdates, (date(2026, 7, 2),))
    _assert_identical(record.exdates, (datetime(2026, 4, 16, 16, 0, tzinfo=VIENNA),))
    assert (record.rrule, record.sequence, record.tags) == (
        "FREQ=MONTHLY;BYDAY=3TH;COUNT=10",
        2,
        ("Kunststoff", "Circular Economy"),
    )
    assert json.loads(codec.encode(record)) == payload


def test_stored_override_keeps_recurrence_id_and_key() -> None:
    record = codec.decode("event", json.dumps(_fixture()["events"][1]))

    assert isinstance(record, EventRecord)
    assert record.key == "jour-fixe@kunststoff-cluster.at#2026-02-19T16:00:00+01:00"
    assert (record.status, record.announced_by) == (
        EventStatus.TENTATIVE,
        "https://www.kunststoff-cluster.at/news/jour-fixe-online",
    )


def test_offset_picks_the_second_0230_on_the_night_clocks_go_back() -> None:
    record = codec.decode("event", json.dumps(_fixture()["events"][2]))

    assert isinstance(record, EventRecord)
    assert isinstance(record.start, datetime)
    assert (record.start.fold, record.start.utcoffset()) == (1, timedelta(hours=1))
    assert record.start.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert (record.status, record.strategy) == (EventStatus.CANCELLED, Strategy.JSON_LD)


def test_all_day_event_stays_dates() -> None:
    record = codec.decode("event", json.dumps(_fixture()["events"][3]))

    assert isinstance(record, EventRecord)
    _assert_identical((record.start, record.end), (date(2026, 12, 9), date(2026, 12, 11)))
    assert record.all_day is True


# -- temporal values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (date(2026, 12, 9), "2026-12-09"),
        (datetime(2026, 3, 18, 9, 0, tzinfo=VIENNA), "2026-03-18T09:00:00+01:00[Europe/Vienna]"),
        (datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), "2026-10-25T02:30:00+01:00[Europe/Berlin]"),
        (datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=BERLIN), "2026-10-25T02:30:00+02:00[Europe/Berlin]"),
        (datetime(2026, 11, 26, 8, 0, 0, 250000, tzinfo=UTC), "2026-11-26T08:00:00.250000+00:00"),
        (datetime(2026, 11, 26, 8, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30))), "2026-11-26T08:00:00-03:30"),
        (datetime(1890, 1, 1, 12, 0, tzinfo=VIENNA), "1890-01-01T12:00:00+01:05:21[Europe/Vienna]"),
    ],
)
def test_temporal_values_are_written_with_their_shape_and_zone(value: datetime | date, text: str) -> None:
    assert codec.encode_temporal(value) == text
    _assert_identical(codec.decode_temporal(text), value)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(StoreError) as caught:
        codec.encode_temporal(datetime(2026, 11, 26, 9, 0))
    assert str(caught.value) == "naive datetime 2026-11-26T09:00:00 cannot be stored: records carry aware datetimes"


def test_unreadable_payload_raises_store_error() -> None:
    with pytest.raises(StoreError) as caught:
        codec.decode("event", '{"uid": "x", "source": "eccp", "title": "T", "start": "26.11.2026"}')
    assert str(caught.value) == "unreadable stored event record: Invalid isoformat string: '26.11.2026'"


# -- content hash ----------------------------------------------------------------------------

FORUM = EventRecord(
    uid="kt-2026@kunststoff-cluster.at",
    source="plastics-cluster",
    title="Kunststoff-Forum 2026",
    start=datetime(2026, 12, 3, 9, 0, tzinfo=VIENNA),
    timezone="Europe/Vienna",
)


def test_content_hash_ignores_restamped_timestamps_and_dedupe_marks() -> None:
    restamped = dataclasses.replace(
        FORUM, last_modified=datetime(2026, 11, 26, 8, 0, tzinfo=UTC), also_from=("silicon-saxony",)
    )
    assert codec.content_hash(restamped) == codec.content_hash(FORUM)


def test_content_hash_changes_with_what_readers_see() -> None:
    hashes = {
        codec.content_hash(FORUM),
        codec.content_hash(dataclasses.replace(FORUM, title="Kunststoff-Forum 2026 (verschoben)")),
        codec.content_hash(dataclasses.replace(FORUM, start=datetime(2026, 12, 3, 9, 0, tzinfo=BERLIN))),
        codec.content_hash(dataclasses.replace(FORUM, status=EventStatus.CANCELLED)),
    }
    assert len(hashes) == 4
    assert codec.encode_with_hash(FORUM) == (codec.encode(FORUM), codec.content_hash(FORUM))


# -- property: any record survives the round trip -------------------------------------------

fixed_offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
)
aware = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.one_of(st.timezones(), fixed_offsets)
)
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 1, 1))
when = st.one_of(aware, dates)
texts = st.text(max_size=30)
small = st.tuples() | st.lists(texts, max_size=3).map(tuple)

news_records = st.builds(
    NewsRecord,
    id=texts,
    source=texts,
    title=texts,
    link=st.none() | texts,
    summary=texts,
    published=st.none() | aware,
    updated=st.none() | aware,
    authors=small,
    tags=small,
    enclosures=st.lists(
        st.builds(Enclosure, url=texts, media_type=st.none() | texts, length=st.none() | st.integers(0, 2**40)),
        max_size=2,
    ).map(tuple),
    strategy=st.sampled_from(Strategy),
    also_from=small,
)
event_records = st.builds(
    EventRecord,
    uid=texts,
    source=texts,
    title=texts,
    start=when,
    end=st.none() | when,
    timezone=st.none() | texts,
    location=st.none() | texts,
    link=st.none() | texts,
    description=texts,
    status=st.sampled_from(EventStatus),
    rrule=st.none() | texts,
    rdates=st.lists(when, max_size=3).map(tuple),
    exdates=st.lists(when, max_size=3).map(tuple),
    recurrence_id=st.none() | when,
    last_modified=st.none() | aware,
    sequence=st.integers(0, 10_000),
    tags=small,
    strategy=st.sampled_from(Strategy),
    announced_by=st.none() | texts,
    also_from=small,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(news_records, event_records))
def test_any_record_round_trips_exactly(record: Record) -> None:
    text = codec.encode(record)

    _assert_identical(codec.decode(record.kind, text), record)
    assert text.isascii()


@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.one_of(st.timezones(), fixed_offsets),
        allow_imaginary=True,
    ),
    st.sampled_from((0, 1)),
)
def test_the_fast_datetime_reader_equals_the_general_one(value: datetime, fold: int) -> None:
    """decode_temporal reads common texts with fromisoformat; wall time, zone and fold must not differ."""
    text = codec.encode_temporal(value.replace(fold=fold))
    fast, general = codec.decode_temporal(text), codec._decode_datetime(text)

    assert (repr(fast), fast.utcoffset(), fast.fold) == (repr(general), general.utcoffset(), general.fold)


@pytest.mark.parametrize(
    "text",
    [
        "2027-03-28T02:30:00+01:00[Europe/Vienna]",  # a wall time the clocks skip
        "2026-10-25T02:30:00+01:00[Europe/Vienna]",  # the second 02:30 of the night clocks go back
        "2026-10-25T02:30:00+02:00[Europe/Vienna]",  # the first
        "2026-11-26T09:00:00.250000+00:00",
        "2026-11-26T09:00:00+05:30:15",  # an offset with seconds: the general reader only
    ],
)
def test_datetime_readers_agree_on_dst_edges(text: str) -> None:
    fast, general = codec.decode_temporal(text), codec._decode_datetime(text)
    assert (repr(fast), fast.utcoffset()) == (repr(general), general.utcoffset())
