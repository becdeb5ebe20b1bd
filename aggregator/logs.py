"""One log line per event, as ``key=value`` text for people or JSON for machines.

Callers name an event and attach fields::

    log.info("fetch", extra={"fields": {"source": "eccp-news", "status": 200}})
    log_event(log, logging.INFO, "fetch", source="eccp-news", status=200)

which renders as ``2026-11-26T12:00:00Z INFO fetch source=eccp-news status=200``
or ``{"ts": "2026-11-26T12:00:00Z", "level": "INFO", "event": "fetch", "source": "eccp-news", "status": 200}``.
Expected failures are logged without ``exc_info`` (one line); a traceback
appears only when the caller passes ``exc_info``, i.e. for bugs.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Final, Literal, TextIO

__all__ = ["configure_logging", "log_event"]

# Libraries that log every request or job run at INFO; their warnings still show.
_QUIET_LOGGERS: Final = ("httpx", "httpcore", "apscheduler", "uvicorn.access", "alembic")
# Our own records carry their meaning in the event name; others get a logger= field.
_OWN_NAMESPACE: Final = "aggregator"
_RESERVED: Final = frozenset({"ts", "level", "event", "logger", "exc", "stack"})


def configure_logging(fmt: Literal["text", "json"], level: str = "INFO", stream: TextIO | None = None) -> None:
    """Point the root logger at one handler of ours; calling again replaces it, never adds a second."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _EventHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _EventHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))


def log_event(logger: logging.Logger, level: int, event: str, /, **fields: object) -> None:
    """Log ``event`` with ``fields``; the shorthand for ``extra={"fields": {...}}``."""
    logger.log(level, event, extra={"fields": fields}, stacklevel=2)


class _EventHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installed, so a second call can find and replace it."""


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """The record's fields, with logger= added for records from outside our package."""
    fields: dict[str, object] = {}
    if record.name != _OWN_NAMESPACE and not record.name.startswith(_OWN_NAMESPACE + "."):
        fields["logger"] = record.name
    extra = getattr(record, "fields", None)
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            # A field must not overwrite the line's own keys; keep it, renamed.
            name = f"field_{key}" if key in _RESERVED else str(key)
            fields[name] = value
    return fields


def _jsonable(value: object) -> object:
    """A field value as JSON: containers kept, dates ISO 8601, floats to milliseconds' precision."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def _text_value(value: object) -> str:
    """A field value for key=value text; quoted (JSON string rules) if it has spaces or quotes."""
    plain = _jsonable(value)
    if plain is None:
        text = "null"
    elif isinstance(plain, bool):
        text = "true" if plain else "false"
    elif isinstance(plain, list):
        text = ",".join(_text_value(v) for v in plain)
    elif isinstance(plain, dict):
        text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(plain)
    if text == "" or any(c.isspace() or c in '"\\' or not c.isprintable() for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _one_line(text: str) -> str:
    """Event names from third-party libraries may hold newlines; keep one line per event."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, _one_line(record.getMessage())]
        parts.extend(f"{key}={_text_value(value)}" for key, value in _fields(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {"ts": _timestamp(record), "level": record.levelname, "event": record.getMessage()}
        obj.update({key: _jsonable(value) for key, value in _fields(record).items()})
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return json.dumps(obj, ensure_ascii=False)
