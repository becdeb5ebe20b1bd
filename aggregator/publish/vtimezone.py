"""VTIMEZONE components derived from the zoneinfo database, with RRULE-based observances.

Not icalendar's ``add_missing_timezones``: it writes every transition as one
multi-value RDATE, and Thunderbird's parser (ical.js) reads only the first
value, so events later in the year come out an hour off. We find the real
transitions of the years a calendar needs and fold each yearly pattern
("last Sunday of March, 02:00") into one observance with an RRULE, the form
every client reads alike. Zones without DST get a single STANDARD.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["vtimezone_lines"]

_DAY = 86400
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_MAX_YEARS = 80


@dataclass(frozen=True, slots=True)
class _Transition:
    at: int  # first second (UTC epoch) of the new offset
    offset_from: timedelta
    offset_to: timedelta
    dst: bool
    name: str

    @property
    def onset(self) -> datetime:
        """Local wall time of the change, in the offset that was in force before it (RFC 5545 3.6.5)."""
        return datetime.fromtimestamp(self.at, UTC).replace(tzinfo=None) + self.offset_from

    def pattern(self) -> tuple[int, int, int]:
        """(month, weekday, ordinal) of the change: ordinal -1 means the last such weekday of the month."""
        onset = self.onset
        last_day = calendar.monthrange(onset.year, onset.month)[1]
        ordinal = -1 if onset.day + 7 > last_day else (onset.day - 1) // 7 + 1
        return onset.month, onset.weekday(), ordinal

    def rule_key(self) -> tuple[object, ...]:
        return (self.dst, self.offset_from, self.offset_to, self.name, *self.pattern(), self.onset.time())


def _state(zone: ZoneInfo, at: int) -> tuple[timedelta | None, timedelta | None, str | None]:
    local = datetime.fromtimestamp(at, zone)
    return local.utcoffset(), local.dst(), local.tzname()


def _transitions(zone: ZoneInfo, first_year: int, last_year: int) -> list[_Transition]:
    """Every offset change from 1 January ``first_year`` to the end of ``last_year`` (daily scan, then bisection)."""
    start = int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(last_year + 1, 1, 1, tzinfo=UTC).timestamp())
    found = []
    at, state = start, _state(zone, start)
    while at < end:
        following = min(at + _DAY, end)
        next_state = _state(zone, following)
        if next_state != state:
            low, high = at, following  # state(low) == state, state(high) differs
            while high - low > 1:
                middle = (low + high) // 2
                if _state(zone, middle) == state:
                    low = middle
                else:
                    high = middle
            new = _state(zone, high)
            found.append(
                _Transition(
                    at=high,
                    offset_from=state[0] or timedelta(0),
                    offset_to=new[0] or timedelta(0),
                    dst=bool(new[1]),
                    name=new[2] or "",
                )
            )
            at, state = high, new
            continue
        at, state = following, next_state
    return found


def _offset(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{secs:02d}" if secs else "")


def _local(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")


def _observance(first: _Transition, last: _Transition | None, count: int, open_ended: bool) -> list[str]:
    kind = "DAYLIGHT" if first.dst else "STANDARD"
    lines = [
        f"BEGIN:{kind}",
        f"TZOFFSETFROM:{_offset(first.offset_from)}",
        f"TZOFFSETTO:{_offset(first.offset_to)}",
    ]
    if first.name:
        lines.append(f"TZNAME:{_escape(first.name)}")
    onset = first.onset
    lines.append(f"DTSTART:{_local(onset)}")
    if count > 1 or open_ended:
        month, weekday, ordinal = first.pattern()
        rule = f"RRULE:FREQ=YEARLY;BYMONTH={month};BYDAY={ordinal}{_WEEKDAYS[weekday]}"
        if not open_ended and last is not None:
            rule += ";UNTIL=" + datetime.fromtimestamp(last.at, UTC).strftime("%Y%m%dT%H%M%SZ")
        lines.append(rule)
    lines.append(f"END:{kind}")
    return lines


@lru_cache(maxsize=1024)
def vtimezone_lines(tzid: str, first_year: int, last_year: int) -> tuple[str, ...]:
    """Unfolded content lines of one VTIMEZONE valid for events from ``first_year`` to ``last_year``.

    The scan starts a year early (so an observance precedes the first event) and
    ends a year late; the last yearly pattern is left open-ended, since recurring
    series run on and the rules are assumed to continue.
    """
    zone = ZoneInfo(tzid)
    last_year = max(last_year, first_year)
    first_year = max(first_year, last_year - _MAX_YEARS)
    scan_first, scan_last = first_year - 1, last_year + 1
    transitions = _transitions(zone, scan_first, scan_last)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{tzid}"]
    if not transitions:
        offset, _, name = _state(zone, int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp()))
        fixed = _Transition(0, offset or timedelta(0), offset or timedelta(0), False, name or "")
        lines += [
            "BEGIN:STANDARD",
            f"TZOFFSETFROM:{_offset(fixed.offset_from)}",
            f"TZOFFSETTO:{_offset(fixed.offset_to)}",
            *([f"TZNAME:{_escape(fixed.name)}"] if fixed.name else []),
            "DTSTART:19700101T000000",
            "END:STANDARD",
            "END:VTIMEZONE",
        ]
        return tuple(lines)
    # Runs of consecutive years that follow one pattern become one observance.
    runs: list[list[_Transition]] = []
    open_run: dict[tuple[object, ...], list[_Transition]] = {}
    for transition in transitions:
        key = transition.rule_key()
        run = open_run.get(key)
        if run is not None and transition.onset.year == run[-1].onset.year + 1:
            run.append(transition)
        else:
            run = [transition]
            runs.append(run)
            open_run[key] = run
    last_seen_year = max(t.onset.year for t in transitions)
    observances = []
    for run in runs:
        # A pattern still in force in the last year scanned continues (recurring series run on).
        open_ended = len(run) > 1 and run[-1].onset.year >= last_seen_year and last_seen_year >= scan_last
        observances.append((run[0].onset, _observance(run[0], run[-1], len(run), open_ended)))
    for _, observance in sorted(observances, key=lambda pair: pair[0]):
        lines += observance
    lines.append("END:VTIMEZONE")
    return tuple(lines)
