"""A short bounded run of the fuzzer (`make fuzz` runs it longer): no parser entry point may fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_twenty_seconds_of_mutated_fixtures_raise_nothing_undeclared(tmp_path: Path) -> None:
    crashes = tmp_path / "crashes"
    run = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", "--seconds", "20", "--seed", "20261126", "--crash-dir", str(crashes)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr[-5000:]
    assert run.stdout.startswith("fuzzing 7 targets for 20 s, seed 20261126\n")
    counts = dict(line.split(": ") for line in run.stdout.splitlines()[1:8])
    assert sorted(counts) == sorted(
        ["parse_feed", "parse_ical", "parse_selectors", "parse_auto", "read_when", "canonical_url", "sanitize_html"]
    )
    assert all(int(count.split()[0]) > 0 for count in counts.values())
    assert run.stdout.rstrip().endswith(", 0 findings")
    assert not crashes.exists()
