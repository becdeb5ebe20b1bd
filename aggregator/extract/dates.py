"""Dates and date ranges as people write them on cluster web pages, in seven languages.

Pages print "18. März 2025, 09:00 – 16:30 Uhr", "du 3 au 4 avril 2026" or
"May 21 to May 27, 2023"; feeds and calendars give machine dates and never
reach this module. The reader is a small lexer plus a recursive-descent
grammar over its tokens (ranges, times, zones, weekdays need one), with
``dateparser`` as the last resort for relative phrases ("vor 2 Tagen").

Rules, chosen so that a wrong date is never produced silently:

* Numeric dates are day first ("12.01.2015", "12/01/2015" are 12 January);
  only four-digit years; "02/19/2015" is refused, not flipped to US order.
* A month with a year but no day ("March 2025"), a year alone, versions
  ("2.0.1"), phone and project numbers are not dates.
* A year-less date ("Thursday 12 March") takes the year relative to
  ``reference``: with a weekday, the year (of the nearest three) where the
  weekday matches; without one, the nearest occurrence if it lies within
  about five months of the reference. Between five and seven months away the
  date could be last year's or next year's, so it is refused (None).
* A weekday that contradicts an explicit date refuses the date.
* Times are local wall times in the source zone ``tz``. "CET"/"CEST" (and
  WET/EET families) mean ``tz`` itself when ``tz`` is in that family, else
  the fixed offset, converted into ``tz``; "UTC", "GMT", "+01:00" likewise;
  "Brussels time" is Europe/Brussels converted into ``tz``.
* Daylight saving: a wall time that does not exist (Europe/Brussels
  2025-03-30 02:30, inside the spring-forward gap) is read with the offset in
  force before the gap (zoneinfo ``fold=0``) and normalised, i.e. shifted
  forward to 03:30 CEST. An ambiguous autumn time (02:30 on 2025-10-26)
  takes its first occurrence (``fold=0``, CEST).
* All-day results are dates with an exclusive end (a one-day event ends the
  next day), as in RFC 5545.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from types import MappingProxyType
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

from dateparser.date import DateDataParser

__all__ = ["When", "find_when", "read_date", "read_when"]


@dataclass(frozen=True, slots=True)
class When:
    """A moment or span: aware datetimes in the source zone, or dates for all-day (exclusive end)."""

    start: datetime | date
    end: datetime | date | None

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)


# ---------------------------------------------------------------------------
# Vocabulary (en, de, fr, it, es, nl, pl)


@lru_cache(maxsize=4096)
def _fold(word: str) -> str:
    """Lower-case without accents, so "Février", "fevrier" and "FÉVR" look the same."""
    decomposed = unicodedata.normalize("NFD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _table(groups: Mapping[int, str]) -> Mapping[str, int]:
    table: dict[str, int] = {}
    for number, words in groups.items():
        for word in words.split():
            table[_fold(word)] = number
    return MappingProxyType(table)


# Month names and abbreviations of all seven languages; they agree on every spelling they share.
_MONTHS: Final = _table(
    {
        1: "january jan januar jänner jän janvier janv gennaio gen enero ene januari styczeń stycznia sty",
        2: "february feb februar feber février févr fév febbraio febrero februari luty lutego lut",
        3: "march mar märz mär maerz mrz mars marzo maart mrt marzec marca",
        4: "april apr avril avr aprile abril kwiecień kwietnia kwi",
        5: "may mai maggio mag mayo mei maj maja",
        6: "june jun juni juin giugno giu junio czerwiec czerwca cze",
        7: "july jul juli juillet juil luglio lug julio lipiec lipca lip",
        8: "august aug août agosto ago augustus sierpień sierpnia",
        9: "september sep sept septembre settembre set sett septiembre setiembre wrzesień września wrz",
        10: "october oct oktober okt octobre ottobre ott octubre październik października paź",
        11: "november nov novembre noviembre listopad listopada lis",
        12: "december dec dezember dez décembre déc dicembre dic diciembre grudzień grudnia gru",
    }
)
# Month words that are also common words ("may", "set", "ago"): a year-less date needs them capitalised.
_WORDLIKE_MONTHS: Final = frozenset({"may", "mar", "set", "ago", "sett"})

_WEEKDAYS: Final = _table(
    {
        0: "monday mon montag mo lundi lun lunedì lunedi lunes maandag ma poniedziałek pon",
        1: "tuesday tue tues dienstag di mardi mar martedì martedi martes dinsdag wtorek wt",
        2: "wednesday wed mittwoch mi mercredi mer mercoledì mercoledi miércoles mié woensdag wo środa śr",
        3: "thursday thu thur thurs donnerstag do jeudi jeu giovedì giovedi gio jueves jue donderdag czwartek czw",
        4: "friday fri freitag fr vendredi ven venerdì venerdi viernes vie vrijdag vr piątek pt",
        5: "saturday sat samstag sonnabend sa samedi sam sabato sab sábado zaterdag za sobota sob",
        6: "sunday sun sonntag so dimanche dim domenica dom domingo zondag zo niedziela niedz nd",
    }
)

# "from" before the first part of a range: "du 3 au 4", "dal 30 settembre al 2 ottobre", "od 3 do 5".
_RANGE_OPEN: Final = frozenset({"from", "vom", "von", "du", "dal", "dall", "del", "de", "desde", "van", "od", "ab"})
# Between the two parts of a date range.
_RANGE_JOIN: Final = frozenset(
    {"to", "until", "till", "through", "thru", "bis", "au", "al", "a", "hasta", "tot", "do", "e", "und"}
)
_RANGE_JOIN_FOR_DAYS_ONLY: Final = frozenset({"e", "und"})  # "3 e 4 marzo": two days, not "12 March and 14 April"
# Between two times of one day: "de 9h00 à 16h30", "dalle 9:00 alle 16:30".
_TIME_JOIN: Final = frozenset({"to", "until", "till", "bis", "à", "a", "alle", "al", "hasta", "tot", "do", "and"})
# Before a time: ", um 14 Uhr", "ore 9:00", "à 14h30", "at 10:00 AM".
_TIME_LEAD: Final = frozenset(
    {"at", "um", "ab", "à", "a", "ore", "dalle", "alle", "from", "von", "de", "dès", "vanaf", "van", "om", "od",
     "godz", "godzina", "o", "las", "h", "time", "starting", "start", "begin", "beginn", "heure", "horaire"}
)  # fmt: skip
_HOUR_ONLY_LEAD: Final = frozenset({"ore", "godz", "godzina"})  # "ore 9": a bare number is an hour only after these
# Filler between day, month and year: "3 de marzo de 2026", "the 20th of October".
_DATE_FILLER: Final = frozenset({"de", "del", "of"})
_MONTH_DAY_FILLER: Final = _DATE_FILLER | {"the"}  # "March the 12th"
# Labels and articles that may precede a date a page prints on its own ("Datum: 12.03.2026", "le 12 mars").
_LEAD_WORDS: Final = frozenset(
    {"on", "the", "le", "il", "el", "am", "op", "dnia", "den", "date", "datum", "when", "wann", "quand", "data",
     "fecha", "termin", "published", "posted", "updated", "veröffentlicht", "publié", "pubblicato", "publicado",
     "gepubliceerd", "opublikowano", "stand", "aktualisiert"}
)  # fmt: skip
_NOON: Final = frozenset({"noon", "midday", "mittag", "midi", "mezzogiorno", "mediodía", "middag", "południe"})
_MIDNIGHT: Final = frozenset({"midnight", "mitternacht", "minuit", "mezzanotte", "medianoche", "middernacht"})
_UHR: Final = frozenset({"uhr", "h", "godz"})
_LOCAL_TIME: Final = frozenset({"ortszeit", "lokalzeit"})
_LOCAL_TIME_PAIRS: Final = frozenset(
    {("local", "time"), ("heure", "locale"), ("ora", "locale"), ("hora", "local"), ("lokale", "tijd"),
     ("czasu", "lokalnego")}
)  # fmt: skip
_CITY_ZONES: Final = MappingProxyType(
    {
        _fold(city): zone
        for zone, cities in {
            "Europe/Brussels": "brussels bruxelles brussel brüssel bruselas bruxelas",
            "Europe/Paris": "paris parigi parís parijs paryż",
            "Europe/Berlin": "berlin berlino berlijn",
            "Europe/Vienna": "vienna wien vienne viena wenen",
            "Europe/Rome": "rome roma rom",
            "Europe/Madrid": "madrid",
            "Europe/Amsterdam": "amsterdam",
            "Europe/Warsaw": "warsaw warszawa warschau varsovie",
            "Europe/London": "london londres londra londen",
            "Europe/Lisbon": "lisbon lisboa lissabon lisbonne",
            "Europe/Dublin": "dublin",
            "Europe/Helsinki": "helsinki",
            "Europe/Athens": "athens athen athènes",
            "Europe/Stockholm": "stockholm",
            "Europe/Copenhagen": "copenhagen kopenhagen",
            "Europe/Prague": "prague prag praha",
            "Europe/Budapest": "budapest",
            "Europe/Luxembourg": "luxembourg luxemburg",
            "Europe/Zurich": "zurich zürich",
        }.items()
        for city in cities.split()
    }
)
# Abbreviation -> (zone family: standard and summer tznames, fixed offset in minutes).
_ZONE_ABBREVIATIONS: Final = MappingProxyType(
    {
        "CET": (("CET", "CEST"), 60),
        "MEZ": (("CET", "CEST"), 60),
        "CEST": (("CET", "CEST"), 120),
        "MESZ": (("CET", "CEST"), 120),
        "WET": (("WET", "WEST"), 0),
        "WEST": (("WET", "WEST"), 60),
        "EET": (("EET", "EEST"), 120),
        "EEST": (("EET", "EEST"), 180),
        "BST": (("GMT", "BST"), 60),
        "UTC": (None, 0),
        "GMT": (None, 0),
    }
)

# ---------------------------------------------------------------------------
# Lexer

_MONTH_KINDS: Final = frozenset({"date", "dm", "isodt"})  # tokens that carry a month
_DIGIT_SEPARATOR_DIGIT: Final = re.compile(r"\d[./-]\d")  # inside every token of those kinds
_LETTERS: Final = re.compile(r"[^\W\d_]+")  # a word token's letters (the lexer's "word" rule)

_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH = r"(?:0?[1-9]|1[0-2])"
# Whitespace before a token is skipped inside the match (half the matches otherwise); "space" is left
# only for trailing whitespace.
_LEXER: Final = re.compile(
    r"""
    \s*(?:
    (?P<space>\s+)
  | (?P<isodt>(?<![\w-])\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?(?![\w]))
  | (?P<iso>(?<![\w-])(?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2})(?![\w]|-\d))
  | (?P<numdate>(?<![\w.,/-])(?P<nd>"""
    + _DAY
    + r""")(?P<sep>[./-])(?P<nm>"""
    + _MONTH
    + r""")(?P=sep)(?P<ny>\d{4})(?![\w]|[./-]\d))
  | (?P<dm>(?<![\w.,/-])(?P<dd>"""
    + _DAY
    + r""")\.(?P<dmm>"""
    + _MONTH
    + r""")\.(?![\d]))
  | (?P<clockmer>(?<![\w.,:])(?P<mh>\d{1,2})(?:[:.](?P<mm>\d{2}))?\s?(?P<mer>[aApP])\.?[mM]\.?(?![^\W\d_]))
  | (?P<clock>(?<![\w.,:])(?P<ch>\d{1,2})(?:
        :(?P<cm>\d{2})(?::(?P<cs>\d{2}))?(?!\d)
      | \.(?P<cdm>\d{2})(?![.\d])(?!\s?(?:€|EUR|eur|Euro|CHF|%|\$|£|Mio|Mrd|km|m²))
      | [hH](?P<chm>\d{2})?(?![\w])
    ))
  | (?P<utcoff>(?:UTC|GMT)\s?(?P<us>[+-])(?P<uh>\d{1,2})(?::?(?P<um>\d{2}))?(?!\d))
  | (?P<offset>(?<![\w])(?P<os>[+-])(?P<oh>\d{2}):?(?P<om>\d{2})(?!\d))
  | (?P<num>(?P<n>\d+)(?P<ord>st|nd|rd|th|er|re|ème|eme|e|º|ª|°)?(?![^\W_])(?P<ndot>\.)?)
  | (?P<mixed>\w*\d\w*)
  | (?P<word>[^\W\d_]+(?P<wdot>\.)?)
  | (?P<dash>[-‐‑‒–—―~])
  | (?P<punct>.)
    )""",
    re.VERBOSE,
)


class _Token(NamedTuple):
    """A lexer token (a named tuple: the lexer makes tens of thousands per page; see ``_lex``)."""

    kind: str  # see _lex
    start: int
    end: int
    text: str
    word: str = ""  # folded word, without its trailing dot
    dot: bool = False  # a word or number followed by "." ("Do.", "3.")
    ints: tuple[int, ...] = ()  # numbers the token carries, by kind
    moment: datetime | None = None  # isodt


@lru_cache(maxsize=1024)
def _lex(text: str) -> tuple[_Token, ...]:
    """Tokens of ``text``: iso/numdate (y, m, d), dm (d, m), clock (h, m, s, meridiem), offset (minutes),
    num (value, digits), word, dash, punct, other; whitespace dropped.

    Cached: the listing heuristics ask "is this a date?" and then read the same text again.
    """
    tokens: list[_Token] = []
    append = tokens.append
    for match in _LEXER.finditer(text):
        kind = match.lastgroup
        if kind is None or kind == "space":
            continue
        start, end = match.span(kind)
        raw = text[start:end]
        group = match.group
        if kind == "word":
            dot = group("wdot") is not None
            append(_Token("word", start, end, raw, word=_fold(raw[:-1] if dot else raw), dot=dot))
        elif kind == "num":
            digits = group("n")
            append(_Token("num", start, end, raw, dot=group("ndot") is not None, ints=(int(digits), len(digits))))
        elif kind == "punct":
            append(_Token("punct", start, end, raw))
        elif kind == "dash":
            append(_Token("dash", start, end, raw))
        elif kind == "isodt":
            try:
                moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                append(_Token("other", start, end, raw))
                continue
            append(_Token("isodt", start, end, raw, moment=moment))
        elif kind == "iso":
            ymd = (int(group("iy")), int(group("im")), int(group("id")))
            append(_Token("date", start, end, raw, ints=ymd))
        elif kind == "numdate":
            ymd = (int(group("ny")), int(group("nm")), int(group("nd")))
            append(_Token("date", start, end, raw, ints=ymd))
        elif kind == "dm":
            append(_Token("dm", start, end, raw, ints=(int(group("dd")), int(group("dmm")))))
        elif kind == "clockmer":
            meridiem = 1 if group("mer") in "aA" else 2
            hm = (int(group("mh")), int(group("mm") or 0))
            append(_Token("clock", start, end, raw, ints=(*hm, 0, meridiem)))
        elif kind == "clock":
            minutes = group("cm") or group("cdm") or group("chm") or "0"
            seconds = int(group("cs") or 0)
            append(_Token("clock", start, end, raw, ints=(int(group("ch")), int(minutes), seconds, 0)))
        elif kind in ("utcoff", "offset"):
            prefix = "u" if kind == "utcoff" else "o"
            sign = -1 if group(prefix + "s") == "-" else 1
            minutes = sign * (int(group(prefix + "h")) * 60 + int(group(prefix + "m") or 0))
            append(_Token("offset", start, end, raw, ints=(minutes,)))
        else:
            append(_Token("other", start, end, raw))
    return tuple(tokens)


def _last_month_token(tokens: Sequence[_Token]) -> int:
    """Index of the last token that can name a month (-1 if none): every date the grammar reads needs one."""
    for index in range(len(tokens) - 1, -1, -1):
        token = tokens[index]
        if token.kind in _MONTH_KINDS or token.word in _MONTHS:
            return index
    return -1


# ---------------------------------------------------------------------------
# Grammar


class _Part(NamedTuple):
    """One date as written, possibly incomplete ("3." before "– 4. April 2025")."""

    day: int
    month: int | None
    year: int | None
    weekday: int | None = None
    month_first: bool = False  # "May 21" (a following "27, 2023" borrows its month)
    wordlike_month: bool = False  # a year-less "12 may" in prose is not a date


class _Clock(NamedTuple):
    hour: int
    minute: int
    second: int
    meridiem: int  # 0 none, 1 am, 2 pm


class _Times(NamedTuple):
    start: _Clock
    end: _Clock | None
    zone: tzinfo | None


class _Grammar:
    """Recursive descent over one text's tokens; every rule yields (value, next index) alternatives."""

    def __init__(self, tokens: Sequence[_Token], tz: ZoneInfo, reference: datetime):
        self.t = tokens
        self.n = len(tokens)
        self.tz = tz
        self.today = reference.astimezone(tz).date() if reference.tzinfo else reference.date()

    # -- token predicates -------------------------------------------------

    def word(self, i: int) -> str | None:
        return self.t[i].word if i < self.n and self.t[i].kind == "word" else None

    def is_punct(self, i: int, chars: str) -> bool:
        return i < self.n and self.t[i].kind == "punct" and self.t[i].text in chars

    def day(self, i: int) -> int | None:
        if i < self.n and self.t[i].kind == "num" and self.t[i].ints[1] <= 2 and 1 <= self.t[i].ints[0] <= 31:
            return self.t[i].ints[0]
        return None

    def year(self, i: int) -> int | None:
        if i < self.n and self.t[i].kind == "num" and self.t[i].ints[1] == 4 and 1900 <= self.t[i].ints[0] <= 2100:
            return self.t[i].ints[0]
        return None

    def month(self, i: int) -> int | None:
        word = self.word(i)
        return None if word is None else _MONTHS.get(word)

    def weekday(self, i: int) -> int | None:
        word = self.word(i)
        if word is None or word not in _WEEKDAYS:
            return None
        # Two-letter abbreviations ("Do", "Di", "So") are ordinary words unless marked: "Do., 12.03." / "Do, 12.03."
        if len(word) <= 2 and not (self.t[i].dot or self.is_punct(i + 1, ",")):
            return None
        return _WEEKDAYS[word]

    def skip(self, i: int, words: frozenset[str]) -> int:
        while self.word(i) in words:
            i += 1
        return i

    # -- dates ------------------------------------------------------------

    def parts(self, i: int) -> Iterator[tuple[_Part, int]]:
        """A date part, optionally after a weekday: "Thursday, 12 March 2026", "Do., 12.03.2026"."""
        weekday = self.weekday(i)
        if weekday is not None:
            j = i + 1
            if self.is_punct(j, ","):
                j += 1
            for part, k in self.bare_parts(j):
                yield _Part(part.day, part.month, part.year, weekday, part.month_first, part.wordlike_month), k
        yield from self.bare_parts(i)

    def bare_parts(self, i: int) -> Iterator[tuple[_Part, int]]:
        if i >= self.n:
            return
        token = self.t[i]
        if token.kind == "date":
            yield _Part(token.ints[2], token.ints[1], token.ints[0]), i + 1
            return
        if token.kind == "dm":
            spaced_year = self.year(i + 1)  # "16.03. 2026"
            if spaced_year is not None:
                yield _Part(token.ints[0], token.ints[1], spaced_year), i + 2
            yield _Part(token.ints[0], token.ints[1], None), i + 1
            return
        day = self.day(i)
        if day is not None:
            j = self.skip(i + 1, _DATE_FILLER)
            month = self.month(j)
            if month is not None:
                wordlike = self.word(j) in _WORDLIKE_MONTHS and not self.t[j].text[0].isupper()
                k = j + 1
                if self.is_punct(k, ","):
                    k += 1
                k = self.skip(k, _DATE_FILLER)
                year = self.year(k)
                if year is not None:
                    yield _Part(day, month, year), k + 1
                yield _Part(day, month, None, wordlike_month=wordlike), j + 1
            k = i + 1
            if self.is_punct(k, ","):
                k += 1
            year = self.year(k)
            if year is not None:  # "27, 2023" after "May 21 –"
                yield _Part(day, None, year, month_first=True), k + 1
            yield _Part(day, None, None), i + 1
            return
        month = self.month(i)
        if month is not None:
            j = self.skip(i + 1, _MONTH_DAY_FILLER)
            day = self.day(j)
            if day is None:
                return
            wordlike = self.word(i) in _WORDLIKE_MONTHS and not token.text[0].isupper()
            k = j + 1
            if self.is_punct(k, ","):
                k += 1
            year = self.year(k)
            if year is not None:
                yield _Part(day, month, year, month_first=True), k + 1
            # A year-less "March 12" followed by a word is prose ("in March 12 members joined").
            if self.word(j + 1) is None or self.weekday(j + 1) is not None or self.word(j + 1) in _RANGE_JOIN:
                yield _Part(day, month, None, month_first=True, wordlike_month=wordlike), j + 1

    # -- times ------------------------------------------------------------

    def clock(self, i: int, *, bare: bool) -> Iterator[tuple[_Clock, int]]:
        """One time of day; ``bare`` allows an unmarked hour ("ore 9", "9" in "9–17 Uhr")."""
        if i >= self.n:
            return
        token = self.t[i]
        if token.kind == "clock":
            hour, minute, second, meridiem = token.ints
            j = i + 1
            if meridiem == 0 and self.word(j) in _NOON and hour == 12 and minute == 0:
                j += 1
            if self.word(j) in _UHR:
                j += 1
            yield _Clock(hour, minute, second, meridiem), j
            return
        word = self.word(i)
        if word in _NOON:
            yield _Clock(12, 0, 0, 0), i + 1
        elif word in _MIDNIGHT:
            yield _Clock(0, 0, 0, 0), i + 1
        elif token.kind == "num" and token.ints[1] <= 2 and token.ints[0] <= 24 and not token.dot:
            if self.word(i + 1) in _UHR:
                yield _Clock(token.ints[0], 0, 0, 0), i + 2
            elif bare:
                yield _Clock(token.ints[0], 0, 0, 0), i + 1

    def zone(self, i: int) -> tuple[tzinfo, int] | None:
        """A zone after a time: "CET", "(CEST)", "UTC+1", "+01:00", "Brussels time", "local time"."""
        j = i + 1 if self.is_punct(i, "(") else i
        found: tuple[tzinfo, int] | None = None
        if j < self.n and self.t[j].kind == "offset":
            found = timezone(timedelta(minutes=self.t[j].ints[0])), j + 1
        elif j < self.n and self.t[j].kind == "word" and self.t[j].text.rstrip(".") in _ZONE_ABBREVIATIONS:
            found = _abbreviation_zone(self.t[j].text.rstrip("."), self.tz), j + 1
        else:
            word, after = self.word(j), self.word(j + 1)
            if word in _LOCAL_TIME:
                found = self.tz, j + 1
            elif word is not None and after is not None and (word, after) in _LOCAL_TIME_PAIRS:
                found = self.tz, j + 2
            elif word is not None and word in _CITY_ZONES and after in ("time", "local"):
                found = ZoneInfo(_CITY_ZONES[word]), j + 2 + (self.word(j + 2) == "time")
        if found is None:
            return None
        if j != i:
            if not self.is_punct(found[1], ")"):
                return None
            found = found[0], found[1] + 1
        return found

    def times(self, i: int) -> Iterator[tuple[_Times, int]]:
        """Times after a date: ", 09:00 – 16:30 Uhr", "de 9h00 à 16h30", "ore 9", "10:00 CEST"."""
        j = i
        if self.is_punct(j, ",|@/") or (j < self.n and self.t[j].kind == "dash" and self._clock_ahead(j + 1)):
            j += 1
        lead_start = j
        j = self.skip(j, _TIME_LEAD)
        bare = any(self.word(k) in _HOUR_ONLY_LEAD for k in range(lead_start, j))
        for first, k in self.clock(j, bare=True):
            unmarked = k == j + 1 and self.t[j].kind == "num"
            zone1 = self.zone(k)
            after_first = zone1[1] if zone1 else k
            if (after_first < self.n and self.t[after_first].kind == "dash") or self.word(after_first) in _TIME_JOIN:
                m = self.skip(after_first + 1, _TIME_LEAD)
                for second, n in self.clock(m, bare=bare):
                    if self.t[m].kind == "num" and n == m + 1 and not bare:
                        continue
                    zone2 = self.zone(n)
                    zone = zone2[0] if zone2 else zone1[0] if zone1 else None
                    yield _Times(first, second, zone), zone2[1] if zone2 else n
            if unmarked and not bare:
                continue  # "9" alone is a day or a count, not a time
            yield _Times(first, None, zone1[0] if zone1 else None), after_first

    def _clock_ahead(self, i: int) -> bool:
        return i < self.n and self.t[i].kind == "clock"

    # -- whole expressions ------------------------------------------------

    def join(self, i: int) -> Iterator[tuple[bool, int]]:
        """A range connector; yields (days_only, next index)."""
        if i < self.n and self.t[i].kind == "dash":
            yield False, i + 1
        word = self.word(i)
        if word in _RANGE_JOIN:
            yield word in _RANGE_JOIN_FOR_DAYS_ONLY, i + 1

    def expressions(self, i: int) -> Iterator[tuple[When, int]]:
        """Every reading of a date or range starting at token ``i``."""
        if i < self.n and self.t[i].kind == "isodt":
            moment = self.t[i].moment
            assert moment is not None
            value = moment.astimezone(self.tz) if moment.tzinfo else _wall(moment, self.tz, None)
            yield When(value, None), i + 1
            return
        start = i
        if self.word(i) in _RANGE_OPEN:
            start = i + 1
            if self.is_punct(start, "'’"):
                start += 1
        for first, j in self.parts(start):
            first_times: list[tuple[_Times | None, int]] = [*self.times(j), (None, j)]
            for times1, k in first_times:
                if times1 is None or times1.end is None:
                    for days_only, m in self.join(k):
                        for second, p in self.parts(m):
                            if days_only and (first.month is not None or second.weekday is not None):
                                continue
                            second_times: list[tuple[_Times | None, int]] = [*self.times(p), (None, p)]
                            for times2, q in second_times:
                                if (times1 is None) != (times2 is None) or (times2 and times2.end):
                                    continue
                                when = _build(first, times1, second, times2, self.tz, self.today)
                                if when is not None:
                                    yield when, q
                if first.month is not None:
                    when = _build(first, times1, None, None, self.tz, self.today)
                    if when is not None:
                        yield when, k

    def longest(self, i: int) -> tuple[When, int] | None:
        best: tuple[When, int] | None = None
        for when, end in self.expressions(i):
            if best is None or end > best[1]:
                best = when, end
        return best


