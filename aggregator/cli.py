"""Command line: the only place that prints errors and chooses exit codes.

Exit codes: 0 success, 1 a source could not be read (fetch/preview), 2 bad
configuration or usage, 3 the data directory or database is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aggregator import USER_AGENT, __version__
from aggregator import config as config_module
from aggregator.config import Config, Defaults, SourceConfig, SourceKind
from aggregator.errors import AggregatorError, ConfigErrors, FetchError, StoreError
from aggregator.logs import configure_logging
from aggregator.records import SourceState
from aggregator.urls import fetchable_url

if TYPE_CHECKING:
    from aggregator.pipeline import SourceOutcome

# The pipeline, parsers, store and publisher are imported by the commands that use them, so that
# `--version`, `--help` and `check` answer without loading SQLAlchemy, lxml, feedparser and the rest.

__all__ = ["main"]

EXIT_OK, EXIT_SOURCE_FAILED, EXIT_CONFIG, EXIT_STORE = 0, 1, 2, 3


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS if suppress else Path("sources.toml"),
        help="sources file (default ./sources.toml)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=default, help="database and state (default ./data, or [defaults] data_dir)"
    )
    parser.add_argument(
        "--feeds-dir", type=Path, default=default, help="published files (default ./feeds, or [defaults] feeds_dir)"
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=argparse.SUPPRESS if suppress else "text",
        help="log lines as key=value text or JSON",
    )
    parser.add_argument("--log-level", default=argparse.SUPPRESS if suppress else "WARNING",
                        help="log level (default WARNING; the daemon logs INFO)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Fetch cluster-network news and events and publish one feed and one calendar.",
    )
    parser.add_argument("--version", action="version", version=f"clusterfeeds {__version__}")
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub, suppress=True)
        return sub

    command("check", "validate sources.toml and report every problem")
    fetch = command("fetch", "fetch sources now, store their records and print a summary")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="only these sources (default: all enabled)")
    fetch.add_argument("--no-publish", action="store_true", help="do not publish after fetching")
    command("publish", "write feeds/ from the stored records")
    preview = command("preview", "fetch and parse one source and print its records, storing nothing")
    preview.add_argument("target", metavar="URL-or-NAME", help="a source name from sources.toml, a URL or a local file")
    preview.add_argument("--kind", choices=[k.value for k in SourceKind], help="how to read it (default auto)")
    preview.add_argument("--timezone", help="IANA zone for times written without one")
    preview.add_argument("--json", action="store_true", help="one JSON object per record on stdout")
    preview.add_argument("--explain", action="store_true", help="say why candidate blocks were taken or rejected")
    status = command("status", "per source: health, last success, last error, items, next run")
    status.add_argument("--json", action="store_true", help="one JSON object per source per line")
    run = command("run", "run the daemon: scheduled fetching, publishing and the HTTP server")
    run.add_argument("--host", help="listen address (default 127.0.0.1 or [server] host)")
    run.add_argument("--port", type=int, help="listen port (default 8080 or [server] port)")
    run.add_argument("--base-url", help="public base URL for absolute links in feeds")
    run.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="N worker processes sharing the PostgreSQL database (several machines may run them too)",
    )
    run.add_argument("--database-url", metavar="URL", help="postgresql://... (overrides [defaults] database_url)")
    run.add_argument(
        "--lease-seconds",
        type=_positive_float,
        metavar="S",
        help="with --workers: how long a claimed source stays a worker's (default 3x the longest timeout + 30)",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = "INFO" if args.command == "run" and args.log_level == "WARNING" else args.log_level
    configure_logging(args.log_format, level, stream=sys.stderr)
    try:
        return _dispatch(args)
    except ConfigErrors as errors:
        print(str(errors), file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as error:
        print(f"aggregator: {error}", file=sys.stderr)
        return EXIT_STORE
    except AggregatorError as error:
        print(f"aggregator: {error}", file=sys.stderr)
        return EXIT_SOURCE_FAILED
    except KeyboardInterrupt:
        return 130


def _load(args: argparse.Namespace) -> Config:
    return config_module.load(args.config, data_dir=args.data_dir, feeds_dir=args.feeds_dir)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "preview":
        return _preview(args)
    if args.command == "run":
        return _run(args)
    config = _load(args)
    if args.command == "check":
        enabled = sum(1 for s in config.sources if s.enabled)
        print(f"{args.config}: {len(config.sources)} sources ({enabled} enabled), configuration is valid")
        return EXIT_OK
    if args.command == "status":
        return _status(config, json_lines=args.json)
    from aggregator.runtime import DataDirLock

    with DataDirLock(config.data_dir):
        if args.command == "fetch":
            return asyncio.run(_fetch(config, args.names, publish=not args.no_publish))
        if args.command == "publish":
            return _publish(config)
    raise AssertionError(args.command)


# ---- fetch -----------------------------------------------------------------------------------


async def _fetch(config: Config, names: list[str], *, publish: bool) -> int:
    from aggregator.fetch import Fetcher
    from aggregator.pipeline import Outcome, Pipeline
    from aggregator.processes import parse_pool
    from aggregator.runtime import base_url_of, open_configured_store, publish_from_store

    unknown = [n for n in names if config.source(n) is None]
    if unknown:
        print(f"aggregator: no source named {', '.join(repr(n) for n in unknown)} in {config.path}", file=sys.stderr)
        return EXIT_CONFIG
    chosen = [s for s in config.sources if (s.name in names if names else s.enabled)]
    store = open_configured_store(config)
    fetcher = Fetcher(config.defaults, user_agent=USER_AGENT)
    # Parse on every core while the event loop keeps fetching; a handful of sources is not worth the start-up.
    # The daemon's pool: forked from a forkserver, not from this process, whose threads a fork would copy.
    executor = parse_pool(os.cpu_count() or 2) if len(chosen) >= 8 else None
    pipeline = Pipeline(config, store, fetcher, executor=executor)
    progress = _Progress(len(chosen), sys.stderr)
    try:
        outcomes = await pipeline.run_all(chosen, on_done=progress.step)
    finally:
        progress.finish()
        await fetcher.aclose()
        if executor is not None:
            executor.shutdown()
    try:
        _print_fetch_table(outcomes, sys.stdout)
        if publish:
            now = datetime.now(UTC)
            report = publish_from_store(config, store, now=now, base_url=base_url_of(config))
            print(f"published {len(report.written)} file(s), {report.unchanged} unchanged, in {config.feeds_dir}")
    finally:
        store.close()
    return EXIT_SOURCE_FAILED if any(o.outcome is Outcome.FAILED for o in outcomes) else EXIT_OK


class _Progress:
    """A one-line progress display, only on a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.active = stream.isatty()

    def step(self, outcome: SourceOutcome) -> None:
        self.done += 1
        if self.active:
            self.stream.write(f"\r[{self.done}/{self.total}] {outcome.source[:50]:<50}")
            self.stream.flush()

    def finish(self) -> None:
        if self.active:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()


