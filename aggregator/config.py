"""sources.toml: the frozen configuration every stage receives as an argument.

``load(path)`` validates everything at once and raises ``ConfigErrors`` with
one ``ConfigError`` per problem (file, line, source, key); nothing is a
module-level global.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from aggregator.errors import ConfigError, ConfigErrors
from aggregator.records import RecordKind
from aggregator.urls import fetchable_url

__all__ = [
    "CliPaths",
    "Config",
    "Defaults",
    "Selectors",
    "ServerSettings",
    "SourceConfig",
    "SourceKind",
    "load",
    "parse_interval",
]


class SourceKind(StrEnum):
    AUTO = "auto"
    FEED = "feed"
    ICAL = "ical"
    HTML = "html"


@dataclass(frozen=True, slots=True)
class Selectors:
    """CSS selectors for ``kind = "html"``: one ``item`` per record, fields inside it."""

    item: str
    title: str | None = None
    link: str | None = None
    date: str | None = None
    summary: str | None = None
    location: str | None = None
    record: RecordKind = RecordKind.NEWS


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    url: str  # as fetched: webcal:// already rewritten to https://
    kind: SourceKind = SourceKind.AUTO
    tags: tuple[str, ...] = ()
    interval: timedelta = timedelta(minutes=30)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Brussels"))
    enabled: bool = True
    selectors: Selectors | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 30.0
    allow_private: bool = False
    max_detail_pages: int = 0  # detail-page fetches per run (auto kind)
    # Line of its [[source]] header: where it is, not what it is, so moving a source in the
    # file does not make a reload see it as changed.
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str | None = None  # absolute base for links in feeds, e.g. behind a proxy


@dataclass(frozen=True, slots=True)
class Defaults:
    interval: timedelta = timedelta(minutes=30)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Brussels"))
    timeout: float = 30.0
    max_bytes: int = 20 * 1024 * 1024
    max_items: int = 200  # news items per published feed
    past_days: int = 90  # how long past events stay in calendars
    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()  # if set, only these hosts are fetched
    concurrency: int = 16
    per_host: int = 2
    max_redirects: int = 5
    backoff_cap: timedelta = timedelta(hours=24)
    dormant_after: timedelta = timedelta(days=14)
    title: str = "clusterfeeds"
    database_url: str | None = None  # postgresql://... ; None means SQLite in data_dir
    publish_processes: int = 2  # processes rendering a publish (at most one per core and per format)
    # MB of one format's rendered items a publishing process holds; beyond, they wait in a temporary file.
    publish_memory_mb: int = 64
    # A publish forks helpers only while the records they would copy (decoded) take at most this many
    # MB; beyond, one process renders every format: slower, without a second copy of the records.
    publish_copy_limit_mb: int = 100
    # Past this many stored news and current events, a publish reads the sources a group at a time and
    # makes the merged and tag files from an index of the items, never holding all records decoded.
    publish_stream_records: int = 100_000


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    data_dir: Path
    feeds_dir: Path
    defaults: Defaults
    server: ServerSettings
    sources: tuple[SourceConfig, ...]

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)


@dataclass(frozen=True, slots=True)
class CliPaths:
    """Folders given on the command line; they win over ``[defaults]`` data_dir / feeds_dir."""

    data_dir: Path | None = None
    feeds_dir: Path | None = None


_T = TypeVar("_T")

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SLUG_RULE = "lower-case letters, digits, '-' and '_', starting with a letter or digit"
_DURATION = re.compile(r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?")
_DURATION_HINT = 'use e.g. "90s", "15m", "2h", "1d" or "1h30m"'
_MIN_INTERVAL = timedelta(minutes=1)
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token

_TOP_KEYS = ("defaults", "server", "source")
_DEFAULT_KEYS = (
    "interval",
    "timezone",
    "timeout",
    "max_bytes",
    "max_items",
    "past_days",
    "allow_private",
    "allowed_hosts",
    "concurrency",
    "per_host",
    "max_redirects",
    "backoff_cap",
    "dormant_after",
    "title",
    "database_url",
    "publish_processes",
    "publish_memory_mb",
    "publish_copy_limit_mb",
    "publish_stream_records",
    "data_dir",
    "feeds_dir",
)
_SERVER_KEYS = ("host", "port", "base_url")
_SELECTOR_KEYS = ("item", "title", "link", "date", "summary", "location")
_SOURCE_KEYS = (
    "name",
    "url",
    "kind",
    "tags",
    "interval",
    "timezone",
    "enabled",
    "headers",
    "timeout",
    "allow_private",
    "detail_pages",
    *_SELECTOR_KEYS,
    "record",
)


def parse_interval(text: str) -> timedelta:
    """``"1h30m"`` -> 90 minutes; ``ValueError`` (naming the text) for anything else or under 1 minute."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"not a duration: {_toml(text)} ({_DURATION_HINT})")
    amount = {unit: int(digits) for unit, digits in match.groupdict().items() if digits}
    try:
        value = timedelta(
            days=amount.get("d", 0), hours=amount.get("h", 0), minutes=amount.get("m", 0), seconds=amount.get("s", 0)
        )
    except OverflowError:
        raise ValueError(f"{_toml(text)} is too long") from None
    if value < _MIN_INTERVAL:
        raise ValueError(f"{_toml(text)} is shorter than 1 minute")
    return value


