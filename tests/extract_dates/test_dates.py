"""Free-text dates: every shape cluster pages print, the non-dates around them, zones and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.extract.dates import When, find_when, read_date, read_when

BRUSSELS = ZoneInfo("Europe/Brussels")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
REFERENCE = datetime(2026, 11, 26, 12, 0, tzinfo=BRUSSELS)
FIXTURES = Path(__file__).parents[1] / "fixtures" / "extract_dates"


def at(*parts: int, tz: ZoneInfo = BRUSSELS) -> datetime:
    return datetime(*parts, tzinfo=tz)  # type: ignore[misc]


def days(first: date, last_inclusive: date) -> When:
    return When(first, last_inclusive + timedelta(days=1))


def read(text: str, tz: ZoneInfo = BRUSSELS, reference: datetime = REFERENCE) -> When | None:
    return read_when(text, tz=tz, reference=reference)


# -- single dates -------------------------------------------------------------


def test_english_month_day_year_with_12_hour_time_is_timed_in_source_zone() -> None:
    assert read("February 2, 2015 10:30 AM") == When(at(2015, 2, 2, 10, 30), None)


def test_english_month_day_year_is_one_all_day_date() -> None:
    assert read("February 19, 2015") == When(date(2015, 2, 19), date(2015, 2, 20))


@pytest.mark.parametrize("text", ["12.01.2015", "12/01/2015", "12-01-2015", "2015-01-12", "12.1.2015"])
def test_numeric_dates_are_day_first_12_01_2015_is_12_january(text: str) -> None:
    assert read(text) == When(date(2015, 1, 12), date(2015, 1, 13))


def test_numeric_date_with_impossible_day_first_month_is_refused_not_flipped() -> None:
    assert read("02/19/2015") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thursday, 12 March 2026", date(2026, 3, 12)),
        ("Do., 12.03.2026", date(2026, 3, 12)),
        ("Do, 12.03.2026", date(2026, 3, 12)),
        ("jeudi 12 mars 2026", date(2026, 3, 12)),
        ("giovedì 12 marzo 2026", date(2026, 3, 12)),
        ("jueves, 12 de marzo de 2026", date(2026, 3, 12)),
        ("donderdag 12 maart 2026", date(2026, 3, 12)),
        ("czwartek, 12 marca 2026", date(2026, 3, 12)),
        ("Thu 12 Mar. 2026", date(2026, 3, 12)),
        ("12. März 2026", date(2026, 3, 12)),
        ("1er avril 2026", date(2026, 4, 1)),
        ("March 12th, 2026", date(2026, 3, 12)),
        ("the 20th of October 2014", date(2014, 10, 20)),
        ("12 Sept. 2026", date(2026, 9, 12)),
        ("Datum: 12.03.2026", date(2026, 3, 12)),
        ("le 12 février 2026", date(2026, 2, 12)),
        ("12 fevrier 2026", date(2026, 2, 12)),
        ("mar 10 marzo 2026", date(2026, 3, 10)),
        ("Mar 10, 2026", date(2026, 3, 10)),
    ],
)
def test_weekday_prefixes_month_names_and_labels_in_seven_languages(text: str, expected: date) -> None:
    assert read(text) == When(expected, expected + timedelta(days=1))


def test_weekday_contradicting_the_date_refuses_it() -> None:
    # 12 March 2026 is a Thursday.
    assert read("Friday, 12 March 2026") is None


# -- times and zones -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 mars 2026, 14h30", at(2026, 3, 12, 14, 30)),
        ("12. März 2026, 14.30 Uhr", at(2026, 3, 12, 14, 30)),
        ("12. März 2026, 14 Uhr", at(2026, 3, 12, 14, 0)),
        ("12 marzo 2026, ore 9:00", at(2026, 3, 12, 9, 0)),
        ("12 marzo 2026, ore 9", at(2026, 3, 12, 9, 0)),
        ("12 March 2026 9am", at(2026, 3, 12, 9, 0)),
        ("12 March 2026 at 9 a.m.", at(2026, 3, 12, 9, 0)),
        ("12 March 2026, 12:00 PM", at(2026, 3, 12, 12, 0)),
        ("12 March 2026, 12:00 AM", at(2026, 3, 12, 0, 0)),
        ("12 March 2026, noon", at(2026, 3, 12, 12, 0)),
        ("12 March 2026 21:15", at(2026, 3, 12, 21, 15)),
        ("2026-03-12 10:00", at(2026, 3, 12, 10, 0)),
        ("2026-03-12T10:00:00+01:00", at(2026, 3, 12, 10, 0)),
        ("2026-03-12T09:00:00Z", at(2026, 3, 12, 10, 0)),
        ("Mon, 02 Feb 2015 10:30:00 +0100", at(2015, 2, 2, 10, 30)),
    ],
)
def test_12_and_24_hour_times_in_every_spelling(text: str, expected: datetime) -> None:
    assert read(text) == When(expected, None)


def test_cet_means_the_source_zone_when_it_is_central_european() -> None:
    # Written "CET" on a summer date by a Brussels site: its wall clock, i.e. CEST.
    assert read("12 July 2026 10:00 CET") == When(at(2026, 7, 12, 10, 0), None)
    assert read("12 March 2026 9:00 CET") == When(at(2026, 3, 12, 9, 0), None)
    assert read("12 March 2026 10:00 (CEST)") == When(at(2026, 3, 12, 10, 0), None)


def test_cet_and_cest_are_fixed_offsets_converted_for_a_non_central_european_source() -> None:
    assert read("12 March 2026 9:00 CET", tz=LONDON) == When(at(2026, 3, 12, 8, 0, tz=LONDON), None)
    assert read("12 July 2026 10:00 CEST", tz=LONDON) == When(at(2026, 7, 12, 9, 0, tz=LONDON), None)
    found = read("12 July 2026 10:00 CEST", tz=NEW_YORK)
    assert found == When(at(2026, 7, 12, 4, 0, tz=NEW_YORK), None)
    assert found is not None
    assert isinstance(found.start, datetime)
    assert found.start.utcoffset() == timedelta(hours=-4)


def test_city_time_utc_and_offsets_are_converted_into_the_source_zone() -> None:
    assert read("12 July 2026 10:00 Brussels time", tz=LONDON) == When(at(2026, 7, 12, 9, 0, tz=LONDON), None)
    assert read("12 March 2026 10:00 UTC") == When(at(2026, 3, 12, 11, 0), None)
    assert read("12 March 2026 10:00 UTC+2") == When(at(2026, 3, 12, 9, 0), None)
    assert read("12 March 2026 10:00 local time", tz=LONDON) == When(at(2026, 3, 12, 10, 0, tz=LONDON), None)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("18. März 2025, 09:00 – 16:30 Uhr", at(2025, 3, 18, 9, 0), at(2025, 3, 18, 16, 30)),
        ("Do, 12.03.2026, 09:00–16:30 Uhr", at(2026, 3, 12, 9, 0), at(2026, 3, 12, 16, 30)),
        ("12 March 2026, 9 – 17 Uhr", at(2026, 3, 12, 9, 0), at(2026, 3, 12, 17, 0)),
        ("12 March 2026, 9am–5pm", at(2026, 3, 12, 9, 0), at(2026, 3, 12, 17, 0)),
        ("12 March 2026, 9:00 – 11:30 AM", at(2026, 3, 12, 9, 0), at(2026, 3, 12, 11, 30)),
        ("12 March 2026, 11:00 – 1:00 PM", at(2026, 3, 12, 11, 0), at(2026, 3, 12, 13, 0)),
        ("12/03/2026 de 9h00 à 16h30", at(2026, 3, 12, 9, 0), at(2026, 3, 12, 16, 30)),
        ("giovedì 12 marzo 2026, dalle 9:00 alle 16:30", at(2026, 3, 12, 9, 0), at(2026, 3, 12, 16, 30)),
        ("12 March 2026 from 10:00 to 12:00 CET", at(2026, 3, 12, 10, 0), at(2026, 3, 12, 12, 0)),
        ("12 March 2026, 22:00 – 02:00", at(2026, 3, 12, 22, 0), at(2026, 3, 13, 2, 0)),
        ("12 March 2026, 18:00 – 24:00 Uhr", at(2026, 3, 12, 18, 0), at(2026, 3, 13, 0, 0)),
        ("12 March 2026 10:00 – 14 March 2026 17:00", at(2026, 3, 12, 10, 0), at(2026, 3, 14, 17, 0)),
    ],
)
def test_time_ranges_on_one_day_and_across_days(text: str, start: datetime, end: datetime) -> None:
    assert read(text) == When(start, end)


def test_nonexistent_spring_forward_time_shifts_forward_to_summer_time() -> None:
    found = read("30 March 2025 02:30")
    assert found == When(at(2025, 3, 30, 3, 30), None)
    assert found is not None
    assert isinstance(found.start, datetime)
    assert found.start.utcoffset() == timedelta(hours=2)


def test_ambiguous_autumn_time_takes_its_first_occurrence_in_summer_time() -> None:
    found = read("26 October 2025 02:30")
    assert found is not None
    assert isinstance(found.start, datetime)
    assert found.start.astimezone(UTC) == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)


def test_times_across_the_spring_change_keep_their_wall_clock() -> None:
    found = read("28 March 2025 10:00 – 31 March 2025 10:00")
    assert found is not None
    assert isinstance(found.start, datetime)
    assert isinstance(found.end, datetime)
    assert (found.start.utcoffset(), found.end.utcoffset()) == (timedelta(hours=1), timedelta(hours=2))


# -- ranges --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("6 to 8 February 2019", date(2019, 2, 6), date(2019, 2, 8)),
        ("24-25 October 2018", date(2018, 10, 24), date(2018, 10, 25)),
        ("3. – 4. April 2025", date(2025, 4, 3), date(2025, 4, 4)),
        ("May 21 to May 27, 2023", date(2023, 5, 21), date(2023, 5, 27)),
        ("May 21-27, 2023", date(2023, 5, 21), date(2023, 5, 27)),
        ("30 September - 2 October 2026", date(2026, 9, 30), date(2026, 10, 2)),
        ("du 3 au 4 avril 2026", date(2026, 4, 3), date(2026, 4, 4)),
        ("du 30 septembre au 2 octobre 2026", date(2026, 9, 30), date(2026, 10, 2)),
        ("dal 30 settembre al 2 ottobre 2026", date(2026, 9, 30), date(2026, 10, 2)),
        ("dall'11 al 13 marzo 2026", date(2026, 3, 11), date(2026, 3, 13)),
        ("16.03.–17.03.2026", date(2026, 3, 16), date(2026, 3, 17)),
        ("16.–17.03.2026", date(2026, 3, 16), date(2026, 3, 17)),
        ("12.03.2026 - 14.03.2026", date(2026, 3, 12), date(2026, 3, 14)),
        ("28 December 2025 - 3 January 2026", date(2025, 12, 28), date(2026, 1, 3)),
        ("28 December - 3 January 2026", date(2025, 12, 28), date(2026, 1, 3)),
        ("del 3 al 5 de marzo de 2026", date(2026, 3, 3), date(2026, 3, 5)),
        ("van 3 tot 5 maart 2026", date(2026, 3, 3), date(2026, 3, 5)),
        ("od 3 do 5 marca 2026", date(2026, 3, 3), date(2026, 3, 5)),
        ("vom 3. bis 5. März 2026", date(2026, 3, 3), date(2026, 3, 5)),
        ("20-21st October 2014", date(2014, 10, 20), date(2014, 10, 21)),
        ("3 e 4 marzo 2026", date(2026, 3, 3), date(2026, 3, 4)),
        ("3. und 4. März 2026", date(2026, 3, 3), date(2026, 3, 4)),
        ("de 3 a 5 de marzo de 2026", date(2026, 3, 3), date(2026, 3, 5)),
        ("Thursday 12 March – Saturday 14 March 2026", date(2026, 3, 12), date(2026, 3, 14)),
    ],
)
def test_day_ranges_have_an_exclusive_end(text: str, first: date, last: date) -> None:
    assert read(text) == days(first, last)


def test_range_ending_before_it_starts_is_refused() -> None:
    assert read("5 – 3 March 2026") is None


def test_and_joins_two_days_of_one_month_only() -> None:
    assert read("12 March and 14 April 2026") is None


# -- year-less dates -------------------------------------------------------------


def test_year_less_date_takes_the_nearest_occurrence() -> None:
    # Reference 26 November 2026: 12 March is next March, 12 October was last month.
    assert read("12 March") == days(date(2027, 3, 12), date(2027, 3, 12))
    assert read("12 October") == days(date(2026, 10, 12), date(2026, 10, 12))
    assert read("3 – 5 January") == days(date(2027, 1, 3), date(2027, 1, 5))
    assert read("28 December – 3 January") == days(date(2026, 12, 28), date(2027, 1, 3))


def test_year_less_date_with_weekday_takes_the_year_where_the_weekday_matches() -> None:
    # 12 March is a Thursday in 2026 and a Friday in 2027: the weekday wins over nearness.
    assert read("Thursday 12 March") == days(date(2026, 3, 12), date(2026, 3, 12))
    assert read("Friday 12 March") == days(date(2027, 3, 12), date(2027, 3, 12))
    assert read("Do., 12.03.") == days(date(2026, 3, 12), date(2026, 3, 12))


def test_year_less_date_about_six_months_away_is_ambiguous() -> None:
    assert read("26 May") is None
    # No year near the reference has 26 May on a Thursday.
    assert read("Thursday 26 May") is None


def test_year_less_date_uses_the_reference_in_the_source_zone() -> None:
    # 23:30 UTC on 31 Dec 2026 is already 1 January 2027 in Brussels.
    reference = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert read("1 July", reference=reference) is None
    assert read("1 March", reference=reference) == days(date(2027, 3, 1), date(2027, 3, 1))


# -- not dates -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Version 2.0.1",
        "+43 732 79810-5105",
        "COS-CLUSTPARTNS-2017-3-02",
        "ISO 9001:2015",
        "€ 1.250,00",
        "Fee: 12.50 €",
        "2015",
        "4.0",
        "Industry 4.0",
        "March 2025",
        "2015-2020",
        "Office hours 9.00-17.00",
        "31.02.2026",
        "Grant agreement No 101074201",
        "VAT BE 0412.345.678",
        "",
    ],
)
def test_numbers_that_are_not_dates_read_as_none(text: str) -> None:
    assert read(text) is None
    assert find_when(text, tz=BRUSSELS, reference=REFERENCE) is None
    assert read_date(text, tz=BRUSSELS, reference=REFERENCE) is None


def test_read_when_refuses_text_with_more_than_a_date() -> None:
    assert read("12 March 2026 in Karlsruhe") is None


# -- find_when -------------------------------------------------------------------


def test_find_when_returns_the_range_and_its_exact_substring_from_a_news_title() -> None:
    title = "E4T mid-term open event, 24-25 October 2018, Karlsruhe"
    assert find_when(title, tz=BRUSSELS, reference=REFERENCE) == (
        days(date(2018, 10, 24), date(2018, 10, 25)),
        "24-25 October 2018",
    )


def test_find_when_skips_edition_numbers_and_year_ranges_in_a_teaser(fixture_path) -> None:  # type: ignore[no-untyped-def]
    text = "\n".join(
        line
        for line in fixture_path("extract_dates/escp_research_paper_teaser.txt").read_text().splitlines()
        if not line.startswith("#")
    )
    assert find_when(text, tz=BRUSSELS, reference=REFERENCE) == (
        days(date(2014, 10, 20), date(2014, 10, 21)),
        "20-21st October 2014",
    )


def test_find_when_keeps_time_and_zone_and_leaves_the_place() -> None:
    text = "Cluster Matchmaking Brokerage – Do, 12.03.2026, 09:00–16:30 Uhr (CET), Messe Stuttgart"
    found = find_when(text, tz=BRUSSELS, reference=REFERENCE)
    assert found == (When(at(2026, 3, 12, 9, 0), at(2026, 3, 12, 16, 30)), "Do, 12.03.2026, 09:00–16:30 Uhr (CET)")


def test_find_when_ignores_prose_that_only_looks_like_a_year_less_date() -> None:
    assert find_when("In March 12 members joined the network", tz=BRUSSELS, reference=REFERENCE) is None
    assert find_when("The 12 may apply until the call closes", tz=BRUSSELS, reference=REFERENCE) is None


# -- read_date -------------------------------------------------------------------


def test_read_date_gives_a_date_or_an_aware_datetime() -> None:
    assert read_date("12.03.2026", tz=BRUSSELS, reference=REFERENCE) == date(2026, 3, 12)
    assert read_date("Posted on 12 March 2026 10:15", tz=BRUSSELS, reference=REFERENCE) == at(2026, 3, 12, 10, 15)


def test_read_date_refuses_a_range() -> None:
    assert read_date("6 to 8 February 2019", tz=BRUSSELS, reference=REFERENCE) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vor 2 Tagen", date(2026, 11, 24)),
        ("yesterday", date(2026, 11, 25)),
        ("il y a 3 jours", date(2026, 11, 23)),
    ],
)
def test_relative_publication_dates_count_from_the_reference(text: str, expected: date) -> None:
    assert read_date(text, tz=BRUSSELS, reference=REFERENCE) == expected


# -- fixture of real page lines ---------------------------------------------------


def _expected(spec: str) -> When | None:
    if spec == "none":
        return None
    if ".." in spec:
        first, end = spec.split("..")
        return When(date.fromisoformat(first), date.fromisoformat(end))
    start, _, end = spec.partition("/")
    return When(
        datetime.fromisoformat(start).astimezone(BRUSSELS),
        datetime.fromisoformat(end).astimezone(BRUSSELS) if end else None,
    )


def _fixture_lines() -> list[tuple[str, str]]:
    lines = (FIXTURES / "cluster_event_dates.txt").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split(" => ")) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


@pytest.mark.parametrize(("text", "spec"), _fixture_lines())
def test_cluster_page_date_lines(text: str, spec: str) -> None:
    assert read(text) == _expected(spec)


def test_when_all_day_is_true_only_for_dates() -> None:
    assert When(date(2026, 3, 12), date(2026, 3, 13)).all_day
    assert not When(at(2026, 3, 12, 9, 0), None).all_day
