"""The daemon's parse pool: workers start with a batch's first job and end when it is released.

Real processes from the real forkserver: pids are read from the workers themselves and their
ending from /proc.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest
from processtree import descendants, ends_within, running

from aggregator.processes import ParsePool, parse_pool


def test_released_workers_end_after_their_jobs_and_the_next_job_starts_new_ones() -> None:
    pool = parse_pool(1)
    try:
        assert pool.worker_pids() == []  # none before the first job
        assert pool.started == 0
        first = pool.submit(os.getpid).result()
        assert pool.worker_pids() == [first]
        slow = pool.submit(time.sleep, 0.5)
        pool.release()
        assert pool.worker_pids() == []
        assert slow.result() is None  # a job given before the release still runs to its end
        assert ends_within(first)
        second = pool.submit(os.getpid).result()
        assert second != first
        assert pool.started == 2
    finally:
        pool.shutdown()


def test_a_pool_broken_by_a_killed_worker_is_replaced_at_the_next_job() -> None:
    pool = parse_pool(1)
    try:
        doomed = pool.submit(os._exit, 1)  # as a worker killed by the kernel's OOM killer
        with pytest.raises(BrokenProcessPool):
            doomed.result()
        assert pool.submit(sum, [1, 2, 3]).result() == 6
        assert pool.started == 2
    finally:
        pool.shutdown()


def test_a_year_of_batches_leaves_no_descriptor_thread_or_worker_behind() -> None:
    """A daemon releases its pool at every batch: 30 batches must cost nothing that stays."""

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    pool = parse_pool(2)
    try:
        pool.submit(os.getpid).result()  # the forkserver and its pipes exist from here on
        pool.release()
        time.sleep(0.5)
        before = (descriptors(), threading.active_count())
        workers: set[int] = set()
        for _ in range(30):
            workers |= {future.result() for future in [pool.submit(os.getpid) for _ in range(4)]}
            pool.release()
        assert all(ends_within(pid) for pid in workers)
        deadline = time.monotonic() + 10
        while (descriptors(), threading.active_count()) != before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (descriptors(), threading.active_count()) == before
        assert pool.started == 31
        assert len(workers) >= 30  # new workers every batch
        assert not [pid for pid in descendants(os.getpid()) if pid in workers and running(pid)]
    finally:
        pool.shutdown()


def _run_side_by_side(pool: ParsePool, jobs: int) -> None:
    """``jobs`` jobs at once, each long enough that none finds a worker idle: as many workers as the pool allows."""
    for job in [pool.submit(time.sleep, 0.3) for _ in range(jobs)]:
        job.result()


def test_a_reserved_core_narrows_the_pool_by_a_worker_until_the_block_ends() -> None:
    """A process parsing a big document beside the pool takes a core: the idle workers go, the jobs
    meanwhile run in a pool of one, and after the block in a pool of two again."""
    pool = parse_pool(2)
    try:
        _run_side_by_side(pool, 2)
        wide = pool.worker_pids()
        assert len(wide) == 2
        with pool.reserved():
            assert pool.worker_pids() == []
            assert all(ends_within(pid) for pid in wide)
            _run_side_by_side(pool, 2)
            (narrow,) = pool.worker_pids()
            with pool.reserved():  # a second big document: a pool of one is as narrow as it gets
                assert pool.worker_pids() == [narrow]
            assert pool.worker_pids() == [narrow]
        assert pool.worker_pids() == []
        assert ends_within(narrow)
        _run_side_by_side(pool, 2)
        assert len(pool.worker_pids()) == 2
        assert pool.started == 3
    finally:
        pool.shutdown()


def test_a_pool_of_one_stays_as_it_is_when_a_core_is_reserved() -> None:
    pool = parse_pool(1)
    try:
        worker = pool.submit(os.getpid).result()
        with pool.reserved():
            assert pool.submit(os.getpid).result() == worker
        assert pool.submit(os.getpid).result() == worker
        assert pool.started == 1
    finally:
        pool.shutdown()
