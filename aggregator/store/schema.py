"""The tables, as SQLAlchemy Core objects the queries are built from.

The migrations (``migrations/versions``) create the same tables with their own frozen copy
of the DDL; ``tests/store`` checks both agree. Times are stored as UTC: ``UTCDateTime``
makes SQLite (which has no time zone type) and PostgreSQL (``timestamptz``) return the same
aware ``datetime``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["UTCDateTime", "meta", "metadata", "record_tags", "records", "source_state", "stored_utc"]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetime in, aware UTC datetime out, on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store")
        utc = value.astimezone(UTC)
        # SQLite stores text without an offset: keep it naive there, UTC by convention.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else stored_utc(value)


def stored_utc(value: str | datetime) -> datetime:
    """A stored time as an aware UTC datetime: a driver's datetime, or SQLite's naive UTC text read
    past the column type (what ``SqlStore``'s reads take, to convert each distinct value once)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("source", String(200), primary_key=True),
    # A news item and an event of one source may share an id (same page URL): kind is part of the key.
    Column("kind", String(10), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("sort_at", UTCDateTime, nullable=False),  # news: published else first_seen; events: start
    Column("ends_at", UTCDateTime, nullable=True),  # events: end, else start (all-day: next midnight)
    Column("recurring", Boolean, nullable=False, default=False),
    Column("content_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("sequence", Integer, nullable=False, default=0),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    # De-duplication keys (``aggregator.matching``), valid under rules ``match_rules`` only: the
    # canonical link (NULL: the record's own link; "": none usable) and the title key (0004).
    Column("match_rules", Integer, nullable=True),
    Column("match_link", Text, nullable=True),
    Column("match_title", BigInteger, nullable=True),
    Index("ix_records_kind_sort_at", "kind", "sort_at"),
    Index("ix_records_kind_ends_at", "kind", "ends_at"),
)

# No foreign key to ``records``: tags are written only by ``upsert``, in the same transaction
# as their record, and records are never deleted. A per-row FK check also cost PostgreSQL a
# sequential scan per tag (the check's plan is cached while ``records`` is still empty).
record_tags = Table(
    "record_tags",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("kind", String(10), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("tag", Text, primary_key=True),  # casefolded: the tag filter ignores case
    Index("ix_record_tags_tag", "tag"),
)

source_state = Table(
    "source_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("body_hash", String(128)),
    Column("last_attempt", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("items", Integer, nullable=False, default=0),
    Column("last_yield", Integer),
    Column("yield_baseline", Float),  # slowly decaying highest yield: a sudden drop warns (0002)
    Column("failing_since", UTCDateTime),
    Column(
        "source_url", Text
    ),  # the address the validators and body hash belong to (0003)  # first failure of the current run of failures (0002)
    Column("next_run", UTCDateTime),
    Column("dormant", Boolean, nullable=False, default=False),
    Column("redirected_to", Text),
    Column("discovered_url", Text),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
)

meta = Table(
    "meta",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
