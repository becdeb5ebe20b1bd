"""`status` warns when an auto source suddenly yields far fewer records: the site probably changed."""

from __future__ import annotations

import json

from pytest_httpserver import HTTPServer
from werkzeug import Response

from .conftest import Cli, allow_robots

PAGE = """<!DOCTYPE html>
<!-- A cluster news listing; the second version lost most of its teasers (a redesign). -->
<html lang="en"><head><meta charset="utf-8"><title>News</title></head><body><main>
{items}
</main></body></html>"""
TEASER = '<div class="teaser"><h3><a href="/news/{n}">Cluster story number {n} about regional innovation</a></h3><span class="date">{day:02d}.11.2026</span><p>Teaser {n}.</p></div>'


def _page(count: int) -> str:
    return PAGE.format(items="\n".join(TEASER.format(n=n, day=n + 1) for n in range(count)))


def test_status_warns_when_a_page_suddenly_yields_far_fewer_records(
    httpserver: HTTPServer, write_sources, cli: Cli
) -> None:  # type: ignore[no-untyped-def]
    allow_robots(httpserver)
    pages = iter([_page(12), _page(2)])
    httpserver.expect_request("/news").respond_with_handler(
        lambda _request: Response(next(pages), content_type="text/html")
    )
    write_sources(f'\n[[source]]\nname = "regional"\nurl = "{httpserver.url_for("/news")}"\n')
    assert cli("fetch").returncode == 0

    def row() -> dict[str, object]:
        status = cli("status", "--json")
        assert status.returncode == 0, status.stderr
        return json.loads(status.stdout)  # type: ignore[no-any-return]

    assert (row()["health"], row()["last_yield"], row()["warning"]) == ("ok", 12, None)
    assert cli("fetch").returncode == 0
    after = row()
    assert after["health"] == "shrunk"
    assert after["last_yield"] == 2
    assert after["warning"] == "warning: the last read yielded 2 records, usually about 12: the site may have changed"
    table = cli("status")
    assert "shrunk" in table.stdout
    assert "usually about 12" in table.stdout