# ---------------------------------------------------------------------------
# Building values


@lru_cache(maxsize=256)
def _abbreviation_zone(abbreviation: str, tz: ZoneInfo) -> tzinfo:
    """ "CET" means the source zone when it is a Central European one, else UTC+01:00."""
    family, minutes = _ZONE_ABBREVIATIONS[abbreviation]
    if family is not None:
        winter = datetime(2025, 1, 15, 12, tzinfo=tz).tzname()
        summer = datetime(2025, 7, 15, 12, tzinfo=tz).tzname()
        if (winter, summer) == family:
            return tz
    return UTC if minutes == 0 else timezone(timedelta(minutes=minutes))


def _wall(naive: datetime, tz: ZoneInfo, zone: tzinfo | None) -> datetime:
    """A wall time in ``zone`` (default: the source zone) as an aware datetime in ``tz``.

    The UTC round trip normalises times in the spring-forward gap: fold=0 reads
    02:30 with the offset before the gap (+01:00), which is 03:30 CEST.
    """
    return naive.replace(tzinfo=zone or tz).astimezone(UTC).astimezone(tz)


def _hour24(clock: _Clock, meridiem: int) -> int | None:
    if meridiem == 0:
        return clock.hour if 0 <= clock.hour <= 24 else None
    if not 1 <= clock.hour <= 12:
        return None
    return clock.hour % 12 + (12 if meridiem == 2 else 0)


