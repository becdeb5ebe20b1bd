"""The published folder passes the independent checker in shared/eval (other parsers, a real browser)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aggregator.publish import publish

from .conftest import overlapping_series

SHARED = Path(__file__).resolve().parents[3] / "shared"
CHECK_FEEDS = SHARED / "eval" / "check-feeds"


@pytest.mark.slow
@pytest.mark.skipif(not CHECK_FEEDS.exists(), reason=f"independent checker not found at {CHECK_FEEDS}")
def test_published_folder_passes_check_feeds_with_no_failure(feeds_dir, cluster_input, make_news):
    # Rich on purpose: two zones across DST, all-day and multi-day, a series with EXDATE and an override,
    # a cancelled event, enclosures, umlauts and emoji, per-source and per-tag files.
    publish(feeds_dir, cluster_input)
    result = subprocess.run(
        [str(CHECK_FEEDS), str(feeds_dir)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.endswith(" passed, 0 failed"), result.stdout
    assert "FAIL " not in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(not CHECK_FEEDS.exists(), reason=f"independent checker not found at {CHECK_FEEDS}")
def test_series_with_overrides_beside_other_series_read_alike_in_every_parser(feeds_dir, publish_input):
    # A moved session, another series at its usual local time, and one series (with its moved
    # session) from two sources: ical.js, node-ical and recurring-ical-events expand them alike.
    publish(feeds_dir, publish_input(events=overlapping_series()))
    result = subprocess.run(
        [str(CHECK_FEEDS), str(feeds_dir)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL " not in result.stdout, result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed"), result.stdout
