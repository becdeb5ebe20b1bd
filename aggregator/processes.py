"""Process-wide machinery: children that die with their parent, work forked onto the second core,
and the cyclic garbage collector held off while millions of long-lived objects are made.

Publishing is CPU-bound Python: one process uses one core. ``fork_call`` runs a
function in a forked copy of the process, which shares everything already read
(the records) copy-on-write instead of reading and decoding it again, and sends
the result back through a pipe. It forks only a single-threaded process: a fork
copies locks that other threads might hold mid-flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import gc
import importlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar, cast

__all__ = [
    "PARSE_WORKER_NAME",
    "PUBLISHING_PROCESS_NAME",
    "RESOURCE_TRACKER_NAME",
    "ForkedCall",
    "ParsePool",
    "can_fork",
    "collector_paused",
    "die_with_parent",
    "end_with_parent_process",
    "fork_call",
    "fork_forkserver",
    "forkserver_context",
    "init_parse_worker",
    "init_publishing_process",
    "limit_malloc_arenas",
    "name_process",
    "note_job_done",
    "parse_in_fresh_process",
    "parse_pool",
    "release_free_memory",
    "release_free_memory_every",
    "release_memory",
    "room_for_copies",
]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_WATCHER = "end-with-parent"  # the thread of ``end_with_parent_process``
_M_ARENA_MAX = -8  # from glibc's <malloc.h>
MALLOC_ARENAS = 2  # one per core of the small machine we are sized for
_T = TypeVar("_T")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, loaded once (the daemon asks for it every minute).

    By its usual name first: ``find_library`` runs ``ldconfig`` in a child process, a fork of
    this one (in a large publishing process, of 380 MB, at its first release of memory).
    """
    for name in ("libc.so.6", None):
        try:
            return ctypes.CDLL(name or ctypes.util.find_library("c"), use_errno=True)
        except OSError:
            continue
    return None


def limit_malloc_arenas() -> bool:
    """Give this process and the processes it starts from now on ``MALLOC_ARENAS`` malloc arenas.

    glibc gives every thread that allocates an arena of its own, up to eight per core, and
    memory freed in one is not reused by the others: a daemon whose event loop, SQLite and
    publishing threads take turns keeps growing for hours before it levels off. With two
    arenas it levels off within minutes, lower (measured in the README). Call before the
    threads start. False where the C library has no such setting (not glibc).
    """
    os.environ.setdefault("MALLOC_ARENA_MAX", str(MALLOC_ARENAS))  # read by started (exec'd) children
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    return bool(mallopt is not None and mallopt(_M_ARENA_MAX, MALLOC_ARENAS) == 1)


