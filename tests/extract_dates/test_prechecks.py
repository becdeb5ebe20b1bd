"""The date reader's shortcuts: a text none of whose tokens can name a month is refused without the grammar.

Every date the grammar reads takes its month from a date token ("2026-03-12",
"12.03.2026", "12.03.") or a month word. ``_may_name_month`` decides that from
the raw text, without the lexer; it may say yes wrongly, never no wrongly.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.extract.dates import _last_month_token, _lex, _may_name_month, find_when, read_date, read_when

BRUSSELS = ZoneInfo("Europe/Brussels")
REFERENCE = datetime(2026, 11, 26, 12, 0, tzinfo=BRUSSELS)

_pieces = st.sampled_from(
    ["12", "2026", "3", "03", ".", "-", "/", ":", ",", " ", "\t", "\u00a0", "–", "(", ")", "_", "h", "Uhr", "am",
     "pm", "a.m.", "CET", "UTC", "+01:00", "T", "Z", "th", "er", "ème", "Mai", "MÄRZ", "mar", "févr", "Dez.",
     "Thursday", "Do.", "vor", "Tagen", "Horizon", "Call", "x9", "3rd", "9h30", "€"]
)  # fmt: skip
_texts = st.lists(_pieces, max_size=14).map("".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_texts)
def test_the_raw_text_check_never_refuses_a_text_whose_tokens_name_a_month(text):
    if not _may_name_month(text):
        assert _last_month_token(_lex(text)) < 0


def test_texts_without_a_month_are_refused_and_dates_around_them_still_read():
    assert not _may_name_month("Horizon Europe: 59 projects on cluster excellence selected")
    assert find_when(
        "Horizon Europe: 59 projects on cluster excellence selected", tz=BRUSSELS, reference=REFERENCE
    ) is (None)
    found = find_when("Webinar 3: hydrogen valleys, 12 March 2027, 10:00 CET", tz=BRUSSELS, reference=REFERENCE)
    assert found is not None
    assert found[1] == "12 March 2027, 10:00 CET"
    assert found[0].start == datetime(2027, 3, 12, 10, 0, tzinfo=BRUSSELS)
    assert read_date("  12.03.2026  ", tz=BRUSSELS, reference=REFERENCE) == date(2026, 3, 12)


def test_relative_dates_without_a_month_still_reach_dateparser():
    assert read_date("vor 2 Tagen", tz=BRUSSELS, reference=REFERENCE) == date(2026, 11, 24)
    assert read_when("yesterday", tz=BRUSSELS, reference=REFERENCE) is not None


def test_the_lexer_skips_whitespace_inside_its_matches_and_keeps_positions():
    tokens = _lex("  Do., 12.03.  2026 \t")
    assert [(t.kind, t.start, t.end, t.text) for t in tokens] == [
        ("word", 2, 5, "Do."),
        ("punct", 5, 6, ","),
        ("dm", 7, 13, "12.03."),
        ("num", 15, 19, "2026"),
    ]
