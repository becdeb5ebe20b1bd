"""sources.toml: the frozen configuration every stage receives as an argument.

``load(path)`` validates everything at once and raises ``ConfigErrors`` with
one ``ConfigError`` per problem (file, line, source, key); nothing is a
module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from aggregator.records import RecordKind

__all__ = [
    "Config",
    "Defaults",
    "Selectors",
    "ServerSettings",
    "SourceConfig",
    "SourceKind",
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
    line: int | None = None  # line of its [[source]] header in the file


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
