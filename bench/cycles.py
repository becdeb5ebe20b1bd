"""The benchmark's cycles in ONE long-lived process, as the daemon runs them.

The daemon keeps one store, one fetcher and one parse pool for its whole life, so
its cycles pay no interpreter start-up, no imports and no pool start. This drives
those same parts (``Pipeline.run_all`` then ``publish_from_store``) through a plan
of steps and prints one JSON line per step: its seconds, the outcomes, the files
written, and this process's resident memory (VmRSS) and peak (VmHWM) from /proc,
plus the pool workers' RSS.

Steps (comma-separated ``--plan``):
  full, unchanged, changed, cycle
                   run_all + publish (the names only label the line: the first cold cycle,
                   one where everything answers 304, one after a mutation, any other)
  store            run_all only (fetch + parse + store, nothing published: the newsboat pairing)
  mutate:F         POST /_mutate?fraction=F to ``--server`` (not timed as a cycle)
  publish          publish alone, nothing changed since the last publish
  publish-forced   feeds/ deleted first (and the deletion synced), so every file is rendered and written again
  publish-merged   the merged scope's four files deleted first (news.xml, news.atom, news.json, events.ics):
                   that scope alone is rendered and written again (the write floor's job, in our formats)
  publish-cold     feeds/ and the fragment cache deleted first: every item is rendered again too
  memory:N         N unchanged cycles (run_all + publish), one line each

usage: python -m bench.cycles --config SOURCES_TOML --plan full,cycle,... [--server URL] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing.forkserver
import os
import resource
import shutil
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aggregator import USER_AGENT
from aggregator.config import Config
from aggregator.fetch import Fetcher
from aggregator.fragments import CACHE_FILE
from aggregator.metrics import Metrics
from aggregator.pipeline import Outcome, Pipeline, SourceOutcome
from aggregator.processes import (
    PARSE_WORKER_NAME,
    PUBLISHING_PROCESS_NAME,
    fork_forkserver,
    limit_malloc_arenas,
    parse_pool,
    release_free_memory,
    release_free_memory_every,
)
from aggregator.runtime import (
    DataDirLock,
    PublishStandby,
    base_url_of,
    load_config_apart,
    open_configured_store,
    publish_from_store,
)
from aggregator.store.base import Store

MERGED_FILES = ("news.xml", "news.atom", "news.json", "events.ics")


def proc_status_kb(pid: int | str, field: str) -> int:
    """A ``/proc/PID/status`` field in kB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def pss_kb(pid: int | str) -> int:
    """Proportional set size: shared copy-on-write pages of forked pool workers counted once in a sum."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _parts_of(pss: dict[int, int], pool: set[int]) -> dict[str, int]:
    """KiB of PSS by kind: "main" (this process), "workers" (parse workers and fresh parse processes),
    "publishing" (publishing processes, standby included, and their forks), "forkserver", "other"."""
    main = os.getpid()
    parts = dict.fromkeys(("main", "workers", "publishing", "forkserver", "other"), 0)
    for pid, kib in pss.items():
        name = _process_name(pid)
        if pid == main:
            kind = "main"
        elif name == PARSE_WORKER_NAME:
            kind = "workers"
        elif name == PUBLISHING_PROCESS_NAME:
            kind = "publishing"
        elif pid in pool:
            kind = "forkserver"
        else:
            kind = "other"
        parts[kind] += kib
    return parts


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class TreeSampler:
    """What this process and all of its descendants hold at once, sampled every ``interval`` seconds.

    The per-process peaks of a line come from different moments and count one publishing
    process (the largest child reaped): the publish's helper, forked beside it, is not in them,
    nor a fresh parser process. This sums PSS (pages shared after a fork counted once) and RSS
    over the whole tree at each sample and keeps the highest since the last ``take``. A spike
    shorter than the interval can fall between two samples.
    """

    def __init__(self, interval: float = 0.5, pool: Callable[[], list[int]] = list) -> None:
        self.interval = interval
        self.pool = pool  # the parse pool's processes now (its workers come and go: ``ParsePool.release``)
        self._peaks = (0, 0, 0)
        self._parts: dict[str, int] = {}  # KiB of PSS by kind of process, in the sample of the highest sum
        # KiB: the highest resident peak (VmHWM) of any one publishing process seen so far. They are
        # children of the forkserver, not of this process: RUSAGE_CHILDREN does not count them.
        self.publisher_peak_kib = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        pids = [os.getpid(), *_descendants(os.getpid())]
        pss = {pid: pss_kb(pid) for pid in pids}
        rss = sum(proc_status_kb(pid, "VmRSS") for pid in pids)
        pool_pids = set(self.pool())
        pool = sum(pss.get(pid) or pss_kb(pid) for pid in pool_pids)
        total = sum(pss.values())
        publishing = [pid for pid in pids if _process_name(pid) == PUBLISHING_PROCESS_NAME]
        publisher_peak = max((proc_status_kb(pid, "VmHWM") for pid in publishing), default=0)
        with self._lock:
            self.publisher_peak_kib = max(self.publisher_peak_kib, publisher_peak)
            high = self._peaks
            if total > high[0]:
                self._parts = _parts_of(pss, pool_pids)
            self._peaks = (max(high[0], total), max(high[1], rss), max(high[2], pool))

    def take(self) -> tuple[float, float, float, dict[str, float]]:
        """The highest sums in MB since the last call: the tree's PSS and RSS, the pool's PSS, and the
        tree's PSS at its highest by kind of process (``_parts_of``)."""
        self.sample()
        with self._lock:
            peaks, self._peaks = self._peaks, (0, 0, 0)
            parts, self._parts = self._parts, {}
        pss, rss, pool = (round(kib / 1024, 1) for kib in peaks)
        return pss, rss, pool, {kind: round(kib / 1024, 1) for kind, kib in parts.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def settle_deletion() -> None:
    """Let the disk finish deleting what the step removed before the publish is timed.

    Deleting 451 MB of feeds leaves the filesystem writing back and discarding for seconds; on
    the benchmark's virtual disk a publish started at once wrote 3 s slower (render 11.3-11.5 s
    against 8.3-8.7 s after a sync, back to back). That work is the step's, not the publish's:
    a daemon never deletes feeds/ before it publishes.
    """
    os.sync()


class Driver:
    """One store, fetcher, pool and pipeline for every step, like ``aggregator run``."""

    def __init__(self, config: Config, store: Store, server: str | None, seed: int, isolated: bool) -> None:
        self.isolated = isolated  # publish in a short-lived child process, as the daemons do
        self.config = config
        self.store = store
        self.server = server
        self.seed = seed
        self.fetcher = Fetcher(config.defaults, user_agent=USER_AGENT)
        self.executor = parse_pool(os.cpu_count() or 2)  # the daemon's pool (forkserver, memory given back)
        self.sampler = TreeSampler(pool=self.pool_pids)  # started by ``run``; ``line`` takes its peaks per step
        # With the daemon's metrics too: 10,000 sources' series took 78 MB of it until they were kept compactly.
        self.pipeline = Pipeline(
            config, store, self.fetcher, executor=self.executor, metrics=Metrics(), remember_states=True
        )
        self.sources = [s for s in config.sources if s.enabled]
        self.split: dict[str, Any] = {}  # the last step's parts: run_s, publish_s, fragments reused/rendered
        self.standby = PublishStandby()
        # BENCH_READ_AHEAD=0 measures the publish without it (an A/B of the same corpus and machine).
        self.read_ahead = isolated and os.environ.get("BENCH_READ_AHEAD", "1") != "0"

    async def close(self) -> None:
        self.standby.dismiss()
        await self.fetcher.aclose()
        self.executor.shutdown()

    async def cycle(self, *, publish: bool = True) -> tuple[list[SourceOutcome], int]:
        started = time.perf_counter()

        def on_done(outcome: SourceOutcome) -> None:
            # As the daemon does: the first change of a batch starts its publishing process, which
            # reads the store while the other sources are fetched.
            if publish and self.read_ahead and outcome.outcome is Outcome.CHANGED:
                self.standby.start(self.config)

        outcomes = await self.pipeline.run_all(self.sources, on_done=on_done)
        self.split["run_s"] = round(time.perf_counter() - started, 3)
        self.executor.release()  # as the daemon does before it publishes a batch
        written = await self.publish() if publish else 0
        await asyncio.to_thread(release_free_memory)  # as the daemon does after a batch's publish
        return outcomes, written

    async def publish(self) -> int:
        started = time.perf_counter()
        report = await asyncio.to_thread(
            publish_from_store,
            self.config,
            self.store,
            now=datetime.now(UTC),
            base_url=base_url_of(self.config),
            isolated=self.isolated,
            standby=self.standby,
        )
        self.split["publish_s"] = round(time.perf_counter() - started, 3)
        self.split["fragments_reused"] = report.fragments_reused
        self.split["fragments_rendered"] = report.fragments_rendered
        self.split["fragments_spilled"] = report.fragments_spilled
        self.split["publish_processes"] = report.processes
        self.split["publish_read_s"] = round(report.read_seconds, 3)
        self.split["publish_merge_s"] = round(report.merge_seconds, 3)
        self.split["publish_render_s"] = round(report.render_seconds, 3)
        self.split["publish_read_ahead"] = report.read_ahead
        return len(report.written)

    def mutate(self, fraction: str) -> dict[str, Any]:
        if not self.server:
            raise SystemExit("mutate needs --server")
        return self.server_call("POST", f"/_mutate?fraction={fraction}&seed={self.seed}")

    def pool_pids(self) -> list[int]:
        """The parse pool's workers alive now and the forkserver they are forked from: its share of the
        pages it preloaded is the pool's memory too (PSS splits them between it and the workers)."""
        server = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
        return [*self.executor.worker_pids(), *([server] if isinstance(server, int) else [])]

    def line(self, step: str, seconds: float, outcomes: list[SourceOutcome] | None, written: int) -> dict[str, Any]:
        workers = self.executor.worker_pids()
        pool = self.pool_pids()
        split, self.split = self.split, {}
        tree_pss, tree_rss, pool_peak, tree_parts = self.sampler.take()
        return {
            "step": step,
            "seconds": round(seconds, 3),
            **split,
            "outcomes": dict(Counter(str(o.outcome) for o in outcomes or [])),
            "new": sum(o.summary.new for o in outcomes or []),
            "updated": sum(o.summary.updated for o in outcomes or []),
            "written": written,
            "rss_mb": round(proc_status_kb("self", "VmRSS") / 1024, 1),
            "peak_mb": round(proc_status_kb("self", "VmHWM") / 1024, 1),
            "workers_rss_mb": [round(proc_status_kb(pid, "VmRSS") / 1024, 1) for pid in workers],
            "pss_total_mb": round(sum(pss_kb(pid) for pid in ("self", *map(str, pool))) / 1024, 1),
            # the pool's highest PSS during the step (workers and forkserver): its workers end before a publish
            "workers_pss_mb": pool_peak,
            "workers_pss_now_mb": round(sum(pss_kb(pid) for pid in pool) / 1024, 1),
            # the largest child so far: the isolated publisher (reaped, or a child of the forkserver)
            "children_peak_mb": round(
                max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, self.sampler.publisher_peak_kib) / 1024, 1
            ),
            # the whole process tree at once, the highest sample during the step (``TreeSampler``)
            "tree_pss_peak_mb": tree_pss,
            "tree_rss_peak_mb": tree_rss,
            # who held it then: this process, the parse workers, the forkserver, publishing processes, others
            "tree_pss_peak_parts_mb": tree_parts,
        }

    def server_call(self, method: str, path: str) -> dict[str, Any]:
        assert self.server
        request = urllib.request.Request(f"{self.server}{path}", method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=600) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    async def step(self, step: str) -> list[dict[str, Any]]:
        """Run one step; with ``--server`` each line also carries the server's counts for that step."""
        if self.server and not step.startswith(("mutate", "memory")):
            self.server_call("POST", "/_stats/reset")
            lines = await self.timed_step(step)
            stats = self.server_call("GET", "/_stats")
            for line in lines:
                line["server"] = {k: stats.get(k) for k in ("requests", "200s", "304s", "bytes_sent")}
            return lines
        return await self.timed_step(step)

    async def timed_step(self, step: str) -> list[dict[str, Any]]:
        name, _, arg = step.partition(":")
        if name == "mutate":
            started = time.perf_counter()
            answer = self.mutate(arg or "0.1")
            line = self.line(step, time.perf_counter() - started, None, 0)
            line["changes"] = len(answer.get("changes", []))
            return [line]
        if name == "memory":
            lines = []
            for i in range(int(arg or "10")):
                started = time.perf_counter()
                cycle_outcomes, cycle_written = await self.cycle()
                seconds = time.perf_counter() - started
                gc.collect()
                lines.append(self.line(f"memory:{i + 1}", seconds, cycle_outcomes, cycle_written))
                print(json.dumps(lines[-1]), flush=True)
            return []
        started = time.perf_counter()
        outcomes: list[SourceOutcome] | None = None
        if name in ("full", "unchanged", "changed", "cycle"):
            outcomes, written = await self.cycle()
        elif name == "store":
            outcomes, written = await self.cycle(publish=False)
        elif name == "publish":
            written = await self.publish()
        elif name == "publish-forced":
            shutil.rmtree(self.config.feeds_dir, ignore_errors=True)
            settle_deletion()
            started = time.perf_counter()
            written = await self.publish()
        elif name == "publish-merged":
            # The floor's job in our terms: the merged scope's files (news.xml and events.ics, with
            # news.atom and news.json) deleted, so that scope alone is rendered and written again.
            for merged in MERGED_FILES:
                (self.config.feeds_dir / merged).unlink(missing_ok=True)
            settle_deletion()
            started = time.perf_counter()
            written = await self.publish()
        elif name == "publish-cold":
            shutil.rmtree(self.config.feeds_dir, ignore_errors=True)
            for cache in self.config.data_dir.glob(CACHE_FILE + "*"):
                cache.unlink()
            settle_deletion()
            started = time.perf_counter()
            written = await self.publish()
        else:
            raise SystemExit(f"unknown step {step!r}")
        return [self.line(step, time.perf_counter() - started, outcomes, written)]


