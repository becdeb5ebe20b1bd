"""Log lines, exactly: key=value text and JSON, tracebacks only with exc_info, quiet libraries."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from aggregator.logs import configure_logging, log_event

NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()
LIBRARIES = ("httpx", "httpcore", "apscheduler", "uvicorn.access")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes the process-wide root logger; put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in LIBRARIES}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def emit_at_noon(name: str, level: int, event: str, fields: dict[str, object] | None = None, exc: bool = False) -> None:
    """Pass a record stamped 2026-11-26 12:00:00 UTC through the logging system, as logger.info would."""
    record = logging.getLogger(name).makeRecord(
        name, level, "feeds.py", 10, event, (), None, extra={"fields": fields} if fields is not None else None
    )
    record.created = NOON
    if exc:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError as error:
            record.exc_info = (ZeroDivisionError, error, error.__traceback__)
    logging.getLogger(name).handle(record)


def test_text_line_is_timestamp_level_event_and_fields() -> None:
    out = io.StringIO()
    configure_logging("text", stream=out)
    fields = {"source": "eccp-news", "url": "https://www.clustercollaboration.eu/rss.xml?lang=en", "status": 200}
    emit_at_noon("aggregator.fetch", logging.INFO, "fetch", {**fields, "duration": 0.41, "new": 3})
    assert out.getvalue() == (
        "2026-11-26T12:00:00Z INFO fetch source=eccp-news "
        "url=https://www.clustercollaboration.eu/rss.xml?lang=en status=200 duration=0.41 new=3\n"
    )


def test_text_values_with_spaces_or_quotes_are_quoted_and_others_spelled_plainly() -> None:
    out = io.StringIO()
    configure_logging("text", stream=out)
    emit_at_noon(
        "aggregator.pipeline",
        logging.WARNING,
        "problem",
        {
            "title": 'Call for proposals: "Euro-cluster" 2027',
            "empty": "",
            "etag": None,
            "dormant": False,
            "tags": ("hydrogen", "health"),
            "day": date(2027, 3, 16),
            "elapsed": 0.123456,
            "message": "line one\nline two",
        },
    )
    assert out.getvalue() == (
        "2026-11-26T12:00:00Z WARNING problem "
        'title="Call for proposals: \\"Euro-cluster\\" 2027" empty="" etag=null dormant=false '
        'tags=hydrogen,health day=2027-03-16 elapsed=0.123 message="line one\\nline two"\n'
    )


def test_json_line_has_ts_level_event_and_fields() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    emit_at_noon(
        "aggregator.fetch",
        logging.INFO,
        "fetch",
        {"source": "eccp-news", "status": 200, "duration": 0.41, "new": 3, "tags": ("calls",), "etag": None},
    )
    assert out.getvalue() == (
        '{"ts": "2026-11-26T12:00:00Z", "level": "INFO", "event": "fetch", "source": "eccp-news", '
        '"status": 200, "duration": 0.41, "new": 3, "tags": ["calls"], "etag": null}\n'
    )


def test_log_event_helper_logs_through_the_given_logger() -> None:
    out = io.StringIO()
    configure_logging("text", stream=out)
    log_event(logging.getLogger("aggregator.publish"), logging.INFO, "publish", written=14, unchanged=3)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO publish written=14 unchanged=3\n", out.getvalue())


def test_extra_fields_form_and_helper_give_the_same_json() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    log = logging.getLogger("aggregator.scheduler")
    log.info("fetch", extra={"fields": {"source": "silicon-saxony", "status": 304}})
    log_event(log, logging.INFO, "fetch", source="silicon-saxony", status=304)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == second
    assert {k: v for k, v in first.items() if k != "ts"} == {
        "level": "INFO",
        "event": "fetch",
        "source": "silicon-saxony",
        "status": 304,
    }


def test_expected_failure_without_exc_info_is_one_line() -> None:
    out = io.StringIO()
    configure_logging("text", stream=out)
    emit_at_noon("aggregator.fetch", logging.WARNING, "fetch-failed", {"source": "eccp-news", "reason": "timeout"})
    assert out.getvalue() == "2026-11-26T12:00:00Z WARNING fetch-failed source=eccp-news reason=timeout\n"


def test_text_traceback_follows_the_line_when_exc_info_is_given() -> None:
    out = io.StringIO()
    configure_logging("text", stream=out)
    emit_at_noon("aggregator.scheduler", logging.ERROR, "job-crashed", {"source": "eccp-news"}, exc=True)
    lines = out.getvalue().splitlines()
    assert lines[0] == "2026-11-26T12:00:00Z ERROR job-crashed source=eccp-news"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"


def test_json_traceback_is_in_the_exc_key() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    emit_at_noon("aggregator.scheduler", logging.ERROR, "job-crashed", {"source": "eccp-news"}, exc=True)
    [line] = out.getvalue().splitlines()
    obj = json.loads(line)
    assert list(obj) == ["ts", "level", "event", "source", "exc"]
    assert obj["exc"].startswith("Traceback (most recent call last):\n")
    assert obj["exc"].endswith("\nZeroDivisionError: division by zero")


def test_configuring_twice_keeps_one_handler_writing_to_the_latest_stream() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("text", stream=first)
    configure_logging("json", stream=second)
    configure_logging("json", stream=second)
    emit_at_noon("aggregator.cli", logging.INFO, "started")
    assert first.getvalue() == ""
    assert second.getvalue() == '{"ts": "2026-11-26T12:00:00Z", "level": "INFO", "event": "started"}\n'


def test_records_below_the_level_are_dropped() -> None:
    out = io.StringIO()
    configure_logging("text", level="warning", stream=out)
    logging.getLogger("aggregator.fetch").info("fetch")
    logging.getLogger("aggregator.fetch").debug("fetch")
    assert out.getvalue() == ""


def test_noisy_libraries_log_warnings_only_with_their_logger_named() -> None:
    out = io.StringIO()
    configure_logging("text", level="DEBUG", stream=out)
    for name in LIBRARIES:
        logging.getLogger(name).info("HTTP Request: GET https://www.clustercollaboration.eu/rss.xml")
    emit_at_noon("apscheduler.scheduler", logging.WARNING, "Run time of job was missed by 0:00:04")
    assert out.getvalue() == (
        "2026-11-26T12:00:00Z WARNING Run time of job was missed by 0:00:04 logger=apscheduler.scheduler\n"
    )


def test_third_party_message_with_newlines_stays_on_one_line() -> None:
    out = io.StringIO()
    configure_logging("text", stream=out)
    emit_at_noon("uvicorn.error", logging.WARNING, "Invalid HTTP request received.\nsecond line")
    assert out.getvalue() == (
        "2026-11-26T12:00:00Z WARNING Invalid HTTP request received.\\nsecond line logger=uvicorn.error\n"
    )


def test_field_named_like_a_line_key_is_kept_under_another_name() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    emit_at_noon("aggregator.pipeline", logging.INFO, "parse", {"event": "Cluster Excellence Days", "level": 2})
    assert json.loads(out.getvalue()) == {
        "ts": "2026-11-26T12:00:00Z",
        "level": "INFO",
        "event": "parse",
        "field_event": "Cluster Excellence Days",
        "field_level": 2,
    }


@pytest.mark.parametrize(
    ("fmt", "level", "message"),
    [
        ("yaml", "INFO", "log format must be 'text' or 'json', not 'yaml'"),
        ("text", "LOUD", "unknown log level 'LOUD'"),
    ],
)
def test_bad_format_or_level_is_refused(fmt: str, level: str, message: str) -> None:
    with pytest.raises(ValueError, match="log") as raised:
        configure_logging(fmt, level)  # type: ignore[arg-type]
    assert str(raised.value) == message
