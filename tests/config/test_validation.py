"""Every problem sources.toml can have, with the exact message it produces.

Messages read ``PATH:LINE: source 'NAME': KEY: problem``; the tests load ``sources.toml``
from the working directory, so PATH is that relative name, as the command line prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aggregator.config import load
from aggregator.errors import ConfigError, ConfigErrors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"

Problems = Callable[[str], list[str]]

ECCP = '[[source]]\nname = "eccp-news"\nurl = "https://clustercollaboration.eu/news"\n'
HINT = '(use e.g. "90s", "15m", "2h", "1d" or "1h30m")'


def test_all_problems_of_a_file_are_reported_together_in_line_order() -> None:
    with pytest.raises(ConfigErrors) as caught:
        load(FIXTURES / "many_problems.toml")

    at = f"{FIXTURES / 'many_problems.toml'}:"
    assert [str(error).removeprefix(at) for error in caught.value.errors] == [
        '4: defaults.interval: "5s" is shorter than 1 minute',
        '5: defaults.timezone: unknown time zone "Europe/Brusels", did you mean "Europe/Brussels"?',
        "6: defaults.concurency: unknown key, did you mean 'concurrency'?",
        "9: server.port: must be between 1 and 65535, got 80800",
        '10: server.base_url: must be an absolute http(s) URL, got "feeds.example.org"',
        "14: source 'eccp-news': url: scheme \"ftp\" is not supported (use http, https, webcal, webcals or file)",
        "15: source 'eccp-news': intervall: unknown key, did you mean 'interval'?",
        "17: source #2: name: missing",
        "19: source #2: tags: \"Upper Austria\" is not a slug (lower-case letters, digits, '-' and '_', "
        "starting with a letter or digit)",
        "22: source 'eccp-news': name: duplicate, first used at line 13",
        '25: source \'eccp-news\': item: a CSS selector, only used with kind = "html" (this source has kind = "feed")',
        "27: source 'silicon-saxony': item: missing (kind = \"html\" needs an item selector)",
        "31: source 'silicon-saxony': title: invalid CSS selector \"h3..headline\": "
        "Malformed class selector at position 2",
        '32: source \'silicon-saxony\': record: must be "news" or "event", got "article"',
        "33: source 'silicon-saxony': timeout: expected a number of seconds, got string \"30\"",
    ]
    assert str(caught.value).count("\n") == 14


def test_error_carries_file_line_source_and_key_as_attributes(in_tmp: Path) -> None:
    Path("sources.toml").write_text('[[source]]\nurl = "https://mva.org/news/"\n')

    with pytest.raises(ConfigErrors) as caught:
        load(Path("sources.toml"))

    (error,) = caught.value.errors
    assert isinstance(error, ConfigError)
    assert (error.path, error.line, error.source, error.index, error.key, error.problem) == (
        "sources.toml",
        1,
        None,
        1,
        "name",
        "missing",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '[defaults]\ninterval = "30m"\ntimezone = \n',
            ["sources.toml:3: invalid TOML: invalid value (column 12)"],
            id="toml-syntax",
        ),
        pytest.param(
            ECCP + 'name = "eccp-events"\n',
            ["sources.toml:4: invalid TOML: cannot overwrite a value (column 21)"],
            id="toml-duplicate-key",
        ),
        pytest.param(
            '[[source]]\ntags = ["eu",\n',
            ["sources.toml:2: invalid TOML: invalid value (at end of file)"],
            id="toml-unclosed-array",
        ),
    ],
)
def test_toml_syntax_errors_point_at_the_line(problems: Problems, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_file_that_is_not_utf8_is_reported_with_its_line(in_tmp: Path) -> None:
    (in_tmp / "sources.toml").write_bytes(b'[defaults]\ntitle = "Cluster-Neuigkeiten M\xfcnchen"\n')

    with pytest.raises(ConfigErrors) as caught:
        load(Path("sources.toml"))

    assert str(caught.value) == "sources.toml:2: not UTF-8 text (byte 41 is 0xfc)"


def test_missing_file_is_one_error_without_a_line(in_tmp: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load(Path("sources.toml"))

    assert str(caught.value) == "sources.toml: cannot read: No such file or directory"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            ECCP + 'intervall = "1h"\n',
            ["sources.toml:4: source 'eccp-news': intervall: unknown key, did you mean 'interval'?"],
            id="source-key-typo",
        ),
        pytest.param(
            ECCP + 'owner = "ECCP"\n',
            ["sources.toml:4: source 'eccp-news': owner: unknown key"],
            id="source-key-unknown",
        ),
        pytest.param(
            '[defaults]\ntime_zone = "Europe/Brussels"\n',
            ["sources.toml:2: defaults.time_zone: unknown key, did you mean 'timezone'?"],
            id="defaults-key-typo",
        ),
        pytest.param(
            '[server]\nbase = "https://feeds.example.org/"\n',
            ["sources.toml:2: server.base: unknown key, did you mean 'base_url'?"],
            id="server-key-typo",
        ),
        pytest.param(
            '[default]\ninterval = "1h"\n',
            ["sources.toml:1: default: unknown table, did you mean 'defaults'?"],
            id="top-level-table-typo",
        ),
        pytest.param(
            '[[sources]]\nname = "eccp-news"\n',
            ["sources.toml:1: sources: unknown table, did you mean 'source'?"],
            id="array-of-tables-typo",
        ),
        pytest.param(
            'title = "Cluster news"\n',
            ["sources.toml:1: title: unknown key"],
            id="top-level-key",
        ),
    ],
)
def test_unknown_keys_suggest_the_closest_known_key(problems: Problems, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '[[source]]\nname = "eccp-news"\nurl = 42\n',
            ["sources.toml:3: source 'eccp-news': url: expected a string, got integer 42"],
            id="url-integer",
        ),
        pytest.param(
            ECCP + 'tags = "eu"\n',
            ["sources.toml:4: source 'eccp-news': tags: expected an array of strings, got string \"eu\""],
            id="tags-string",
        ),
        pytest.param(
            ECCP + 'tags = ["eu", 7]\n',
            ["sources.toml:4: source 'eccp-news': tags: expected an array of strings, got integer 7"],
            id="tags-item-integer",
        ),
        pytest.param(
            ECCP + 'enabled = "yes"\n',
            ["sources.toml:4: source 'eccp-news': enabled: expected true or false, got string \"yes\""],
            id="enabled-string",
        ),
        pytest.param(
            ECCP + "interval = 30\n",
            ["sources.toml:4: source 'eccp-news': interval: expected a string, got integer 30"],
            id="interval-integer",
        ),
        pytest.param(
            ECCP + "detail_pages = 2.5\n",
            ["sources.toml:4: source 'eccp-news': detail_pages: expected an integer, got float 2.5"],
            id="detail-pages-float",
        ),
        pytest.param(
            ECCP + 'headers = ["Accept-Language: de"]\n',
            ["sources.toml:4: source 'eccp-news': headers: expected a table of strings, got array"],
            id="headers-array",
        ),
        pytest.param(
            '[server]\nport = "8080"\n',
            ['sources.toml:2: server.port: expected an integer, got string "8080"'],
            id="port-string",
        ),
        pytest.param(
            "[defaults]\nallow_private = 1\n",
            ["sources.toml:2: defaults.allow_private: expected true or false, got integer 1"],
            id="allow-private-integer",
        ),
        pytest.param(
            "[defaults]\nconcurrency = true\n",
            ["sources.toml:2: defaults.concurrency: expected an integer, got boolean true"],
            id="concurrency-boolean",
        ),
        pytest.param(
            "[defaults]\ntitle = 2026-11-26\n",
            ["sources.toml:2: defaults.title: expected a string, got date"],
            id="title-date",
        ),
        pytest.param(
            'defaults = "none"\n',
            ['sources.toml:1: defaults: expected a table, got string "none"'],
            id="defaults-string",
        ),
        pytest.param(
            '[source]\nname = "eccp-news"\n',
            ["sources.toml:1: source: expected an array of tables ([[source]]), got table"],
            id="source-single-table",
        ),
    ],
)
def test_wrong_types_say_what_was_expected_and_what_was_found(
    problems: Problems, text: str, expected: list[str]
) -> None:
    assert problems(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '[[source]]\nurl = "https://www.biz-up.at/news"\n',
            ["sources.toml:1: source #1: name: missing"],
            id="name-missing",
        ),
        pytest.param(
            ECCP + '[[source]]\nname = "biz-up"\n',
            ["sources.toml:4: source 'biz-up': url: missing"],
            id="url-missing",
        ),
        pytest.param(
            ECCP + "[[source]]\n\n[[source]]\nname = 3\n",
            [
                "sources.toml:4: source #2: name: missing",
                "sources.toml:4: source #2: url: missing",
                "sources.toml:6: source #3: url: missing",
                "sources.toml:7: source #3: name: expected a string, got integer 3",
            ],
            id="unnamed-sources-numbered",
        ),
        pytest.param(
            '[[source]]\nname = "ECCP News"\nurl = "https://clustercollaboration.eu/news"\n',
            [
                "sources.toml:2: source 'ECCP News': name: \"ECCP News\" is not a slug (lower-case letters, "
                "digits, '-' and '_', starting with a letter or digit)"
            ],
            id="name-not-slug",
        ),
        pytest.param(
            ECCP + "\n" + ECCP,
            ["sources.toml:6: source 'eccp-news': name: duplicate, first used at line 2"],
            id="duplicate-name",
        ),
    ],
)
def test_names_and_urls_are_required_and_names_unique(problems: Problems, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "ftp://clustercollaboration.eu/news",
            'scheme "ftp" is not supported (use http, https, webcal, webcals or file)',
        ),
        ("https:///news", 'missing host in "https:///news"'),
        (
            "clustercollaboration.eu/news",
            'not an absolute URL: "clustercollaboration.eu/news" (start it with https://)',
        ),
        (
            "https://clustercollaboration.eu/news and events",
            'not a URL: "https://clustercollaboration.eu/news and events"',
        ),
        (" https://clustercollaboration.eu/news", 'not a URL: " https://clustercollaboration.eu/news"'),
        ("https://clustercollaboration.eu:http/news", 'not a URL: "https://clustercollaboration.eu:http/news"'),
        (
            "file://snapshots/eccp.xml",
            'file URL names host "snapshots" (write file:///absolute/path or file:relative/path)',
        ),
        ("file:", "file URL has no path"),
    ],
)
def test_bad_urls_are_explained(problems: Problems, url: str, problem: str) -> None:
    assert problems(f'[[source]]\nname = "eccp-news"\nurl = "{url}"\n') == [
        f"sources.toml:3: source 'eccp-news': url: {problem}"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            ECCP + 'interval = "hourly"\n',
            [f"sources.toml:4: source 'eccp-news': interval: not a duration: \"hourly\" {HINT}"],
            id="source-interval",
        ),
        pytest.param(
            ECCP + 'interval = "45s"\n',
            ["sources.toml:4: source 'eccp-news': interval: \"45s\" is shorter than 1 minute"],
            id="source-interval-short",
        ),
        pytest.param(
            '[defaults]\nbackoff_cap = "1 day"\n',
            [f'sources.toml:2: defaults.backoff_cap: not a duration: "1 day" {HINT}'],
            id="defaults-backoff-cap",
        ),
        pytest.param(
            ECCP + 'timezone = "Europe/Viena"\n',
            [
                "sources.toml:4: source 'eccp-news': timezone: unknown time zone \"Europe/Viena\", "
                'did you mean "Europe/Vienna"?'
            ],
            id="zone-typo",
        ),
        pytest.param(
            '[defaults]\ntimezone = "Brussels time"\n',
            ['sources.toml:2: defaults.timezone: unknown time zone "Brussels time"'],
            id="zone-unknown",
        ),
        pytest.param(
            '[defaults]\ntimezone = "../../etc/passwd"\n',
            ['sources.toml:2: defaults.timezone: unknown time zone "../../etc/passwd"'],
            id="zone-path",
        ),
    ],
)
def test_bad_intervals_and_time_zones(problems: Problems, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


HTML = '[[source]]\nname = "silicon-saxony"\nurl = "https://www.silicon-saxony.de/veranstaltungen/"\nkind = "html"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            HTML + 'item = "div.event["\n',
            [
                "sources.toml:5: source 'silicon-saxony': item: invalid CSS selector \"div.event[\": "
                "Malformed attribute selector at position 9"
            ],
            id="item-invalid",
        ),
        pytest.param(
            HTML + 'item = "div.event"\ndate = "span:when"\n',
            [
                "sources.toml:6: source 'silicon-saxony': date: invalid CSS selector \"span:when\": "
                "':when' was detected as a pseudo-class and is either unsupported or invalid. "
                "If the syntax was not intended to be recognized as a pseudo-class, please escape the colon."
            ],
            id="date-unknown-pseudo-class",
        ),
        pytest.param(
            HTML + 'title = "h3"\n',
            ["sources.toml:1: source 'silicon-saxony': item: missing (kind = \"html\" needs an item selector)"],
            id="html-without-item",
        ),
        pytest.param(
            ECCP + 'title = "h3"\nrecord = "event"\n',
            [
                "sources.toml:4: source 'eccp-news': title: a CSS selector, only used with kind = \"html\" "
                '(this source has kind = "auto")',
                "sources.toml:5: source 'eccp-news': record: only used with kind = \"html\" "
                '(this source has kind = "auto")',
            ],
            id="selectors-on-auto",
        ),
        pytest.param(
            HTML + 'item = "div.event"\nrecord = "meeting"\n',
            ['sources.toml:6: source \'silicon-saxony\': record: must be "news" or "event", got "meeting"'],
            id="record-unknown",
        ),
        pytest.param(
            ECCP + 'kind = "rss"\nitem = "li"\n',
            ['sources.toml:4: source \'eccp-news\': kind: must be one of "auto", "feed", "ical", "html", got "rss"'],
            id="kind-unknown",
        ),
    ],
)
def test_selector_problems(problems: Problems, text: str, expected: list[str]) -> None:
    assert problems(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "[server]\nport = 0\n", ["sources.toml:2: server.port: must be between 1 and 65535, got 0"], id="port-0"
        ),
        pytest.param(
            '[server]\nbase_url = "ftp://feeds.example.org/"\n',
            ['sources.toml:2: server.base_url: must be an absolute http(s) URL, got "ftp://feeds.example.org/"'],
            id="base-url-scheme",
        ),
        pytest.param(
            '[server]\nbase_url = "https://feeds.example.org/?lang=de"\n',
            [
                "sources.toml:2: server.base_url: must not have a query or fragment, "
                'got "https://feeds.example.org/?lang=de"'
            ],
            id="base-url-query",
        ),
        pytest.param(
            '[server]\nhost = ""\n',
            ["sources.toml:2: server.host: must not be empty"],
            id="host-empty",
        ),
        pytest.param(
            '[defaults]\ndatabase_url = "mysql://feeds:secret@db/clusterfeeds"\n',
            [
                'sources.toml:2: defaults.database_url: must start with "postgresql://" or "sqlite:///", '
                'got scheme "mysql"'
            ],
            id="database-url-scheme",
        ),
        pytest.param(
            '[defaults]\nallowed_hosts = ["clustercollaboration.eu", "https://www.biz-up.at/"]\n',
            [
                'sources.toml:2: defaults.allowed_hosts: "https://www.biz-up.at/" is not a host name '
                '(write e.g. "clustercollaboration.eu")'
            ],
            id="allowed-hosts-url",
        ),
        pytest.param(
            "[defaults]\nmax_items = 0\npast_days = -1\ntimeout = 0\n",
            [
                "sources.toml:2: defaults.max_items: must be at least 1, got 0",
                "sources.toml:3: defaults.past_days: must be at least 0, got -1",
                "sources.toml:4: defaults.timeout: must be a positive number of seconds, got 0",
            ],
            id="defaults-ranges",
        ),
        pytest.param(
            "[defaults]\npublish_processes = 5\n",
            ["sources.toml:2: defaults.publish_processes: must be between 1 and 4, got 5"],
            id="publish-processes-range",
        ),
        pytest.param(
            "[defaults]\npublish_memory_mb = -1\n",
            ["sources.toml:2: defaults.publish_memory_mb: must be at least 0, got -1"],
            id="publish-memory-range",
        ),
        pytest.param(
            "[defaults]\npublish_stream_records = -5\n",
            ["sources.toml:2: defaults.publish_stream_records: must be at least 0, got -5"],
            id="publish-stream-records-range",
        ),
        pytest.param(
            ECCP + "detail_pages = -3\n",
            ["sources.toml:4: source 'eccp-news': detail_pages: must be at least 0, got -3"],
            id="detail-pages-negative",
        ),
        pytest.param(
            ECCP + 'headers = { "Accept Language" = "de", "X-Count" = 3 }\n',
            [
                "sources.toml:4: source 'eccp-news': headers: \"Accept Language\" is not a header name",
                "sources.toml:4: source 'eccp-news': headers: \"X-Count\": expected a string, got integer 3",
            ],
            id="headers-bad",
        ),
        pytest.param(
            '[defaults]\ndata_dir = ""\n',
            ["sources.toml:2: defaults.data_dir: must not be empty"],
            id="data-dir-empty",
        ),
    ],
)
def test_defaults_and_server_values_are_checked(problems: Problems, text: str, expected: list[str]) -> None:
    assert problems(text) == expected
