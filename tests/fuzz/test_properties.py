"""Properties that must hold for any input: URL canonicalising, sanitising, and the iCalendar writer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import icalendar
import lxml.html
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.publish._common import plain_lines, plain_text, plain_title, safe_html
from aggregator.publish.ics import render_ics
from aggregator.records import EventRecord
from aggregator.sanitize import sanitize_html
from aggregator.store.base import StoredEvent
from aggregator.urls import canonical_url

TRACKING = re.compile(r"^(utm_.*|fbclid|gclid|mc_.*|pk_.*|_hsenc|_hsmi|yclid|igshid|xtor)$", re.I)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_segment = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_param_name = st.one_of(
    st.sampled_from(["utm_source", "utm_medium", "UTM_Campaign", "fbclid", "gclid", "mc_eid", "pk_kwd", "xtor"]),
    st.sampled_from(["id", "page", "lang", "q", "event", "year"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8),
)
urls = st.builds(
    lambda scheme, host, port, path, query, fragment: (
        f"{scheme}://{host}{port}/{'/'.join(path)}"
        + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        + (f"#{fragment}" if fragment else "")
    ),
    st.sampled_from(["http", "https", "HTTPS", "Http"]),
    st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?(\.[A-Za-z]{2,6}){1,2}\.?", fullmatch=True),
    st.sampled_from(["", ":80", ":443", ":8080", ":0"]),
    st.lists(_segment, max_size=4),
    st.lists(st.tuples(_param_name, _segment), max_size=5),
    _segment,
)


@SETTINGS
@given(st.one_of(urls, st.text(max_size=200)), st.one_of(st.none(), urls))
def test_canonical_url_never_raises_and_is_idempotent(href: str, base: str | None) -> None:
    once = canonical_url(href, base)
    if once is not None:
        assert canonical_url(once) == once


@SETTINGS
@given(urls)
def test_canonical_url_drops_every_tracking_parameter_and_the_fragment(href: str) -> None:
    canonical = canonical_url(href)
    assert canonical is not None
    parts = urlsplit(canonical)
    assert parts.fragment == ""
    assert [k for k, _v in parse_qsl(parts.query, keep_blank_values=True) if TRACKING.match(k)] == []
    assert parts.scheme in ("http", "https")
    assert parts.hostname == parts.hostname.lower()  # type: ignore[union-attr]


_FORBIDDEN = {"script", "style", "iframe", "object", "embed", "svg", "math", "form", "base", "meta", "link"}
html_fragments = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(
            [
                "<script>alert(1)</script>",
                "<img src=x onerror=alert(1)>",
                '<a href="javascript:alert(1)">x</a>',
                '<a href="java\tscript:alert(1)">x</a>',
                '<a href="&#106;avascript:alert(1)">x</a>',
                "<svg onload=alert(1)>",
                "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
                '<p style="x:expression(alert(1))">',
                "<base href=javascript:alert(1)//>",
                '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
                "&lt;script&gt;",
                "<!--",
                "-->",
                "<p>",
                "</p>",
                "<b>",
                "<a href='https://www.cluster.example.eu/x'>",
                "\x00",
                "<div>" * 300,
            ]
        ),
    ),
    max_size=12,
).map("".join)


def _active(fragment: str) -> list[str]:
    if not fragment.strip():
        return []
    root = lxml.html.fromstring(f"<div>{fragment}</div>")
    found = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag in _FORBIDDEN:
            found.append(element.tag)
        for name, value in element.attrib.items():
            squeezed = re.sub(r"[\x00-\x20]+", "", value).lower()
            if name.startswith("on") or name == "style":
                found.append(name)
            elif (
                name in ("href", "src")
                and ":" in squeezed.split("/")[0]
                and not squeezed.startswith(("http:", "https:", "mailto:"))
            ):
                found.append(f"{name}={value}")
    return found


@SETTINGS
@given(html_fragments)
def test_sanitising_twice_changes_nothing_and_nothing_active_survives(fragment: str) -> None:
    once = sanitize_html(fragment, base_url="https://www.cluster.example.eu/news/")
    assert sanitize_html(once, base_url="https://www.cluster.example.eu/news/") == once
    assert _active(once) == []


text_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=120
) | st.sampled_from(["Line one\r\nBEGIN:VALARM\r\nEND:VALARM", "a;b,c\\d:e", "Ümlaut – 🎉 𝄞", "x" * 300])


@SETTINGS
@given(text_values, text_values, text_values)
def test_whatever_text_goes_into_the_ics_writer_reads_back_the_same(
    summary: str, location: str, description: str
) -> None:
    start = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    record = EventRecord(
        uid="prop@cluster.example.eu",
        source="prop",
        title=summary,
        start=start,
        end=start + timedelta(hours=2),
        timezone="UTC",
        location=location,
        description=safe_html(description),
    )
    stored = StoredEvent(record=record, sequence=0, first_seen=start, changed_at=start)

    data = render_ics([stored], name="Property test", refresh=timedelta(hours=1), fallback_zone="UTC", year=2026)
    calendar = icalendar.Calendar.from_ical(data)
    events = calendar.walk("VEVENT")

    assert len(events) == 1
    event = events[0]
    assert str(event["SUMMARY"]) == plain_title(summary)
    assert str(event.get("LOCATION", "")) == plain_text(location)
    assert str(event.get("DESCRIPTION", "")) == plain_lines(safe_html(record.description))
    assert event.decoded("DTSTART") == start
    assert calendar.walk("VALARM") == []  # escaped newlines cannot open components or properties
    assert set(event.keys()) <= {
        "UID", "DTSTAMP", "CREATED", "LAST-MODIFIED", "SEQUENCE", "STATUS", "DTSTART", "DTEND",
        "SUMMARY", "LOCATION", "DESCRIPTION",
    }  # fmt: skip
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
