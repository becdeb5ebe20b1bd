"""The daemon's parse pool: workers start with a batch's first job and end when it is released.

Real processes from the real forkserver: pids are read from the workers themselves and their
ending from /proc.
"""

from __future__ import annotations

import os
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from aggregator.processes import parse_pool


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether ``pid`` has ended (or is a zombie nobody waits for) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


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
        assert _gone(first)
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
