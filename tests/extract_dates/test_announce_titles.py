"""Titles of events announced inside news titles keep their own brackets."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from aggregator.config import SourceConfig
from aggregator.extract.announce import event_in_text

PARIS = SourceConfig(name="pole", url="https://pole.example/actualites", timezone=ZoneInfo("Europe/Paris"))
REFERENCE = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_a_closing_bracket_of_the_title_is_kept_before_the_date() -> None:
    found = event_in_text(
        "Webinaire : cybersécurité pour les start-up (LIFE), du 22 au 24 avril 2026, Strasbourg",
        source=PARIS,
        reference=REFERENCE,
    )
    assert found is not None
    title, when, place = found
    assert (title, when.start, when.end, place) == (
        "Webinaire : cybersécurité pour les start-up (LIFE)",
        date(2026, 4, 22),
        date(2026, 4, 25),
        "Strasbourg",
    )


def test_an_unbalanced_bracket_before_the_date_is_still_stripped() -> None:
    found = event_in_text("Cluster matchmaking day (14 November 2026) Linz", source=PARIS, reference=REFERENCE)
    assert found is not None
    assert found[0] == "Cluster matchmaking day"
    assert found[2] == "Linz"
