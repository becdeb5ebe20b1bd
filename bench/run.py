"""``make bench``: our cycles against the floors of the same run, on the shared corpus.

For each workload: generate the corpus (shared/bench/make_corpus.py), serve it
with shared/bench/serve_corpus.py (8 loopback hosts, 20 ms latency), measure
the floors (shared/bench/floor.py, newsboat when installed) against that same
server, then run the real ``aggregator`` CLI: a first full cycle, an unchanged
cycle (all 304), a cycle after 10 % of the corpus changed, publish alone, and
100 unchanged cycles for memory (large only). Every figure is printed as a
ratio to its floor and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCH = Path(os.environ.get("CLUSTERFEEDS_SHARED", REPO.parent / "shared")) / "bench"
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/clusterfeeds-bench"))
BENCH_VENV = WORK / "bench-venv"
CONCURRENCY = 16
LATENCY_MS = 20
JITTER_MS = 5
HOSTS = 8
# The server stops itself after this long if the driver died without stopping it. A whole large
# run (floors, newsboat, 100 memory cycles, the CLI) takes about 2.5 hours on 2 cores: the first
# one outlived a 2-hour limit, and its CLI steps met a closed port.
SERVER_MAX_SECONDS = 8 * 3600

TARGETS = {
    "full_cycle_vs_fetch_plus_parse": 1.5,
    "full_cycle_vs_newsboat_cold": 1.0,
    "unchanged_cycle_vs_fetch_304": 1.3,
    "changed_10pct_vs_full_cycle": 0.35,
    "publish_forced_vs_write_floor": 2.0,
    "publish_merged_vs_write_floor": 2.0,  # the same target, like for like: the floor's files only
    "feeds_only_vs_newsboat_cold": 1.0,  # the same target, like for like: the feeds newsboat reloads
    "peak_rss_all_processes_mb": 300,
    "memory_growth_pct": 5,
}


# Per step, into latest.json's series: the tree's peaks, the driver's and the publishing process's.
STEP_MEMORY_KEYS = (
    "seconds",
    "tree_pss_peak_mb",
    "tree_rss_peak_mb",
    "peak_mb",
    "children_peak_mb",
    "workers_pss_mb",
    "rss_mb",
    "tree_pss_peak_parts_mb",
)


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    returncode: int


@dataclass
class WorkloadResult:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    floors: dict[str, Any] = field(default_factory=dict)
    # Per-cycle values, in latest.json only: whether memory levels off or keeps rising.
    series: dict[str, Any] = field(default_factory=dict)


def child_env() -> dict[str, str]:
    """The CLI's environment: bytecode cached (as in any installed package) outside the repository.

    Our sandbox sets PYTHONDONTWRITEBYTECODE, which would make every timed run compile
    the whole package and its imports first; an installed clusterfeeds has its .pyc files.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
    return env


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def bench_python() -> Path:
    """A venv with the harness's pinned requirements (aiohttp server, floor libraries)."""
    python = BENCH_VENV / "bin" / "python"
    stamp = BENCH_VENV / ".stamp"
    want = (SHARED_BENCH / "requirements.txt").read_text()
    if not python.exists() or not stamp.exists() or stamp.read_text() != want:
        log("creating the harness venv (first run only)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(BENCH_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(SHARED_BENCH / "requirements.txt")], check=True
        )
        stamp.write_text(want)
    return python


