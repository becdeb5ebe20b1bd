"""/healthz, /readyz and /metrics over real HTTP; request counts as Prometheus reads them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from aggregator.metrics import Metrics
from aggregator.serve import build_app


def http_request_counts(metrics_text: str) -> dict[tuple[str, str], float]:
    """http_requests_total samples keyed by (status, path class)."""
    counts = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "http_requests":
            for sample in family.samples:
                if sample.name == "http_requests_total":
                    counts[(sample.labels["status"], sample.labels["path"])] = sample.value
    return counts


def test_healthz_reports_ok_with_the_health_details(served: Any) -> None:
    with served.client() as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"status": "ok", "sources": 2, "last_publish": "2026-11-26T11:30:00+00:00"}


def test_healthz_without_health_callback_is_just_ok(feeds: Path, start_server: Callable[..., int]) -> None:
    port = start_server(build_app(feeds, metrics=Metrics(), is_ready=lambda: True, max_age=60))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0, verify=False) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_stays_200_when_the_health_callback_fails(
    feeds: Path, start_server: Callable[..., int], caplog: Any
) -> None:
    def broken() -> Mapping[str, object]:
        raise KeyError("last_publish")

    port = start_server(build_app(feeds, metrics=Metrics(), is_ready=lambda: True, max_age=60, health=broken))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0, verify=False) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "health_error": "health callback failed; see the log"}
    [record] = [r for r in caplog.records if r.name == "aggregator.serve"]
    assert record.getMessage() == "healthz"
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError


def test_healthz_stays_200_when_a_health_value_cannot_be_encoded(
    feeds: Path, start_server: Callable[..., int], caplog: Any
) -> None:
    port = start_server(
        build_app(feeds, metrics=Metrics(), is_ready=lambda: True, max_age=60, health=lambda: {"store": object()})
    )
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0, verify=False) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "health_error": "health callback failed; see the log"}
    [record] = [r for r in caplog.records if r.name == "aggregator.serve"]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "object in health() result is not JSON-serialisable"


def test_readyz_is_503_when_the_readiness_callback_fails(
    feeds: Path, start_server: Callable[..., int], caplog: Any
) -> None:
    def broken() -> bool:
        raise RuntimeError("scheduler not wired")

    port = start_server(build_app(feeds, metrics=Metrics(), is_ready=broken, max_age=60))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0, verify=False) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False}
    [record] = [r for r in caplog.records if r.name == "aggregator.serve"]
    assert record.getMessage() == "readyz"


def test_readyz_is_503_until_ready_then_200(served: Any) -> None:
    with served.client() as client:
        before = client.get("/readyz")
        served.ready.set()
        after = client.get("/readyz")
    assert before.status_code == 503
    assert before.json() == {"ready": False}
    assert after.status_code == 200
    assert after.json() == {"ready": True}
    assert after.headers["cache-control"] == "no-store"


def test_head_on_healthz_has_no_body(served: Any) -> None:
    with served.client() as client:
        response = client.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""


def test_metrics_count_every_response_by_status_and_path_class(served: Any) -> None:
    with served.client() as client:
        etag = client.get("/news.xml").headers["etag"]
        client.get("/news.xml", headers={"If-None-Match": etag})
        client.get("/news.atom")
        client.get("/sources/eccp-news.ics")
        client.get("/")
        client.get("/tags/hydrogen.json")
        client.post("/news.xml")
        client.get("/favicon.ico")
        client.get("/healthz")
        client.get("/readyz")
        client.get("/metrics")
        client.get("/news.xml?" + "q" * 3000)
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["cache-control"] == "no-store"
    assert http_request_counts(response.text) == {
        ("200", "feed"): 2.0,
        ("304", "feed"): 1.0,
        ("200", "calendar"): 1.0,
        ("200", "index"): 1.0,
        ("404", "feed"): 1.0,
        ("405", "feed"): 1.0,
        ("404", "other"): 1.0,
        ("200", "health"): 1.0,
        ("503", "health"): 1.0,
        ("200", "metrics"): 1.0,
        ("414", "feed"): 1.0,
    }


def test_metrics_endpoint_shows_fetch_metrics_recorded_by_the_scheduler(served: Any) -> None:
    served.metrics.observe_fetch("eccp-news", "ok", 0.41, 18_204)
    with served.client() as client:
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [total] = [s for s in families["fetches"].samples if s.name == "fetches_total"]
    assert total.labels == {"source": "eccp-news", "outcome": "ok"}
    assert total.value == 1.0


def test_two_apps_keep_separate_counts(feeds: Path, start_server: Callable[..., int]) -> None:
    first, second = Metrics(), Metrics()
    # Servers of their own, so each app also runs its own lifespan under uvicorn.
    apps = [build_app(feeds, metrics=m, is_ready=threading.Event().is_set, max_age=60) for m in (first, second)]
    port, _ = (start_server(app, dedicated_server=True) for app in apps)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0, verify=False) as client:
        client.get("/news.xml")
    assert http_request_counts(first.render().decode()) == {("200", "feed"): 1.0}
    assert http_request_counts(second.render().decode()) == {}
