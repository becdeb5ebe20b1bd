"""Script-injection vectors in titles, summaries, locations and links: none survives in any published file."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.publish import publish

VECTORS = [
    "<script>alert(1)</script>Script tag",
    '<img src=x onerror="alert(1)">Broken image',
    '<a href="javascript:alert(1)">JS link</a>',
    '<a href="JaVaScRiPt:alert(1)">Mixed case</a>',
    '<a href="jav&#x09;ascript:alert(1)">Tab in scheme</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">Entity scheme</a>',
    "<svg><script>alert(1)</script></svg>SVG script",
    '<svg onload="alert(1)"><circle r="5"/></svg>SVG onload',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>MathML",
    '<iframe src="https://evil.example/"></iframe>Iframe',
    "&lt;script&gt;alert(1)&lt;/script&gt;Encoded once",
    "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;Encoded twice",
    "&lt;img src=x onerror=alert(1)&gt;Encoded handler",
    "<p>Visit javascript:alert(1) now</p>",
    '<div style="background:url(javascript:alert(1))">Style URL</div>',
    '<object data="data:text/html,<script>alert(1)</script>"></object>Object',
    '<form action="javascript:alert(1)"><button>Go</button></form>Form',
    "<base href='javascript:alert(1)//'>Base",
]
# What would run in a reader that renders the field, or after one more round of unescaping.
_ACTIVE = re.compile(
    r"<\s*(script|iframe|object|embed|svg|math|form|base|style)\b|\son[a-z]+\s*=|(java|vb)script\s*:", re.I
)


def _active(path: Path) -> list[str]:
    """Active content as a client sees the file, and after one more round of unescaping than it should do.

    XML files carry HTML escaped once more than JSON or iCalendar, so they get an extra round.
    """
    raw = path.read_text("utf-8")
    if path.suffix == ".html":
        raw = raw.split("</style>", 1)[1]  # the page's own inline stylesheet, in <head>
    if path.suffix == ".json":
        strings: list[str] = []
        _strings(json.loads(raw), strings)
        candidates = [*strings, *(html.unescape(s) for s in strings)]
    elif path.suffix in (".xml", ".atom", ".opml"):
        candidates = [raw, html.unescape(raw), html.unescape(html.unescape(raw))]
    else:
        candidates = [raw, html.unescape(raw)]
    return [m.group(0) for candidate in candidates for m in _ACTIVE.finditer(candidate)]


def _strings(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)


def test_no_vector_survives_in_any_file(feeds_dir, publish_input, make_news, make_event):
    when = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    news = [
        make_news("alpha", f"x{n}", vector, summary=vector, published=when - timedelta(hours=n), link=link)
        for n, vector in enumerate(VECTORS)
        for link in ["javascript:alert(1)" if n % 2 else f"https://alpha.clusterfeeds.example/news/{n}"]
    ]
    events = [
        make_event(
            "beta",
            f"ev{n}@beta",
            vector,
            datetime(2026, 12, 1, 9, 0, tzinfo=UTC) + timedelta(days=n),
            location=vector,
            description=vector,
            link="javascript:alert(1)" if n % 2 else None,
        )
        for n, vector in enumerate(VECTORS)
    ]
    publish(feeds_dir, publish_input(news=news, events=events))
    files = sorted(p for p in feeds_dir.rglob("*") if p.is_file())
    assert len(files) == 30
    findings = {p.relative_to(feeds_dir).as_posix(): _active(p) for p in files}
    assert {name: found for name, found in findings.items() if found} == {}


def test_visible_text_of_a_vector_title_is_kept(feeds_dir, publish_input, make_news):
    item = make_news(
        "alpha", "t", "<b>Hydrogen</b> <script>alert(1)</script>days &amp; nights",
        published=datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
    )  # fmt: skip
    publish(feeds_dir, publish_input(news=[item]))
    text = (feeds_dir / "news.xml").read_text("utf-8")
    assert "<title>Hydrogen days &amp; nights</title>" in text
