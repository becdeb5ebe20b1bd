"""Many fetch + publish cycles in ONE process, as the daemon runs them: memory over time.

``aggregator run`` cannot be told to poll 100 times quickly (intervals are at least a
minute), so this drives the daemon's own parts, the same ``Pipeline`` over one store,
one fetcher and one process pool, then ``publish_from_store``, back to back. After each
cycle it prints one JSON line: the cycle, its seconds, the outcomes, and this process's
resident memory (VmRSS) and peak (VmHWM) from /proc, plus the pool workers' RSS.

usage: python -m bench.cycles --config SOURCES_TOML --cycles N
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from aggregator import USER_AGENT
from aggregator import config as config_module
from aggregator.fetch import Fetcher
from aggregator.pipeline import Pipeline
from aggregator.runtime import DataDirLock, base_url_of, open_configured_store, publish_from_store


def proc_status_kb(pid: int | str, field: str) -> int:
    """A ``/proc/PID/status`` field in kB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


async def run(config_path: Path, cycles: int) -> None:
    config = config_module.load(config_path)
    store = open_configured_store(config)
    fetcher = Fetcher(config.defaults, user_agent=USER_AGENT)
    executor = ProcessPoolExecutor(max_workers=os.cpu_count() or 2)
    pipeline = Pipeline(config, store, fetcher, executor=executor)
    chosen = [s for s in config.sources if s.enabled]
    try:
        for cycle in range(1, cycles + 1):
            started = time.perf_counter()
            outcomes = await pipeline.run_all(chosen)
            report = await asyncio.to_thread(
                publish_from_store, config, store, now=datetime.now(UTC), base_url=base_url_of(config)
            )
            seconds = time.perf_counter() - started
            gc.collect()
            workers = getattr(executor, "_processes", {}) or {}
            line = {
                "cycle": cycle,
                "seconds": round(seconds, 3),
                "outcomes": dict(Counter(str(o.outcome) for o in outcomes)),
                "written": len(report.written),
                "rss_mb": round(proc_status_kb("self", "VmRSS") / 1024, 1),
                "peak_mb": round(proc_status_kb("self", "VmHWM") / 1024, 1),
                "workers_rss_mb": [round(proc_status_kb(pid, "VmRSS") / 1024, 1) for pid in workers],
            }
            print(json.dumps(line), flush=True)
    finally:
        await fetcher.aclose()
        executor.shutdown()
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--cycles", type=int, default=100)
    args = parser.parse_args()
    config = config_module.load(args.config)
    with DataDirLock(config.data_dir):
        asyncio.run(run(args.config, args.cycles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
