"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def fixture_path() -> Callable[[str], Path]:
    """fixture_path("feeds/rss2_cluster_news.xml") -> absolute Path under tests/fixtures."""

    def find(relative: str) -> Path:
        path = FIXTURES / relative
        assert path.exists(), f"missing fixture {path}"
        return path

    return find


@pytest.fixture
def fixture_bytes(fixture_path: Callable[[str], Path]) -> Callable[[str], bytes]:
    def read(relative: str) -> bytes:
        return fixture_path(relative).read_bytes()

    return read
