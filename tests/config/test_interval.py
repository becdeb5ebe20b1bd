"""parse_interval: the duration syntax shared by sources.toml and the command line."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from aggregator.config import parse_interval


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        ("1d 12h", timedelta(hours=36)),
        ("1m", timedelta(minutes=1)),
        (" 30m ", timedelta(minutes=30)),
    ],
)
def test_interval_units_add_up(text: str, expected: timedelta) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30s", '"30s" is shorter than 1 minute'),
        ("0m", '"0m" is shorter than 1 minute'),
        ("5x", 'not a duration: "5x" (use e.g. "90s", "15m", "2h", "1d" or "1h30m")'),
        ("", 'not a duration: "" (use e.g. "90s", "15m", "2h", "1d" or "1h30m")'),
        ("30", 'not a duration: "30" (use e.g. "90s", "15m", "2h", "1d" or "1h30m")'),
        ("30m1h", 'not a duration: "30m1h" (use e.g. "90s", "15m", "2h", "1d" or "1h30m")'),
        ("1.5h", 'not a duration: "1.5h" (use e.g. "90s", "15m", "2h", "1d" or "1h30m")'),
        ("99999999999d", '"99999999999d" is too long'),
    ],
)
def test_interval_rejects_text_that_is_no_duration_or_too_short(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_interval(text)
    assert str(caught.value) == message
