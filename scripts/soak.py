#!/usr/bin/env python3
"""Soak test: run the real daemon for N minutes against ~30 loopback sources and check it stayed polite.

    .venv/bin/python scripts/soak.py --minutes 60

Local servers on 127.0.0.1-3 play the sources: healthy RSS, iCalendar and HTML pages (some
changing every few minutes), 500s, 429 with Retry-After, a flapping one, slow ones, a 410 and
permanent redirects. The script writes a sources.toml (interval "1m"), runs ``aggregator run`` as a
subprocess, samples its VmRSS every 30 s and counts every request server-side. At the end it checks
that no source was fetched more often than its interval and backoff allow, that the published
news.xml and events.ics parse and hold every healthy source, what status says about the special
sources, and how memory grew; it prints one JSON summary and exits 1 if a check failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

INTERVAL_S = 60.0
RETRY_AFTER_S = 300
SLOW_S = 5.0
SAMPLE_EVERY_S = 30.0
SLACK_S = 1.0  # scheduler and clock granularity allowed below a minimum gap
MEMORY_GROWTH_LIMIT_KIB = 64 * 1024  # RSS growth after warm-up that counts as a leak over a soak
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


# ---- what the sources answer ---------------------------------------------------------------------


def rss(name: str, items: int, changing: bool, now: float) -> bytes:
    """A cluster news feed; a changing one gains an item every 3 minutes."""
    base = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    count = items + (int(now // 180) % 1000 if changing else 0)
    entries = []
    for i in range(max(0, count - 20), count):
        when = format_datetime(base + timedelta(hours=i))
        entries.append(
            f"<item><title>{name}: cluster news {i}</title>"
            f"<link>https://{name}.clusters.example/news/{i}</link><guid isPermaLink='false'>{name}-{i}</guid>"
            f"<pubDate>{when}</pubDate><description>Cluster members report on project {i}.</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>{name}</title><link>https://{name}.clusters.example/</link><description>soak</description>"
        + "".join(entries)
        + "</channel></rss>"
    ).encode()


def ics(name: str, changing: bool, now: float) -> bytes:
    """A cluster event calendar; a changing one moves its second event every 5 minutes."""
    shift = int(now // 300) % 28 if changing else 0
    events = [
        (f"{name}-forum", "20261210", "20261211", "Cluster forum"),
        (f"{name}-matchmaking", f"202612{12 + shift % 15:02d}", f"202612{13 + shift % 15:02d}", "Matchmaking day"),
    ]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:-//soak//{name}//EN"]
    for uid, start, end, title in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:{uid}@soak.example",
            "DTSTAMP:20261101T090000Z",
            f"DTSTART;VALUE=DATE:{start}",
            f"DTEND;VALUE=DATE:{end}",
            f"SUMMARY:{name}: {title}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def html(name: str) -> bytes:
    teasers = "".join(
        f'<div class="news-item"><h3><a href="/{name}/news/{i}">{name}: member story {i}</a></h3>'
        f'<span class="date">{10 + i:02d}.11.2026</span><p>Story {i} from the cluster.</p></div>'
        for i in range(4)
    )
    return f"<!DOCTYPE html><html><head><title>{name}</title></head><body>{teasers}</body></html>".encode()


@dataclass
class Play:
    """One source as the server plays it."""

    name: str
    host: str
    path: str
    kind: str  # sources.toml kind
    role: str  # healthy, error, limited, flapping, slow, gone, redirect
    answer: Callable[[int, float], tuple[int, dict[str, str], bytes]]
    extra: str = ""


@dataclass
class Hit:
    at: float  # monotonic
    status: int


@dataclass
class Ledger:
    hits: dict[str, list[Hit]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> int:
        with self.lock:
            return len(self.hits.get(key, []))

    def add(self, key: str, hit: Hit) -> None:
        with self.lock:
            self.hits.setdefault(key, []).append(hit)


Answer = tuple[int, dict[str, str], bytes]


def _feed_answer(name: str, items: int, changing: bool, _n: int, now: float) -> Answer:
    return 200, {"Content-Type": "application/rss+xml"}, rss(name, items, changing, now)


def _ics_answer(name: str, changing: bool, _n: int, now: float) -> Answer:
    return 200, {"Content-Type": "text/calendar"}, ics(name, changing, now)


def _html_answer(name: str, _n: int, _now: float) -> Answer:
    return 200, {"Content-Type": "text/html; charset=utf-8"}, html(name)


def _moved_answer(name: str, _n: int, _now: float) -> Answer:
    return 301, {"Location": f"/{name}/feed.xml"}, b""


def plays() -> list[Play]:
    out: list[Play] = []

    def host(i: int) -> str:
        return HOSTS[i % len(HOSTS)]

    for i in range(10):
        name = f"news-{i}"
        changing = i < 4
        out.append(
            Play(
                name,
                host(i),
                f"/{name}/feed.xml",
                "feed",
                "healthy",
                partial(_feed_answer, name, 5, changing),
            )
        )
    for i in range(4):
        name = f"events-{i}"
        changing = i == 0
        out.append(
            Play(
                name,
                host(i + 1),
                f"/{name}/events.ics",
                "ical",
                "healthy",
                partial(_ics_answer, name, changing),
            )
        )
    selectors = 'item = "div.news-item"\ntitle = "h3"\nlink = "h3 a"\ndate = "span.date"\n'
    for i in range(3):
        name = f"page-{i}"
        out.append(
            Play(
                name,
                host(i + 2),
                f"/{name}/news.html",
                "html",
                "healthy",
                partial(_html_answer, name),
                selectors,
            )
        )
    for i in range(3):
        out.append(
            Play(f"broken-{i}", host(i), f"/broken-{i}/feed.xml", "feed", "error",
                 lambda n, now: (500, {"Content-Type": "text/html"}, b"<h1>Internal Server Error</h1>")))  # fmt: skip
    for i in range(2):
        out.append(
            Play(f"limited-{i}", host(i), f"/limited-{i}/feed.xml", "feed", "limited",
                 lambda n, now: (429, {"Retry-After": str(RETRY_AFTER_S)}, b"slow down")))  # fmt: skip
    for i in range(3):
        name = f"flapping-{i}"

        def flap(n: int, now: float, name: str = name) -> tuple[int, dict[str, str], bytes]:
            if n % 3 == 2:  # two failures, then a success
                return 200, {"Content-Type": "application/rss+xml"}, rss(name, 3, False, now)
            return 503, {}, b"busy"

        out.append(Play(name, host(i), f"/{name}/feed.xml", "feed", "flapping", flap))
    for i in range(2):
        name = f"slow-{i}"

        def slow(n: int, now: float, name: str = name) -> tuple[int, dict[str, str], bytes]:
            time.sleep(SLOW_S)
            return 200, {"Content-Type": "application/rss+xml"}, rss(name, 4, False, now)

        out.append(Play(name, HOSTS[0], f"/{name}/feed.xml", "feed", "slow", slow, "timeout = 20\n"))
    out.append(Play("retired", HOSTS[1], "/retired/feed.xml", "feed", "gone", lambda n, now: (410, {}, b"gone")))
    for i in range(2):
        name = f"moved-{i}"
        out.append(
            Play(name, host(i), f"/{name}/old.xml", "feed", "redirect",
                 partial(_moved_answer, name)))  # fmt: skip
    return out


def serve(plays_: list[Play], ledger: Ledger) -> list[ThreadingHTTPServer]:
    by_place = {(p.host, p.path): p for p in plays_}
    targets = {(p.host, f"/{p.name}/feed.xml"): p.name for p in plays_ if p.role == "redirect"}
    servers = []
    for address in HOSTS:

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            host = address

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                now = time.time()
                play = by_place.get((self.host, path))
                if play is not None:
                    status, headers, body = play.answer(ledger.count(f"{self.host}{path}"), now)
                elif (self.host, path) in targets:
                    status, headers, body = (
                        200,
                        {"Content-Type": "application/rss+xml"},
                        rss(targets[(self.host, path)], 3, False, now),
                    )
                else:
                    status, headers, body = 404, {}, b"not found"
                ledger.add(f"{self.host}{path}", Hit(time.monotonic(), status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((address, 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers


# ---- the daemon ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_sources(path: Path, plays_: list[Play], ports: dict[str, int], port: int) -> None:
    parts = [
        "[defaults]\n"
        'interval = "1m"\n'
        "allow_private = true\n"
        "past_days = 36500\n"
        'title = "clusterfeeds soak"\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
    ]
    for p in plays_:
        url = f"http://{p.host}:{ports[p.host]}{p.path}"
        parts.append(f'\n[[source]]\nname = "{p.name}"\nurl = "{url}"\nkind = "{p.kind}"\n{p.extra}')
    path.write_text("".join(parts), encoding="utf-8")


def vm_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# ---- checks --------------------------------------------------------------------------------------


def minimum_gap(role: str, failures_before: int) -> float:
    """The shortest wait the daemon may leave after a request, given the failures in a row so far."""
    if failures_before == 0:
        return INTERVAL_S
    backoff = INTERVAL_S * 2 ** (failures_before - 1)
    return float(max(backoff, RETRY_AFTER_S)) if role == "limited" else float(backoff)


def check_intervals(plays_: list[Play], ledger: Ledger) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []
    counts: dict[str, int] = {}
    for p in plays_:
        hits = ledger.hits.get(f"{p.host}{p.path}", [])
        counts[p.name] = len(hits)
        failures = 0
        for before, after in itertools.pairwise(hits):
            failures = failures + 1 if before.status >= 400 else 0
            gap = after.at - before.at
            if p.role == "gone":
                problems.append(f"{p.name}: fetched again {gap:.0f} s after 410 Gone (dormant: once a day)")
            elif gap + SLACK_S < minimum_gap(p.role, failures):
                problems.append(
                    f"{p.name}: {gap:.1f} s between requests after {failures} failure(s), "
                    f"minimum {minimum_gap(p.role, failures):.0f} s"
                )
        if not hits:
            problems.append(f"{p.name}: never fetched")
    return problems, counts


def check_feeds(feeds: Path, plays_: list[Play]) -> tuple[list[str], dict[str, int]]:
    import feedparser
    import icalendar

    problems: list[str] = []
    news = feedparser.parse((feeds / "news.xml").read_bytes())
    if news.bozo:
        problems.append(f"news.xml does not parse: {news.bozo_exception}")
    calendar = icalendar.Calendar.from_ical((feeds / "events.ics").read_bytes())
    events = list(calendar.walk("VEVENT"))
    titles = [str(e.get("title", "")) for e in news.entries] + [str(e.get("SUMMARY")) for e in events]
    for p in plays_:
        if (p.role in ("healthy", "slow", "redirect") or p.role == "flapping") and (
            not any(t.startswith(f"{p.name}:") for t in titles) and not (feeds / "sources" / f"{p.name}.xml").exists()
        ):
            problems.append(f"{p.name}: nothing published")
    return problems, {"news_entries": len(news.entries), "events": len(events)}


def check_status(workdir: Path, plays_: list[Play]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "status", "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = {r["name"]: r for r in map(json.loads, done.stdout.splitlines())}
    problems = []
    for p in plays_:
        row = rows.get(p.name, {})
        if p.role in ("healthy", "slow") and row.get("health") != "ok":
            problems.append(f"{p.name}: health {row.get('health')} ({row.get('last_error')})")
        if p.role == "gone" and not row.get("dormant"):
            problems.append(f"{p.name}: 410 Gone but not dormant")
        if p.role == "redirect" and not (row.get("redirected_to") or "").endswith(f"/{p.name}/feed.xml"):
            problems.append(f"{p.name}: redirect not reported (redirected_to={row.get('redirected_to')})")
    return problems


# ---- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=60.0, help="how long the daemon runs (default 60)")
    parser.add_argument("--workdir", type=Path, help="keep sources.toml, data/, feeds/ and daemon.log here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="clusterfeeds-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger()
    sources = plays()
    servers = serve(sources, ledger)
    ports = {address: int(s.server_address[1]) for address, s in zip(HOSTS, servers, strict=True)}
    port = free_port()
    write_sources(workdir / "sources.toml", sources, ports, port)
    log = (workdir / "daemon.log").open("w", encoding="utf-8")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--log-format", "json", "run"],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    deadline = started + args.minutes * 60
    try:
        while time.monotonic() < deadline and daemon.poll() is None:
            rss_kib = vm_rss_kib(daemon.pid)
            if rss_kib is not None:
                samples.append((round(time.monotonic() - started, 1), rss_kib))
            time.sleep(min(SAMPLE_EVERY_S, max(0.0, deadline - time.monotonic())))
    finally:
        crashed = daemon.poll() is not None
        if not crashed:
            daemon.send_signal(signal.SIGTERM)
        returncode = daemon.wait(timeout=120)
        log.close()
        for server in servers:
            server.shutdown()
    problems, counts = check_intervals(sources, ledger)
    if crashed:
        problems.append(f"daemon exited early with {returncode}")
    elif returncode != 0:
        problems.append(f"daemon stopped with exit code {returncode}")
    feed_problems, published = check_feeds(workdir / "feeds", sources)
    problems += feed_problems + check_status(workdir, sources)
    text = (workdir / "daemon.log").read_text(encoding="utf-8")
    tracebacks = text.count("Traceback")
    if tracebacks:
        problems.append(f"{tracebacks} traceback(s) in daemon.log")
    publishes = sum(1 for line in text.splitlines() if '"event": "published"' in line)
    warm = [kib for at, kib in samples if at >= 60] or [kib for _, kib in samples]
    growth = (warm[-1] - warm[0]) if warm else 0
    if growth > MEMORY_GROWTH_LIMIT_KIB:
        problems.append(f"VmRSS grew by {growth} KiB after warm-up")
    summary = {
        "minutes": args.minutes,
        "workdir": str(workdir),
        "sources": len(sources),
        "requests": sum(counts.values()),
        "requests_per_source": counts,
        "publishes": publishes,
        "published": published,
        "vm_rss_kib": {
            "first": samples[0][1] if samples else None,
            "last": samples[-1][1] if samples else None,
            "max": max((k for _, k in samples), default=None),
            "growth_after_warmup": growth,
        },
        "rss_samples": samples,
        "problems": problems,
        "ok": not problems,
    }
    print(json.dumps(summary, indent=2))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