def load(
    path: Path,
    *,
    data_dir: Path | None = None,
    feeds_dir: Path | None = None,
    overrides: CliPaths | None = None,
) -> Config:
    """Read and validate one sources.toml; every problem in it is raised together as ``ConfigErrors``.

    Folders: command line (``data_dir``/``feeds_dir`` or ``overrides``) > ``[defaults]``
    (relative to the file's folder) > ``data`` / ``feeds`` beside the file.
    """
    label = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigErrors([ConfigError(label, None, None, None, f"cannot read: {exc.strerror or exc}")]) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problem = f"not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})"
        raise ConfigErrors([ConfigError(label, line, None, None, problem)]) from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigErrors([_syntax_error(label, text, exc)]) from exc
    cli = overrides or CliPaths()
    cli = CliPaths(data_dir=data_dir or cli.data_dir, feeds_dir=feeds_dir or cli.feeds_dir)
    return _build(document, _scan(text), path, cli)


# --- building -------------------------------------------------------------------------------------


def _build(document: Mapping[str, object], layout: _Layout, path: Path, cli: CliPaths) -> Config:
    """The parsed TOML -> Config, or ConfigErrors with every problem sorted by line."""
    errors: list[ConfigError] = []
    base_dir = path.absolute().parent
    top = _Scope(str(path), errors, layout.top, document)
    top.unknown_keys(_TOP_KEYS, tables=True)

    defaults_scope = top.subtable("defaults", layout.defaults, prefix="defaults.")
    defaults = _read_defaults(defaults_scope)
    data_dir = _folder(cli.data_dir, defaults_scope.converted("data_dir", _non_empty), "data", base_dir)
    feeds_dir = _folder(cli.feeds_dir, defaults_scope.converted("feeds_dir", _non_empty), "feeds", base_dir)
    server = _read_server(top.subtable("server", layout.server, prefix="server."))

    sources: list[SourceConfig] = []
    first_line: dict[str, int | None] = {}
    for index, values in enumerate(top.tables("source")):
        table = layout.sources[index] if index < len(layout.sources) else _Table()
        source = _read_source(_Scope.for_source(top, table, values, index + 1), defaults, base_dir, first_line)
        if source is not None:
            sources.append(source)

    if errors:
        raise ConfigErrors(sorted(errors, key=lambda e: e.line or 0))
    return Config(
        path=path.absolute(),
        data_dir=data_dir,
        feeds_dir=feeds_dir,
        defaults=defaults,
        server=server,
        sources=tuple(sources),
    )


def _folder(cli: Path | None, configured: str | None, fallback: str, base_dir: Path) -> Path:
    """Command line (relative to the working directory) > file value > fallback (both relative to the file)."""
    if cli is not None:
        return cli.expanduser().absolute()
    return base_dir / Path(configured or fallback).expanduser()


