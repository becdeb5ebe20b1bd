"""Faster spellings of the renderers' helpers give exactly the bytes of the plain ones.

The publish loop goes format by format over all scopes (dropping each format's fragments);
``render_all`` goes scope by scope: both must produce the same files, byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.publish import PublishInput, publish, render_all
from aggregator.publish._common import item_id, rfc822, rfc3339
from aggregator.publish._files import write_if_changed
from aggregator.publish.ics import fold


def test_publish_writes_exactly_the_bytes_render_all_makes(feeds_dir: Path, cluster_input: PublishInput) -> None:
    expected = {output.path: output.data for output in render_all(cluster_input)}
    report = publish(feeds_dir, cluster_input)
    on_disk = {p.relative_to(feeds_dir).as_posix(): p.read_bytes() for p in feeds_dir.rglob("*") if p.is_file()}
    assert (len(report.written), len(expected)) == (30, 30)
    assert on_disk == expected


def _reference_fold(line: str) -> str:
    """RFC 5545 folding one character at a time (what the byte-slicing version must equal)."""
    if len(line.encode("utf-8")) <= 75:
        return line + "\r\n"
    chunks, current, size, limit = [], "", 0, 75
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            chunks.append(current)
            current, size, limit = "", 0, 74
        current += char
        size += width
    chunks.append(current)
    return "\r\n ".join(chunks) + "\r\n"


def test_folding_a_long_description_with_umlauts_and_emoji_breaks_between_characters() -> None:
    line = "DESCRIPTION:Die Wasserstoff-Plattform Steiermark lädt zur Förderberatung 🚀 für Unternehmen über 75 Oktette"
    folded = fold(line)
    assert folded == _reference_fold(line)
    assert [len(part.encode("utf-8")) for part in folded.removesuffix("\r\n").split("\r\n")] == [75, 39]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ ;,\\:é€ß😀\u0301")), max_size=300))
def test_fold_equals_folding_character_by_character(line: str) -> None:
    assert fold(line) == _reference_fold(line)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30))
def test_item_ids_escape_like_urllib_quote(record_id: str) -> None:
    assert item_id("silicon-alps", record_id) == "tag:clusterfeeds,2026:silicon-alps/" + quote(record_id, safe="")


def test_item_id_of_a_link_with_umlauts() -> None:
    assert item_id("ecoplus", "https://ecoplus.at/news/förderung?id=7") == (
        "tag:clusterfeeds,2026:ecoplus/https%3A%2F%2Fecoplus.at%2Fnews%2Ff%C3%B6rderung%3Fid%3D7"
    )


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_dates_are_spelled_like_strftime(moment: datetime) -> None:
    assert rfc3339(moment) == moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_big_file_differing_only_in_its_last_byte_is_rewritten_and_an_equal_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "news.xml"
    body = b"<item>Cluster news</item>\n" * 100_000  # 2.6 MB: compared in several chunks
    assert write_if_changed(path, body) is True
    assert write_if_changed(path, body) is False
    changed = body[:-1] + b"!"
    assert write_if_changed(path, changed) is True
    assert path.read_bytes()[-3:] == b"m>!"
    assert write_if_changed(path, b"") is True
    assert (path.read_bytes(), write_if_changed(path, b"")) == (b"", False)


def test_a_vienna_date_is_spelled_in_utc() -> None:
    vienna = datetime(2027, 3, 28, 3, 30, tzinfo=ZoneInfo("Europe/Vienna"))  # just after the switch to CEST
    assert (rfc3339(vienna), rfc822(vienna)) == ("2027-03-28T01:30:00Z", "Sun, 28 Mar 2027 01:30:00 +0000")