async def run(config: Config, plan: list[str], server: str | None, seed: int, isolated: bool) -> None:
    store = open_configured_store(config)
    driver = Driver(config, store, server, seed, isolated)
    releaser = asyncio.create_task(release_free_memory_every())  # as the daemon does
    driver.sampler.start()
    try:
        for step in plan:
            for line in await driver.step(step):
                print(json.dumps(line), flush=True)
    finally:
        driver.sampler.stop()
        releaser.cancel()
        await driver.close()
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--plan", default="full,memory:10")
    parser.add_argument("--server", help="the corpus server's base URL (for mutate steps)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cycles", type=int, help="shorthand for --plan full,memory:N (earlier interface)")
    parser.add_argument(
        "--in-process-publish", action="store_true", help="publish in this process (as the CLI does), not a child"
    )
    args = parser.parse_args()
    plan = ["full", f"memory:{args.cycles}"] if args.cycles else args.plan.split(",")
    limit_malloc_arenas()  # as ``aggregator run`` does, before any thread starts
    fork_forkserver()  # as ``aggregator run`` does, before anything is read
    config = load_config_apart(args.config)  # as the daemons read it
    with DataDirLock(config.data_dir):
        asyncio.run(run(config, plan, args.server, args.seed, not args.in_process_publish))
    return 0


if __name__ == "__main__":
    sys.exit(main())