def _clock_times(times: _Times) -> tuple[time | None, time | None, bool] | None:
    """Start and end of day as ``time``; True when the end is 24:00 (midnight after)."""
    first, second = times.start, times.end
    m1, m2 = first.meridiem, second.meridiem if second else 0
    if second is not None and (m1 == 0) != (m2 == 0):
        # "9:00 – 11:00 AM", "11 – 1 PM", "9am – 5": the written meridiem covers the other time too.
        shared = m1 or m2
        if m1 == 0:
            m1 = shared
            h1, h2 = _hour24(first, m1), _hour24(second, m2)
            if h1 is not None and h2 is not None and (h1, first.minute) > (h2, second.minute) and shared == 2:
                m1 = 1
        else:
            m2 = shared
            h1, h2 = _hour24(first, m1), _hour24(second, m2)
            if h1 is not None and h2 is not None and (h1, first.minute) > (h2, second.minute) and shared == 1:
                m2 = 2
    h1 = _hour24(first, m1)
    if h1 is None or h1 == 24 or not (0 <= first.minute <= 59 and 0 <= first.second <= 59):
        return None
    start = time(h1, first.minute, first.second)
    if second is None:
        return start, None, False
    h2 = _hour24(second, m2)
    if h2 is None or not (0 <= second.minute <= 59 and 0 <= second.second <= 59):
        return None
    if h2 == 24:
        return (start, time(0, 0), True) if second.minute == 0 else None
    return start, time(h2, second.minute, second.second), False