def release_free_memory() -> bool:
    """Hand memory that malloc holds free back to the system (glibc ``malloc_trim``).

    After a cycle parsed and stored thousands of records, their space is free but stays part
    of the process: the next cycle reuses it, and meanwhile it counts as resident. Returning
    it keeps the daemon's size what it actually uses. False where there is no such call.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


RELEASE_EVERY_S = 60.0
# Resident growth since the last release that is worth a full garbage collection first. Storing
# a 50,000-event calendar left the daemon 44 MB that only ``gc.collect()`` gave back (its parse
# worker 130 MB), and both stayed at that size: the collector had not run its full pass.
COLLECT_AFTER_GROWTH_KIB = 32 * 1024
BIG_JOB_BYTES = 1 << 20  # a document this large leaves a parser's object tree worth collecting
_BIG_JOB_DONE = threading.Event()


def release_memory(settled_kib: int | None) -> int | None:
    """Give free memory back to the system, after a full garbage collection when there is garbage to expect.

    ``settled_kib``: the resident size after the previous call (None: unknown). A full
    collection of a daemon's heap takes tens of milliseconds, so it runs only after a big job
    (``note_job_done``) or when the process grew by ``COLLECT_AFTER_GROWTH_KIB`` since the
    last call. Returns the resident size now, for the next call.
    """
    big_job = _BIG_JOB_DONE.is_set()
    _BIG_JOB_DONE.clear()
    resident = _resident_kib()
    grown = resident is not None and settled_kib is not None and resident - settled_kib >= COLLECT_AFTER_GROWTH_KIB
    if big_job or grown:
        gc.collect()
    release_free_memory()
    return _resident_kib()


async def release_free_memory_every(seconds: float = RELEASE_EVERY_S) -> None:
    """``release_memory`` once every ``seconds`` for as long as the task runs (a daemon's life).

    A call costs a few milliseconds, made in a worker thread; cycles end at any time, so a
    steady rhythm is simpler than tracking them and as good.
    """
    settled = _resident_kib()
    while True:
        await asyncio.sleep(seconds)
        settled = await asyncio.to_thread(release_memory, settled)


PARSE_WORKER_RELEASE_S = 10.0  # how soon a parse worker gives back what a big job left


def note_job_done(input_bytes: int) -> None:
    """In a parse worker: a job that read ``input_bytes`` ended (a big one's garbage is collected soon)."""
    if input_bytes >= BIG_JOB_BYTES:
        _BIG_JOB_DONE.set()


def name_process(name: str) -> None:
    """The name ``ps``, ``top`` and /proc show for this process (Linux; at most 15 bytes)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w", encoding="ascii") as comm:
        comm.write(name[:15])


PUBLISHING_PROCESS_NAME = "cf-publish"
PARSE_WORKER_NAME = "cf-parse"


def init_publishing_process() -> None:
    """A publishing process's initializer: end with the daemon, and be told apart from parse workers."""
    end_with_parent_process()
    name_process(PUBLISHING_PROCESS_NAME)


def _init_fresh_parse_process() -> None:
    """``parse_in_fresh_process``'s child: it ends with the daemon, or after its one job."""
    end_with_parent_process()
    name_process(PARSE_WORKER_NAME)


def init_parse_worker() -> None:
    """A parse pool's initializer: end with the daemon, and give back what a big job left behind.

    A worker that parsed a 33 MB calendar stayed at 240 MB resident for the daemon's life (90 MB
    before it): the parser's object tree was garbage that only a full collection frees, and the
    freed memory stayed with malloc. A thread looks every ``PARSE_WORKER_RELEASE_S`` seconds:
    after a big job (``note_job_done``) it collects, and it always trims.
    """
    end_with_parent_process()
    name_process(PARSE_WORKER_NAME)

    def release_after_jobs() -> None:
        settled = _resident_kib()
        while True:
            time.sleep(PARSE_WORKER_RELEASE_S)
            settled = release_memory(settled)

    threading.Thread(target=release_after_jobs, name="release-memory", daemon=True).start()


class ParsePool(Executor):
    """The daemon's parse workers: started by the first job of a batch, let go when it is published.

    Children of a forkserver (the daemon has threads that a fork would copy mid-flight), ended
    with the daemon and giving back what big jobs leave (``init_parse_worker``). The forkserver
    imports the pipeline once (with it the store, the date parser, lxml and the sanitiser; the
    feed, calendar and page parsers load on first use) and each worker is forked from it with
    those loaded: importing them in every worker cost a first cycle 1-2 s of its two cores (medium).

    ``release`` ends the workers (jobs already given still finish). A worker grows from 47 to
    72 MB with the documents it parses, a fragmented heap that neither a collection nor a trim
    gives back, and the pool sat idle through every publish with all of it: 143 MB PSS on the
    large workload, beside the publishing process at its peak. The next batch's first job forks
    new workers (milliseconds); an unchanged cycle parses nothing and starts none. A pool broken
    by a worker that was killed (out of memory) is replaced at the next job, not kept failing.
    """

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._width = 0  # the workers ``_executor`` may start
        self._reserved = 0  # cores taken by processes parsing beside the pool (``reserved``)
        self.started = 0  # pools of workers started so far (the first job after each ``release``)

    def _wanted_width(self) -> int:
        return max(1, self._workers - self._reserved)

    def _new(self) -> ProcessPoolExecutor:
        self.started += 1
        self._width = self._wanted_width()
        return ProcessPoolExecutor(
            max_workers=self._width, mp_context=forkserver_context(), initializer=init_parse_worker
        )

    @contextlib.contextmanager
    def reserved(self) -> Iterator[None]:
        """One core for a process that parses beside the pool (a big document): the pool is a worker
        narrower while the block runs, and as wide as before after it.

        Narrowing releases the workers (each ends after the jobs it was given); the next job starts
        a narrower pool, and the first job after the block a full one again. On the large workload
        the two pool workers, idle beside the process parsing its 33 MB calendar, held 76 MB PSS
        of the tree's 389 MB peak; and three parsers on two cores only take turns.
        """
        with self._lock:
            self._reserved += 1
            narrower = self._executor is not None and self._width > self._wanted_width()
        if narrower:
            self.release()
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= 1
                wider = self._executor is not None and self._width < self._wanted_width()
            if wider:
                self.release()

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        with self._lock:
            if self._executor is None:
                self._executor = self._new()
            try:
                return self._executor.submit(fn, *args, **kwargs)
            except BrokenProcessPool:  # a worker died (the job it had failed): a new pool for the next ones
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new()
                return self._executor.submit(fn, *args, **kwargs)

    def release(self) -> None:
        """End the workers once their jobs are done; the next ``submit`` starts new ones."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def worker_pids(self) -> list[int]:
        """The workers alive now (none after ``release``): what a benchmark measures."""
        with self._lock:
            processes = getattr(self._executor, "_processes", None) or {}
            return list(processes)


def parse_pool(workers: int) -> ParsePool:
    """The daemon's pool of ``workers`` parse processes (``ParsePool``)."""
    return ParsePool(workers)


def forkserver_context() -> multiprocessing.context.ForkServerContext:
    """The context of the daemon's forkserver, the parent of its parse workers and publishing processes.

    It imports the pipeline and the publish once and freezes them (``aggregator.preload``); each
    child is forked with them loaded, its pages shared. Measured for the parse pool after a medium
    first cycle (two rounds each, PSS of workers and forkserver): 142 MB with the pipeline (then
    unfrozen); without the HTTP client and SQL toolkit 149 MB; with every parser module 154-156 MB.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["aggregator.preload"])
    return context


def fork_forkserver() -> bool:
    """Start the forkserver as a fork of this process, not as a new interpreter: True when it did.

    Started the usual way, the forkserver imported the pipeline and the publish again, a third
    copy of the modules (the daemon's, the forkserver's shared with its children): 37 MB PSS of
    the large workload's tree beside its publisher. Forked from the daemon before it reads
    anything, it shares the daemon's pages of them, and its children do too. Only a process
    with no other thread may fork (a thread's locks would be copied mid-flight), and only where
    ``multiprocessing.forkserver`` is as this knows it (3.11-3.13); else the usual start, later.
    """
    from multiprocessing import connection, forkserver, resource_tracker, util

    server: Any = getattr(forkserver, "_forkserver", None)
    if (
        threading.active_count() > 1
        or not (3, 11) <= sys.version_info[:2] <= (3, 13)
        or server is None
        or not hasattr(server, "_forkserver_pid")
    ):
        return False
    importlib.import_module("aggregator.preload")  # what the forkserver's children run, loaded and frozen
    with server._lock:
        if server._forkserver_pid is not None:
            return False
        gc.collect()
        gc.freeze()
        _fork_resource_tracker(resource_tracker)
        with socket.socket(socket.AF_UNIX) as listener:
            address = cast(Any, connection).arbitrary_address("AF_UNIX")
            listener.bind(address)
            if not util.is_abstract_socket_namespace(address):
                os.chmod(address, 0o600)
            listener.listen()
            alive_r, alive_w = os.pipe()  # the clients hold the write end: its EOF ends the server
            pid = os.fork()
            if pid == 0:  # the forkserver: nothing of the daemon's but its modules and these two ends
                code = 1
                try:
                    _close_descriptors_but(0, 1, 2, listener.fileno(), alive_r)
                    forkserver.main(listener.fileno(), alive_r, ["aggregator.preload"])
                    code = 0
                except SystemExit as stop:  # how ``main`` ends when the last client has gone
                    code = stop.code if isinstance(stop.code, int) else 0
                finally:
                    os._exit(code)
            os.close(alive_r)
        server._forkserver_address = address
        server._forkserver_alive_fd = alive_w
        server._forkserver_pid = pid
    return True


RESOURCE_TRACKER_NAME = "cf-tracker"


def _fork_resource_tracker(resource_tracker: Any) -> None:
    """multiprocessing's resource tracker as a fork of this process (else started as usual).

    Started as usual it is a new interpreter: 7 MB PSS of the large workload's tree, to read
    a pipe. Forked here, it shares this process's pages and owns only the few it writes.
    Its pipe's write end is what ``getfd`` hands to every child; EOF (every holder gone) ends it.
    """
    tracker = resource_tracker._resource_tracker
    if getattr(tracker, "_fd", 0) is not None or not hasattr(tracker, "_pid"):
        resource_tracker.ensure_running()  # running already, or not as this knows it
        return
    read_end, write_end = os.pipe()
    ignored = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, ignored)  # until ``main`` ignores them (as multiprocessing does)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _close_descriptors_but(0, 1, 2, read_end)
                name_process(RESOURCE_TRACKER_NAME)
                resource_tracker.main(read_end)
                code = 0
            finally:
                os._exit(code)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, ignored)
        os.close(read_end)
    tracker._fd = write_end
    tracker._pid = pid


def _close_descriptors_but(*kept: int) -> None:
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in kept:
            with contextlib.suppress(OSError):
                os.close(int(name))


def parse_in_fresh_process(function: Callable[..., _T], *args: object) -> Future[_T]:
    """``function(*args)`` in a new child of the parse pool's forkserver, which ends when it returns.

    For the rare big document (a 33 MB calendar of 50,000 events): a pool worker that parsed
    one kept 30-80 MB of it for good, heap that the allocator could not give back even after a
    collection and a trim (the large workload's worker stayed at 127 MB, the other at 72 MB). A fresh
    child gives all of it back by ending, costs a fork of the preloaded forkserver (milliseconds
    beside a parse of seconds), and parses beside the pool instead of holding up a worker.
    """
    executor = ProcessPoolExecutor(
        max_workers=1, mp_context=forkserver_context(), initializer=_init_fresh_parse_process
    )
    try:
        return executor.submit(function, *args)
    finally:
        executor.shutdown(wait=False)  # the child runs the call, then ends; its resources go with it


@contextlib.contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """No cyclic garbage collection inside the block; with ``freeze``, none over what exists at its start.

    Building 50,000 records set off about 20 full collections, each walking everything built
    so far again, and a publish as many more over the records and memos: 10-15 % of its
    time, for almost no cycles to find. Frozen objects are also left alone by a forked
    child's collector, so their pages stay shared instead of being copied.
    """
    enabled = gc.isenabled()
    gc.disable()
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()
        if enabled:
            gc.enable()


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies (a no-op elsewhere).

    A publisher orphaned by a ``kill -9`` of its daemon would otherwise go on writing feeds/
    with a stale view, racing the restarted daemon's own publisher.
    """
    libc = _libc()
    prctl = getattr(libc, "prctl", None)
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os._exit(1)


def end_with_parent_process() -> None:
    """End this pool worker as soon as the process that started it ends (``kill -9`` included).

    A ``ProcessPoolExecutor`` initializer. The parse pool's workers are children of a
    forkserver, which lives as long as they do, and each holds both ends of its own task pipe,
    so neither ``die_with_parent`` nor an EOF tells them that the daemon is gone: orphaned, they
    waited for work forever. ``multiprocessing`` gives every child a sentinel of the process
    that asked for it; a thread waits on it and ends this process.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name=_PARENT_WATCHER, daemon=True).start()


class ForkedCall(Generic[_T]):
    """A function running in a forked child; ``result()`` waits for it and returns or raises what it did."""

    def __init__(self, pid: int, reader: int, what: str) -> None:
        self._pid = pid
        self._reader = reader
        self._what = what
        self._outcome: tuple[str, object] | None = None  # once collected: ("returned" | "raised", value)

    def result(self) -> _T:
        """Wait for the child (once: later calls give the same answer)."""
        if self._outcome is None:
            self._outcome = self._collect()
        kind, value = self._outcome
        if kind == "raised":
            assert isinstance(value, BaseException)
            raise value
        result: _T = value  # type: ignore[assignment]  # what the function returned, unpickled
        return result

    def _collect(self) -> tuple[str, object]:
        chunks = []
        try:
            while chunk := os.read(self._reader, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(self._reader)
            _, status = os.waitpid(self._pid, 0)
        if not chunks:
            return "raised", ChildProcessError(f"{self._what}: the process died ({_describe(status)})")
        kind, value = pickle.loads(b"".join(chunks))
        return str(kind), value

    def cancel(self) -> None:
        """Stop the child now (the parent was interrupted and will not use its result)."""
        if self._outcome is not None:
            return
        with contextlib.suppress(OSError):
            os.kill(self._pid, signal.SIGKILL)
        self._outcome = self._collect()


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _kib(path: str, field: str) -> int | None:
    try:
        with open(path, encoding="ascii") as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _resident_kib() -> int | None:
    """This process's resident size (None where there is no /proc)."""
    return _kib("/proc/self/status", "VmRSS")


def room_for_copies(copies: int) -> bool:
    """True when the machine has memory for ``copies`` more processes of this one's size, with as much to spare.

    A forked copy shares pages only until it touches them, and rendering touches every
    record: count on a full copy each. Unknown (not Linux): True.
    """
    resident = _resident_kib()
    available = _kib("/proc/meminfo", "MemAvailable")
    if resident is None or available is None:
        return True
    return available >= 2 * copies * resident


def can_fork() -> bool:
    """True when this process may fork safely: POSIX, and no other thread that could hold a lock.

    The one thread allowed is ``end_with_parent_process``'s: it waits in a system call holding
    nothing, from the start of a publishing process (a child of the forkserver) to its end.
    """
    others = [thread for thread in threading.enumerate() if thread is not threading.current_thread()]
    return hasattr(os, "fork") and all(thread.name == _PARENT_WATCHER for thread in others)


def fork_call(function: Callable[[], _T], what: str) -> ForkedCall[_T] | None:
    """Start ``function()`` in a forked child, or return None when forking is not safe here (see ``can_fork``).

    The child dies with this process, never runs this process's exit handlers, and
    sends back either the return value or the exception (both must pickle).
    """
    if not can_fork():
        return None
    parent = os.getpid()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid:
        os.close(writer)
        return ForkedCall(pid, reader, what)
    status = 1
    try:
        os.close(reader)
        die_with_parent(parent)
        try:
            payload = pickle.dumps(("returned", function()))
        except BaseException as error:  # everything goes back to the parent
            try:
                payload = pickle.dumps(("raised", error))
            except Exception:  # an exception that does not pickle
                payload = pickle.dumps(("raised", ChildProcessError(f"{what}: {type(error).__name__}: {error}")))
        view = memoryview(payload)
        while view:
            view = view[os.write(writer, view) :]
        status = 0
    finally:
        os._exit(status)
