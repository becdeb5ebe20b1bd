"""Rendered item fragments kept across publishes, in one SQLite file in the data directory.

A publish spends most of its time making each stored item safe and rendering it (nh3
sanitising, URL checks, escaping), four formats over. An item's fragment depends only
on the stored row (content digest, change time, first sight, sequence), on what the
publish adds to it (other sources from de-duplication, the UID or origin it is shown
with) and on the rendering code: keyed by a digest of exactly these, a fragment rendered
once serves every later publish until the item changes, so publishing after a change
renders the changed items only and concatenates the rest.

A publish holds one format's fragments in memory while it writes that format's files
(every item is in about four files). Beyond ``memory_budget`` bytes of them (a 10,000-source
workload has 160 MB of RSS items alone), the rest wait in an unlinked temporary file beside
the cache and are read back as each file is written (``Spilled``): memory stays bounded,
the output is the same bytes.

The file is only a cache: it is never needed for correct output. Any failure to open,
read or write it switches it off for the rest of the publish (one warning), a file that
is not a database is removed and made anew, and a new renderer version (code digest,
library versions) never reads fragments an older one wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib import metadata
from pathlib import Path

from aggregator.store.base import StoredEvent, StoredNews

__all__ = [
    "CACHE_FILE",
    "Fragment",
    "FragmentCache",
    "SpillFile",
    "Spilled",
    "code_digest",
    "forget_fragments",
    "fragment",
    "fragment_bytes",
    "fragment_cache",
    "fragment_key",
    "fragment_tail",
    "item_number",
    "joined",
]

CACHE_FILE = "render-cache.sqlite3"
_GENERATOR = "clusterfeeds 0.1"
_SCHEMA = 4
_LOG = logging.getLogger("aggregator.publish")
_WRITE_WAIT_S = 120.0
_PENDING_BYTES = 8 << 20  # past the memory budget, new fragments go to the writer thread this often
_WRITES_QUEUED = 2  # batches of new fragments waiting for the writer thread at most
# What rendering depends on besides our code: the sanitiser, the HTML parser behind it, URL handling,
# and the zone rules (an event's local time is computed with them).
_LIBRARIES = ("nh3", "beautifulsoup4", "lxml", "feedparser", "tzdata")
_SYSTEM_ZONES = Path("/usr/share/zoneinfo/tzdata.zi")


@cache
def code_digest() -> str:
    """Digest of the code that renders: a new renderer version must not reuse what an older one made."""
    root = Path(__file__).parent / "publish"
    digest = hashlib.blake2b(_GENERATOR.encode(), digest_size=16)
    for path in sorted(
        [
            *root.glob("*.py"),
            *(
                root.parent / n
                for n in (
                    "dedupe.py",
                    "fragments.py",
                    "matching.py",
                    "records.py",
                    "sanitize.py",
                    "urls.py",
                    "store/codec.py",
                )
            ),
        ]
    ):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@cache
def _namespace() -> bytes:
    """What every key starts with: code, library versions and the Python version."""
    versions = []
    for name in _LIBRARIES:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=-")
    try:
        zones = hashlib.blake2b(_SYSTEM_ZONES.read_bytes(), digest_size=8).hexdigest()
    except OSError:
        zones = "-"
    return f"{code_digest()}|{sys.version}|{'|'.join(versions)}|{zones}|{_SCHEMA}".encode()


class SpillFile:
    """An unlinked temporary file that fragments are appended to and read back from (any thread).

    Appends are buffered (one write per megabyte); a read of bytes still in the buffer
    writes the buffer first. Reads use ``pread``: no file position is shared between threads.
    The disk space goes when the file is closed (or the process ends).
    """

    _BUFFER = 1 << 20

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._fd, name = tempfile.mkstemp(prefix=".spill-", dir=directory)
        os.unlink(name)
        self._written = 0  # bytes in the file
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._lock = threading.Lock()

    def append(self, body: bytes) -> Spilled:
        with self._lock:
            spilled = Spilled(self, self._written + self._buffered, len(body))
            self._buffer.append(body)
            self._buffered += len(body)
            if self._buffered >= self._BUFFER:
                self._write_buffer()
        return spilled

    def _write_buffer(self) -> None:
        data = b"".join(self._buffer)
        view = memoryview(data)
        while view:
            view = view[os.pwrite(self._fd, view, self._written + len(data) - len(view)) :]
        self._written += len(data)
        self._buffer.clear()
        self._buffered = 0

    def read(self, offset: int, length: int) -> bytes:
        if offset + length > self._written:
            with self._lock:
                if offset + length > self._written:
                    self._write_buffer()
        data = os.pread(self._fd, length, offset)
        while len(data) < length:  # a short read (never seen on a regular file, but allowed)
            more = os.pread(self._fd, length - len(data), offset + len(data))
            if not more:
                raise OSError(f"spill file ended at {offset + len(data)}, {length - len(data)} bytes short")
            data += more
        return data

    def close(self) -> None:
        fd, self._fd = self._fd, -1  # a late read fails (EBADF) instead of reading a file that reused the number
        with contextlib.suppress(OSError):
            os.close(fd)


class _Held:
    """Bytes in memory that a ``Spilled`` reads from like from the spill file (see ``fragment_tail``)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


