"""Prometheus metrics for one aggregator process, in a registry of their own.

``Metrics()`` owns a fresh ``CollectorRegistry`` (never the process-global
one), so two apps in one test process never share or collide on series. The
scheduler reports fetches and publishes, ``serve.py`` reports HTTP requests,
and ``/metrics`` returns ``render()``.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

__all__ = ["PATH_CLASSES", "Metrics", "PathClass"]

PathClass = Literal["feed", "calendar", "index", "health", "metrics", "other"]
PATH_CLASSES: Final[tuple[PathClass, ...]] = ("feed", "calendar", "index", "health", "metrics", "other")

# Cluster sites answer in tens of milliseconds to tens of seconds (timeouts are 30 s).
_FETCH_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Rendering every feed is sub-second for hundreds of items, seconds for thousands.
_PUBLISH_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters, gauges and histograms of one process; methods are safe from any thread."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self._fetches = Counter(
            "fetches",
            "Fetch attempts by source and outcome (ok, not_modified or an error reason).",
            ["source", "outcome"],
            registry=reg,
        )
        self._fetch_duration = Histogram(
            "fetch_duration_seconds",
            "Time taken by one fetch, redirects included.",
            ["source"],
            buckets=_FETCH_BUCKETS,
            registry=reg,
        )
        self._fetch_bytes = Counter("fetch_bytes", "Body bytes received per source.", ["source"], registry=reg)
        self._items = Gauge("source_items", "Records stored for the source.", ["source"], registry=reg)
        self._last_success = Gauge(
            "source_last_success_timestamp",
            "Unix time of the last successful fetch (absent if none yet).",
            ["source"],
            registry=reg,
        )
        self._failures = Gauge(
            "source_consecutive_failures", "Failed fetches since the last success.", ["source"], registry=reg
        )
        self._publish_duration = Histogram(
            "publish_duration_seconds",
            "Time taken to render and write every published file.",
            buckets=_PUBLISH_BUCKETS,
            registry=reg,
        )
        self._files_written = Counter(
            "publish_files_written", "Published files replaced because their content changed.", registry=reg
        )
        self._http = Counter(
            "http_requests", "HTTP responses sent, by status and path class.", ["status", "path"], registry=reg
        )
        ProcessCollector(registry=reg)
        # prometheus_client cannot remove series by one label of several, so the
        # outcomes seen per source are remembered for remove_source().
        self._outcomes: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def observe_fetch(self, source: str, outcome: str, duration: float, nbytes: int) -> None:
        """Record one fetch attempt: outcome is "ok", "not_modified" or a FetchError reason."""
        with self._lock:
            self._outcomes.setdefault(source, set()).add(outcome)
        self._fetches.labels(source, outcome).inc()
        self._fetch_duration.labels(source).observe(duration)
        self._fetch_bytes.labels(source).inc(nbytes)

    def set_source(
        self, source: str, items: int, last_success: datetime | float | None, consecutive_failures: int
    ) -> None:
        """Publish a source's state; with no success yet the timestamp series is absent, not 0."""
        self._items.labels(source).set(items)
        self._failures.labels(source).set(consecutive_failures)
        if last_success is None:
            self._last_success.remove(source)
        elif isinstance(last_success, datetime):
            if last_success.tzinfo is None:
                raise ValueError(f"last_success for source '{source}' must be timezone-aware")
            self._last_success.labels(source).set(last_success.timestamp())
        else:
            self._last_success.labels(source).set(last_success)

    def observe_publish(self, duration: float, files_written: int) -> None:
        """Record one publish run and how many files it replaced."""
        self._publish_duration.observe(duration)
        self._files_written.inc(files_written)

    def observe_http(self, status: int, path: PathClass) -> None:
        """Count one HTTP response; path is a class, never the raw URL (bounded label set)."""
        if path not in PATH_CLASSES:
            raise ValueError(f"unknown path class {path!r}; expected one of {', '.join(PATH_CLASSES)}")
        self._http.labels(str(status), path).inc()

    def remove_source(self, name: str) -> None:
        """Drop every series of a source that left the configuration."""
        with self._lock:
            outcomes = self._outcomes.pop(name, set())
        for outcome in outcomes:
            self._fetches.remove(name, outcome)
        for metric in (self._fetch_duration, self._fetch_bytes, self._items, self._last_success, self._failures):
            metric.remove(name)

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)
