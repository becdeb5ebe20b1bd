"""Whole-process guarantees against one hostile source: bounded memory, SSRF refused through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from collections.abc import Iterator

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .conftest import Cli, fixture, source_block

BODY_MB = 400
BOMB_MB = 200


def _endless(_request: Request) -> Response:
    def body() -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>big</title>'
        for _ in range(BODY_MB * 16):
            yield b"<item><title>" + b"x" * 65_000 + b"</title></item>"

    return Response(body(), content_type="application/rss+xml")


def _gzip_bomb(megabytes: int) -> bytes:
    """A gzip body that inflates to ``megabytes`` MiB, built without holding the inflated bytes here."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(2**20)
    parts = [packer.compress(b"<rss>")]
    parts.extend(packer.compress(zeros) for _ in range(megabytes))
    parts.append(packer.flush())
    return b"".join(parts)


def _max_rss_mb(cli: Cli, *args: str) -> tuple[int, float, str]:
    """Exit code and peak resident memory (MiB) of one CLI run, from the kernel's accounting (wait4)."""
    log = cli.cwd / "run.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "aggregator", *args], cwd=cli.cwd, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss / 1024, log.read_text(encoding="utf-8")


def test_a_huge_body_and_a_gzip_bomb_keep_the_process_small(site: HTTPServer, cli: Cli) -> None:
    site.expect_request("/big.xml").respond_with_handler(_endless)
    bomb = _gzip_bomb(BOMB_MB)
    site.expect_request("/bomb.xml").respond_with_data(
        bomb, headers={"Content-Encoding": "gzip"}, content_type="application/rss+xml"
    )
    site.expect_request("/good.xml").respond_with_data(fixture("good_news.xml"), content_type="application/rss+xml")
    cli.write_sources(
        source_block("big", site.url_for("/big.xml"))
        + source_block("bomb", site.url_for("/bomb.xml"))
        + source_block("steady", site.url_for("/good.xml")),
        head="[defaults]\nallow_private = true\nmax_bytes = 2000000\npast_days = 36500\n",
    )

    _, baseline, _ = _max_rss_mb(cli, "fetch", "steady")
    code, peak, output = _max_rss_mb(cli, "fetch")

    assert code == 1, output
    assert f"response exceeds 2000000 bytes ({site.url_for('/big.xml')})" in output
    assert f"response exceeds 2000000 bytes ({site.url_for('/bomb.xml')})" in output
    assert "3 sources: 0 changed, 1 unchanged, 0 not modified, 2 failed; 0 new, 0 updated records" in output
    # 600 MiB were offered; the run may hold a few copies of the 2 MB limit above a normal run's peak.
    assert peak < baseline + 40, (baseline, peak)


def test_private_addresses_are_refused_through_the_cli_without_a_single_request(site: HTTPServer, cli: Cli) -> None:
    site.expect_request("/feed.xml").respond_with_data(fixture("good_news.xml"), content_type="application/rss+xml")
    port = site.port
    targets = {
        "loopback": f"http://127.0.0.1:{port}/feed.xml",
        "loopback-name": f"http://localhost:{port}/feed.xml",
        "cloud-metadata": "http://169.254.169.254/latest/meta-data/",
        "intranet": "http://10.20.30.40/news.xml",
        "carrier-nat": "http://100.64.12.34/news.xml",
        "ipv6-loopback": f"http://[::1]:{port}/feed.xml",
    }
    cli.write_sources(
        "".join(source_block(name, url) for name, url in targets.items()),
        head="[defaults]\npast_days = 36500\n",
    )

    run = cli("fetch")
    status = cli.status()

    assert run.returncode == 1, run.stderr
    assert run.stderr.count("reason=private-address") == len(targets)
    hint = "set allow_private to fetch it"
    expected = {
        "loopback": f"127.0.0.1 is not a public address (loopback); {hint}",
        "cloud-metadata": f"169.254.169.254 is not a public address (link-local); {hint}",
        "intranet": f"10.20.30.40 is not a public address (private); {hint}",
        "carrier-nat": f"100.64.12.34 is not a public address (shared (CGNAT)); {hint}",
        "ipv6-loopback": f"::1 is not a public address (loopback); {hint}",
    }
    for name, message in expected.items():
        assert status[name]["last_error"] == f"{message} ({targets[name]})"
        assert status[name]["health"] == "failing"
    # localhost is in /etc/hosts as 127.0.0.1 and often ::1 too: whichever comes first is named.
    assert status["loopback-name"]["last_error"] in {
        f"localhost resolves to {address}, which is not a public address (loopback); {hint} "
        f"({targets['loopback-name']})"
        for address in ("127.0.0.1", "::1")
    }
    assert site.log == []  # refused before connecting: not even robots.txt was asked for