def _day(year: int, month: int, day: int, weekday: int | None) -> date | None:
    try:
        value = date(year, month, day)
    except ValueError:
        return None
    if weekday is not None and value.weekday() != weekday:
        return None
    return value


def _nearest_year(month: int, day: int, weekday: int | None, today: date) -> int | None:
    """The year of a year-less date: see the module docstring for the rule."""
    candidates: list[tuple[int, int]] = []
    for year in (today.year - 1, today.year, today.year + 1):
        value = _day(year, month, day, weekday)
        if value is not None:
            candidates.append((abs((value - today).days), year))
    if not candidates:
        return None
    distance, year = min(candidates)
    limit = 366 if weekday is not None else 153
    return year if distance <= limit else None


def _build(
    first: _Part, times1: _Times | None, second: _Part | None, times2: _Times | None, tz: ZoneInfo, today: date
) -> When | None:
    """Complete the parts (a range's first part borrows month and year from the second) and check them."""
    if first.month is None and second is None:
        return None
    if second is None:
        return _single(first, times1, tz, today)
    month2 = second.month
    if month2 is None:
        if not (first.month_first and first.month is not None and first.year is None):
            return None
        month2 = first.month
    month1 = first.month if first.month is not None else month2
    year1, year2 = first.year, second.year
    if year2 is None and year1 is not None:
        year2 = year1 + (1 if (month2, second.day) < (month1, first.day) else 0)
    if year1 is None and year2 is not None:
        year1 = year2 - 1 if first.month is not None and (month1, first.day) > (month2, second.day) else year2
    if year1 is None or year2 is None:
        if first.wordlike_month or second.wordlike_month:
            return None
        weekday = first.weekday if first.weekday is not None else None
        year1 = _nearest_year(month1, first.day, weekday, today)
        if year1 is None:
            return None
        year2 = year1 + (1 if (month2, second.day) < (month1, first.day) else 0)
    day1 = _day(year1, month1, first.day, first.weekday)
    day2 = _day(year2, month2, second.day, second.weekday)
    if day1 is None or day2 is None or day2 < day1:
        return None
    if times1 is None or times2 is None:
        return When(day1, day2 + timedelta(days=1))
    clock1, clock2 = _clock_times(times1), _clock_times(times2)
    if clock1 is None or clock2 is None or clock1[0] is None or clock2[0] is None:
        return None
    start = _wall(datetime.combine(day1, clock1[0]), tz, times1.zone or times2.zone)
    end = _wall(datetime.combine(day2, clock2[0]), tz, times2.zone or times1.zone)
    return When(start, end) if end >= start else None


