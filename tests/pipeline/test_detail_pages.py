"""Listing records missing a summary take it from their detail page; the daemon re-asks with conditional GET."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import config as config_module
from aggregator.config import Config
from aggregator.fetch import Fetcher
from aggregator.pipeline import SPOOL_BYTES, Outcome, Pipeline
from aggregator.processes import parse_pool
from aggregator.records import NewsRecord, Strategy
from aggregator.store import open_store

LISTING = """<!DOCTYPE html>
<!-- A news listing without teaser texts: titles, dates and links only. -->
<html lang="en"><head><meta charset="utf-8"><title>News</title></head><body>
<div class="news">
{items}
</div></body></html>"""
ITEM = '<div class="entry"><h3><a href="/news/{slug}">{title}</a></h3><span class="date">{date}</span></div>'
DETAIL = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta property="og:description" content="{summary}"></head>
<body><article><h1>{title}</h1><p>{summary}</p></article></body></html>"""

STORIES = [
    ("hydrogen", "Hydrogen valley partners meet in Linz", "03.11.2026", "Twelve partners agreed a joint roadmap."),
    ("textiles", "Smart textiles cluster joins Euroclusters", "28.10.2026", "The cluster leads a new consortium."),
    ("aerospace", "Aerospace mission to Toulouse", "20.10.2026", "Eight SMEs met prime contractors."),
]


def _serve(
    httpserver: HTTPServer, stories: list[tuple[str, str, str, str]], seen: list[tuple[str, str | None]]
) -> None:
    listing = LISTING.format(items="\n".join(ITEM.format(slug=s, title=t, date=d) for s, t, d, _ in stories))

    def detail(request: Request) -> Response:
        seen.append((request.path, request.headers.get("If-None-Match")))
        slug = request.path.rsplit("/", 1)[-1]
        _, title, _, summary = next(s for s in STORIES if s[0] == slug)
        tag = f'"{slug}-v1"'
        if request.headers.get("If-None-Match") == tag:
            return Response(status=304, headers={"ETag": tag})
        return Response(DETAIL.format(title=title, summary=summary), headers={"ETag": tag}, content_type="text/html")

    httpserver.clear()
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/news").respond_with_data(listing, content_type="text/html; charset=utf-8")
    for slug, *_ in STORIES:
        httpserver.expect_request(f"/news/{slug}").respond_with_handler(detail)


def _listing_config(tmp_path: Path, url: str, defaults: str = "") -> Config:
    """One listing source whose records take their summaries from up to five detail pages."""
    (tmp_path / "sources.toml").write_text(
        f'[defaults]\nallow_private = true\ntimezone = "Europe/Vienna"\n{defaults}\n'
        f'[[source]]\nname = "regional-cluster"\nurl = "{url}"\ndetail_pages = 5\n',
        encoding="utf-8",
    )
    return config_module.load(tmp_path / "sources.toml")


def test_detail_pages_fill_summaries_and_are_asked_again_with_validators(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    config = _listing_config(tmp_path, httpserver.url_for("/news"))
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    seen: list[tuple[str, str | None]] = []

    fetcher = Fetcher(config.defaults)
    pipeline = Pipeline(config, store, fetcher)

    async def both() -> tuple[Outcome, Outcome]:
        _serve(httpserver, STORIES[:2], seen)
        first = (await pipeline.run_source(config.sources[0])).outcome
        _serve(httpserver, STORIES, seen)  # the listing changes: one more story
        second = (await pipeline.run_source(config.sources[0])).outcome
        await fetcher.aclose()
        return first, second

    first, second = asyncio.run(both())
    assert (first, second) == (Outcome.CHANGED, Outcome.CHANGED)
    news = {item.record.title: item.record for item in store.news()}
    store.close()
    assert len(news) == 3
    hydrogen = news["Hydrogen valley partners meet in Linz"]
    assert isinstance(hydrogen, NewsRecord)
    assert hydrogen.summary == "Twelve partners agreed a joint roadmap."
    assert hydrogen.strategy is Strategy.DETAIL_PAGE
    assert hydrogen.published is not None
    assert hydrogen.published.isoformat() == "2026-11-03T00:00:00+01:00"
    # First run: two pages without validators; second run: the known two with their ETag, the new one without.
    assert sorted(seen[:2]) == [("/news/hydrogen", None), ("/news/textiles", None)]
    assert sorted(seen[2:]) == [
        ("/news/aerospace", None),
        ("/news/hydrogen", '"hydrogen-v1"'),
        ("/news/textiles", '"textiles-v1"'),
    ]


def test_a_big_listings_records_go_back_to_the_daemon_for_their_detail_pages(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """A big document is parsed by a process of its own, which stores its records itself unless the
    daemon still has work on them: here, fetching their detail pages."""
    listing = LISTING.format(items="\n".join(ITEM.format(slug=s, title=t, date=d) for s, t, d, _ in STORIES))
    padded = listing.replace("<!-- A news", "<!-- " + "x" * SPOOL_BYTES + " -->\n<!-- A news")
    httpserver.clear()
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/news").respond_with_data(padded, content_type="text/html; charset=utf-8")
    for slug, title, _, summary in STORIES:
        httpserver.expect_request(f"/news/{slug}").respond_with_data(
            DETAIL.format(title=title, summary=summary), content_type="text/html"
        )
    config = _listing_config(tmp_path, httpserver.url_for("/news"), 'data_dir = "data"\n')
    config.data_dir.mkdir()
    store = open_store(f"sqlite:///{config.data_dir / 'db.sqlite3'}")
    pool = parse_pool(1)
    try:
        pipeline = Pipeline(config, store, Fetcher(config.defaults), executor=pool)

        async def run() -> Outcome:
            try:
                return (await pipeline.run_source(config.sources[0])).outcome
            finally:
                await pipeline.fetcher.aclose()

        outcome = asyncio.run(run())
    finally:
        pool.shutdown()
    assert outcome is Outcome.CHANGED
    assert pipeline.bodies_spooled == 1
    assert store.records_written == 3  # stored by the daemon, after its detail pages
    news = {item.record.title: item.record for item in store.news()}
    store.close()
    assert {title: (record.summary, record.strategy) for title, record in news.items()} == {
        title: (summary, Strategy.DETAIL_PAGE) for _, title, _, summary in STORIES
    }
