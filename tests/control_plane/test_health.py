"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from control_plane import metrics as metrics_module
from control_plane.app import create_app
from control_plane.metrics import HttpMetrics
from tests.control_plane.conftest import ADMIN, settings_for


def test_healthz_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_503_when_the_database_does_not_answer(tmp_path: Path) -> None:
    # A directory is not a database file: SQLite cannot open it.
    app = create_app(settings_for(f"sqlite:///{tmp_path}"))
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/v1/tenants/nobody", headers=ADMIN)
    client.get("/v1/tenants/someone", headers=ADMIN)
    client.get("/v1/tenants")
    client.get("/no/such/path")

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE cirno_control_http_requests_total counter" in text
    assert 'cirno_control_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in (
        text
    )
    assert (
        'cirno_control_http_requests_total{method="GET",route="/v1/tenants/{tenant_id}",'
        'status="404"} 2.0'
    ) in text
    assert (
        'cirno_control_http_requests_total{method="GET",route="/v1/tenants",status="401"} 1.0'
    ) in text
    assert 'route="<unmatched>",status="404"} 1.0' in text
    assert "cirno_control_http_request_duration_seconds_bucket" in text


def test_client_chosen_methods_share_one_label(client: TestClient) -> None:
    for i in range(20):
        client.request(f"BREW{i}", "/healthz")
    text = client.get("/metrics").text
    assert "BREW" not in text
    assert 'method="OTHER",route="/healthz"' in text


def test_each_app_has_its_own_registry(client: TestClient, tmp_path: Path) -> None:
    client.get("/healthz")
    with TestClient(create_app(settings_for(f"sqlite:///{tmp_path}/other.db"))) as other:
        text = other.get("/metrics").text
    assert 'route="/healthz"' not in text


def test_recorded_series_count_past_the_child_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "MAX_CACHED_SERIES", 2)
    metrics = HttpMetrics(CollectorRegistry(auto_describe=True))
    for status in (200, 200, 404, 500, 500, 500, 200):
        metrics.record("GET", "/x", status, 0.001)
    text = generate_latest(metrics.registry).decode()
    for status, count in ((200, 3), (404, 1), (500, 3)):
        line = f'cirno_control_http_requests_total{{method="GET",route="/x",status="{status}"}}'
        assert f"{line} {count}.0" in text
    assert 'cirno_control_http_request_duration_seconds_count{method="GET",route="/x"} 7.0' in text
