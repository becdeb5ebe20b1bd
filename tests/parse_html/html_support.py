"""Helpers for the HTML parsing tests: sources, the fixed fetch time, fixture reading."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from aggregator.config import SourceConfig

HTML = Path(__file__).resolve().parents[1] / "fixtures" / "html"


def page(name: str) -> bytes:
    return (HTML / name).read_bytes()


def source(name: str, url: str, tz: str = "Europe/Brussels", *, max_detail_pages: int = 0) -> SourceConfig:
    return SourceConfig(name=name, url=url, timezone=ZoneInfo(tz), max_detail_pages=max_detail_pages)


def at(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))  # type: ignore[misc]
