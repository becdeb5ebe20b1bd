"""Processes seen from /proc: a test's view of a daemon's children and of whether they still run.

Plain module (not a conftest) so any test area can import it (``pythonpath = ["tests"]``).
"""

from __future__ import annotations

import time
from pathlib import Path

from aggregator.processes import PUBLISHING_PROCESS_NAME, RESOURCE_TRACKER_NAME


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (of all its threads)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, recursively."""
    return [below for child in children(pid) for below in (child, *descendants(child))]


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped (a zombie is gone for a test's purpose)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in "ZX"


def publishing_children(pid: int) -> list[int]:
    """The publishing processes below ``pid`` (and their forks): named so by ``init_publishing_process``.

    Parse workers, the forkserver and the resource tracker go by other names.
    """
    found = []
    for child in descendants(pid):
        try:
            name = Path(f"/proc/{child}/comm").read_text().strip()
        except OSError:
            continue
        if name == PUBLISHING_PROCESS_NAME:
            found.append(child)
    return found


def waits_opening_a_fifo(pid: int) -> bool:
    """A thread of ``pid`` sleeps in the kernel until a FIFO it opens gets its other end.

    A test that puts a FIFO where a publish reads an old file holds that publish for as long as
    it likes, without timing anything.
    """
    try:
        return any((task / "wchan").read_text() == "wait_for_partner" for task in Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False


def forkserver_of(daemon_pid: int) -> int:
    """The daemon's forkserver: its child that is a fork of it (``fork_forkserver``: the same command line), not the resource tracker."""
    own_command = Path(f"/proc/{daemon_pid}/cmdline").read_bytes()
    forks = []
    for pid in children(daemon_pid):
        try:
            if (
                Path(f"/proc/{pid}/cmdline").read_bytes() == own_command
                and Path(f"/proc/{pid}/comm").read_text().strip() != RESOURCE_TRACKER_NAME
            ):
                forks.append(pid)
        except OSError:
            continue
    assert len(forks) == 1, f"forks of {daemon_pid}: {forks}"
    return forks[0]


def ends_within(pid: int, timeout: float = 10.0) -> bool:
    """Whether ``pid`` ends (or is a zombie nobody waits for) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running(pid):
            return True
        time.sleep(0.05)
    return False
