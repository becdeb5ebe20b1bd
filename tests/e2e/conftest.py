"""End-to-end fixtures: the demo sites served by a real HTTP server, and the real CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

REPO = Path(__file__).resolve().parents[2]
SITES = REPO / "demo" / "sites"
SHARED = REPO.parent / "shared"

CONTENT_TYPES = {
    ".xml": "application/rss+xml",
    ".ics": "text/calendar; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


@dataclass
class Cli:
    cwd: Path

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.run(
            [sys.executable, "-m", "aggregator", *args],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def serve_site_file(httpserver: HTTPServer, name: str, path: str | None = None, etag: str | None = None) -> str:
    """Serve demo/sites/NAME at PATH with validators, answering conditional requests with 304."""
    body = (SITES / name).read_bytes()
    url_path = path or f"/{name}"
    tag = etag or f'"{abs(hash(body)) % 10**12}"'

    def handler(request):  # type: ignore[no-untyped-def]
        from werkzeug import Response

        if request.headers.get("If-None-Match") == tag:
            return Response(status=304, headers={"ETag": tag})
        return Response(body, status=200, headers={"ETag": tag, "Content-Type": CONTENT_TYPES[Path(name).suffix]})

    httpserver.expect_request(url_path).respond_with_handler(handler)
    allow_robots(httpserver)
    return httpserver.url_for(url_path)


def allow_robots(httpserver: HTTPServer) -> None:
    """A site without robots.txt (404: everything allowed, RFC 9309 2.3.1.3)."""
    httpserver.expect_request("/robots.txt").respond_with_data("not found", status=404)


SOURCES_HEAD = """[defaults]
timezone = "Europe/Brussels"
interval = "1h"
allow_private = true
title = "Test clusters"
past_days = 36500  # keep the demo events published whatever the date of the run
"""


@pytest.fixture
def write_sources(tmp_path: Path) -> Callable[[str], Path]:
    def write(body: str) -> Path:
        path = tmp_path / "sources.toml"
        path.write_text(SOURCES_HEAD + body, encoding="utf-8")
        return path

    return write
