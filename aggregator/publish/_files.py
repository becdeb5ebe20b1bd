"""The only I/O of publishing: atomic, skip-if-unchanged file replacement and stale-file removal.

A reader (the HTTP server, a sync client) sees either the old file or the new
one, never half of one: bytes go to a temporary file in the same directory,
are flushed and fsynced, then ``os.replace``d over the target, and the
directory is fsynced so the rename itself survives a crash.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from aggregator.errors import PublishError
from aggregator.fragments import Fragment, fragment_bytes

__all__ = ["fsync_directory", "remove_stale", "write_if_changed"]


_CHUNK = 256 << 10  # compared a chunk at a time: a 35 MB feed is not read back whole beside its new bytes


def _unchanged(path: Path, parts: Sequence[Fragment]) -> bool:
    try:
        with path.open("rb", buffering=_CHUNK) as file:
            if os.fstat(file.fileno()).st_size != sum(map(len, parts)):
                return False
            for part in parts:
                view = memoryview(fragment_bytes(part))
                for start in range(0, len(view), _CHUNK):
                    piece = view[start : start + _CHUNK]
                    if file.read(len(piece)) != piece:
                        return False
            return file.read(1) == b""
    except OSError:
        return False


_BATCH = 64  # pieces per writev call (IOV_MAX is 1024): eight writer threads held 512 read-back pieces each


def _write_all(fd: int, parts: Sequence[Fragment]) -> None:
    """Write every piece in order, a batch per system call, however short the kernel's writes are.

    Spilled pieces are read back a batch at a time: never all of a file's spilled bytes at once.
    """
    for start in range(0, len(parts), _BATCH):
        batch = [memoryview(fragment_bytes(p)) for p in parts[start : start + _BATCH] if p]
        first = 0
        while first < len(batch):
            written = os.writev(fd, batch[first:] if first else batch)
            while first < len(batch) and written >= len(batch[first]):
                written -= len(batch[first])
                first += 1
            if written:
                batch[first] = batch[first][written:]


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def write_if_changed(path: Path, data: bytes | Sequence[Fragment], *, sync_directory: bool = True) -> bool:
    """Replace ``path`` with ``data`` atomically; False (and no write at all) when the bytes are the same.

    ``data`` may be the pieces of the file in order: a 150 MB feed is written from its
    items' fragments (some of them waiting in a spill file) without first being copied into one object.

    Raises ``PublishError`` on any write failure (read-only directory, disk
    full); the previous file stays in place and the temporary file is removed.
    """
    parts = [data] if isinstance(data, bytes) else data
    if _unchanged(path, parts):
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(str(path), f"cannot create directory: {_reason(exc)}") from exc
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise PublishError(str(path), f"cannot write: {_reason(exc)}") from exc
    try:
        try:
            _write_all(fd, parts)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise PublishError(str(path), f"cannot write: {_reason(exc)}") from exc
    if sync_directory:
        fsync_directory(path.parent)
    return True


def fsync_directory(directory: Path) -> None:
    """Make renames and unlinks in ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise PublishError(str(directory), f"cannot open directory: {_reason(exc)}") from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise PublishError(str(directory), f"cannot sync directory: {_reason(exc)}") from exc
    finally:
        os.close(fd)


def remove_stale(directory: Path, keep: Iterable[str], suffixes: tuple[str, ...]) -> tuple[str, ...]:
    """Delete files in ``directory`` with one of ``suffixes`` whose name is not in ``keep``; returns their names.

    Called after the new files are in place, so a subscriber never meets a gap.
    Other files (a README someone put there, our own hidden temporaries) stay.
    """
    if not directory.is_dir():
        return ()
    wanted = set(keep)
    removed = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or entry.suffix not in suffixes or entry.name in wanted or not entry.is_file():
            continue
        try:
            entry.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise PublishError(str(entry), f"cannot remove stale file: {_reason(exc)}") from exc
        removed.append(entry.name)
    if removed:
        fsync_directory(directory)
    return tuple(removed)


def remove_abandoned_temporaries(directory: Path, *, older_than: float = 3600.0) -> int:
    """Delete our hidden ``.NAME.PID.tmp`` files left by a writer that was killed mid-write.

    Only old ones: a live writer's temporary is seconds old. Returns how many went.
    """
    if not directory.is_dir():
        return 0
    cutoff = time.time() - older_than
    count = 0
    for entry in directory.iterdir():
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        try:
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                count += 1
        except OSError:
            continue  # gone already, or not ours to remove: never a reason to fail a publish
    return count