def _single(part: _Part, times: _Times | None, tz: ZoneInfo, today: date) -> When | None:
    assert part.month is not None
    year = part.year
    if year is None:
        if part.wordlike_month:
            return None
        year = _nearest_year(part.month, part.day, part.weekday, today)
        if year is None:
            return None
    day = _day(year, part.month, part.day, part.weekday)
    if day is None:
        return None
    if times is None:
        return When(day, day + timedelta(days=1))
    clocks = _clock_times(times)
    if clocks is None or clocks[0] is None:
        return None
    start = _wall(datetime.combine(day, clocks[0]), tz, times.zone)
    if clocks[1] is None:
        return When(start, None)
    end_day = day + timedelta(days=1) if clocks[2] or clocks[1] < clocks[0] else day  # overnight / 24:00
    return When(start, _wall(datetime.combine(end_day, clocks[1]), tz, times.zone))


# ---------------------------------------------------------------------------
# dateparser, the last resort (relative phrases: "yesterday", "vor 2 Tagen", "il y a 3 jours")

_LANGUAGES: Final = ("en", "de", "fr", "it", "es", "nl", "pl")
# Words of relative dates; without one, dateparser is not asked (it is slow, and absolute shapes are ours).
_RELATIVE_HINTS: Final = frozenset(
    {"ago", "yesterday", "today", "vor", "gestern", "vorgestern", "heute", "il", "hier", "aujourd", "fa", "ieri",
     "oggi", "hace", "ayer", "hoy", "geleden", "gisteren", "vandaag", "temu", "wczoraj", "dzisiaj", "dzis"}
)  # fmt: skip