def _read_defaults(scope: _Scope) -> Defaults:
    scope.unknown_keys(_DEFAULT_KEYS)
    base = Defaults()
    return Defaults(
        interval=_pick(scope.converted("interval", parse_interval), base.interval),
        timezone=_pick(scope.converted("timezone", _zone), base.timezone),
        timeout=_pick(scope.number("timeout"), base.timeout),
        max_bytes=_pick(scope.integer("max_bytes", minimum=1), base.max_bytes),
        max_items=_pick(scope.integer("max_items", minimum=1), base.max_items),
        past_days=_pick(scope.integer("past_days", minimum=0), base.past_days),
        allow_private=_pick(scope.boolean("allow_private"), base.allow_private),
        allowed_hosts=_pick(scope.converted_list("allowed_hosts", _host), base.allowed_hosts),
        concurrency=_pick(scope.integer("concurrency", minimum=1), base.concurrency),
        per_host=_pick(scope.integer("per_host", minimum=1), base.per_host),
        max_redirects=_pick(scope.integer("max_redirects", minimum=0), base.max_redirects),
        backoff_cap=_pick(scope.converted("backoff_cap", parse_interval), base.backoff_cap),
        dormant_after=_pick(scope.converted("dormant_after", parse_interval), base.dormant_after),
        title=_pick(scope.converted("title", _non_empty), base.title),
        database_url=scope.converted("database_url", _database_url),
        publish_processes=_pick(scope.integer("publish_processes", minimum=1, maximum=4), base.publish_processes),
        publish_memory_mb=_pick(scope.integer("publish_memory_mb", minimum=0), base.publish_memory_mb),
        publish_copy_limit_mb=_pick(scope.integer("publish_copy_limit_mb", minimum=0), base.publish_copy_limit_mb),
        publish_stream_records=_pick(scope.integer("publish_stream_records", minimum=0), base.publish_stream_records),
    )


def _read_server(scope: _Scope) -> ServerSettings:
    scope.unknown_keys(_SERVER_KEYS)
    base = ServerSettings()
    return ServerSettings(
        host=_pick(scope.converted("host", _non_empty), base.host),
        port=_pick(scope.integer("port", minimum=1, maximum=65535), base.port),
        base_url=scope.converted("base_url", _base_url),
    )


def _read_source(
    scope: _Scope, defaults: Defaults, base_dir: Path, first_line: dict[str, int | None]
) -> SourceConfig | None:
    """One ``[[source]]`` table -> SourceConfig; None when a required key is missing or wrong."""
    scope.unknown_keys(_SOURCE_KEYS)
    name = scope.required("name", _slug)
    if name is not None:
        if name in first_line:
            earlier = first_line[name]
            scope.error("name", f"duplicate, first used at line {earlier}" if earlier else "duplicate")
        else:
            first_line[name] = scope.table.line_of("name")
    url = scope.required("url", lambda text: _source_url(text, base_dir))
    kind = scope.converted("kind", _kind)
    tags = scope.converted_list("tags", _slug)
    source = SourceConfig(
        name=name or "",
        url=url or "",
        kind=_pick(kind, SourceKind.AUTO),
        tags=tuple(dict.fromkeys(tags or ())),
        interval=_pick(scope.converted("interval", parse_interval), defaults.interval),
        timezone=_pick(scope.converted("timezone", _zone), defaults.timezone),
        enabled=_pick(scope.boolean("enabled"), True),
        selectors=_read_selectors(scope, kind if "kind" in scope.values else SourceKind.AUTO),
        headers=scope.headers("headers"),
        timeout=_pick(scope.number("timeout"), defaults.timeout),
        allow_private=_pick(scope.boolean("allow_private"), defaults.allow_private),
        max_detail_pages=_pick(scope.integer("detail_pages", minimum=0), 0),
        line=scope.table.line,
    )
    return source if name is not None and url is not None else None


def _read_selectors(scope: _Scope, kind: SourceKind | None) -> Selectors | None:
    """CSS selectors belong to ``kind = "html"`` only; there ``item`` is required."""
    if kind is None:  # the kind itself is wrong: already reported, don't guess about selectors
        return None
    if kind is not SourceKind.HTML:
        for key in (*_SELECTOR_KEYS, "record"):
            if key in scope.values:
                what = "a CSS selector, only" if key in _SELECTOR_KEYS else "only"
                scope.error(key, f'{what} used with kind = "html" (this source has kind = "{kind}")')
        return None
    item = scope.required("item", _selector, missing='missing (kind = "html" needs an item selector)')
    found = {key: scope.converted(key, _selector) for key in _SELECTOR_KEYS if key != "item"}
    record = scope.converted("record", _record_kind)
    if item is None:
        return None
    return Selectors(
        item=item,
        title=found["title"],
        link=found["link"],
        date=found["date"],
        summary=found["summary"],
        location=found["location"],
        record=_pick(record, RecordKind.NEWS),
    )


