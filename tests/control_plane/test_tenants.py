"""``/v1/tenants`` against a real database (SQLite file and MySQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.control_plane.conftest import ADMIN

SECRET = "an-existing-hs256-secret-0123456789"


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/tenants", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_create_with_known_secret_returns_it_once(client: TestClient) -> None:
    created = create(client, id="acme", name="Acme", secret=SECRET)
    assert created["id"] == "acme"
    assert created["name"] == "Acme"
    assert created["status"] == "active"
    assert created["secret"] == SECRET
    assert created["secret_kid"] == "k1"
    for stamp in (created["created_at"], created["updated_at"]):
        assert datetime.fromisoformat(stamp).utcoffset() is not None

    shown = client.get("/v1/tenants/acme", headers=ADMIN).json()
    assert not {"secret", "secret_kid", "api_key", "api_key_hash"} & set(shown)
    once = ("secret", "secret_kid", "api_key")
    assert shown == {k: v for k, v in created.items() if k not in once}
    assert created["api_key"].startswith("cak_")
    assert shown["has_api_key"] is True
    listed = client.get("/v1/tenants", headers=ADMIN).json()
    assert all("secret" not in row and "api_key" not in row for row in listed["data"])


def test_create_generates_id_and_secret(client: TestClient) -> None:
    created = create(client, name="Generated")
    assert created["id"]
    assert len(created["secret"]) >= 43  # token_urlsafe(32)
    assert client.get(f"/v1/tenants/{created['id']}", headers=ADMIN).status_code == 200
    other = create(client, name="Generated")
    assert other["id"] != created["id"]
    assert other["secret"] != created["secret"]


def test_duplicate_id_is_409(client: TestClient) -> None:
    create(client, id="dup", name="First")
    response = client.post("/v1/tenants", json={"id": "dup", "name": "Second"}, headers=ADMIN)
    assert response.status_code == 409
    assert response.json() == {"detail": "tenant exists"}
    assert client.get("/v1/tenants/dup", headers=ADMIN).json()["name"] == "First"


def test_list_pages_in_id_order(client: TestClient) -> None:
    for tenant_id in ("t3", "t1", "t2"):
        create(client, id=tenant_id, name=tenant_id.upper())
    page = client.get("/v1/tenants", params={"limit": 2}, headers=ADMIN).json()
    assert page["count"] == 3
    assert [row["id"] for row in page["data"]] == ["t1", "t2"]
    rest = client.get("/v1/tenants", params={"offset": 2, "limit": 1000}, headers=ADMIN).json()
    assert [row["id"] for row in rest["data"]] == ["t3"]


def test_update_renames_disables_and_enables(client: TestClient) -> None:
    created = create(client, id="upd", name="Before")
    response = client.patch("/v1/tenants/upd", json={"name": "After"}, headers=ADMIN)
    assert response.status_code == 200
    renamed = response.json()
    assert renamed["name"] == "After"
    assert renamed["status"] == "active"
    assert renamed["created_at"] == created["created_at"]
    assert stamp(renamed["updated_at"]) >= stamp(created["updated_at"])

    disabled = client.patch("/v1/tenants/upd", json={"status": "disabled"}, headers=ADMIN)
    assert disabled.json()["status"] == "disabled"
    assert client.get("/v1/tenants/upd", headers=ADMIN).json()["status"] == "disabled"
    enabled = client.patch("/v1/tenants/upd", json={"status": "active"}, headers=ADMIN)
    assert enabled.json()["status"] == "active"
    unchanged = client.patch("/v1/tenants/upd", json={}, headers=ADMIN)
    assert unchanged.json() == enabled.json()


def test_delete(client: TestClient) -> None:
    create(client, id="gone", name="Gone")
    response = client.delete("/v1/tenants/gone", headers=ADMIN)
    assert response.status_code == 204
    assert response.content == b""
    assert client.get("/v1/tenants/gone", headers=ADMIN).status_code == 404
    assert client.delete("/v1/tenants/gone", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    ("method", "json"),
    [("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)],
)
def test_unknown_tenant_is_404(client: TestClient, method: str, json: Any) -> None:
    response = client.request(method, "/v1/tenants/nobody", json=json, headers=ADMIN)
    assert response.status_code == 404
    assert response.json() == {"detail": "tenant not found"}


ROUTES = [
    ("POST", "/v1/tenants", {"name": "x"}),
    ("GET", "/v1/tenants", None),
    ("GET", "/v1/tenants/acme", None),
    ("PATCH", "/v1/tenants/acme", {"name": "x"}),
    ("DELETE", "/v1/tenants/acme", None),
]


@pytest.mark.parametrize(("method", "path", "json"), ROUTES)
def test_missing_token_is_401(client: TestClient, method: str, path: str, json: Any) -> None:
    for headers in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer"}):
        response = client.request(method, path, json=json, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "json"), ROUTES)
def test_wrong_token_is_403(client: TestClient, method: str, path: str, json: Any) -> None:
    wrong: list[list[tuple[bytes, bytes]]] = [
        [(b"Authorization", b"Bearer not-the-admin-token")],
        [(b"Authorization", "Bearer tok\xe9n".encode("latin-1"))],  # non-ASCII: still 403
    ]
    for headers in wrong:
        response = client.request(method, path, json=json, headers=headers)
        assert response.status_code == 403
        assert response.json() == {"detail": "invalid admin token"}
    assert client.get("/v1/tenants", headers=ADMIN).json()["count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        "acme",
        {"name": 5},
        {"name": ""},
        {"name": "x" * 129},
        {"name": "Acme", "id": "Acme"},
        {"name": "Acme", "id": "-acme"},
        {"name": "Acme", "id": "acme corp"},
        {"name": "Acme", "id": "a" * 64},
        {"name": "Acme", "id": 7},
        {"name": "Acme", "secret": "too-short"},
        {"name": "Acme", "secret": "s" * 257},
        {"name": "Acme", "secret": 1234567890123456789},
        {"name": "Acme", "status": "active"},
    ],
)
def test_malformed_create_is_422(client: TestClient, body: Any) -> None:
    response = client.post("/v1/tenants", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert client.get("/v1/tenants", headers=ADMIN).json()["count"] == 0


def test_non_json_body_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/tenants",
        content=b"{not json",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"status": "paused"},
        {"status": "DISABLED"},
        {"status": None},
        {"name": None},
        {"name": ""},
        {"name": ["x"]},
        {"secret": "a-new-secret-value-0123"},
        "disabled",
    ],
)
def test_malformed_update_is_422(client: TestClient, body: Any) -> None:
    create(client, id="acme", name="Acme")
    response = client.patch("/v1/tenants/acme", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    shown = client.get("/v1/tenants/acme", headers=ADMIN).json()
    assert shown["name"] == "Acme"
    assert shown["status"] == "active"


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "many"}],
)
def test_malformed_list_query_is_422(client: TestClient, params: dict[str, Any]) -> None:
    assert client.get("/v1/tenants", params=params, headers=ADMIN).status_code == 422


@pytest.mark.parametrize("tenant_id", ["ACME", "-acme", "a" * 65, "acme%20corp"])
def test_malformed_tenant_id_is_422(client: TestClient, tenant_id: str) -> None:
    assert client.get(f"/v1/tenants/{tenant_id}", headers=ADMIN).status_code == 422