@lru_cache(maxsize=16)
def _dateparser(relative_base: datetime) -> DateDataParser:
    """One parser per reference time (its RELATIVE_BASE is fixed at construction)."""
    settings = {
        "DATE_ORDER": "DMY",
        "PREFER_DAY_OF_MONTH": "first",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "STRICT_PARSING": True,
        "REQUIRE_PARTS": ["day", "month", "year"],
        "RELATIVE_BASE": relative_base,
    }
    return DateDataParser(languages=list(_LANGUAGES), settings=settings)


def _read_with_dateparser(text: str, tz: ZoneInfo, reference: datetime) -> date | None:
    """A relative or unusual single date, as a day. Absolute shapes the grammar refused are not retried."""
    if len(text) > 64 or _RELATIVE_HINTS.isdisjoint(_fold(w) for w in _LETTERS.findall(text)):
        return None  # the letter runs include every word token: no hint among them, none among the tokens
    tokens = _lex(text)
    if _last_month_token(tokens) >= 0 or not any(t.word in _RELATIVE_HINTS for t in tokens):
        return None
    local = reference.astimezone(tz) if reference.tzinfo else reference
    found = _dateparser(local.replace(tzinfo=None, microsecond=0)).get_date_data(text).date_obj
    return found.date() if isinstance(found, datetime) else None


