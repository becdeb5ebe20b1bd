"""What de-duplication compares of one record: its canonical link and a key of its normalised title.

Computed once per stored version of a record, by the first publish that reads it, and saved
in the record's row (``Store.save_match_keys``) for every later publish: a publish merges
40,000 to 200,000 items, and computing (or looking up) every item's keys was most of its
merge. Not when storing: that is the fetching process, whose time newsboat is measured
against. ``RULES`` names the code that computes them, so keys stored by another version of
these rules are never used.

The title key is a 63-bit digest of the normalised title, not the title itself: equal
titles only make two news items candidates (their summaries decide), and two events must
also start at the same moment, so a digest collision (about one in 10^18 per pair) cannot
merge two different stories; an integer is also a fifth of the string's memory.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from aggregator.urls import canonical_url

__all__ = ["RULES", "MatchKeys", "match_keys", "normalised_title", "reposted", "title_key"]


@dataclass(frozen=True, slots=True)
class MatchKeys:
    """The keys of one record: ``canonical`` link (None when it has none usable) and ``title`` key (0: no title)."""

    canonical: str | None
    title: int


def reposted(link: str | None, canonical: str | None) -> bool:
    """Tracking parameters or a fragment in the link: the mark of a re-post, not the original."""
    return link is not None and ("#" in link or canonical != link)


def _title_char(char: str) -> str | None:
    """What one (NFKC, case-folded) character becomes in a normalised title: a space, itself, or nothing."""
    category = unicodedata.category(char)
    if category[0] == "Z" or char.isspace():
        return " "
    if category[0] not in "PSC":  # punctuation, symbols, controls are dropped: "mid-term" == "midterm"
        return char
    return None


class _TitleChars(dict[int, str | None]):
    """``str.translate`` table of ``_title_char``, filled on first sight of each code point (a few hundred)."""

    def __missing__(self, code: int) -> str | None:
        value = self[code] = _title_char(chr(code))
        return value


_TITLE_CHARS = _TitleChars()


def normalised_title(title: str) -> str:
    """Title for comparison: case-folded, punctuation and symbols dropped, whitespace (nbsp too) collapsed."""
    folded = (title if title.isascii() else unicodedata.normalize("NFKC", title)).casefold()
    return " ".join(folded.translate(_TITLE_CHARS).split())


def title_key(title: str) -> int:
    """A nonzero 63-bit digest of the normalised title; 0 when nothing is left of it."""
    normalised = normalised_title(title)
    if not normalised:
        return 0
    digest = hashlib.blake2b(normalised.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 1) or 1


def match_keys(link: str | None, title: str) -> MatchKeys:
    """The keys of a record with this link and title.

    The canonical link is the record's own link object when they are equal (one string in memory, not two).
    """
    canonical = None if link is None else canonical_url(link)
    return MatchKeys(link if canonical == link else canonical, title_key(title))


def _rules() -> int:
    here = Path(__file__).parent
    digest = hashlib.blake2b(digest_size=4)
    for name in ("matching.py", "urls.py"):
        digest.update((here / name).read_bytes())
    return int.from_bytes(digest.digest(), "big") >> 1


RULES = _rules()  # 31 bits: fits every database's INTEGER