def _print_fetch_table(outcomes: list[SourceOutcome], out: TextIO) -> None:
    from aggregator.pipeline import Outcome

    rows = [("source", "result", "new", "updated", "unchanged", "detail")]
    for o in sorted(outcomes, key=lambda o: o.source):
        result = "failed" if o.outcome is Outcome.FAILED else str(o.outcome)
        detail = o.error or (f"{len(o.problems)} warning(s)" if o.problems else "")
        rows.append((o.source, result, str(o.summary.new), str(o.summary.updated), str(o.summary.unchanged), detail))
    _print_table(rows, out)
    total = {k: sum(1 for o in outcomes if o.outcome is k) for k in Outcome}
    print(
        f"{len(outcomes)} sources: {total[Outcome.CHANGED]} changed, {total[Outcome.UNCHANGED]} unchanged, "
        f"{total[Outcome.NOT_MODIFIED]} not modified, {total[Outcome.FAILED]} failed; "
        f"{sum(o.summary.new for o in outcomes)} new, {sum(o.summary.updated for o in outcomes)} updated records",
        file=out,
    )


def _print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)


# ---- publish, status -------------------------------------------------------------------------


def _publish(config: Config) -> int:
    from aggregator.runtime import base_url_of, open_configured_store, publish_from_store

    store = open_configured_store(config)
    try:
        report = publish_from_store(config, store, now=datetime.now(UTC), base_url=base_url_of(config))
    finally:
        store.close()
    print(f"published {len(report.written)} file(s), {report.unchanged} unchanged, in {config.feeds_dir}")
    return EXIT_OK