class Spilled:
    """A fragment kept in the publish's spill file, not in memory: its bytes are read when a file is written.

    (Or a part of bytes held in memory, which it shares instead of copying: ``fragment_tail``.)
    """

    __slots__ = ("_file", "length", "offset")

    def __init__(self, file: SpillFile | _Held, offset: int, length: int) -> None:
        self._file = file
        self.offset = offset
        self.length = length

    def __len__(self) -> int:
        return self.length

    def read(self) -> bytes:
        return self._file.read(self.offset, self.length)

    def tail(self, start: int) -> Spilled:
        """The same fragment without its first ``start`` bytes."""
        return Spilled(self._file, self.offset + start, self.length - start)


Fragment = bytes | Spilled  # what ``fragment`` gives: the bytes, or where they wait


def fragment_tail(part: Fragment, start: int) -> Fragment:
    """``part`` without its first ``start`` bytes, sharing its memory.

    A slice of ``bytes`` copies them: the large workload's calendar fragments (the text after
    their first line) held 69 MB twice over, once in the fragment cache and once in the memo.
    """
    if isinstance(part, bytes):
        return Spilled(_Held(part), start, len(part) - start)
    return part.tail(start)


def fragment_bytes(part: Fragment) -> bytes:
    """A piece's bytes: itself, or read back from the spill file."""
    return part if isinstance(part, bytes) else part.read()


def joined(parts: Iterable[Fragment]) -> bytes:
    """A document's pieces as one ``bytes`` (spilled ones read back)."""
    return b"".join(map(fragment_bytes, parts))


