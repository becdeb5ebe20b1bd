"""A publish reads each source's newest ``2 * max_items`` news only, and writes what reading everything would."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.publish import PublishInput, news_per_source, publish
from aggregator.records import NewsRecord
from aggregator.runtime import publish_from_store
from aggregator.store import open_store

from .conftest import ALPHA, BASE, BETA, NOW, make_config


def _contents(feeds_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in sorted(feeds_dir.rglob("*")) if p.is_file()}


def _story(source: str, number: int, when: datetime, link: str | None = None) -> NewsRecord:
    return NewsRecord(
        id=f"{source}-{number}",
        source=source,
        title=f"{source.title()} story {number}",
        link=link or f"https://{source}.clusterfeeds.example/news/{number}",
        summary=f"<p>Story {number} of {source}.</p>",
        published=when,
    )


def test_a_publish_reads_each_sources_newest_news_only_and_writes_the_same_files(tmp_path: Path) -> None:
    config = make_config(tmp_path, ALPHA, BETA, max_items=3)
    start = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    # Years of alpha's history: 40 stories, one a day. beta re-posts alpha's newest story.
    alpha = [_story("alpha", n, start + timedelta(days=n)) for n in range(40)]
    beta = [
        _story("beta", 1, start + timedelta(days=39, hours=2), link="https://alpha.clusterfeeds.example/news/39"),
        _story("beta", 2, start + timedelta(days=20)),
    ]
    store = open_store(f"sqlite:///{config.data_dir / 'aggregator.sqlite3'}")
    try:
        store.upsert("alpha", alpha, now=start + timedelta(days=40))
        store.upsert("beta", beta, now=start + timedelta(days=40))
        read_before = store.records_read

        report = publish_from_store(config, store, now=NOW, base_url=BASE)

        assert news_per_source(config) == 6
        assert store.records_read - read_before == 6 + 2  # alpha's newest six and beta's two; no events
        assert "news.xml" in report.written
        # The same files as a publish given every stored item.
        everything = dataclasses.replace(config, feeds_dir=tmp_path / "everything", data_dir=tmp_path / "data2")
        every_item = PublishInput(
            config=everything, news=store.news(), events=[], states=store.states(), now=NOW, base_url=BASE
        )
        assert len(every_item.news) == 42
        publish(everything.feeds_dir, every_item)
    finally:
        store.close()
    published = _contents(config.feeds_dir)
    assert published == _contents(everything.feeds_dir)
    merged = published["news.json"].decode()
    assert [f"Alpha story {n}" in merged for n in (39, 38, 37, 36)] == [True, True, True, False]
    assert '"also_from":["beta"]' in merged  # beta's copy of story 39 is merged into it
    # index.html counts what a source's files show (three news), not every story stored.
    index = published["index.html"].decode()
    rows = re.findall(r'<tr><th scope="row"><a [^>]*>(\w+)</a></th>.*?<td>(\d+)</td><td class="buttons">', index)
    assert rows == [("alpha", "3"), ("beta", "2")]
