"""Loading sources.toml: values, defaults, folders, URL rewriting and the shipped list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import (
    CliPaths,
    Config,
    Defaults,
    Selectors,
    ServerSettings,
    SourceConfig,
    SourceKind,
    load,
)
from aggregator.records import RecordKind

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"


def test_every_key_of_the_full_example_is_read() -> None:
    config = load(FIXTURES / "full.toml")

    assert config.path == FIXTURES / "full.toml"
    assert config.defaults == Defaults(
        interval=timedelta(minutes=45),
        timezone=ZoneInfo("Europe/Vienna"),
        timeout=12.5,
        max_bytes=5_000_000,
        max_items=50,
        past_days=30,
        allow_private=True,
        allowed_hosts=("clustercollaboration.eu", "www.biz-up.at", "www.silicon-saxony.de"),
        concurrency=4,
        per_host=1,
        max_redirects=3,
        backoff_cap=timedelta(hours=12),
        dormant_after=timedelta(days=30),
        title="Cluster news, Central Europe",
        database_url="postgresql://feeds@db.internal/clusterfeeds",
        publish_processes=1,
        publish_memory_mb=16,
        publish_copy_limit_mb=250,
        publish_stream_records=20_000,
    )
    assert config.server == ServerSettings(host="0.0.0.0", port=8081, base_url="https://feeds.example.org/clusters/")
    assert config.sources == (
        SourceConfig(
            name="eccp-news",
            url="https://clustercollaboration.eu/news",
            kind=SourceKind.FEED,
            tags=("eu", "policy"),
            interval=timedelta(minutes=90),
            timezone=ZoneInfo("Europe/Brussels"),
            enabled=False,
            selectors=None,
            headers=(("Accept-Language", "en"), ("X-Contact", "ops@example.org")),
            timeout=20.0,
            allow_private=False,
            max_detail_pages=5,
            line=32,
        ),
        SourceConfig(
            name="clusterland-calendar",
            url="https://www.biz-up.at/veranstaltungen/kalender.ics",
            kind=SourceKind.ICAL,
            tags=("at", "events"),
            interval=timedelta(minutes=45),
            timezone=ZoneInfo("Europe/Vienna"),
            timeout=12.5,
            allow_private=True,
            line=45,
        ),
        SourceConfig(
            name="silicon-saxony-events",
            url="https://www.silicon-saxony.de/veranstaltungen/",
            kind=SourceKind.HTML,
            interval=timedelta(minutes=45),
            timezone=ZoneInfo("Europe/Vienna"),
            selectors=Selectors(
                item="div.event-teaser",
                title="h3 a",
                link="h3 a",
                date="span.date",
                summary="p.teaser",
                location="span.place",
                record=RecordKind.EVENT,
            ),
            timeout=12.5,
            allow_private=True,
            line=54,
        ),
    )
    assert [source.line for source in config.sources] == [32, 45, 54]
    assert config.source("clusterland-calendar") is config.sources[1]
    assert config.source("no-such-cluster") is None


def test_folders_in_defaults_are_relative_to_the_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    config = load(FIXTURES / "full.toml")

    assert config.data_dir == FIXTURES / "state" / "db"
    assert config.feeds_dir == FIXTURES / "public"


def test_folders_default_to_data_and_feeds_beside_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sources.toml").write_text('[[source]]\nname = "flux50"\nurl = "https://www.flux50.com/news"\n')
    monkeypatch.chdir(tmp_path)

    config = load(Path("site/sources.toml"))

    assert config.path == site / "sources.toml"
    assert config.data_dir == site / "data"
    assert config.feeds_dir == site / "feeds"


def test_command_line_folders_win_over_defaults_and_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    config = load(FIXTURES / "full.toml", data_dir=Path("var/lib"), feeds_dir=tmp_path / "www")

    assert config.data_dir == tmp_path / "var" / "lib"
    assert config.feeds_dir == tmp_path / "www"


def test_command_line_folders_can_come_as_cli_paths(tmp_path: Path) -> None:
    config = load(FIXTURES / "full.toml", overrides=CliPaths(feeds_dir=tmp_path / "www"))

    assert config.data_dir == FIXTURES / "state" / "db"
    assert config.feeds_dir == tmp_path / "www"


def test_source_without_optional_keys_takes_them_from_defaults(load_text: Callable[[str], Config]) -> None:
    config = load_text(
        "[defaults]\n"
        'interval = "2h"\n'
        'timezone = "Europe/Copenhagen"\n'
        "timeout = 15\n"
        "allow_private = true\n"
        "\n"
        "# Cluster Excellence Denmark news\n"
        "[[source]]\n"
        'name = "cluster-excellence-denmark"\n'
        'url = "https://clusterexcellencedenmark.dk/en/news/"\n'
    )

    assert config.sources == (
        SourceConfig(
            name="cluster-excellence-denmark",
            url="https://clusterexcellencedenmark.dk/en/news/",
            interval=timedelta(hours=2),
            timezone=ZoneInfo("Europe/Copenhagen"),
            timeout=15.0,
            allow_private=True,
            line=8,
        ),
    )
    assert config.sources[0].line == 8


def test_empty_file_gives_built_in_defaults_and_no_sources(load_text: Callable[[str], Config], in_tmp: Path) -> None:
    config = load_text("")

    assert config.defaults == Defaults()
    assert config.server == ServerSettings()
    assert config.sources == ()
    assert config.data_dir == in_tmp / "data"


@pytest.mark.parametrize(
    ("url", "fetched"),
    [
        ("webcal://www.biz-up.at/kalender.ics", "https://www.biz-up.at/kalender.ics"),
        ("webcals://www.biz-up.at/kalender.ics", "https://www.biz-up.at/kalender.ics"),
        ("WEBCAL://www.biz-up.at/kalender.ics", "https://www.biz-up.at/kalender.ics"),
        ("http://mva.org/news/", "http://mva.org/news/"),
    ],
)
def test_webcal_urls_are_fetched_over_https(load_text: Callable[[str], Config], url: str, fetched: str) -> None:
    config = load_text(f'[[source]]\nname = "clusterland"\nurl = "{url}"\nkind = "ical"\n')

    assert config.sources[0].url == fetched


def test_relative_file_url_is_resolved_against_the_folder_of_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sources.toml").write_text(
        "[[source]]\n"
        'name = "eccp-offline"\n'
        'url = "file:snapshots/eccp news.xml"\n'
        "[[source]]\n"
        'name = "eccp-parent"\n'
        'url = "file:../shared/eccp.ics"\n'
        "[[source]]\n"
        'name = "eccp-absolute"\n'
        'url = "file:///srv/cluster%20feeds/eccp.xml"\n'
    )
    monkeypatch.chdir(tmp_path)

    config = load(Path("site/sources.toml"))

    assert [s.url for s in config.sources] == [
        (site / "snapshots" / "eccp news.xml").as_uri(),
        (tmp_path / "shared" / "eccp.ics").as_uri(),
        "file:///srv/cluster%20feeds/eccp.xml",
    ]


def test_base_url_gets_a_trailing_slash(load_text: Callable[[str], Config]) -> None:
    config = load_text('[server]\nbase_url = "https://feeds.example.org/clusters"\n')

    assert config.server.base_url == "https://feeds.example.org/clusters/"


def test_lines_are_found_past_multiline_arrays_and_strings(problems: Callable[[str], list[str]]) -> None:
    messages = problems(
        "[[source]]\n"
        'name = "eccp-news"\n'
        'url = "https://clustercollaboration.eu/news"\n'
        "tags = [\n"
        '  "eu",\n'
        '  "policy",  # [[source]] in a comment\n'
        "]\n"
        'headers = { "X-Note" = """\n'
        'name = "not-a-key"\n'
        '[[source]]""" }\n'
        'interval = "fortnightly"\n'
    )

    assert messages == [
        "sources.toml:8: source 'eccp-news': headers: \"X-Note\": value must be one line",
        "sources.toml:11: source 'eccp-news': interval: not a duration: \"fortnightly\" "
        '(use e.g. "90s", "15m", "2h", "1d" or "1h30m")',
    ]