class FragmentCache:
    """Fragments by key, read a kind at a time; new ones are buffered and written together by ``flush``.

    A publish needs nearly every fragment of a kind (the merged feed shows every item), so
    a kind is read in one sequential scan into a dictionary rather than looked up one
    random key at a time; ``drop`` frees it once the kind's files are rendered.
    """

    def __init__(
        self,
        path: Path,
        *,
        usable: bool = True,
        memory_budget: int | None = None,
        keep_digests: bool = False,
        scan: bool = True,
    ) -> None:
        """``usable=False``: an earlier step of the same publish found the file unusable (and said so).

        ``scan=False``: no kind is read whole; only what ``prefetch`` asks for is read (a publish
        that goes through the sources a group at a time needs a group's fragments of every kind).

        ``memory_budget``: bytes of one kind's fragments held in memory at most (None: no limit).
        ``keep_digests``: each item's digest is kept until the block ends (about 190 bytes an
        item), not made again for each scope and format it is rendered in.
        """
        self.path = path
        # id(item) -> (item, its digest): the item is held and checked, so a reused id never matches.
        self._digests: dict[int, tuple[object, bytes]] | None = {} if keep_digests else None
        self.hits = 0
        self.misses = 0
        self.spilled = 0  # fragments kept in the spill file instead of memory
        self._loaded: dict[str, dict[bytes, Fragment]] = {}
        self._pending: dict[bytes, tuple[str, int, int, bytes, bytes]] = {}
        self._pending_bytes = 0
        self._budget = memory_budget
        self._scan = scan
        self._held: dict[str, int] = {}  # bytes of each kind's fragments held in memory
        self._spill: SpillFile | None = None
        self._connection: sqlite3.Connection | None = None
        self._used: set[int] | None = None  # items served or made (when tracked: ``track_use``)
        self._prune = False  # at close, delete the fragments of every item not in ``_used`` (or ``_kept``)
        self._kept: Collection[int] | None = None  # ``prune_at_close``'s items
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[Future[None]] = []
        self._write_connection: sqlite3.Connection | None = None
        self._write_failed = False
        if not usable:
            return
        try:
            self._connection = self._open()
        except (sqlite3.Error, OSError) as error:
            self._off(error)

    @property
    def usable(self) -> bool:
        """Open and not switched off (until ``close``)."""
        return self._connection is not None

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError):
                raise  # cannot open, locked, read-only: not a damaged file, nothing to remove
            # Not a database (or a damaged one): it is a cache, make it anew.
            _LOG.warning("render cache %s unreadable (%s): starting a new one", self.path, error)
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    self.path.with_name(self.path.name + suffix).unlink()
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")  # a lost write costs a re-render, never output
            connection.execute("CREATE TABLE IF NOT EXISTS namespace (digest BLOB NOT NULL)")
            # Another renderer version (or layout) wrote what is here: none of it can serve again.
            if connection.execute("SELECT digest FROM namespace").fetchall() != [(_namespace(),)]:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    if connection.execute("SELECT digest FROM namespace").fetchall() != [(_namespace(),)]:
                        connection.execute("DROP TABLE IF EXISTS fragment")
                        connection.execute("DELETE FROM namespace")
                        connection.execute("INSERT INTO namespace VALUES (?)", (_namespace(),))
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            # ``item`` and ``version`` are 64-bit digests of the item (source, record kind, key) and of
            # its stored version: a new version replaces the older one's fragments of every kind and variant.
            # A key is stored once: processes rendering other formats of the same publish may both make it.
            connection.execute(
                "CREATE TABLE IF NOT EXISTS fragment ("
                " kind TEXT NOT NULL, item INTEGER NOT NULL, version INTEGER NOT NULL,"
                " key BLOB NOT NULL, body BLOB NOT NULL)"
            )
            connection.execute("CREATE UNIQUE INDEX IF NOT EXISTS fragment_key ON fragment (kind, key)")
            connection.execute("CREATE INDEX IF NOT EXISTS fragment_item ON fragment (item)")
        except BaseException:
            connection.close()
            raise
        return connection

    def _off(self, error: BaseException) -> None:
        _LOG.warning("render cache %s switched off for this publish: %s", self.path, error)
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
        self._connection = None
        self._pending.clear()
        self._loaded.clear()

    def _kind(self, kind: str) -> dict[bytes, Fragment] | None:
        loaded = self._loaded.get(kind)
        if loaded is not None:
            return loaded
        connection = self._connection
        if connection is None:
            return None
        if not self._scan:
            loaded = self._loaded[kind] = {}
            return loaded
        self._settle_writes()
        try:
            rows = connection.execute("SELECT key, body FROM fragment WHERE kind = ?", (kind,))
            if self._budget is None:
                loaded = dict(rows)
            else:
                keep = self._keep
                loaded = {key: keep(kind, body) for key, body in rows}
        except sqlite3.Error as error:
            self._off(error)
            return None
        self._loaded[kind] = loaded
        return loaded

    def _keep(self, kind: str, body: bytes) -> Fragment:
        """``body`` itself while the kind's fragments in memory stay within the budget, else spilled."""
        budget = self._budget
        if budget is None:
            return body
        held = self._held.get(kind, 0) + len(body)
        if held <= budget:
            self._held[kind] = held
            return body
        try:
            if self._spill is None:
                self._spill = SpillFile(self.path.parent)
            spilled = self._spill.append(body)
        except OSError as error:
            _LOG.warning("render cache %s: no spill file (%s): fragments stay in memory", self.path, error)
            self._budget = None
            return body
        self.spilled += 1
        return spilled

    _PREFETCH_BATCH = 500  # keys per query (SQLite allows 32,766 parameters)

    def prefetch(self, kind: str, keys: Iterable[bytes]) -> None:
        """Read the stored fragments of ``kind`` among ``keys`` (``scan=False``): each ``get`` of them is a hit."""
        connection = self._connection
        loaded = self._kind(kind)
        if connection is None or loaded is None:
            return
        wanted = [key for key in keys if key not in loaded and key not in self._pending]
        try:
            for start in range(0, len(wanted), self._PREFETCH_BATCH):
                batch = wanted[start : start + self._PREFETCH_BATCH]
                marks = ",".join("?" * len(batch))
                query = f"SELECT key, body FROM fragment WHERE kind = ? AND key IN ({marks})"
                loaded.update(connection.execute(query, (kind, *batch)))
        except sqlite3.Error as error:
            self._off(error)

    def forget_prefetched(self) -> None:
        """Let go of prefetched fragments nobody asked for (``scan=False``), and save the new ones."""
        self.flush()
        for loaded in self._loaded.values():
            loaded.clear()

    def get(self, kind: str, key: bytes) -> Fragment | None:
        loaded = self._kind(kind)
        # Popped: the caller keeps what it needs (a fragment in the render memo, keys decoded),
        # so the bytes are not held twice.
        body = None if loaded is None else loaded.pop(key, None)
        if body is None and key in self._pending:  # made earlier in this publish (another copy of the item)
            body = self._pending[key][4]
        if body is None:
            self.misses += 1
        else:
            self.hits += 1
        return body

    def item_digest(self, item: StoredNews | StoredEvent) -> bytes:
        """``_item_digest(item)``, made once per item while digests are kept."""
        digests = self._digests
        if digests is None:
            return _item_digest(item)
        entry = digests.get(id(item))
        if entry is not None and entry[0] is item:
            return entry[1]
        made = _item_digest(item)
        digests[id(item)] = (item, made)
        return made

    def forget_digests(self) -> None:
        """Let the kept digests (and the items they hold) go: the caller drops those items."""
        if self._digests is not None:
            self._digests.clear()

    def use(self, item: int) -> None:
        if self._used is not None:
            self._used.add(item)

    def put(self, kind: str, key: bytes, item: int, version: int, body: bytes) -> Fragment:
        """Save a new fragment (at the next ``flush``); returns what the caller keeps: ``body``, or where it waits.

        A key served from the file is not put again (its caller memoizes the bytes); were it, the
        insert would be ignored: each key is stored once.
        """
        if self._connection is not None:
            self._pending[key] = (kind, item, version, key, body)
            self._pending_bytes += len(body)
            if self._pending_bytes > _PENDING_BYTES and (self._spill is not None or not self._scan):
                # Past the budget (a large publish), new fragments are not held until the format ends
                # either; below it, one write per format (two processes' small writes would take
                # turns on the file's lock: the medium first publish took 5 s longer).
                self.flush()
        return self._keep(kind, body)

    def track_use(self, *, prune: bool) -> None:
        """Remember the items served or made from now on; with ``prune``, delete every other item's at close.

        Pruning is for a publish that renders every scope: the fragments of items it did not
        show belong to records no longer published (a removed source, an event out of the
        window) and would otherwise stay in the file for ever. (An older renderer's are
        deleted on opening.)
        """
        self._used = set()
        self._prune = prune

    def prune_at_close(self, items: Collection[int]) -> None:
        """Delete, at ``close``, the fragments of every item but ``items`` (distinct ``item_number``s).

        For a publish that knows every item it showed without tracking each use (``track_use``).
        """
        self._kept = items
        self._prune = True

    def add_used(self, items: set[int] | None) -> None:
        """Items another process of the same publish used (None: it could not save its new fragments)."""
        if items is None:
            self._used = None
        elif self._used is not None:
            self._used |= items

    def used_items(self) -> set[int] | None:
        """After ``close``: the items used, or None when not tracked or when new fragments were not all saved."""
        return self._used

    def drop(self, kinds: tuple[str, ...]) -> None:
        """Forget the fragments read of ``kinds`` (their files are rendered), after saving the new ones."""
        self.flush()
        for kind in kinds:
            self._loaded.pop(kind, None)
            self._held.pop(kind, None)

    def flush(self) -> None:
        """Hand the new fragments to the writer thread (SQLite works without the GIL: rendering goes on)."""
        if self._connection is None or not self._pending:
            return
        pending = list(self._pending.values())
        self._pending.clear()
        self._pending_bytes = 0
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render-cache")
        self._writes.append(self._writer.submit(self._write, pending))
        # Rendering can outrun SQLite: a backlog would hold every new fragment of a first publish.
        while len(self._writes) > _WRITES_QUEUED:
            self._writes.pop(0).result()

    def _write(self, pending: list[tuple[str, int, int, bytes, bytes]]) -> None:
        """Insert ``pending`` and delete the older versions' fragments of the same items (writer thread)."""
        try:
            if self._write_connection is None:
                # Another process of the same publish may be writing: wait for it rather than give up.
                self._write_connection = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=_WRITE_WAIT_S
                )
                self._write_connection.execute("PRAGMA synchronous=OFF")
            connection = self._write_connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                versions = {item: version for _, item, version, _, _ in pending}
                connection.executemany("DELETE FROM fragment WHERE item = ? AND version <> ?", sorted(versions.items()))
                connection.executemany("INSERT OR IGNORE INTO fragment VALUES (?, ?, ?, ?, ?)", pending)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            _LOG.warning("render cache %s: new fragments not saved: %s", self.path, error)
            self._write_failed = True

    def _settle_writes(self) -> None:
        """Wait for the writer: what is read next must include what this publish has written."""
        writes, self._writes = self._writes, []
        for write in writes:
            write.result()

    def _wait_for_writes(self) -> None:
        self._settle_writes()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        if self._write_connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._write_connection.close()
            self._write_connection = None

    def close(self) -> None:
        self.flush()
        self._wait_for_writes()
        if self._write_failed:
            self._used = self._kept = None  # what was used is not all saved: nothing to conclude about the rest
        self._loaded.clear()
        self.forget_digests()
        kept = self._used if self._kept is None else self._kept
        if self._prune and kept is not None and self._connection is not None:
            self._delete_unused(self._connection, kept)
        self._prune = False
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _delete_unused(self, connection: sqlite3.Connection, used: Collection[int]) -> None:
        try:
            (stored,) = connection.execute("SELECT count(DISTINCT item) FROM fragment").fetchone()
            if stored <= len(used):
                return  # every stored item was shown (the usual case): nothing to look for
            connection.execute("CREATE TEMP TABLE IF NOT EXISTS used (item INTEGER PRIMARY KEY)")
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute("DELETE FROM temp.used")
                connection.executemany("INSERT OR IGNORE INTO temp.used VALUES (?)", ((item,) for item in used))
                connection.execute("DELETE FROM fragment WHERE item NOT IN (SELECT item FROM temp.used)")
                connection.execute("DELETE FROM temp.used")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._off(error)