def health_of(source: SourceConfig, state: SourceState) -> str:
    """ok, failing, dormant, never (not fetched yet), disabled, or shrunk (an auto page suddenly yields far fewer)."""
    if not source.enabled:
        return "disabled"
    if state.dormant:
        return "dormant"
    if state.consecutive_failures:
        return "failing"
    if state.last_success is None:
        return "never"
    if state.shrunk:
        return "shrunk"
    return "ok"


def _status(config: Config, *, json_lines: bool) -> int:
    from aggregator.runtime import open_configured_store

    store = open_configured_store(config)
    try:
        states = {s.name: s for s in store.states()}
    finally:
        store.close()
    rows = [("source", "health", "last success", "items", "next run", "last error / note")]
    for source in config.sources:
        state = states.get(source.name) or SourceState(name=source.name)
        health = health_of(source, state)
        notes = []
        if state.dormant:
            since = f" since {_short(state.failing_since)}" if state.failing_since else ""
            notes.append(f"dormant: failing{since}, retried daily")
        if state.last_error:
            notes.append(state.last_error)
        if state.redirected_to:
            notes.append(f'moved permanently: put url = "{state.redirected_to}" in {config.path.name}')
        if state.discovered_url:
            notes.append(f"reading discovered feed {state.discovered_url}")
        if state.shrunk:
            notes.append(
                f"warning: the last read yielded {state.last_yield} records, usually about "
                f"{round(state.yield_baseline or 0)}: the site may have changed"
            )
        if json_lines:
            print(
                json.dumps(
                    {
                        "name": source.name,
                        "health": health,
                        "enabled": source.enabled,
                        "url": source.url,
                        "last_attempt": _iso(state.last_attempt),
                        "last_success": _iso(state.last_success),
                        "last_error": state.last_error,
                        "consecutive_failures": state.consecutive_failures,
                        "failing_since": _iso(state.failing_since),
                        "items": state.items,
                        "last_yield": state.last_yield,
                        "warning": notes[-1] if state.shrunk else None,
                        "next_run": _iso(state.next_run),
                        "dormant": state.dormant,
                        "redirected_to": state.redirected_to,
                        "discovered_url": state.discovered_url,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            rows.append(
                (
                    source.name,
                    health,
                    _short(state.last_success),
                    str(state.items),
                    _short(state.next_run),
                    "; ".join(notes),
                )
            )
    if not json_lines:
        _print_table(rows, sys.stdout)
    return EXIT_OK


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _short(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


# ---- preview ---------------------------------------------------------------------------------


def _preview_source(args: argparse.Namespace) -> SourceConfig:
    """A configured source by name, or an ad-hoc one for a URL or local file."""
    config: Config | None = None
    if args.config.exists():
        config = _load(args)
        named = config.source(args.target)
        if named is not None:
            return _override(named, args)
    defaults = config.defaults if config else Defaults()
    target: str = args.target
    path = Path(target)
    if "://" not in target and path.exists():
        target = path.resolve().as_uri()
    elif "://" not in target:
        raise AggregatorError(f"'{args.target}' is neither a source in {args.config} nor a URL nor a file")
    source = SourceConfig(
        name="preview",
        url=fetchable_url(target),
        timezone=defaults.timezone,
        # A URL typed on the command line is trusted like the user who typed it.
        allow_private=True,
        timeout=defaults.timeout,
    )
    return _override(source, args)


def _override(source: SourceConfig, args: argparse.Namespace) -> SourceConfig:
    from dataclasses import replace

    if args.kind:
        source = replace(source, kind=SourceKind(args.kind))
    if args.timezone:
        try:
            source = replace(source, timezone=ZoneInfo(args.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise AggregatorError(f"--timezone: unknown time zone '{args.timezone}'") from None
    return source


def _preview(args: argparse.Namespace) -> int:
    source = _preview_source(args)
    return asyncio.run(_preview_async(source, as_json=args.json, explain=args.explain))


async def _preview_async(source: SourceConfig, *, as_json: bool, explain: bool) -> int:
    from aggregator.fetch import Fetcher
    from aggregator.parse import parse_document
    from aggregator.preview import record_to_json

    fetcher = Fetcher(Defaults(allow_private=source.allow_private), user_agent=USER_AGENT)
    now = datetime.now(UTC)
    try:
        result = await fetcher.fetch(source.url, source=source)
        parsed = parse_document(
            result.body,
            source=source,
            url=result.final_url,
            content_type=result.content_type,
            fetched_at=now,
            explain=explain,
        )
        via = None
        if parsed.discovered_url and not parsed.records:
            via = parsed.discovered_url
            feed = await fetcher.fetch(parsed.discovered_url, source=source)
            inner = parse_document(
                feed.body, source=source, url=feed.final_url, content_type=feed.content_type, fetched_at=now
            )
            from dataclasses import replace

            from aggregator.records import Strategy

            parsed = replace(
                inner,
                records=tuple(replace(r, strategy=Strategy.DISCOVERED_FEED) for r in inner.records),
                problems=parsed.problems + inner.problems,
                explanations=parsed.explanations,
            )
    except FetchError as error:
        print(f"aggregator: source '{source.name}': {error}", file=sys.stderr)
        return EXIT_SOURCE_FAILED
    finally:
        await fetcher.aclose()
    for problem in parsed.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if via:
        print(f"read through the discovered feed {via}", file=sys.stderr)
    if explain:
        for item in parsed.explanations:
            mark = "taken   " if item.accepted else "rejected"
            print(f"{mark} {item.candidate}: {item.reason}", file=sys.stderr)
    out = sys.stdout
    for record in parsed.records:
        if as_json:
            out.write(json.dumps(record_to_json(record), ensure_ascii=False) + "\n")
        else:
            _print_record(record_to_json(record), out)
    if not as_json:
        print(f"{len(parsed.records)} record(s)", file=out)
    return EXIT_OK


def _print_record(data: dict[str, Any], out: TextIO) -> None:
    if data["type"] == "news":
        when = data["published"] or "undated"
        print(f"news   {when}  {data['title']}", file=out)
    else:
        span = data["start"] + (f" -> {data['end']}" if data["end"] else "")
        status = "" if data["status"] == "confirmed" else f" [{data['status']}]"
        print(f"event  {span}  {data['title']}{status}", file=out)
        if data["location"]:
            print(f"       at {data['location']}", file=out)
    if data["link"]:
        print(f"       {data['link']}", file=out)
    print(f"       via {data['strategy']}", file=out)


# ---- run -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from aggregator.processes import fork_forkserver, limit_malloc_arenas
    from aggregator.scheduler import Daemon, DaemonOptions
    from aggregator.workers import Coordinator, WorkerOptions, load_config, uses_workers

    limit_malloc_arenas()  # before any thread starts; the pool, publishers and workers inherit it
    fork_forkserver()  # before anything is read: its children share the daemon's modules, not its data

    worker_options = WorkerOptions(
        config_path=args.config,
        workers=args.workers or 1,
        data_dir=args.data_dir,
        feeds_dir=args.feeds_dir,
        database_url=args.database_url,
        host=args.host,
        port=args.port,
        base_url=args.base_url,
        lease=timedelta(seconds=args.lease_seconds) if args.lease_seconds else None,
        log_format=args.log_format,
        log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
    )
    config = load_config(worker_options)
    if uses_workers(config, args.workers):
        logging.getLogger("aggregator").info("starting")
        return asyncio.run(Coordinator(config, worker_options).run())
    options = DaemonOptions(
        config_path=args.config,
        data_dir=args.data_dir,
        feeds_dir=args.feeds_dir,
        host=args.host,
        port=args.port,
        base_url=args.base_url,
    )
    logging.getLogger("aggregator").info("starting")
    return asyncio.run(Daemon(config, options).run())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
