"""Memory a long-lived process holds free goes back to the system; its children get two malloc arenas.

Each check runs in a fresh interpreter: malloc's state is per process, and a test must not
depend on what the suite allocated before it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")


def _run(code: str, **environment: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | environment
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    return done.stdout.split()


def test_memory_freed_below_a_live_allocation_is_returned_to_the_system() -> None:
    released, before, after = _run(
        """
        from aggregator.processes import release_free_memory

        def resident_mb():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024

        blocks = [bytes(2048) for _ in range(100_000)]  # 200 MB from malloc's heap
        kept = bytes(2048)  # allocated last: it holds the top of the heap, so free() cannot shrink it
        del blocks
        before = resident_mb()
        print(release_free_memory(), before, resident_mb())
        """
    )
    assert released == "True"
    assert int(before) - int(after) > 150, (before, after)


def test_processes_started_after_the_limit_get_two_arenas_unless_the_operator_chose() -> None:
    code = """
        import multiprocessing, os
        from aggregator.processes import limit_malloc_arenas

        limited = limit_malloc_arenas()
        child = multiprocessing.get_context("forkserver").Pool(1)
        print(limited, child.apply(os.getenv, ("MALLOC_ARENA_MAX",)))
        child.close()
        """
    assert _run(code) == ["True", "2"]
    assert _run(code, MALLOC_ARENA_MAX="4") == ["True", "4"]


def test_a_release_collects_after_a_big_job_or_growth_and_only_trims_otherwise() -> None:
    """A full collection costs tens of milliseconds on a daemon's heap: only when garbage is to be expected."""
    counts = _run(
        """
        import gc
        from aggregator.processes import BIG_JOB_BYTES, COLLECT_AFTER_GROWTH_KIB, note_job_done, release_memory

        full = []
        gc.callbacks.append(lambda phase, info: full.append(1) if phase == "start" and info["generation"] == 2 else None)
        gc.disable()  # only the collections release_memory asks for are counted
        settled = release_memory(None)
        made = [len(full)]
        note_job_done(BIG_JOB_BYTES - 1)  # a small document: nothing worth a full collection
        settled = release_memory(settled)
        made.append(len(full))
        note_job_done(BIG_JOB_BYTES)
        settled = release_memory(settled)
        made.append(len(full))
        settled = release_memory(settled)  # the big job's collection is done: not again
        made.append(len(full))
        release_memory(settled - COLLECT_AFTER_GROWTH_KIB)  # grown by that much since the last call
        made.append(len(full))
        print(*made, settled > 0)
        """
    )
    assert counts == ["0", "0", "1", "1", "2", "True"]


def _calendar(events: int) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//clusterfeeds tests//EN"]
    first = datetime(2027, 1, 4, 8, 0)
    for i in range(events):
        start = first + timedelta(hours=i)
        lines += [
            "BEGIN:VEVENT",
            f"UID:session-{i}@kunststoff-cluster.at",
            "DTSTAMP:20261101T000000Z",
            f"DTSTART;TZID=Europe/Vienna:{start:%Y%m%dT%H%M%S}",
            f"DTEND;TZID=Europe/Vienna:{start + timedelta(minutes=45):%Y%m%dT%H%M%S}",
            f"SUMMARY:Cluster session {i}: hydrogen and circular plastics",
            "LOCATION:Linz\\, Design Center",
            f"DESCRIPTION:Session {i} of the cluster conference: talks\\, matchmaking and a site visit.",
            "END:VEVENT",
        ]
    return ("\r\n".join([*lines, "END:VCALENDAR"]) + "\r\n").encode()


def test_a_parse_worker_gives_back_what_a_big_calendar_left_within_seconds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The daemon's pool worker after a 5 MB calendar: back to its size before it, not 19 MB above for good."""
    body = tmp_path / "big.ics"
    body.write_bytes(_calendar(15_000))
    lines = _run(
        f"""
        import os, time
        from datetime import UTC, datetime
        from pathlib import Path
        from aggregator.config import load
        from aggregator.parse_jobs import parse_job
        from aggregator.processes import PARSE_WORKER_RELEASE_S, parse_pool

        def resident_mb(pid):
            for line in open(f"/proc/{{pid}}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024

        if __name__ == "__main__":
            config = Path({str(tmp_path / "sources.toml")!r})
            config.write_text('[[source]]\\nname = "kunststoff"\\nurl = "https://www.kunststoff-cluster.at/events.ics"\\n')
            source = load(config).sources[0]
            pool = parse_pool(1)
            pid = pool.submit(os.getpid).result()
            now = datetime.now(UTC)
            small = pool.submit(parse_job, b"BEGIN:VCALENDAR\\r\\nEND:VCALENDAR\\r\\n", source, source.url, "text/calendar", now)
            small.result()
            before = resident_mb(pid)
            body = Path({str(body)!r}).read_bytes()
            parsed = pool.submit(parse_job, body, source, source.url, "text/calendar", now).result()
            count = len(parsed.records)
            del parsed, body
            deadline = time.monotonic() + 3 * PARSE_WORKER_RELEASE_S
            while resident_mb(pid) > before + 8 and time.monotonic() < deadline:
                time.sleep(0.5)
            print(count, before, resident_mb(pid))
            pool.shutdown()
        """
    )
    count, before, after = map(int, lines)
    assert count == 15_000
    assert after <= before + 8, f"worker at {after} MB, {before} MB before the calendar"