_ACTIVE: ContextVar[FragmentCache | None] = ContextVar("clusterfeeds_fragment_cache", default=None)


@contextmanager
def fragment_cache(
    path: Path,
    *,
    usable: bool = True,
    memory_budget: int | None = None,
    keep_digests: bool = False,
    scan: bool = True,
) -> Iterator[FragmentCache]:
    """Within the block, ``fragment`` reads and fills the cache at ``path``; new fragments are saved at the end.

    ``memory_budget``, ``keep_digests``, ``scan``: see ``FragmentCache``; the spill file goes at the end of the block.
    """
    store = FragmentCache(path, usable=usable, memory_budget=memory_budget, keep_digests=keep_digests, scan=scan)
    token = _ACTIVE.set(store)
    try:
        yield store
    finally:
        _ACTIVE.reset(token)
        store.close()


def _int64(text: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big", signed=True
    )


_DIGEST = 20  # bytes of a fragment key and of an item's digest


@cache
def _namespace_hash() -> hashlib.blake2b:
    """The hash state after the namespace: copied per item instead of hashing the namespace again."""
    return hashlib.blake2b(_namespace(), digest_size=_DIGEST)


def _item_text(item: StoredNews | StoredEvent) -> tuple[str, str]:
    """(identity, version) of a stored item as text: what its fragments' keys and ids are made of.

    Stored times are instants in UTC: their timestamps name them exactly, at a fifth of
    the cost of ``isoformat``.
    """
    record = item.record
    sequence = item.sequence if isinstance(item, StoredEvent) else 0
    identity = f"{record.source}\x1f{record.kind.value}\x1f{record.key}"
    version = f"{item.content_hash}\x1f{item.changed_at.timestamp()!r}\x1f{item.first_seen.timestamp()!r}\x1f{sequence}"
    return identity, version


