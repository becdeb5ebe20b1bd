"""The one Store implementation, on SQLite and PostgreSQL alike.

SQLAlchemy Core rather than an ORM or two hand-written backends: the same query objects
compile to both dialects (portable SQL), the engine pools connections for the daemon's
threads, and Alembic migrates the schema from those same types. The few dialect
differences live in small branches here: SQLite pragmas and ``BEGIN IMMEDIATE``, and on
PostgreSQL ``FOR UPDATE SKIP LOCKED`` claims and an advisory lock around publishing.

Records are stored as codec JSON (``payload``) plus the few columns queries filter and
sort on, so adding a record field needs no migration.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    String,
    and_,
    bindparam,
    create_engine,
    event,
    exists,
    func,
    inspect,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from aggregator.errors import StoreError
from aggregator.matching import RULES, MatchKeys
from aggregator.processes import collector_paused
from aggregator.records import EventRecord, NewsRecord, Record, RecordKind, SourceState, Validators
from aggregator.store import codec
from aggregator.store.base import Store, StoredEvent, StoredNews, UpsertSummary
from aggregator.store.schema import meta, record_tags, records, source_state, stored_utc

__all__ = ["SqlStore", "open_store"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constants naming our PostgreSQL advisory locks ("cfpublsh", "cfmigrat").
PUBLISH_LOCK = 0x6366_7075_626C_7368
MIGRATE_LOCK = 0x6366_6D69_6772_6174
UPSERT_LOCK = 0x6366_7570  # "cfup", with the source name's hash as the second key
SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE = "clusterfeeds_write"  # execution option: this transaction will write
_REVISION = re.compile(r"^(down_)?revision(?:\s*:[^=]*)?\s*=\s*(?:\"([^\"]+)\"|None)", re.M)


_WRITE_BATCH = 1000  # records written per executemany within one upsert's transaction
_READ_BATCH = 1000  # rows fetched at a time (a server-side cursor on PostgreSQL)
_KNOWN_BATCH = 400  # (source, key) pairs per query when reading changed rows: 800 parameters
_KNOWN_SHARE = 4  # more than a quarter of the rows changed: one ordered scan beats the batched lookups
_Row = TypeVar("_Row", StoredNews, StoredEvent)


_NO_MATCH_KEYS: dict[str, Any] = {"match_rules": None, "match_link": None, "match_title": None}


def _match_values(link: str | None, keys: MatchKeys) -> dict[str, Any]:
    """The row's de-duplication key columns (see ``schema.records``) for a record with ``link``."""
    canonical = keys.canonical
    # NULL: the same as the record's link (the usual case, nothing stored twice); "": no usable link.
    stored = None if canonical == link else (canonical or "")
    return {"match_rules": RULES, "match_link": stored, "match_title": keys.title}


def _match(rules: int | None, link: str | None, title: int | None, record: Record) -> MatchKeys | None:
    """The keys stored in a row (its ``match_*`` columns) for ``record``; None when stored under other rules (or none)."""
    if rules != RULES or title is None:
        return None
    return MatchKeys(record.link if link is None else (link or None), title)


def _newest_of_each_source(query: Any, per_source: int | None, sources: Collection[str] | None = None) -> Any:
    """``query`` (news rows) narrowed to each source's newest ``per_source`` (all when None).

    ``sources``: the query reads only these sources, so only their rows are ranked.
    """
    if per_source is None:
        return query
    newest_first = (records.c.sort_at.desc(), records.c.key)
    ranked_rows = select(
        records.c.source.label("ranked_source"),
        records.c.key.label("ranked_key"),
        func.row_number().over(partition_by=records.c.source, order_by=newest_first).label("rank"),
    ).where(records.c.kind == RecordKind.NEWS.value)
    if sources is not None:
        ranked_rows = ranked_rows.where(records.c.source.in_(sorted(sources)))
    ranked = ranked_rows.subquery("ranked")
    same_row = and_(ranked.c.ranked_source == records.c.source, ranked.c.ranked_key == records.c.key)
    return query.join(ranked, same_row).where(ranked.c.rank <= per_source)


_Times = dict[Any, datetime]


