"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pgserver import PostgresServer, PostgresUnavailable

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole session, shared by the store and worker tests.

    Started only when a test asks for it; skips those tests if PostgreSQL is missing.
    """
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()
