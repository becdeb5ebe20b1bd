"""``PublishRuns``: how long a daemon rests between publishes, and what a stop runs last.

The real stop of a publish that cannot end is tested on the daemons themselves
(``test_daemon_lifecycle.py``, ``tests/workers/test_processes.py``); here the clock is the
class's declared seam, so the rest is checked in exact seconds without waiting for any.
"""

from __future__ import annotations

import asyncio
import logging

from aggregator.runtime import PublishRuns, PublishStandby


def test_the_next_publish_may_start_twice_as_long_after_the_last_as_it_took() -> None:
    now = [1_000.0]
    runs = PublishRuns(PublishStandby(), logging.getLogger("test"), clock=lambda: now[0])
    assert runs.rest_left() == 0.0  # nothing published yet

    def publish_of_40_seconds() -> None:
        now[0] += 40.0

    asyncio.run(runs.run(publish_of_40_seconds))
    assert runs.rest_left() == 80.0
    now[0] += 30.0
    assert runs.rest_left() == 50.0
    now[0] += 50.0
    assert runs.rest_left() == 0.0

    asyncio.run(runs.run(lambda: None))  # a publish with nothing to do rests nothing
    assert runs.rest_left() == 0.0


def test_a_stop_runs_the_last_publish_once_and_none_after_it() -> None:
    ran: list[str] = []
    runs = PublishRuns(PublishStandby(), logging.getLogger("test"))

    async def stop_twice() -> None:
        await runs.run(lambda: ran.append("batch"))
        await runs.finish(10.0, lambda: ran.append("last"))
        await runs.finish(10.0, lambda: ran.append("after the stop"))

    asyncio.run(stop_twice())
    assert ran == ["batch", "last"]
    assert runs.standby.aborted
