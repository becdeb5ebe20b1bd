"""Bounded fuzzing of every parser entry point: ``python -m tests.fuzz.run --seconds 60``.

Inputs are the test fixtures (real feeds, calendars and pages), mutated: bytes flipped, cut,
repeated, spliced with another fixture, or salted with tokens that break parsers (entities,
DOCTYPEs, folds, NUL bytes, deep nesting). Any exception other than a target's declared ones is a
finding: printed with its traceback and saved under ``--crash-dir``; the exit code is then 1.
A single input running longer than ``--input-limit`` seconds is a finding too (a denial of service).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

from aggregator.config import Selectors, SourceConfig, SourceKind
from aggregator.errors import ParseError
from aggregator.extract.dates import read_when
from aggregator.parse.auto import parse_auto
from aggregator.parse.feed import parse_feed
from aggregator.parse.html import parse_selectors
from aggregator.parse.ical import parse_ical
from aggregator.sanitize import sanitize_html
from aggregator.urls import canonical_url

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FETCHED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
VIENNA = ZoneInfo("Europe/Vienna")
SOURCE = SourceConfig(name="fuzz", url="https://www.cluster-fuzz.example.eu/news", timezone=VIENNA)
SELECTOR_SOURCE = SourceConfig(
    name="fuzz-html",
    url="https://www.cluster-fuzz.example.eu/news",
    kind=SourceKind.HTML,
    timezone=VIENNA,
    selectors=Selectors(item="article, li, div.teaser", title="h2, h3, a", link="a", date="time, .date, span"),
)
TOKENS = (
    b"<!DOCTYPE rss [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]>",
    b"&b;",
    b"&#0;",
    b"&#x110000;",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3",
    b"\r\n ",
    b"\n\t",
    b"<![CDATA[",
    b"]]>",
    b"<div>" * 300,
    b"</item>",
    b"<item>",
    b"BEGIN:VEVENT\r\n",
    b"END:VEVENT\r\n",
    b"DTSTART;TZID=W. Europe Standard Time:20261301T250000\r\n",
    b"RRULE:FREQ=SECONDLY;COUNT=99999999\r\n",
    b"RECURRENCE-ID:99991231T235959Z\r\n",
    b'<a href="javascript:alert(1)">',
    b"<script>",
    b"<svg onload=alert(1)>",
    b"31.02.2026",
    b"29/02/2027 - 01/03/2027",
    b"\xf0\x9f\x8e\x89",
)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Target:
    """One entry point: how to call it, what it may raise, and which fixtures seed it."""

    name: str
    call: Callable[[bytes], object]
    declared: tuple[type[BaseException], ...]
    seeds: tuple[str, ...]  # fixture folders


TARGETS = (
    Target(
        "parse_feed",
        lambda b: parse_feed(b, source=SOURCE, url=SOURCE.url, fetched_at=FETCHED_AT),
        (),
        ("feeds", "hostile", "fetch"),
    ),
    Target(
        "parse_ical",
        lambda b: parse_ical(b, source=SOURCE, url=SOURCE.url, fetched_at=FETCHED_AT),
        (),
        ("ical", "hostile"),
    ),
    Target(
        "parse_selectors",
        lambda b: parse_selectors(b, source=SELECTOR_SOURCE, url=SELECTOR_SOURCE.url, fetched_at=FETCHED_AT),
        (ParseError,),
        ("html", "hostile"),
    ),
    Target(
        "parse_auto",
        lambda b: parse_auto(b, source=SOURCE, url=SOURCE.url, content_type=None, fetched_at=FETCHED_AT, explain=True),
        (ParseError,),
        ("html", "feeds", "ical", "hostile"),
    ),
    Target(
        "read_when",
        lambda b: read_when(_text(b)[:300], tz=VIENNA, reference=FETCHED_AT),
        (),
        ("extract_dates",),
    ),
    Target("canonical_url", lambda b: canonical_url(_text(b)[:2000], SOURCE.url), (), ("fetch", "feeds")),
    Target("sanitize_html", lambda b: sanitize_html(_text(b), base_url=SOURCE.url), (), ("feeds", "html", "hostile")),
)


def _seeds(target: Target) -> list[bytes]:
    """Whole fixture files, plus lines of them for the text targets (dates, URLs)."""
    files = sorted(p for folder in target.seeds for p in (FIXTURES / folder).rglob("*") if p.is_file())
    blobs = [p.read_bytes() for p in files]
    if target.name in ("read_when", "canonical_url"):
        lines = [line.strip() for blob in blobs for line in blob.splitlines() if line.strip()]
        if target.name == "canonical_url":
            lines = [w for line in lines for w in line.replace(b'"', b" ").split() if b"://" in w or w.startswith(b"/")]
        return lines[:5000] or [b""]
    return blobs


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """One to four random edits of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(8)
        at = rng.randrange(len(out) + 1)
        if choice == 0 and out:  # flip bits
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif choice == 1:  # cut off the end (truncated download)
            del out[at:]
        elif choice == 2:  # delete a slice
            del out[at : at + rng.randint(1, 200)]
        elif choice == 3:  # repeat a slice
            piece = bytes(out[at : at + rng.randint(1, 300)])
            out[at:at] = piece * rng.randint(2, 50)
        elif choice == 4:  # splice another seed in
            other = rng.choice(others)
            start = rng.randrange(len(other) + 1)
            out[at:at] = other[start : start + rng.randint(1, 2000)]
        elif choice == 5:  # salt with a hostile token
            out[at:at] = rng.choice(TOKENS)
        elif choice == 6:  # random bytes
            out[at:at] = rng.randbytes(rng.randint(1, 64))
        else:  # deep nesting of whatever tag is near
            out[at:at] = b"<x>" * rng.randint(10, 5000)
    return bytes(out)