def _shared(times: _Times, stored: str | datetime) -> datetime:
    """One object per distinct stored time within a read, converted once.

    A source's records are stored together, so hundreds share a first sight and change time:
    the large workload's 213,000 rows held 426,000 datetime objects (20 MB) for about 20,000 values.
    ``stored`` is the column as the driver gives it (``_times_as_read``): SQLite's text is parsed
    only the first time it is met (the medium workload's 52,000 rows: 104,000 parses through the
    column type before, 0.2 s of a 1.6 s read).
    """
    moment = times.get(stored)
    if moment is None:
        moment = times[stored] = stored_utc(stored)
    return moment


def _stored_news(row: Any, times: _Times) -> StoredNews:
    """A row of ``_record_query``'s full columns, unpacked in their order (by name: 8 lookups a row)."""
    payload, _sequence, first_seen, changed_at, content_hash, rules, link, title = row
    record = codec.decode_news(payload)
    return StoredNews(
        record=record,
        first_seen=_shared(times, first_seen),
        changed_at=_shared(times, changed_at),
        content_hash=content_hash,
        match=_match(rules, link, title, record),
    )


def _stored_event(row: Any, times: _Times) -> StoredEvent:
    """As ``_stored_news``."""
    payload, sequence, first_seen, changed_at, content_hash, rules, link, title = row
    record = codec.decode_event(payload)
    return StoredEvent(
        record=record,
        sequence=sequence,
        first_seen=_shared(times, first_seen),
        changed_at=_shared(times, changed_at),
        content_hash=content_hash,
        match=_match(rules, link, title, record),
    )


def _current_events(since: datetime) -> Any:
    """Events ending (or starting, if open-ended) at or after ``since``, every recurring one, and every
    override of a stored series: the series' rule would otherwise show an old moved instance unmoved.

    An override's key is its series' UID, ``#`` and its RECURRENCE-ID; only such keys are looked up.
    """
    series = records.alias("series")
    override_of_a_series = and_(
        records.c.key.like("%#%"),
        exists().where(
            series.c.source == records.c.source,
            series.c.kind == RecordKind.EVENT.value,
            series.c.recurring.is_(True),
            func.substr(records.c.key, 1, func.length(series.c.key) + 1) == series.c.key + "#",
        ),
    )
    return or_(records.c.ends_at >= since, records.c.recurring.is_(True), override_of_a_series)


_EVENT_ORDER = (records.c.sort_at, records.c.source, records.c.key)


def _head_revision() -> str | None:
    """The newest migration's id, read from the version files without importing Alembic.

    Importing Alembic costs about half a second per process; every ``aggregator fetch``
    opens the store, and almost always the schema is already at head.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        for match in _REVISION.finditer(path.read_text(encoding="utf-8")):
            if match.group(2) is None:
                continue
            (parents if match.group(1) else revisions).add(match.group(2))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _engine_url(url_or_path: str) -> str:
    """``sqlite:///x``, ``postgresql://...`` or a plain file path -> a SQLAlchemy URL."""
    if "://" not in url_or_path:
        return f"sqlite:///{Path(url_or_path).expanduser()}"
    url = make_url(url_or_path)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    elif url.get_backend_name() not in ("postgresql", "sqlite"):
        raise StoreError(f"unsupported database URL {url_or_path!r}: use sqlite:///PATH or postgresql://...")
    return url.render_as_string(hide_password=False)


def _shown(url_or_path: str) -> str:
    """The URL as the user wrote it, password masked (for error messages)."""
    if "://" not in url_or_path:
        return url_or_path
    return make_url(url_or_path).render_as_string(hide_password=True)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise StoreError("an SQLite store needs a file: sqlite:///path/to/clusterfeeds.sqlite3")
    try:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory of {database}: {exc.strerror}") from exc
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy (not the sqlite3 module) decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the lock up front: a deferred transaction that reads first and
        # writes later fails with "database is locked" instead of waiting for the busy timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


def open_store(url_or_path: str) -> SqlStore:
    """Open (creating and migrating as needed) the store at a URL or SQLite file path.

    Raises StoreError when the database cannot be reached or migrated.
    """
    url = _engine_url(url_or_path)
    try:
        engine = _sqlite_engine(url) if url.startswith("sqlite") else create_engine(url, pool_pre_ping=True)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database {_shown(url_or_path)}: {exc}") from exc
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot connect to {_shown(url_or_path)}: {getattr(exc, 'orig', None) or exc}") from exc
    store = SqlStore(engine)
    try:
        store.migrate()
    except BaseException:
        engine.dispose()
        raise
    return store


