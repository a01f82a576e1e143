"""Tenant quotas and isolation: round trip, validation, masking, the internal view."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.control_plane.conftest import ADMIN, CLUSTER

DEDICATED_URL = "mysql://cirno:s3cret@db.internal:3306/acme_messages"


def internal(client: TestClient, tenant_id: str) -> dict[str, Any]:
    tenants = client.get("/internal/v1/tenants", headers=CLUSTER).json()["tenants"]
    found: dict[str, Any] = next(t for t in tenants if t["id"] == tenant_id)
    return found


def test_defaults(client: TestClient) -> None:
    created = client.post("/v1/tenants", json={"id": "acme", "name": "A"}, headers=ADMIN).json()
    assert created["max_connections"] == 0
    assert created["messages_per_second"] == 0.0
    assert created["isolation"] == "shared"
    assert created["database_url"] is None
    # Rate overrides unset: the gateways' defaults apply (limits are on by default).
    assert created["commands_per_second"] is None
    assert created["account_commands_per_second"] is None
    assert created["logins_per_second"] is None


RATES = ("commands_per_second", "account_commands_per_second", "logins_per_second")


def test_rate_overrides_set_zero_and_back_to_default(client: TestClient) -> None:
    body = {"id": "acme", "name": "A", "commands_per_second": 5, "logins_per_second": 0}
    created = client.post("/v1/tenants", json=body, headers=ADMIN).json()
    assert [created[name] for name in RATES] == [5.0, None, 0.0]
    patched = client.patch(
        "/v1/tenants/acme",
        json={"commands_per_second": None, "account_commands_per_second": 0},
        headers=ADMIN,
    ).json()
    assert [patched[name] for name in RATES] == [None, 0.0, 0.0]
    quotas = internal(client, "acme")["quotas"]
    assert [quotas[name] for name in RATES] == [None, 0.0, 0.0]


def test_round_trip_and_masking(client: TestClient) -> None:
    body = {
        "id": "acme",
        "name": "Acme",
        "max_connections": 5000,
        "messages_per_second": 12.5,
        "isolation": "dedicated",
        "database_url": DEDICATED_URL,
    }
    created = client.post("/v1/tenants", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    masked = "mysql://cirno:***@db.internal:3306/acme_messages"
    for shown in (created.json(), client.get("/v1/tenants/acme", headers=ADMIN).json()):
        assert shown["max_connections"] == 5000
        assert shown["messages_per_second"] == 12.5
        assert shown["isolation"] == "dedicated"
        assert shown["database_url"] == masked
        assert "s3cret" not in str(shown)
    listed = client.get("/v1/tenants", headers=ADMIN).text
    assert "s3cret" not in listed

    assert internal(client, "acme") | {"keys": []} == {
        "id": "acme",
        "status": "active",
        "keys": [],
        "quotas": {
            "max_connections": 5000,
            "messages_per_second": 12.5,
            "commands_per_second": None,
            "account_commands_per_second": None,
            "logins_per_second": None,
        },
        "isolation": "dedicated",
        "database_url": DEDICATED_URL,
        "bans": [],
        "moderation": None,
        "recall_window_s": None,
    }


def test_patch_quotas_and_isolation(client: TestClient) -> None:
    client.post("/v1/tenants", json={"id": "acme", "name": "A"}, headers=ADMIN)
    patched = client.patch(
        "/v1/tenants/acme",
        json={"max_connections": 10, "messages_per_second": 0.5},
        headers=ADMIN,
    ).json()
    assert (patched["max_connections"], patched["messages_per_second"]) == (10, 0.5)

    # Dedicated needs a URL: given now, or already stored.
    refused = client.patch("/v1/tenants/acme", json={"isolation": "dedicated"}, headers=ADMIN)
    assert refused.status_code == 422
    assert "database_url" in refused.text
    sqlite_url = "sqlite:////var/lib/cirno/acme.db"
    moved = client.patch(
        "/v1/tenants/acme",
        json={"isolation": "dedicated", "database_url": sqlite_url},
        headers=ADMIN,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["database_url"] == sqlite_url
    assert internal(client, "acme")["database_url"] == sqlite_url
    clearing = client.patch("/v1/tenants/acme", json={"database_url": None}, headers=ADMIN)
    assert clearing.status_code == 422

    # Back to shared: the URL goes with it.
    shared = client.patch("/v1/tenants/acme", json={"isolation": "shared"}, headers=ADMIN).json()
    assert (shared["isolation"], shared["database_url"]) == ("shared", None)
    assert internal(client, "acme")["isolation"] == "shared"
    assert internal(client, "acme")["database_url"] is None
    stray = client.patch("/v1/tenants/acme", json={"database_url": sqlite_url}, headers=ADMIN)
    assert stray.status_code == 422


@pytest.mark.parametrize(
    "extra",
    [
        {"isolation": "dedicated"},
        {"isolation": "dedicated", "database_url": None},
        {"isolation": "shared", "database_url": "sqlite:///x.db"},
        {"database_url": "sqlite:///x.db"},
        {"isolation": "dedicated", "database_url": "postgresql://h/db"},
        {"isolation": "dedicated", "database_url": "not a url"},
        {"isolation": "dedicated", "database_url": "mysql://"},
        {"isolation": "dedicated", "database_url": "sqlite://"},
        {"isolation": "dedicated", "database_url": "mysql:///nohost"},
        {"isolation": "dedicated", "database_url": "sqlite:///" + "x" * 600},
        {"isolation": "private"},
        {"max_connections": -1},
        {"max_connections": 2**31},
        {"max_connections": 1.5},
        {"messages_per_second": -0.1},
        {"messages_per_second": "fast"},
        {"messages_per_second": 1e9},
        {"commands_per_second": -1},
        {"account_commands_per_second": "many"},
        {"logins_per_second": 1e9},
    ],
)
def test_invalid_limits_are_422(client: TestClient, extra: dict[str, Any]) -> None:
    response = client.post("/v1/tenants", json={"name": "A", **extra}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert client.get("/v1/tenants", headers=ADMIN).json()["count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"max_connections": None},
        {"messages_per_second": None},
        {"isolation": None},
        {"max_connections": -5},
        {"isolation": "dedicated", "database_url": "redis://x/0"},
    ],
)
def test_invalid_limit_updates_are_422(client: TestClient, body: dict[str, Any]) -> None:
    client.post("/v1/tenants", json={"id": "acme", "name": "A"}, headers=ADMIN)
    assert client.patch("/v1/tenants/acme", json=body, headers=ADMIN).status_code == 422
    assert client.get("/v1/tenants/acme", headers=ADMIN).json()["isolation"] == "shared"
