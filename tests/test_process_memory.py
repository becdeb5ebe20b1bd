"""Memory a long-lived process holds free goes back to the system; its children get two malloc arenas.

Each check runs in a fresh interpreter: malloc's state is per process, and a test must not
depend on what the suite allocated before it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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