def _as_utc_instant(value: datetime | date) -> datetime:
    """A sortable UTC instant; an all-day date counts from its UTC midnight."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def _event_ends_at(record: EventRecord) -> datetime:
    if record.end is not None:
        return _as_utc_instant(record.end)
    if not isinstance(record.start, datetime):
        # RFC 5545 §3.6.1: an all-day DTSTART without DTEND lasts that one day.
        return _as_utc_instant(record.start + timedelta(days=1))
    return _as_utc_instant(record.start)


def _row_values(record: Record, first_seen: datetime) -> dict[str, Any]:
    """The filter/sort columns of one record (what ``payload`` alone cannot index)."""
    if isinstance(record, NewsRecord):
        sort_at = record.published.astimezone(UTC) if record.published is not None else first_seen
        return {"sort_at": sort_at, "ends_at": None, "recurring": False}
    return {
        "sort_at": _as_utc_instant(record.start),
        "ends_at": _event_ends_at(record),
        "recurring": record.rrule is not None or bool(record.rdates),
    }


def _tags(record: Record) -> set[str]:
    return {t.casefold() for t in record.tags if t.strip()}


def _write_rows(
    conn: Connection, inserts: list[dict[str, Any]], updates: list[dict[str, Any]], tag_rows: list[dict[str, Any]]
) -> None:
    """New rows, changed rows (their tags replaced) and the tags of both, each as one executemany."""
    if inserts:
        conn.execute(records.insert(), inserts)
    if updates:
        where = and_(
            records.c.source == bindparam("b_source"),
            records.c.kind == bindparam("b_kind"),
            records.c.key == bindparam("b_key"),
        )
        conn.execute(records.update().where(where), updates)
        tag_where = and_(
            record_tags.c.source == bindparam("b_source"),
            record_tags.c.kind == bindparam("b_kind"),
            record_tags.c.key == bindparam("b_key"),
        )
        conn.execute(
            record_tags.delete().where(tag_where),
            [{"b_source": u["b_source"], "b_kind": u["b_kind"], "b_key": u["b_key"]} for u in updates],
        )
    if tag_rows:
        conn.execute(record_tags.insert(), tag_rows)


_STATE_COLUMNS = (
    "etag",
    "last_modified",
    "body_hash",
    "last_attempt",
    "last_success",
    "last_error",
    "consecutive_failures",
    "items",
    "last_yield",
    "yield_baseline",
    "failing_since",
    "source_url",
    "next_run",
    "dormant",
    "redirected_to",
    "discovered_url",
)


def _state_values(state: SourceState) -> dict[str, Any]:
    """The stored columns of one source state (all but the name and the lease)."""
    return {
        "etag": state.validators.etag,
        "last_modified": state.validators.last_modified,
        "body_hash": state.body_hash,
        "last_attempt": state.last_attempt,
        "last_success": state.last_success,
        "last_error": state.last_error,
        "consecutive_failures": state.consecutive_failures,
        "items": state.items,
        "last_yield": state.last_yield,
        "yield_baseline": state.yield_baseline,
        "failing_since": state.failing_since,
        "source_url": state.source_url,
        "next_run": state.next_run,
        "dormant": state.dormant,
        "redirected_to": state.redirected_to,
        "discovered_url": state.discovered_url,
    }


class SqlStore:
    """``Store`` over a SQLAlchemy engine; thread-safe (one pooled connection per call)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Rows written by upsert() (inserted or updated records) and save_states(): lets tests see
        # that an unchanged cycle writes no record.
        self.records_written = 0
        self.states_written = 0
        self._sqlite_writers = threading.RLock()
        # Records decoded by news()/events() so far: lets tests see that an unchanged publish reads none.
        self.records_read = 0

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @contextmanager
    def _transaction(self, action: str, *, write: bool) -> Iterator[Connection]:
        """One transaction; database failures become StoreError naming the action."""
        # SQLite has one writer at a time; threads of this process queue on a lock (woken at once)
        # rather than in SQLite's busy handler, which polls with sleeps of up to 100 ms.
        queue = self._sqlite_writers if write and self._engine.dialect.name == "sqlite" else nullcontext()
        try:
            with queue, self._engine.connect() as conn:
                conn.execution_options(**{_WRITE: write})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"{action} failed: {exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}") from exc

    def _at_head(self) -> bool:
        """True when the database already carries the newest revision (checked without Alembic)."""
        head = _head_revision()
        if head is None:
            return False
        with self._transaction("reading the schema revision", write=False) as conn:
            if not inspect(conn).has_table("alembic_version"):
                return False
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        return list(versions) == [head]

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (a no-op when it is there)."""
        if self._at_head():
            return
        from alembic import command  # only needed when the schema must change
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        with self._transaction("migrating the database schema", write=True) as conn:
            if self.dialect == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(MIGRATE_LOCK)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    # -- records -------------------------------------------------------------------------

    def upsert(self, source: str, records_: Sequence[Record], *, now: datetime) -> UpsertSummary:
        """Insert or update a source's records in one transaction; never deletes.

        Unchanged records (same content hash) are not written at all. A changed event's
        sequence rises by one (and never below the source's own SEQUENCE). A key given twice
        in one call is stored once, from its first occurrence. The generation rises only
        when something was inserted or updated.
        """
        if now.utcoffset() is None:
            raise StoreError("upsert needs an aware 'now'")
        batch: dict[tuple[str, str], Record] = {}
        for record in records_:
            if record.source != source:
                raise StoreError(f"record {record.key!r} belongs to source {record.source!r}, not {source!r}")
            batch.setdefault((record.kind.value, record.key), record)
        if not batch:
            return UpsertSummary()
        now = now.astimezone(UTC)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        tag_rows: list[dict[str, Any]] = []
        unchanged = new = updated = 0
        with self._transaction(f"storing records of source '{source}'", write=True) as conn:
            if self.dialect == "postgresql":
                # Read-then-write under READ COMMITTED: two writers of one source would both insert.
                # SQLite's BEGIN IMMEDIATE already serialises them.
                conn.execute(select(func.pg_advisory_xact_lock(UPSERT_LOCK, func.hashtext(source))))
            existing = {
                (row.kind, row.key): row
                for row in conn.execute(
                    select(
                        records.c.kind, records.c.key, records.c.content_hash, records.c.sequence, records.c.first_seen
                    ).where(records.c.source == source)
                )
            }

            def flush() -> None:
                """Write the rows gathered so far (still one transaction): a 50,000-event calendar's
                rows are never all built at once (they held 150 MB of the daemon for good)."""
                nonlocal new, updated
                _write_rows(conn, inserts, updates, tag_rows)
                new += len(inserts)
                updated += len(updates)
                inserts.clear()
                updates.clear()
                tag_rows.clear()

            for (kind, key), record in batch.items():
                text, digest = codec.encode_with_hash(record)
                own_sequence = record.sequence if isinstance(record, EventRecord) else 0
                old = existing.get((kind, key))
                if old is not None and old.content_hash == digest:
                    unchanged += 1
                    continue
                first_seen = now if old is None else old.first_seen
                values = {
                    "content_hash": digest,
                    "payload": text,
                    "changed_at": now,
                    **_row_values(record, first_seen),
                    **_NO_MATCH_KEYS,  # a new version's keys come from the next publish (``save_match_keys``)
                }
                if old is None:
                    inserts.append(
                        {
                            "source": source,
                            "kind": kind,
                            "key": key,
                            **values,
                            "sequence": own_sequence,
                            "first_seen": now,
                        }
                    )
                else:
                    bump = old.sequence + 1 if kind == RecordKind.EVENT.value else old.sequence
                    row_id = {"b_source": source, "b_kind": kind, "b_key": key}
                    updates.append({**row_id, **values, "sequence": max(bump, own_sequence)})
                tag_rows.extend({"source": source, "kind": kind, "key": key, "tag": t} for t in _tags(record))
                if len(inserts) + len(updates) >= _WRITE_BATCH:
                    flush()
            flush()
            if new or updated:
                conn.execute(meta.update().where(meta.c.name == "generation").values(value=meta.c.value + 1))
        self.records_written += new + updated
        return UpsertSummary(new=new, updated=updated, unchanged=unchanged)

    def save_match_keys(self, keys: Sequence[tuple[StoredNews | StoredEvent, MatchKeys]]) -> int:
        """Store de-duplication keys computed for items read without them; returns the rows updated.

        A row whose content changed since the item was read keeps its own (empty) keys: the
        update matches the content digest too. Keys change no output, so the generation stays.
        In transactions of ``_READ_BATCH`` rows: a writer waiting for the database waits for
        one batch, not for 200,000 rows.
        """
        where = and_(
            records.c.source == bindparam("b_source"),
            records.c.kind == bindparam("b_kind"),
            records.c.key == bindparam("b_key"),
            records.c.content_hash == bindparam("b_hash"),
        )
        updated = 0
        for start in range(0, len(keys), _READ_BATCH):
            rows = [
                {
                    "b_source": item.record.source,
                    "b_kind": item.record.kind.value,
                    "b_key": item.record.key,
                    "b_hash": item.content_hash,
                    **_match_values(item.record.link, match),
                }
                for item, match in keys[start : start + _READ_BATCH]
                if item.content_hash
            ]
            if rows:
                with self._transaction("storing de-duplication keys", write=True) as conn:
                    updated += conn.execute(records.update().where(where), rows).rowcount
        return updated

    def _times_as_read(self) -> tuple[Any, Any]:
        """``first_seen`` and ``changed_at`` as the driver returns them, for ``_shared`` to convert once each."""
        if self._engine.dialect.name == "sqlite":
            return (
                type_coerce(records.c.first_seen, String).label("first_seen"),
                type_coerce(records.c.changed_at, String).label("changed_at"),
            )
        return records.c.first_seen, records.c.changed_at

    def _record_query(
        self,
        kind: RecordKind,
        source: str | None,
        tag: str | None,
        *,
        light: bool = False,
        sources: Collection[str] | None = None,
    ) -> Any:
        """The rows of ``kind`` (of one source or of ``sources``, with one tag); ``light``: identity and digest only."""
        columns = (
            (records.c.source, records.c.key, records.c.content_hash)
            if light
            else (
                records.c.payload,
                records.c.sequence,
                *self._times_as_read(),
                records.c.content_hash,
                records.c.match_rules,
                records.c.match_link,
                records.c.match_title,
            )
        )
        query = select(*columns).where(records.c.kind == kind.value)
        if source is not None:
            query = query.where(records.c.source == source)
        if sources is not None:
            query = query.where(records.c.source.in_(sorted(sources)))
        if tag is not None:
            query = query.where(
                exists().where(
                    record_tags.c.source == records.c.source,
                    record_tags.c.kind == records.c.kind,
                    record_tags.c.key == records.c.key,
                    record_tags.c.tag == tag.casefold(),
                )
            )
        return query

    def news(
        self,
        *,
        source: str | None = None,
        tag: str | None = None,
        limit: int | None = None,
        known: Mapping[tuple[str, str], StoredNews] | None = None,
        per_source: int | None = None,
        sources: Collection[str] | None = None,
    ) -> list[StoredNews]:
        """News newest first (published, else first_seen); ``tag`` matches ignoring case.

        ``per_source``: only each source's newest that many (ties by key, as ``sort_news``).
        ``sources``: only these sources' news, source by source (a publish that reads a group at a time).

        With ``known``, rows whose content digest is unchanged are taken from it (see ``_read_known``).
        """
        if per_source is not None and sources is None and self._most_news_of_one_source() <= per_source:
            per_source = None  # no source has more: ranking would cost a sort and leave every row
        order: tuple[Any, ...] = (records.c.sort_at.desc(), records.c.source, records.c.key)
        if sources is not None:  # read by source (its primary-key index), each source's in the same order
            order = (records.c.source, *order)
        rows = self._record_query(RecordKind.NEWS, source, tag, sources=sources)
        query = _newest_of_each_source(rows, per_source, sources).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        if known is None:
            return self._read("reading news", query, _stored_news)
        light = self._record_query(RecordKind.NEWS, source, tag, light=True, sources=sources)
        light = _newest_of_each_source(light, per_source, sources).order_by(*order)
        if limit is not None:
            light = light.limit(limit)
        return self._read_known("reading news", light, query, RecordKind.NEWS, known, _stored_news)

    def _most_news_of_one_source(self) -> int:
        news_rows = select(func.count().label("stored")).where(records.c.kind == RecordKind.NEWS.value)
        counts = news_rows.group_by(records.c.source).subquery()
        with self._transaction("counting news", write=False) as conn:
            return int(conn.execute(select(func.coalesce(func.max(counts.c.stored), 0))).scalar_one())

    def events(
        self,
        *,
        since: datetime,
        source: str | None = None,
        tag: str | None = None,
        known: Mapping[tuple[str, str], StoredEvent] | None = None,
        sources: Collection[str] | None = None,
    ) -> list[StoredEvent]:
        """Events ending (or starting, if open-ended) at or after ``since``, plus every recurring one.

        Ordered by start (UTC), then source and key. ``known``, ``sources``: as in ``news``.
        """
        current = _current_events(since)
        # Read by source (its primary-key index), each source's in the same order.
        order = _EVENT_ORDER if sources is None else (records.c.source, *_EVENT_ORDER)
        query = self._record_query(RecordKind.EVENT, source, tag, sources=sources).where(current).order_by(*order)
        if known is None:
            return self._read("reading events", query, _stored_event)
        light = self._record_query(RecordKind.EVENT, source, tag, light=True, sources=sources)
        light = light.where(current).order_by(*order)
        return self._read_known("reading events", light, query, RecordKind.EVENT, known, _stored_event)

    def count_news(self) -> int:
        """How many news are stored."""
        query = select(func.count()).select_from(records).where(records.c.kind == RecordKind.NEWS.value)
        with self._transaction("counting news", write=False) as conn:
            return int(conn.execute(query).scalar_one())

    def count_events(self, *, since: datetime) -> int:
        """How many events ``events(since=since)`` would return."""
        query = select(func.count()).select_from(records).where(records.c.kind == RecordKind.EVENT.value)
        with self._transaction("counting events", write=False) as conn:
            return int(conn.execute(query.where(_current_events(since))).scalar_one())

    def stream_events(self, *, since: datetime, sources: Collection[str] | None = None) -> Iterator[StoredEvent]:
        """``events(since=since, sources=sources)`` one by one as they are read, in the same order."""
        order = _EVENT_ORDER if sources is None else (records.c.source, *_EVENT_ORDER)
        query = self._record_query(RecordKind.EVENT, None, None, sources=sources).where(_current_events(since))
        return self._stream("reading events", query.order_by(*order), _stored_event)

    def stream_news(self, *, sources: Collection[str], per_source: int | None = None) -> Iterator[StoredNews]:
        """``news(sources=sources, per_source=per_source)`` one by one as they are read, in the same order."""
        order = (records.c.source, records.c.sort_at.desc(), records.c.key)
        rows = self._record_query(RecordKind.NEWS, None, None, sources=sources)
        query = _newest_of_each_source(rows, per_source, sources).order_by(*order)
        return self._stream("reading news", query, _stored_news)

    def _stream(self, action: str, query: Any, build: Callable[[Any, _Times], _Row]) -> Iterator[_Row]:
        times: _Times = {}
        with self._transaction(action, write=False) as conn:
            for row in conn.execute(query.execution_options(yield_per=_READ_BATCH)):
                self.records_read += 1
                yield build(row, times)

    def recurring_series(self) -> set[tuple[str, str]]:
        """(source, UID) of every stored recurring event (RRULE or RDATE)."""
        query = select(records.c.source, records.c.payload).where(
            records.c.kind == RecordKind.EVENT.value, records.c.recurring.is_(True)
        )
        series = set()
        with self._transaction("reading recurring events", write=False) as conn:
            for source, payload in conn.execute(query):
                # The UID as written (a key may carry more).
                series.add((source, codec.decode_event(payload).uid))
        return series

    def overrides(self) -> list[EventRecord]:
        """Every stored override: only rows whose key holds ``#`` (UID ``#`` RECURRENCE-ID) are decoded."""
        query = (
            select(records.c.payload)
            .where(records.c.kind == RecordKind.EVENT.value, records.c.key.like("%#%"))
            .order_by(records.c.source, records.c.key)
        )
        with self._transaction("reading overrides", write=False) as conn:
            decoded = [codec.decode_event(payload) for (payload,) in conn.execute(query)]
        return [record for record in decoded if record.recurrence_id is not None]

    def _read(self, action: str, query: Any, build: Callable[[Any, _Times], _Row]) -> list[_Row]:
        """``build`` applied to each row as it arrives: 100,000 payloads are never held as text beside their records."""
        result = []
        times: _Times = {}
        with self._transaction(action, write=False) as conn, collector_paused():
            for row in conn.execute(query.execution_options(yield_per=_READ_BATCH)):
                result.append(build(row, times))
        self.records_read += len(result)
        return result

    def _read_known(
        self,
        action: str,
        light: Any,
        full: Any,
        kind: RecordKind,
        known: Mapping[tuple[str, str], _Row],
        build: Callable[[Any, _Times], _Row],
    ) -> list[_Row]:
        """The rows of ``light`` (source, key, digest; in order), payloads read only where ``known`` has no same copy.

        A row's payload is rewritten only together with its content digest (``upsert`` skips
        unchanged records), so an item read earlier with the same digest is still exactly
        what the row holds: after 10 % of the records changed, 10 % are read and decoded.
        When many are new (a first fetch), ``full`` reads them all in one ordered scan instead.
        """
        with self._transaction(action, write=False) as conn, collector_paused():
            rows = [(source, key, digest) for source, key, digest in conn.execute(light)]
        missing = [(s, k) for s, k, digest in rows if (old := known.get((s, k))) is None or old.content_hash != digest]
        if len(missing) > max(len(rows) // _KNOWN_SHARE, _KNOWN_BATCH):
            return self._read(action, full, build)
        fetched: dict[tuple[str, str], _Row] = {}
        times: _Times = {}
        with self._transaction(action, write=False) as conn, collector_paused():
            for start in range(0, len(missing), _KNOWN_BATCH):
                batch = missing[start : start + _KNOWN_BATCH]
                query = self._record_query(kind, None, None).where(tuple_(records.c.source, records.c.key).in_(batch))
                for row in conn.execute(query):
                    item = build(row, times)
                    fetched[(item.record.source, item.record.key)] = item
        self.records_read += len(fetched)
        # Records are never deleted: every missing pair was fetched (in its newest version).
        return [fetched[(s, k)] if (s, k) in fetched else known[(s, k)] for s, k, _ in rows]

    def generation(self) -> int:
        """A number that rises whenever records change: publish skips work when it has not."""
        with self._transaction("reading the generation", write=False) as conn:
            return int(conn.execute(select(meta.c.value).where(meta.c.name == "generation")).scalar_one())

    # -- source state --------------------------------------------------------------------

    @staticmethod
    def _state_from_row(row: Any) -> SourceState:
        return SourceState(
            name=row.name,
            validators=Validators(etag=row.etag, last_modified=row.last_modified),
            body_hash=row.body_hash,
            last_attempt=row.last_attempt,
            last_success=row.last_success,
            last_error=row.last_error,
            consecutive_failures=row.consecutive_failures,
            items=row.items,
            last_yield=row.last_yield,
            yield_baseline=row.yield_baseline,
            failing_since=row.failing_since,
            source_url=row.source_url,
            next_run=row.next_run,
            dormant=row.dormant,
            redirected_to=row.redirected_to,
            discovered_url=row.discovered_url,
        )

    def state(self, name: str) -> SourceState:
        """Stored state of one source (an empty one if never seen)."""
        with self._transaction(f"reading state of source '{name}'", write=False) as conn:
            row = conn.execute(select(source_state).where(source_state.c.name == name)).first()
        return SourceState(name=name) if row is None else self._state_from_row(row)

    def states(self) -> list[SourceState]:
        """Every stored source state, by name."""
        with self._transaction("reading source states", write=False) as conn:
            # Made as the rows come: all 10,000 rows at once beside their states took 25 MB at once.
            return [
                self._state_from_row(row) for row in conn.execute(select(source_state).order_by(source_state.c.name))
            ]

    def _insert(self) -> Any:
        return postgresql.insert(source_state) if self.dialect == "postgresql" else sqlite.insert(source_state)

    def save_state(self, state: SourceState) -> None:
        """Insert or replace one source's state; its lease (``claim_due``) is left as it is."""
        self.save_states([state])

    def save_states(self, states: Sequence[SourceState]) -> None:
        """Insert or replace several sources' states in one transaction (one statement, many rows).

        A cycle of 1,000 sources otherwise pays 1,000 transactions. Leases are left as they are;
        a name given twice is saved from its last occurrence.
        """
        latest = {state.name: state for state in states}
        if not latest:
            return
        rows = [{"name": name, **_state_values(state)} for name, state in latest.items()]
        insert = self._insert()
        statement = insert.on_conflict_do_update(
            index_elements=[source_state.c.name], set_={column: insert.excluded[column] for column in _STATE_COLUMNS}
        )
        action = (
            f"saving state of source '{rows[0]['name']}'" if len(rows) == 1 else f"saving {len(rows)} source states"
        )
        with self._transaction(action, write=True) as conn:
            conn.execute(statement, rows)
        self.states_written += len(rows)

    def ensure_states(self, names: Iterable[str]) -> None:
        """Create empty states (due at once) for sources not stored yet, so workers can claim them."""
        rows = [{"name": n, "consecutive_failures": 0, "items": 0, "dormant": False} for n in dict.fromkeys(names)]
        if not rows:
            return
        with self._transaction("registering sources", write=True) as conn:
            conn.execute(self._insert().on_conflict_do_nothing(index_elements=[source_state.c.name]), rows)

    # -- multi-worker coordination -------------------------------------------------------

    def claim_due(
        self, worker: str, now: datetime, lease: timedelta, limit: int, *, names: Collection[str] | None = None
    ) -> list[str]:
        """Lease up to ``limit`` due sources (``next_run`` unset or <= now, lease free or expired).

        Returns their names, most overdue first. ``names``, when given, restricts the claim to
        those sources (the ones in the running configuration: a removed source's row stays but
        is never claimed). On PostgreSQL concurrent workers skip rows another is claiming
        (``FOR UPDATE SKIP LOCKED``), so claims are disjoint; SQLite serialises writers, so
        the same UPDATE is exclusive there too.
        """
        if limit <= 0 or (names is not None and not names):
            return []
        due = (
            select(source_state.c.name)
            .where(
                or_(source_state.c.next_run.is_(None), source_state.c.next_run <= now),
                or_(source_state.c.lease_until.is_(None), source_state.c.lease_until <= now),
            )
            .order_by(source_state.c.next_run.asc().nulls_first(), source_state.c.name)
            .limit(limit)
            .with_for_update(skip_locked=True)  # compiled away on SQLite
        )
        if names is not None:
            due = due.where(source_state.c.name.in_(sorted(set(names))))
        statement = (
            source_state.update()
            .where(source_state.c.name.in_(due.scalar_subquery()))
            .values(lease_owner=worker, lease_until=now + lease)
            .returning(source_state.c.name, source_state.c.next_run)
        )
        with self._transaction(f"claiming due sources for worker '{worker}'", write=True) as conn:
            claimed = conn.execute(statement).all()
        never = datetime.min.replace(tzinfo=UTC)
        return [row.name for row in sorted(claimed, key=lambda r: (r.next_run or never, r.name))]

    def release(self, name: str, worker: str) -> None:
        """Give up ``worker``'s lease on a source (no-op if another worker holds it now)."""
        statement = (
            source_state.update()
            .where(source_state.c.name == name, source_state.c.lease_owner == worker)
            .values(lease_owner=None, lease_until=None)
        )
        with self._transaction(f"releasing source '{name}'", write=True) as conn:
            conn.execute(statement)

    @contextmanager
    def publish_lock(self) -> Iterator[bool]:
        """Yield True if this process may publish now, False if another one is publishing.

        PostgreSQL: a session advisory lock held on one dedicated connection for the block.
        SQLite: one process owns the daemon, so always granted.
        """
        if self.dialect != "postgresql":
            yield True
            return
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"taking the publish lock failed: {exc}") from exc
        try:
            # Autocommit: the lock belongs to the session, no transaction stays open meanwhile.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            granted = bool(conn.execute(select(func.pg_try_advisory_lock(PUBLISH_LOCK))).scalar_one())
        except SQLAlchemyError as exc:
            conn.close()
            raise StoreError(f"taking the publish lock failed: {exc}") from exc
        try:
            yield granted
        finally:
            try:
                if granted:
                    conn.execute(select(func.pg_advisory_unlock(PUBLISH_LOCK)))
            finally:
                conn.close()

    def location(self) -> str | None:
        """The engine's URL, password included; an SQLite file's path made absolute (another process
        may run elsewhere). Both backends take writers from several processes."""
        url = self._engine.url
        if url.get_backend_name() == "sqlite" and url.database:
            url = url.set(database=str(Path(url.database).resolve()))
        return url.render_as_string(hide_password=False)

    def close(self) -> None:
        """Return every pooled connection; the store is unusable afterwards."""
        self._engine.dispose()


if TYPE_CHECKING:

    def _implements_store(store: SqlStore) -> Store:
        return store  # mypy checks SqlStore against the Protocol here
