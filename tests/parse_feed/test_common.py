"""Shared parse helpers: Windows zone names, feed dates, ids, tags, titles, bounded HTML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from aggregator.parse import _common, tzmap
from aggregator.parse._common import (
    bounded_html,
    hash_id,
    merge_tags,
    read_feed_date,
    text_to_html,
    title_from_summary,
)
from aggregator.parse.tzmap import WINDOWS_TO_IANA, iana_for_windows

VIENNA = ZoneInfo("Europe/Vienna")


def test_public_names_are_exported() -> None:
    assert tzmap.__all__ == ["WINDOWS_TO_IANA", "iana_for_windows", "same_windows_zone"]
    assert all(hasattr(_common, name) for name in _common.__all__)


@pytest.mark.parametrize(
    ("name", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Romance Standard Time", "Europe/Paris"),
        ("GMT Standard Time", "Europe/London"),
        ("Central Europe Standard Time", "Europe/Budapest"),
        ("Central European Standard Time", "Europe/Warsaw"),
        ("FLE Standard Time", "Europe/Kyiv"),
        ("GTB Standard Time", "Europe/Bucharest"),
        ("E. Europe Standard Time", "Europe/Chisinau"),
        ("Russian Standard Time", "Europe/Moscow"),
        ("Turkey Standard Time", "Europe/Istanbul"),
        ("Greenwich Standard Time", "Atlantic/Reykjavik"),
        ("UTC", "UTC"),
        ("w. europe standard time", "Europe/Berlin"),
        ('"Romance Standard Time"', "Europe/Paris"),
        ("(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Berlin"),
        ("(GMT+01.00) Amsterdam / Berlin / Bern / Rome / Stockholm / Vienna", "Europe/Berlin"),
        ("(UTC+01:00) Brussels, Copenhagen, Madrid, Paris", "Europe/Paris"),
        ("(UTC+00:00) Dublin, Edinburgh, Lisbon, London", "Europe/London"),
        ("(UTC) Coordinated Universal Time", "UTC"),
        ("Europe/Berlin", None),
        ("Atlantis Standard Time", None),
    ],
)
def test_windows_and_outlook_display_names_map_to_iana(name: str, iana: str | None) -> None:
    assert iana_for_windows(name) == iana


def test_every_mapped_zone_exists_in_the_tz_database() -> None:
    assert len(WINDOWS_TO_IANA) == 141
    for iana in WINDOWS_TO_IANA.values():
        assert ZoneInfo(iana).key == iana


@pytest.mark.parametrize(
    ("text", "expected", "reader"),
    [
        ("2025-03-18T09:30:00+01:00", datetime(2025, 3, 18, 9, 30, tzinfo=timezone(timedelta(hours=1))), "iso8601"),
        ("2025-03-18T08:30:00Z", datetime(2025, 3, 18, 8, 30, tzinfo=UTC), "iso8601"),
        ("2025-03-18T09:30:00", datetime(2025, 3, 18, 9, 30, tzinfo=VIENNA), "iso8601"),
        ("2025-03-18", datetime(2025, 3, 18, 0, 0, tzinfo=VIENNA), "iso8601"),
        (
            "Tue, 18 Mar 2025 09:30:00 +0100",
            datetime(2025, 3, 18, 9, 30, tzinfo=timezone(timedelta(hours=1))),
            "rfc822",
        ),
        ("Tue, 18 Mar 2025 08:30:00 GMT", datetime(2025, 3, 18, 8, 30, tzinfo=UTC), "rfc822"),
        ("Tue, 18 Mar 2025 08:30:00 -0000", datetime(2025, 3, 18, 8, 30, tzinfo=UTC), "rfc822"),
        ("Tue, 01 Jul 2025 10:00:00 MESZ", datetime(2025, 7, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))), "rfc822"),
        ("Tue, 18 Mar 2025 09:30:00", datetime(2025, 3, 18, 9, 30, tzinfo=VIENNA), "rfc822"),
        ("le 10 mars 2025", None, "unparsed"),
        ("", None, "unparsed"),
    ],
)
def test_feed_dates_keep_their_offset_and_name_their_reader(text: str, expected: datetime | None, reader: str) -> None:
    value, used = read_feed_date(text, VIENNA)

    assert (value, used) == (expected, reader)
    if expected is not None and value is not None:
        assert value.utcoffset() == expected.utcoffset()


def test_hash_id_is_pinned_because_stored_ids_depend_on_it() -> None:
    assert hash_id("https://c.example.eu/calls", "Call A", "") == hash_id("https://c.example.eu/calls", "Call A", None)
    assert hash_id("a", "b") != hash_id("ab", "")
    assert hash_id("src", "Matchmaking", "2025-06-12T14:00:00+02:00") == "hash:45cfab7c4c94f4b6d7ab8dc397622488"


def test_merge_tags_keeps_source_tags_first_and_drops_case_repeats() -> None:
    assert merge_tags(("energie", "Cluster"), ("Energie", " Wasserstoff ", "", "cluster", "KI")) == (
        "energie",
        "Cluster",
        "Wasserstoff",
        "KI",
    )


@pytest.mark.parametrize(
    ("summary", "title"),
    [
        ("<p>Kurz &amp; gut</p>", "Kurz & gut"),
        ("", "(untitled)"),
        ("<p> </p>", "(untitled)"),
        (
            "<p>Die Mitglieder des Clusters treffen sich am 20. März in Linz zu einem Austausch über Förderungen.</p>",
            "Die Mitglieder des Clusters treffen sich am 20. März in Linz zu einem Austausch…",
        ),
    ],
)
def test_title_from_summary_cuts_at_a_word(summary: str, title: str) -> None:
    assert title_from_summary(summary) == title


def test_text_to_html_escapes_and_splits_paragraphs() -> None:
    assert text_to_html("A < B & C\r\nzweite Zeile\n\n\nNeuer Absatz\n") == (
        "<p>A &lt; B &amp; C<br>\nzweite Zeile</p>\n<p>Neuer Absatz</p>"
    )


def test_bounded_html_stays_near_the_limit_and_well_formed() -> None:
    fragment = "<p>" + "Wort " * 10_000 + "</p>"

    bounded = bounded_html(fragment, base_url=None, limit=1000)

    # 1000 characters of sanitised HTML, an ellipsis, and the paragraph nh3 closed again.
    assert bounded == "<p>" + "Wort " * 199 + "Wo…</p>"
