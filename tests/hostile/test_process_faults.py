"""Whole-process guarantees against one hostile source: bounded memory, SSRF refused through the CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from processtree import children, descendants, running
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .conftest import Cli, closed_port, fixture, source_block

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


def _raw(port: int, request: bytes) -> tuple[int | None, bytes]:
    """Send bytes as they are (no client normalising the path); the status and body, or None if closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(request)
        except OSError:
            return None, b""
        chunks = []
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
    answer = b"".join(chunks)
    if not answer.startswith(b"HTTP/1.1 "):
        return None, answer
    return int(answer[9:12]), answer.partition(b"\r\n\r\n")[2]


def test_the_real_daemon_refuses_traversal_symlinks_out_and_absurd_requests(site: HTTPServer, cli: Cli) -> None:
    site.expect_request("/feed.xml").respond_with_data(fixture("good_news.xml"), content_type="application/rss+xml")
    port = closed_port()
    cli.write_sources(source_block("steady", site.url_for("/feed.xml"), kind="feed") + f"\n[server]\nport = {port}\n")
    cli.feeds.mkdir()
    (cli.feeds / "outside").symlink_to("/etc")
    (cli.feeds / "leak.txt").symlink_to("/etc/passwd")
    (cli.feeds / ".news.xml.4242.tmp").write_text("half-written", encoding="utf-8")
    secret = Path("/etc/passwd").read_bytes()[:20]
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run"], cwd=cli.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until(lambda: _raw(port, b"GET /news.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200)
        answers = {
            target: _raw(port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            for target in (
                b"/../../etc/passwd",
                b"/%2e%2e/%2e%2e/etc/passwd",
                b"/sources/..%2f..%2f..%2fetc%2fpasswd",
                b"/%252e%252e/%252e%252e/etc/passwd",
                b"/..\\..\\etc\\passwd",
                b"/outside/passwd",
                b"/leak.txt",
                b"/.news.xml.4242.tmp",
                b"/news.xml%00.txt",
            )
        }
        long_url = _raw(port, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        big_header = _raw(port, b"GET /news.xml HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n")
        many_headers = _raw(
            port,
            b"GET /news.xml HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(20_000)) + b"\r\n",
        )
        healthy = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        feed = _raw(port, b"GET /news.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)

    assert {target: status for target, (status, _body) in answers.items()} == dict.fromkeys(answers, 404)
    for _status, body in (*answers.values(), long_url, big_header, many_headers):
        assert secret not in body
        assert b"half-written" not in body
    assert long_url[0] in (414, 400, None)
    assert big_header[0] in (431, 400, None)
    assert many_headers[0] in (431, 400, None)
    assert (healthy[0], feed[0]) == (200, 200)
    assert daemon.returncode == 0


def _wait_until(predicate, limit: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the daemon did not come up")


def _slow(_request: Request) -> Response:
    time.sleep(15)
    return Response(fixture("good_news.xml"), content_type="application/rss+xml")


def test_a_killed_fetch_leaves_no_parse_process_behind(site: HTTPServer, cli: Cli) -> None:
    """``aggregator fetch`` parses in the daemon's pool: children of a forkserver, not forks of the
    command itself (whose store and event-loop threads a fork would copy mid-flight). Killed with
    SIGKILL mid-run, it leaves none of them behind."""
    blocks = ""
    for number in range(8):
        site.expect_request(f"/news-{number}.xml").respond_with_data(
            fixture("good_news.xml"), content_type="application/rss+xml"
        )
        blocks += source_block(f"cluster-{number}", site.url_for(f"/news-{number}.xml"))
    site.expect_request("/slow.xml").respond_with_handler(_slow)
    cli.write_sources(blocks + source_block("slow-cluster", site.url_for("/slow.xml")))
    command = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "fetch"], cwd=cli.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def forkservers() -> list[int]:
            return [pid for pid in children(command.pid) if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()]

        deadline = time.monotonic() + 60
        while not any(children(pid) for pid in forkservers()) and time.monotonic() < deadline:
            time.sleep(0.05)
        below = descendants(command.pid)
        servers = forkservers()
        assert len(servers) == 1, below
        workers = children(servers[0])
        assert workers, below
        assert not set(workers) & set(children(command.pid))  # forked by the server, not by the command

        command.send_signal(signal.SIGKILL)
        assert command.wait(timeout=10) == -signal.SIGKILL
        deadline = time.monotonic() + 30
        while any(running(pid) for pid in below) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in below if running(pid)] == []
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