def _pick(value: _T | None, default: _T) -> _T:
    return default if value is None else value


# --- one table being read ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scope:
    """One TOML table being read: its values, where its keys are written, how its problems are labelled.

    Every reader returns None when the key is absent or wrong, after adding a ConfigError to ``errors``.
    """

    path: str
    errors: list[ConfigError]
    table: _Table
    values: Mapping[str, object]
    prefix: str = ""  # "defaults." / "server." for those tables
    source: str | None = None
    index: int | None = None  # for a source without a usable name

    @staticmethod
    def for_source(top: _Scope, table: _Table, values: Mapping[str, object], index: int) -> _Scope:
        name = values.get("name")
        label = name if isinstance(name, str) and name else None
        return _Scope(top.path, top.errors, table, values, source=label, index=None if label else index)

    def error(self, key: str, problem: str) -> None:
        line = self.table.line_of(key)
        self.errors.append(ConfigError(self.path, line, self.source, self.prefix + key, problem, index=self.index))

    def wrong_type(self, key: str, expected: str, value: object) -> None:
        self.error(key, f"expected {expected}, got {_describe(value)}")

    def unknown_keys(self, known: Iterable[str], *, tables: bool = False) -> None:
        """Report keys nobody reads, with the closest known one (a typo must not silently change nothing)."""
        known = tuple(known)
        for key, value in self.values.items():
            if key in known:
                continue
            what = "unknown table" if tables and isinstance(value, dict | list) else "unknown key"
            guess = difflib.get_close_matches(key, known, n=1)
            self.error(key, f"{what}, did you mean '{guess[0]}'?" if guess else what)

    def subtable(self, key: str, table: _Table, *, prefix: str) -> _Scope:
        value = self.values.get(key, {})
        if not isinstance(value, dict):
            self.wrong_type(key, "a table", value)
            value = {}
        return _Scope(self.path, self.errors, table, value, prefix=prefix)

    def tables(self, key: str) -> list[Mapping[str, object]]:
        value = self.values.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.wrong_type(key, f"an array of tables ([[{key}]])", value)
            return []
        return value

    def required(self, key: str, convert: Callable[[str], _T], *, missing: str = "missing") -> _T | None:
        if key not in self.values:
            self.error(key, missing)
            return None
        return self.converted(key, convert)

    def string(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:  # TOML has no null: None means the key is absent
            return None
        if not isinstance(value, str):
            self.wrong_type(key, "a string", value)
            return None
        return value

    def converted(self, key: str, convert: Callable[[str], _T]) -> _T | None:
        """A string value passed through ``convert``; its ValueError becomes the problem text."""
        text = self.string(key)
        if text is None:
            return None
        try:
            return convert(text)
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def converted_list(self, key: str, convert: Callable[[str], _T]) -> tuple[_T, ...] | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.wrong_type(key, "an array of strings", value)
            return None
        items: list[_T] = []
        for item in value:
            if not isinstance(item, str):
                self.wrong_type(key, "an array of strings", item)
                continue
            try:
                items.append(convert(item))
            except ValueError as exc:
                self.error(key, str(exc))
        return tuple(items)

    def integer(self, key: str, *, minimum: int, maximum: int | None = None) -> int | None:
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.wrong_type(key, "an integer", value)
            return None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            self.error(key, f"must be {bounds}, got {value}")
            return None
        return value

    def number(self, key: str) -> float | None:
        """A positive number of seconds."""
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.wrong_type(key, "a number of seconds", value)
            return None
        if not value > 0 or value == float("inf"):
            self.error(key, f"must be a positive number of seconds, got {_toml(value)}")
            return None
        return float(value)

    def boolean(self, key: str) -> bool | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.wrong_type(key, "true or false", value)
            return None
        return value

    def headers(self, key: str) -> tuple[tuple[str, str], ...]:
        value = self.values.get(key)
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.wrong_type(key, "a table of strings", value)
            return ()
        pairs: list[tuple[str, str]] = []
        for header, text in value.items():
            if not _HEADER_NAME.fullmatch(header):
                self.error(key, f"{_toml(header)} is not a header name")
            elif not isinstance(text, str):
                self.error(key, f"{_toml(header)}: expected a string, got {_describe(text)}")
            elif "\r" in text or "\n" in text:
                self.error(key, f"{_toml(header)}: value must be one line")
            else:
                pairs.append((header, text))
        return tuple(pairs)


# --- value converters: str -> value, ValueError with the problem ----------------------------------


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _slug(text: str) -> str:
    if not _SLUG.fullmatch(text):
        raise ValueError(f"{_toml(text)} is not a slug ({_SLUG_RULE})")
    return text


def _kind(text: str) -> SourceKind:
    try:
        return SourceKind(text)
    except ValueError:
        choices = ", ".join(f'"{kind}"' for kind in SourceKind)
        raise ValueError(f"must be one of {choices}, got {_toml(text)}") from None


def _record_kind(text: str) -> RecordKind:
    try:
        return RecordKind(text)
    except ValueError:
        raise ValueError(f'must be "news" or "event", got {_toml(text)}') from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    guess = difflib.get_close_matches(name, _zone_names(), n=1)
    hint = f", did you mean {_toml(guess[0])}?" if guess else ""
    raise ValueError(f"unknown time zone {_toml(name)}{hint}")


@cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _selector(text: str) -> str:
    import soupsieve  # only configurations with CSS selectors pay for it (150 ms of regex compiling)

    try:
        soupsieve.compile(text)
    except soupsieve.SelectorSyntaxError as exc:
        reason = str(exc).splitlines()[0]
        raise ValueError(f"invalid CSS selector {_toml(text)}: {reason}") from None
    return text


def _host(text: str) -> str:
    host = text.strip().lower().rstrip(".")
    if not _HOST.fullmatch(host):
        raise ValueError(f'{_toml(text)} is not a host name (write e.g. "clustercollaboration.eu")')
    return host


def _database_url(text: str) -> str:
    if not text.startswith(("postgresql://", "sqlite:///")):
        scheme = text.split("://", 1)[0] if "://" in text else ""
        # Only the scheme is echoed: the rest may hold a password.
        got = f", got scheme {_toml(scheme)}" if scheme else ""
        raise ValueError(f'must start with "postgresql://" or "sqlite:///"{got}')
    return text


def _base_url(text: str) -> str:
    """Absolute http(s) URL ending in "/", so feed links can be joined onto it."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"not a URL: {_toml(text)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http(s) URL, got {_toml(text)}")
    if parts.query or parts.fragment:
        raise ValueError(f"must not have a query or fragment, got {_toml(text)}")
    return text if text.endswith("/") else text + "/"


def _source_url(text: str, base_dir: Path) -> str:
    """The URL to fetch: webcal(s) -> https, ``file:`` paths made absolute against the file's folder."""
    if not text or text != text.strip():
        raise ValueError(f"not a URL: {_toml(text)}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"not a URL: {_toml(text)}") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        return _file_url(parts.netloc, parts.path, base_dir)
    if not scheme:
        raise ValueError(f"not an absolute URL: {_toml(text)} (start it with https://)")
    if scheme not in ("http", "https", "webcal", "webcals"):
        raise ValueError(f'scheme "{scheme}" is not supported (use http, https, webcal, webcals or file)')
    if any(char.isspace() for char in text):  # allowed in a file path, never in a web address
        raise ValueError(f"not a URL: {_toml(text)}")
    if not parts.hostname:
        raise ValueError(f"missing host in {_toml(text)}")
    if scheme == "webcals":
        # urls.fetchable_url compares a 9-character prefix with the 10-character "webcals://",
        # so it leaves webcals alone; rewrite here until it is fixed there.
        return "https://" + text[len("webcals://") :]
    return fetchable_url(text)


def _file_url(host: str, raw_path: str, base_dir: Path) -> str:
    """``file:///abs`` or ``file:relative`` (to the TOML file) -> an absolute ``file:///`` URL."""
    if host not in ("", "localhost"):
        raise ValueError(f'file URL names host "{host}" (write file:///absolute/path or file:relative/path)')
    local = unquote(raw_path)
    if not local:
        raise ValueError("file URL has no path")
    return Path(os.path.normpath(base_dir / local)).as_uri()


# --- messages ------------------------------------------------------------------------------------


def _toml(value: object) -> str:
    """A value spelled as in TOML, for messages: "text", 30, true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    return _type_name(value)


def _describe(value: object) -> str:
    name = _type_name(value)
    if isinstance(value, str | int | float):
        return f"{name} {_toml(value)}"
    return name


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, time):
        return "time"
    return type(value).__name__


_AT_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_AT_END = re.compile(r"\s*\(at end of document\)$")


def _syntax_error(path: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """tomllib's "Invalid value (at line 3, column 9)" -> line 3, "invalid TOML: invalid value (column 9)"."""
    message = str(exc)
    line: int | None = None
    if found := _AT_LINE.search(message):
        line = int(found[1])
        message = f"{message[: found.start()]} (column {found[2]})"
    elif found := _AT_END.search(message):
        line = text.rstrip("\n").count("\n") + 1
        message = f"{message[: found.start()]} (at end of file)"
    return ConfigError(path, line, None, None, f"invalid TOML: {message[:1].lower()}{message[1:]}")


# --- line numbers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    """Where one TOML table starts and the first line of each of its keys."""

    line: int | None = None
    keys: Mapping[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int | None:
        return self.keys.get(key.split(".", 1)[0], self.line)


@dataclass(frozen=True, slots=True)
class _Layout:
    top: _Table
    defaults: _Table
    server: _Table
    sources: tuple[_Table, ...]


_HEADER = re.compile(r"\s*(\[\[?)([^\[\]]*)\]")
_KEY = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*[.=]""")
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'""")


def _scan(text: str) -> _Layout:
    """Line numbers of tables and keys, found by reading the text: tomllib keeps none.

    A best-effort reader for the shapes a sources.toml uses; a key it cannot place
    falls back to its table's header line.
    """
    top: dict[str, int] = {}
    named: dict[str, dict[str, int]] = {"defaults": {}, "server": {}}
    headers: dict[str, int] = {}
    sources: list[tuple[int, dict[str, int]]] = []
    current: dict[str, int] | None = top
    closing: str | None = None  # delimiter of the multi-line string we are inside
    depth = 0  # open brackets of a multi-line array
    for number, line in enumerate(text.split("\n"), start=1):  # TOML ends lines at LF only
        if closing is not None:
            if closing in line:
                closing = None
            continue
        code = _STRING.sub('""', line).split("#", 1)[0]
        if depth > 0:
            depth = max(0, depth + code.count("[") - code.count("]"))
            continue
        header = _HEADER.match(code)
        if header is not None:
            names = [part.strip().strip("\"'") for part in header[2].split(".")]
            array = header[1] == "[["
            current = None
            if array and names == ["source"]:
                sources.append((number, {}))
                current = sources[-1][1]
            elif names[0] == "source" and len(names) > 1 and sources:  # [source.headers]
                sources[-1][1].setdefault(names[1], number)
            elif names[0] in named and not array:
                if len(names) == 1:
                    headers.setdefault(names[0], number)
                    current = named[names[0]]
                else:
                    named[names[0]].setdefault(names[1], number)
            else:
                top.setdefault(names[0], number)
            continue
        key = _KEY.match(line)
        if key is not None and current is not None:
            current.setdefault(key[1].strip("\"'"), number)
        for delimiter in ('"""', "'''"):
            if line.count(delimiter) % 2 == 1:
                closing = delimiter
                break
        else:
            depth = max(0, code.count("[") - code.count("]"))
    return _Layout(
        top=_Table(None, top),
        defaults=_Table(headers.get("defaults", top.get("defaults")), named["defaults"]),
        server=_Table(headers.get("server", top.get("server")), named["server"]),
        sources=tuple(_Table(line, keys) for line, keys in sources),
    )