@dataclass
class Report:
    runs: dict[str, int] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)


class _SlowInput(Exception):
    """Raised from the alarm handler: one input took longer than the per-input limit."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _SlowInput


def _inputs(rng: random.Random, seeds: list[bytes]) -> Iterator[bytes]:
    yield from seeds  # every seed once, unmutated
    while True:
        kind = rng.random()
        if kind < 0.05:
            yield rng.randbytes(rng.randint(0, 4096))
        else:
            yield mutate(rng, rng.choice(seeds), seeds)


def fuzz(
    target: Target, *, seconds: float, rng: random.Random, input_limit: int, crash_dir: Path, report: Report
) -> None:
    seeds = _seeds(target)
    deadline = time.monotonic() + seconds
    runs = 0
    for data in _inputs(rng, seeds):
        if time.monotonic() >= deadline:
            break
        runs += 1
        signal.alarm(input_limit)
        try:
            target.call(data)
        except target.declared:
            pass
        except _SlowInput:
            _record(report, crash_dir, target, data, f"input ran longer than {input_limit} s")
        except Exception:  # the point of fuzzing: anything undeclared is a finding
            _record(report, crash_dir, target, data, traceback.format_exc())
        finally:
            signal.alarm(0)
    report.runs[target.name] = runs


def _record(report: Report, crash_dir: Path, target: Target, data: bytes, what: str) -> None:
    crash_dir.mkdir(parents=True, exist_ok=True)
    path = crash_dir / f"{target.name}-{len(report.findings) + 1}.bin"
    path.write_bytes(data)
    report.findings.append(f"{target.name}: {path} ({len(data)} bytes)\n{what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total time, shared by the targets")
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed, to replay a run)")
    parser.add_argument("--target", action="append", choices=[t.name for t in TARGETS], help="only these targets")
    parser.add_argument("--input-limit", type=int, default=20, help="seconds one input may take")
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz-crashes"), help="where failing inputs go")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    chosen = [t for t in TARGETS if not args.target or t.name in args.target]
    signal.signal(signal.SIGALRM, _on_alarm)
    report = Report()
    print(f"fuzzing {len(chosen)} targets for {args.seconds:g} s, seed {seed}", flush=True)
    for target in chosen:
        fuzz(
            target,
            seconds=args.seconds / len(chosen),
            rng=random.Random(f"{seed}-{target.name}"),
            input_limit=args.input_limit,
            crash_dir=args.crash_dir,
            report=report,
        )
        print(f"{target.name}: {report.runs[target.name]} inputs", flush=True)
    for finding in report.findings:
        print(f"FINDING {finding}", file=sys.stderr)
    print(f"{sum(report.runs.values())} inputs, {len(report.findings)} findings")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
