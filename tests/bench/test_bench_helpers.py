"""The benchmark harness's pure helpers: truth check, memory figures, the results table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "bench"


def _load(name: str) -> ModuleType:
    """bench/ is not an installed package: load its modules from the repository by path."""
    spec = importlib.util.spec_from_file_location(f"bench.{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


truth = _load("truth")
run = _load("run")


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / "truth.jsonl").read_text(encoding="utf-8").splitlines()]


def test_news_check_counts_a_tracking_link_repost_as_a_duplicate_and_finds_the_missing_story() -> None:
    check = truth.check_news(_rows(), (FIXTURES / "news.json").read_text(encoding="utf-8"))

    assert check.as_dict() == {"truth": 3, "published": 4, "matched": 2, "missing": 1, "duplicated": 1, "unknown": 1}


def test_event_check_matches_instants_across_zones_and_counts_events_announced_in_news() -> None:
    check = truth.check_events(_rows(), (FIXTURES / "events.ics").read_bytes())

    # Truth: the Stammtisch (its re-post is the same event), the matchmaking day, the announced forum.
    # The matchmaking day was published at 09:30Z instead of 08:30Z: missing, and one unknown.
    assert check.as_dict() == {"truth": 3, "published": 3, "matched": 2, "missing": 1, "duplicated": 0, "unknown": 1}


def test_event_key_uses_the_utc_instant_and_ignores_case_and_spacing() -> None:
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    vienna = datetime(2026, 12, 3, 18, 0, tzinfo=ZoneInfo("Europe/Vienna"))
    assert truth.event_key("Wasserstoff-Stammtisch\u00a0 LINZ", vienna) == (
        "wasserstoff-stammtisch linz",
        "2026-12-03T17:00:00Z",
    )
    assert truth.event_key("Holzbau-Forum", date(2027, 1, 12)) == ("holzbau-forum", "2027-01-12")


def test_memory_growth_is_measured_from_the_end_of_the_warm_up_to_the_last_cycle() -> None:
    lines = [
        {"cycle": i, "seconds": 2.0 + i / 100, "rss_mb": rss, "peak_mb": rss + 20, "workers_rss_mb": [60.0, 61.0]}
        for i, rss in enumerate([150.0, 180.0, 200.0, 200.5, 201.0, 201.0, 201.5, 202.0, 202.0, 202.0, 204.0, 203.0], 1)
    ]
    assert run.memory_figures(lines) == {
        "daemon_cycles": 12,
        "daemon_cycle_s_median": 2.07,
        "daemon_peak_rss_mb": 224.0,
        "daemon_rss_after_warmup_mb": 150.0,
        "daemon_rss_last_mb": 203.0,
        "memory_growth_pct": 35.33,
        "daemon_with_workers_rss_last_mb": 324.0,
    }


def test_table_marks_each_target_met_or_missed() -> None:
    small = run.WorkloadResult(
        "small", {"full_cycle_s": {"min": 7.3, "median": 8.5}, "unchanged_cycle_vs_fetch_304": 1.1}
    )
    medium = run.WorkloadResult("medium", {"unchanged_cycle_vs_fetch_304": 2.6, "files_written": 4166})

    assert run.table_lines([small, medium]) == [
        "figure                                    small             medium   target   met",
        "full_cycle_s                            7.3/8.5               None",
        "unchanged_cycle_vs_fetch_304                1.1                2.6      1.3   yes/NO",
        "files_written                              None               4166",
    ]


def test_the_tree_sampler_counts_a_child_while_it_lives_and_forgets_it_at_the_next_step() -> None:
    """The whole tree at once: a child holding 60 MB is in the step's peak, and not in the next.

    The child stands for the parse pool too (its workers end before a publish): the pool's peak
    of a step is what it held while it lived.
    """
    import subprocess
    import sys
    import time

    pool: list[int] = []
    sampler = _load("cycles").TreeSampler(interval=0.05, pool=lambda: list(pool))
    sampler.start()
    try:
        before_pss, before_rss, before_pool, _ = sampler.take()
        named = "open('/proc/self/comm', 'w').write('cf-parse')"  # as a parse worker names itself
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import time; {named}; held = b'x' * 60_000_000; print(1, flush=True); time.sleep(2)",
            ],
            stdout=subprocess.PIPE,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"1\n"
        pool.append(child.pid)
        time.sleep(0.3)  # a few samples while it holds them
        during_pss, during_rss, during_pool, during_parts = sampler.take()
        child.wait()
        child.stdout.close()
        sampler.take()  # the rest of the child's life
        time.sleep(0.2)
        after_pss, _, after_pool, after_parts = sampler.take()
    finally:
        sampler.stop()
    assert during_pss - before_pss > 55, (before_pss, during_pss)
    assert during_rss - before_rss > 55, (before_rss, during_rss)
    assert after_pss < during_pss - 55, (during_pss, after_pss)
    assert before_pool == 0.0
    assert during_pool > 55, during_pool
    assert after_pool == 0.0  # its /proc entry is gone
    # Who held the peak: this process and the worker, nothing else.
    assert during_parts["workers"] > 55, during_parts
    assert during_parts["main"] > 10, during_parts
    assert during_parts["publishing"] == during_parts["forkserver"] == during_parts["other"] == 0.0
    assert abs(sum(during_parts.values()) - during_pss) < 0.5
    assert after_parts["workers"] == 0.0


def test_the_tree_sampler_keeps_the_highest_peak_of_a_publishing_process_after_it_ends() -> None:
    """Publishing processes are children of the forkserver: RUSAGE_CHILDREN never sees them."""
    import subprocess
    import sys
    import time

    sampler = _load("cycles").TreeSampler(interval=0.05)
    sampler.start()
    try:
        named = "open('/proc/self/comm', 'w').write('cf-publish')"  # as a publishing process names itself
        script = f"import time; {named}; held = b'x' * 60_000_000; del held; print(1, flush=True); time.sleep(0.5)"
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert child.stdout is not None
        assert child.stdout.readline() == b"1\n"  # its 60 MB are freed: only its high-water mark tells
        time.sleep(0.3)
        child.wait()
        child.stdout.close()
        sampler.take()
    finally:
        sampler.stop()
    assert sampler.publisher_peak_kib / 1024 > 55, sampler.publisher_peak_kib