# ---------------------------------------------------------------------------
# Public API

_TRAILING: Final = frozenset(",.;:)|")


def _may_name_month(text: str) -> bool:
    """False when no token of ``text`` can name a month, by a scan far cheaper than the lexer.

    Date tokens (ISO, "12.03.2026", "12.03.") all contain a digit, a separator
    and a digit; word tokens are whole letter runs, so a month word among the
    tokens is a month word among the runs. True may still lex to no month.
    """
    return _DIGIT_SEPARATOR_DIGIT.search(text) is not None or any(_fold(w) in _MONTHS for w in _LETTERS.findall(text))


def _whole(text: str, tz: ZoneInfo, reference: datetime) -> When | None:
    if not _may_name_month(text):
        return None
    tokens = _lex(text)
    if _last_month_token(tokens) < 0:
        return None
    grammar = _Grammar(tokens, tz, reference)
    i = 0
    while i < len(tokens) and (tokens[i].word in _LEAD_WORDS or (tokens[i].kind == "punct" and tokens[i].text in ":|")):
        i += 1
    found = grammar.longest(i)
    if found is None:
        return None
    when, end = found
    if all(t.kind == "punct" and t.text in _TRAILING for t in tokens[end:]):
        return when
    return None


def read_when(text: str, *, tz: ZoneInfo, reference: datetime) -> When | None:
    """The date, time or range that ``text`` consists of ("Datum:" labels allowed), else None."""
    when = _whole(text, tz, reference)
    if when is not None:
        return when
    day = _read_with_dateparser(text, tz, reference)
    return None if day is None else When(day, day + timedelta(days=1))


def read_date(text: str, *, tz: ZoneInfo, reference: datetime) -> datetime | date | None:
    """One date or moment (a publication date); a range or an unreadable text gives None."""
    when = _whole(text, tz, reference)
    if when is not None:
        single = when.end is None or (when.all_day and when.end == when.start + timedelta(days=1))
        return when.start if single else None
    return _read_with_dateparser(text, tz, reference)


def find_when(text: str, *, tz: ZoneInfo, reference: datetime) -> tuple[When, str] | None:
    """The first date or range inside longer text, with the exact substring it was read from."""
    if not _may_name_month(text):
        return None
    tokens = _lex(text)
    last_month = _last_month_token(tokens)
    if last_month < 0:
        return None
    grammar = _Grammar(tokens, tz, reference)
    for i, token in enumerate(tokens[: last_month + 1]):  # a date starts before its month at the latest
        if token.kind == "punct" or token.kind == "dash" or token.kind == "other":
            continue
        found = grammar.longest(i)
        if found is not None:
            when, end = found
            last = tokens[end - 1]
            # "…October 2014." : the lexer let the year keep the sentence's full stop.
            return when, text[token.start : last.end - 1 if last.dot else last.end]
    return None