def _item_digest(item: StoredNews | StoredEvent) -> bytes:
    """The item as stored and shown (``also_from`` included), digested, then its 64-bit id: 28 bytes.

    Every fragment key of the item starts from it (``fragment``); memoized per item in a cache
    that ``keep_digests``, it is made once per process instead of once per scope and format.
    """
    identity, version = _item_text(item)
    digest = _namespace_hash().copy()
    also_from = "\x1f".join(item.record.also_from)
    digest.update(f"{identity}\x1e{version}\x1e{also_from}".encode("utf-8", "surrogatepass"))
    return digest.digest() + _int64(identity).to_bytes(8, "big", signed=True)


def fragment_key(kind: str, item: StoredNews | StoredEvent, variant: str) -> bytes | None:
    """The key ``fragment`` looks ``item`` up by in the active cache (None: no cache, or not a stored item)."""
    store = _ACTIVE.get()
    if store is None or not item.content_hash:
        return None
    return _key(store.item_digest(item), kind, variant)


def item_number(item: StoredNews | StoredEvent) -> int:
    """The 64-bit number the cache files the item's fragments under (its source, kind and key)."""
    return _int64(_item_text(item)[0])


def _key(made: bytes, kind: str, variant: str) -> bytes:
    return hashlib.blake2b(
        made[:_DIGEST] + f"\x1e{kind}\x1e{variant}".encode("utf-8", "surrogatepass"), digest_size=_DIGEST
    ).digest()


def fragment(kind: str, item: StoredNews | StoredEvent, variant: str, render: Callable[[], bytes]) -> Fragment:
    """``render()``, or the bytes it gave for the same stored item, ``kind`` and ``variant`` before.

    Past the cache's memory budget, where the bytes wait in its spill file instead (``Spilled``).

    Only items read from a store (which carry a content digest) are cached: their row
    identifies the record exactly. ``variant`` must hold everything else the bytes depend on.
    """
    store = _ACTIVE.get()
    if store is None or not item.content_hash:
        return render()
    made = store.item_digest(item)
    key = _key(made, kind, variant)
    item_id = int.from_bytes(made[_DIGEST:], "big", signed=True)
    store.use(item_id)
    body = store.get(kind, key)
    if body is None:
        return store.put(kind, key, item_id, _int64(_item_text(item)[1]), render())
    return body


def forget_fragments(kinds: tuple[str, ...]) -> None:
    """Save new fragments and free the ones read of ``kinds`` (a format is done)."""
    store = _ACTIVE.get()
    if store is not None:
        store.drop(kinds)