def test_shipped_sources_toml_loads() -> None:
    config = load(REPO / "sources.toml")

    assert config.defaults.timezone == ZoneInfo("Europe/Brussels")
    assert config.defaults.interval == timedelta(hours=1)
    assert config.server == ServerSettings(host="127.0.0.1", port=8080)
    assert config.data_dir == REPO / "data"
    assert config.feeds_dir == REPO / "feeds"
    assert len(config.sources) == 20
    assert [s.name for s in config.sources[:4]] == [
        "eccp-news",
        "eccp-events",
        "eccp-community-news",
        "eccp-calendar",
    ]
    calendar = config.source("eccp-calendar")
    assert calendar is not None
    assert (calendar.url, calendar.kind, calendar.enabled) == (
        "https://clustercollaboration.eu/events/ical",
        SourceKind.ICAL,
        False,
    )
    biz_up = config.source("biz-up-news")
    assert biz_up is not None
    assert (biz_up.timezone, biz_up.headers) == (
        ZoneInfo("Europe/Vienna"),
        (("Accept-Language", "de-AT, de;q=0.9, en;q=0.5"),),
    )
    assert sum(s.enabled for s in config.sources) == 19
    assert all(s.url.startswith("https://") for s in config.sources)


def test_moving_a_source_in_the_file_leaves_it_equal(load_text: Callable[[str], Config]) -> None:
    flux50 = '[[source]]\nname = "flux50"\nurl = "https://www.flux50.com/news"\n'
    first = load_text(flux50).sources[0]
    moved = load_text("# Flanders energy cluster\n\n" + flux50).sources[0]

    assert (first.line, moved.line) == (1, 3)
    assert moved == first
