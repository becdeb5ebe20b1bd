"""Property tests: a date, range or time rendered as pages write it, in seven languages, reads back to itself.

The month and weekday tables here are written independently of the module's own, so a missing or
misspelt name in either shows up as a failure.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aggregator.extract.dates import When, find_when, read_when

BRUSSELS = ZoneInfo("Europe/Brussels")
REFERENCE = datetime(2026, 11, 26, 12, 0, tzinfo=BRUSSELS)

MONTHS = {
    "en": "January February March April May June July August September October November December",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "pl": "stycznia lutego marca kwietnia maja czerwca lipca sierpnia września października listopada grudnia",
}
WEEKDAYS = {
    "en": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
    "de": "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag",
    "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche",
    "it": "lunedì martedì mercoledì giovedì venerdì sabato domenica",
    "es": "lunes martes miércoles jueves viernes sábado domingo",
    "nl": "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag",
    "pl": "poniedziałek wtorek środa czwartek piątek sobota niedziela",
}
# (before the first part, between the parts) of a range, per language.
CONNECTORS = {
    "en": [("", " – "), ("", " to "), ("", "-")],
    "de": [("", " – "), ("vom ", " bis ")],
    "fr": [("du ", " au "), ("", " – ")],
    "it": [("dal ", " al "), ("", " – ")],
    "es": [("del ", " al "), ("", " – ")],
    "nl": [("van ", " tot "), ("", " – ")],
    "pl": [("od ", " do "), ("", " – ")],
}
LANGUAGES = sorted(MONTHS)

dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31))


def month_name(lang: str, month: int, case: int) -> str:
    name = MONTHS[lang].split()[month - 1]
    return [name, name.lower(), name.upper(), name.capitalize()][case]


def day_month(d: date, lang: str, case: int) -> str:
    """Day and month as the language writes them (no year)."""
    month = month_name(lang, d.month, case)
    if lang == "de":
        return f"{d.day}. {month}"
    if lang == "es":
        return f"{d.day} de {month}"
    return f"{d.day} {month}"


def full_date(d: date, lang: str, style: int, case: int) -> str:
    numeric = [
        f"{d.day:02d}.{d.month:02d}.{d.year}",
        f"{d.day}.{d.month}.{d.year}",
        f"{d.day:02d}/{d.month:02d}/{d.year}",
        d.isoformat(),
    ]
    if style < len(numeric):
        return numeric[style]
    if lang == "en" and style % 2:
        return f"{month_name(lang, d.month, case)} {d.day}, {d.year}"
    if lang == "es":
        return f"{day_month(d, lang, case)} de {d.year}"
    return f"{day_month(d, lang, case)} {d.year}"


@settings(max_examples=400, deadline=None)
@given(dates, st.sampled_from(LANGUAGES), st.integers(0, 7), st.integers(0, 3), st.booleans())
def test_single_date_in_any_format_and_language_reads_back(
    d: date, lang: str, style: int, case: int, weekday: bool
) -> None:
    text = full_date(d, lang, style, case)
    if weekday:
        text = f"{WEEKDAYS[lang].split()[d.weekday()]}, {text}"
    assert read_when(text, tz=BRUSSELS, reference=REFERENCE) == When(d, d + timedelta(days=1))


@settings(max_examples=400, deadline=None)
@given(dates, st.integers(0, 400), st.sampled_from(LANGUAGES), st.integers(0, 2), st.integers(0, 3))
def test_range_same_month_cross_month_cross_year_reads_back(
    first: date, length: int, lang: str, connector: int, case: int
) -> None:
    last = first + timedelta(days=length)
    before, between = CONNECTORS[lang][connector % len(CONNECTORS[lang])]
    end_text = full_date(last, lang, 4, case)
    if first.year != last.year:
        start_text = full_date(first, lang, 4, case)
    elif first.month != last.month:
        start_text = day_month(first, lang, case)
    else:
        start_text = f"{first.day}." if lang == "de" else str(first.day)
    if lang == "en" and connector == 2 and first.year == last.year:
        # "May 21-27, 2023" / "May 21 to June 2, 2023"
        month1 = month_name(lang, first.month, case)
        second = f"{last.day}" if first.month == last.month else f"{month_name(lang, last.month, case)} {last.day}"
        text = f"{month1} {first.day}-{second}, {last.year}"
    else:
        text = f"{before}{start_text}{between}{end_text}"
    assert read_when(text, tz=BRUSSELS, reference=REFERENCE) == When(first, last + timedelta(days=1))


def clock(moment: datetime, lang: str, style: int) -> str:
    if lang == "en" and style % 2:
        return f"{moment.hour % 12 or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"
    if lang == "fr":
        return f"{moment.hour}h{moment.minute:02d}"
    if lang == "de" and style % 2:
        return f"{moment.hour:02d}.{moment.minute:02d} Uhr"
    return f"{moment.hour:02d}:{moment.minute:02d}"


def wall_time_exists_once(moment: datetime) -> bool:
    """True unless the wall time falls in a DST gap or overlap (those are tested by example)."""
    there_and_back = moment.astimezone(UTC).astimezone(BRUSSELS)
    other_fold = moment.replace(fold=1)
    return there_and_back.replace(tzinfo=None) == moment.replace(tzinfo=None) and (
        other_fold.utcoffset() == moment.utcoffset()
    )


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31, 23, 59)),
    st.integers(0, 600),
    st.sampled_from(LANGUAGES),
    st.integers(0, 7),
    st.booleans(),
)
def test_timed_date_and_same_day_time_range_read_back(
    naive: datetime, minutes: int, lang: str, style: int, with_end: bool
) -> None:
    start = naive.replace(second=0, microsecond=0, tzinfo=BRUSSELS)
    end = start + timedelta(minutes=minutes)
    assume(end.date() == start.date() and wall_time_exists_once(start) and wall_time_exists_once(end))
    text = f"{full_date(start.date(), lang, style, 0)}, {clock(start, lang, style)}"
    if with_end:
        text += f" – {clock(end, lang, style)}"
    expected = When(start, end if with_end else None)
    assert read_when(text, tz=BRUSSELS, reference=REFERENCE) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(-140, 140), st.sampled_from(LANGUAGES), st.integers(0, 3))
def test_year_less_date_within_five_months_reads_as_the_nearest(offset: int, lang: str, case: int) -> None:
    d = REFERENCE.date() + timedelta(days=offset)
    assert read_when(day_month(d, lang, case), tz=BRUSSELS, reference=REFERENCE) == When(d, d + timedelta(days=1))


@settings(max_examples=200, deadline=None)
@given(dates, st.sampled_from(LANGUAGES), st.integers(4, 7))
def test_date_inside_a_sentence_is_found_with_its_exact_text(d: date, lang: str, style: int) -> None:
    written = full_date(d, lang, style, 0)
    found = find_when(f"Cluster Day ({written}), Palais des Congrès", tz=BRUSSELS, reference=REFERENCE)
    assert found == (When(d, d + timedelta(days=1)), written)