def corpus(python: Path, workload: str, seed: int) -> Path:
    out = WORK / f"corpus-{workload}-{seed}"
    if not (out / "manifest.json").exists():
        log(f"generating the {workload} corpus")
        subprocess.run(
            [str(python), str(SHARED_BENCH / "make_corpus.py"), "--workload", workload, "--seed", str(seed),
             "--out", str(out), "--force"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return out


class CorpusServer:
    def __init__(self, python: Path, corpus_dir: Path, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        port_file = run_dir / "port"
        port_file.unlink(missing_ok=True)
        self.log = open(run_dir / "server.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(python), str(SHARED_BENCH / "serve_corpus.py"), str(corpus_dir), "--port", "0",
             "--port-file", str(port_file), "--write-sources", str(run_dir / "served-sources.toml"),
             "--latency-ms", str(LATENCY_MS), "--jitter-ms", str(JITTER_MS), "--hosts", str(HOSTS),
             "--max-seconds", str(SERVER_MAX_SECONDS)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        for _ in range(3000):
            if port_file.exists() and port_file.read_text().strip():
                break
            if self.proc.poll() is not None:
                raise RuntimeError((run_dir / "server.log").read_text())
            time.sleep(0.1)
        self.base = f"http://127.0.0.1:{port_file.read_text().strip()}"

    def post(self, path: str) -> Any:
        request = urllib.request.Request(self.base + path, method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=600) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def floors(python: Path, corpus_dir: Path, run_dir: Path, repeat: int) -> dict[str, dict[str, Any]]:
    log("measuring floors")
    out = subprocess.run(
        [str(python), str(SHARED_BENCH / "floor.py"), "--corpus", str(corpus_dir), "--sources",
         str(run_dir / "served-sources.toml"), "--concurrency", str(CONCURRENCY), "--repeat", str(repeat)],
        check=True, capture_output=True, text=True, cwd=SHARED_BENCH,
    )  # fmt: skip
    result: dict[str, dict[str, Any]] = {}
    for line in out.stdout.splitlines():
        row = json.loads(line)
        result[row.get("floor", "context")] = row
    peer = subprocess.run(
        ["bash", str(SHARED_BENCH / "peer_newsboat.sh"), str(run_dir / "served-sources.toml"), str(CONCURRENCY),
         str(repeat)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    for line in peer.stdout.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        result[f"newsboat_{row.get('phase', 'info')}"] = row
    return result


def project_sources(run_dir: Path) -> Path:
    """The served sources.toml with our defaults: loopback allowed, all news published, same concurrency.

    max_bytes is raised from 20 MiB to 64 MiB for the large workload's 33 MB calendar of 50,000 events.
    """
    served = (run_dir / "served-sources.toml").read_text(encoding="utf-8")
    head, _, rest = served.partition("[defaults]")
    defaults = (
        "[defaults]\nallow_private = true\nmax_items = 1000000\npast_days = 3650\nmax_bytes = 67108864\n"
        f'concurrency = {CONCURRENCY}\nper_host = {CONCURRENCY}\ndata_dir = "data"\nfeeds_dir = "feeds"\n'
    )
    path = run_dir / "sources.toml"
    path.write_text(head + defaults + rest, encoding="utf-8")
    return path


def aggregator(config: Path, *args: str) -> Run:
    """Run the real CLI and measure wall time and the child's own peak RSS (wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "aggregator"), "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    assert proc.stdout
    assert proc.stderr
    # Both pipes at once: a child that fills one (10,000 failures logged to stderr) while we wait
    # for the other to end would block for ever. Not ``communicate``: it reaps the child, and
    # wait4 below is what gives this child's own peak RSS.
    with ThreadPoolExecutor(max_workers=1) as reader:
        errors = reader.submit(proc.stderr.read)
        stdout = proc.stdout.read()
        stderr = errors.result()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return Run(seconds, usage.ru_maxrss / 1024, stdout, stderr, proc.returncode)


def published_counts(feeds: Path) -> tuple[int, int]:
    news = json.loads((feeds / "news.json").read_text(encoding="utf-8"))
    uids = set()
    for line in (feeds / "events.ics").read_text(encoding="utf-8").splitlines():
        if line.startswith("UID:"):
            uids.add(line[4:].strip())
    return len(news["items"]), len(uids)


def truth_checks(server: CorpusServer, feeds: Path) -> dict[str, int]:
    """Record-by-record: the published merged feeds against the server's current truth."""
    from bench.truth import check_events, check_news

    with urllib.request.urlopen(server.base + "/_truth", timeout=600) as response:
        rows = [json.loads(line) for line in response.read().decode("utf-8").splitlines() if line.strip()]
    news = check_news(rows, (feeds / "news.json").read_text(encoding="utf-8"))
    events = check_events(rows, (feeds / "events.ics").read_bytes())
    out = {f"news_{k}": v for k, v in news.as_dict().items()}
    out.update({f"events_{k}": v for k, v in events.as_dict().items()})
    return out


def drive(
    config: Path, plan: list[str], server: str, seed: int
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], Run]:
    """Run ``plan`` in ONE process (bench.cycles, the daemon's own parts); its lines by step, memory lines."""
    log(f"one process: {','.join(plan)}")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "bench.cycles", "--config", str(config), "--plan",
         ",".join(plan), "--server", server, "--seed", str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=child_env(),
    )  # fmt: skip
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(stderr[-3000:])
    steps = {line["step"]: line for line in lines if not line["step"].startswith("memory:")}
    memory = [line for line in lines if line["step"].startswith("memory:")]
    peak = max(line["peak_mb"] for line in lines)
    return steps, memory, Run(seconds, peak, stdout, stderr, proc.returncode)


def feed_sources(run_dir: Path) -> Path:
    """Our sources.toml with only the RSS/Atom sources, in their own data dir: what newsboat reloads."""
    text = (run_dir / "sources.toml").read_text(encoding="utf-8")
    head, *blocks = text.split("[[source]]")
    head = head.replace('data_dir = "data"', 'data_dir = "data-feeds"').replace(
        'feeds_dir = "feeds"', 'feeds_dir = "feeds-feeds"'
    )
    kept = [b for b in blocks if 'kind = "feed"' in b]
    path = run_dir / "sources-feeds.toml"
    path.write_text(head + "".join("[[source]]" + b for b in kept), encoding="utf-8")
    return path


def memory_figures(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Growth from the end of the warm-up (a tenth of the cycles, at least one) to the last cycle."""
    warm = lines[max(len(lines) // 10, 1) - 1]
    last = lines[-1]
    total = [line["rss_mb"] + sum(line.get("workers_rss_mb", [])) for line in lines]
    return {
        "daemon_cycles": len(lines),
        "daemon_cycle_s_median": sorted(line["seconds"] for line in lines)[len(lines) // 2],
        "daemon_peak_rss_mb": max(line["peak_mb"] for line in lines),
        "daemon_rss_after_warmup_mb": warm["rss_mb"],
        "daemon_rss_last_mb": last["rss_mb"],
        "memory_growth_pct": round((last["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"] * 100, 2),
        "daemon_with_workers_rss_last_mb": round(total[-1], 1),
    }


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def file_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def ratio(value: float, floor: float | None) -> float | None:
    return round(value / floor, 3) if floor else None


def run_workload(name: str, seed: int, repeat: int, cycles: int) -> WorkloadResult:
    from bench.cycles import MERGED_FILES

    python = bench_python()
    corpus_dir = corpus(python, name, seed)
    run_dir = WORK / f"run-{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    server = CorpusServer(python, corpus_dir, run_dir)
    result = WorkloadResult(name)
    fig = result.figures
    try:
        floor = floors(python, corpus_dir, run_dir, repeat)
        result.floors = floor
        config = project_sources(run_dir)
        startup = aggregator(config, "--version")  # also compiles the bytecode cache before timing
        startup = aggregator(config, "--version")
        manifest = json.loads((corpus_dir / "manifest.json").read_text())
        counts = manifest["counts"]

        plan = [
            "full",
            "unchanged",
            "mutate:0.1",
            "changed",
            "publish",
            "publish-forced",
            "publish-merged",
            "publish-cold",
        ]
        if cycles:
            plan.append(f"memory:{cycles}")
        steps, memory, _driven = drive(config, plan, server.base, seed)
        full, unchanged, changed = steps["full"], steps["unchanged"], steps["changed"]
        news_out, events_out = published_counts(run_dir / "feeds")
        truth_counts = server.get("/_manifest")["counts"]
        checks = truth_checks(server, run_dir / "feeds")
        log(f"{name}: the CLI (a new process per run): unchanged fetch")
        cli_unchanged = aggregator(config, "fetch")
        log(f"{name}: RSS/Atom sources only, fetch + parse + store (the newsboat job)")
        feeds_steps, _, feeds_run = drive(feed_sources(run_dir), ["store"], server.base, seed)
        feeds_store = feeds_steps["store"]

        fetch_floor = floor.get("fetch", {}).get("median_s")
        parse_floor = sum(
            floor.get(k, {}).get("median_s", 0.0) for k in ("parse_feedparser", "parse_icalendar", "parse_bs4_lxml")
        )
        f304 = floor.get("fetch_304", {}).get("median_s")
        write_floor = sum(floor.get(k, {}).get("median_s", 0.0) for k in ("write_rss_lxml", "write_ics_icalendar"))
        # The floor serialises one merged RSS and one calendar (no disk); a publish writes four formats
        # for every scope. Per megabyte written, the two are comparable.
        write_floor_mb = sum(floor.get(k, {}).get("bytes", 0) for k in ("write_rss_lxml", "write_ics_icalendar")) / 1e6
        feeds_mb = dir_size(run_dir / "feeds") / 1e6
        newsboat_cold = floor.get("newsboat_cold", {}).get("median_s")
        newsboat_feeds = floor.get("newsboat_cold", {}).get("n")
        full_s = full["seconds"]
        all_lines = [*steps.values(), *memory]
        fig.update(
            {
                "sources": counts.get("sources"),
                "full_cycle_s": full_s,
                "fetch_floor_s": fetch_floor,
                "parse_floor_s": round(parse_floor, 3),
                "full_cycle_vs_fetch_plus_parse": ratio(full_s, (fetch_floor or 0) + parse_floor),
                "newsboat_cold_s": newsboat_cold,
                "full_cycle_vs_newsboat_cold": ratio(full_s, newsboat_cold),
                "feed_sources": newsboat_feeds,
                "feeds_only_store_cycle_s": feeds_store["seconds"],
                "feeds_only_vs_newsboat_cold": ratio(feeds_store["seconds"], newsboat_cold),
                "feeds_only_process_s": round(feeds_run.seconds, 3),
                "feeds_only_process_vs_newsboat_cold": ratio(feeds_run.seconds, newsboat_cold),
                "unchanged_cycle_s": unchanged["seconds"],
                "fetch_304_floor_s": f304,
                "unchanged_cycle_vs_fetch_304": ratio(unchanged["seconds"], f304),
                "unchanged_cycle_requests": unchanged.get("server", {}).get("requests"),
                "unchanged_cycle_304s": unchanged.get("server", {}).get("304s"),
                "unchanged_cycle_parsed_sources": unchanged["outcomes"].get("changed", 0)
                + unchanged["outcomes"].get("unchanged", 0),
                "unchanged_cycle_records_written": unchanged["new"] + unchanged["updated"],
                "unchanged_cycle_files_written": unchanged["written"],
                "mutations": steps["mutate:0.1"].get("changes"),
                "changed_10pct_cycle_s": changed["seconds"],
                "changed_10pct_vs_full_cycle": ratio(changed["seconds"], full_s),
                "changed_10pct_new_updated": f"{changed['new']}/{changed['updated']}",
                "changed_10pct_files_written": changed["written"],
                "publish_unchanged_s": steps["publish"]["seconds"],
                "publish_unchanged_files_written": steps["publish"]["written"],
                "publish_forced_s": steps["publish-forced"]["seconds"],
                "write_floor_s": round(write_floor, 3),
                "publish_forced_vs_write_floor": ratio(steps["publish-forced"]["seconds"], write_floor),
                "write_floor_mb": round(write_floor_mb, 1),
                "publish_forced_per_mb_vs_write_floor_per_mb": ratio(
                    steps["publish-forced"]["seconds"] / feeds_mb if feeds_mb else 0.0,
                    write_floor / write_floor_mb if write_floor_mb else None,
                ),
                "publish_processes": steps["publish-forced"].get("publish_processes"),
                "publish_forced_read_s": steps["publish-forced"].get("publish_read_s"),
                "publish_forced_merge_s": steps["publish-forced"].get("publish_merge_s"),
                "publish_forced_render_s": steps["publish-forced"].get("publish_render_s"),
                # fragments kept in the spill file instead of memory (past publish_memory_mb)
                "publish_forced_fragments_spilled": steps["publish-forced"].get("fragments_spilled"),
                # Like for like with the floor (one merged RSS and one calendar): the merged scope's four
                # files alone rendered and written again, after the store is read as for any publish.
                "publish_merged_s": steps["publish-merged"]["seconds"],
                "publish_merged_vs_write_floor": ratio(steps["publish-merged"]["seconds"], write_floor),
                "publish_merged_files_written": steps["publish-merged"]["written"],
                "publish_merged_mb": round(sum(file_size(run_dir / "feeds" / n) for n in MERGED_FILES) / 1e6, 1),
                "publish_merged_read_s": steps["publish-merged"].get("publish_read_s"),
                # feeds/ and the fragment cache deleted: every item rendered again (after an upgrade)
                "publish_cold_s": steps["publish-cold"]["seconds"],
                "publish_cold_vs_write_floor": ratio(steps["publish-cold"]["seconds"], write_floor),
                "publish_cold_fragments_spilled": steps["publish-cold"].get("fragments_spilled"),
                "full_cycle_run_s": full.get("run_s"),
                "full_cycle_publish_s": full.get("publish_s"),
                "changed_10pct_run_s": changed.get("run_s"),
                "changed_10pct_publish_s": changed.get("publish_s"),
                # the changed publish's parts: records read and decoded, scopes merged, files rendered and written
                "changed_10pct_publish_read_s": changed.get("publish_read_s"),
                "changed_10pct_publish_merge_s": changed.get("publish_merge_s"),
                "changed_10pct_publish_render_s": changed.get("publish_render_s"),
                # read ahead: the publishing process read the store while the sources were fetched
                "changed_10pct_publish_read_ahead": changed.get("publish_read_ahead"),
                "changed_10pct_fragments_rendered": changed.get("fragments_rendered"),
                "changed_10pct_fragments_reused": changed.get("fragments_reused"),
                "cli_startup_s": round(startup.seconds, 3),
                "cli_unchanged_cycle_s": round(cli_unchanged.seconds, 3),
                "peak_rss_main_mb": max(line["peak_mb"] for line in all_lines),
                "peak_rss_publisher_mb": max(line.get("children_peak_mb", 0.0) for line in all_lines),
                "pss_main_and_workers_max_mb": max(line.get("pss_total_mb", 0.0) for line in all_lines),
                # The main process's, the pool's and the largest publishing process's peaks added: taken at
                # different moments, and without the publish's helper or a fresh parser process.
                "peak_rss_all_processes_mb": round(
                    max(line["peak_mb"] for line in all_lines)
                    + max(line.get("workers_pss_mb", 0.0) for line in all_lines)
                    + max(line.get("children_peak_mb", 0.0) for line in all_lines),
                    1,
                ),
                # What the whole process tree held at once, sampled twice a second (``cycles.TreeSampler``).
                "peak_pss_process_tree_mb": max(line.get("tree_pss_peak_mb", 0.0) for line in all_lines),
                "peak_rss_process_tree_mb": max(line.get("tree_rss_peak_mb", 0.0) for line in all_lines),
                "database_mb": round(dir_size(run_dir / "data") / 1e6, 1),
                "feeds_mb": round(feeds_mb, 1),
                "files_written": steps["publish-forced"]["written"],
                "unique_news_published": news_out,
                "unique_news_truth": truth_counts.get("unique_news", counts.get("unique_news")),
                "unique_events_published": events_out,
                "unique_events_truth": truth_counts.get("unique_events", counts.get("unique_events")),
                "events_in_news_truth": truth_counts.get("events_in_news", counts.get("events_in_news")),
                **checks,
            }
        )
        # Where each peak was: a large workload's tree peaked at 715 MB, and the sum alone cannot say
        # whether in the first cycle's fetch (parse workers beside the publisher reading ahead) or a publish.
        result.series["memory_by_step"] = {
            step: {key: line.get(key) for key in STEP_MEMORY_KEYS} for step, line in steps.items()
        }
        if memory:
            fig.update(memory_figures(memory))
            result.series["daemon_rss_mb_by_cycle"] = [line["rss_mb"] for line in memory]
            result.series["cycle_s_by_cycle"] = [line["seconds"] for line in memory]
    finally:
        server.stop()
    return result


def met(value: Any, target: float | None) -> str:
    """'yes'/'NO' for a figure with a target (lower is better), '' otherwise."""
    if target is None or not isinstance(value, int | float):
        return ""
    return "yes" if value <= target else "NO"


def table_lines(results: list[WorkloadResult]) -> list[str]:
    """The printed table: one row per figure, one column per workload, then the target and whether each met it."""
    keys: list[str] = []
    for r in results:
        keys += [k for k in r.figures if k not in keys]
    width = max(len(k) for k in keys)
    head = ["figure".ljust(width), *(r.name.rjust(18) for r in results), "target".rjust(8), "  met"]
    lines = [" ".join(head)]
    for key in keys:
        cells = []
        target = TARGETS.get(key)
        verdicts = []
        for r in results:
            value = r.figures.get(key)
            verdicts.append(met(value, target))
            if isinstance(value, dict):
                value = f"{value['min']}/{value['median']}"
            cells.append(str(value).rjust(18))
        verdict = "/".join(v for v in verdicts if v)
        lines.append(
            " ".join(
                [key.ljust(width), *cells, str(target if target is not None else "").rjust(8), "  " + verdict]
            ).rstrip()
        )
    return lines


def print_table(results: list[WorkloadResult]) -> None:
    for line in table_lines(results):
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", default="small,medium")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=None, help="timed runs (default 3 small, 1 otherwise)")
    parser.add_argument(
        "--cycles",
        type=int,
        default=None,
        help="unchanged cycles after the plan, for memory (default: small 5, medium 10, large 100)",
    )
    args = parser.parse_args()
    results = []
    for name in args.workloads.split(","):
        repeat = args.repeat or (3 if name == "small" else 1)
        cycles = args.cycles if args.cycles is not None else {"large": 100, "medium": 10}.get(name, 5)
        results.append(run_workload(name, args.seed, repeat, cycles))
    print_table(results)
    out = REPO / "bench" / "results" / "latest.json"
    out.write_text(
        json.dumps({r.name: {**r.figures, "floors": r.floors, "series": r.series} for r in results}, indent=2) + "\n"
    )
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
