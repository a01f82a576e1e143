"""``/v1/grayscale/rules`` and ``/internal/v1/grayscale``."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from data_plane.cluster.grayscale import ClientFacts, GrayscaleRule, evaluate, rules_from_json
from tests.control_plane.conftest import ADMIN, CLUSTER

CANARY = {"id": "canary", "priority": 10, "tenant": "acme", "percent": 10, "gateway_pool": "canary"}
ZONE = {"id": "ios-zone", "priority": 5, "platforms": ["ios"], "logic_zone": "z-ios"}


def create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/grayscale/rules", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_crud(client: TestClient) -> None:
    created = create(client, CANARY)
    assert created == {
        **CANARY,
        "percent": 10.0,
        "enabled": True,
        "description": "",
        "accounts": [],
        "min_version": None,
        "max_version": None,
        "platforms": [],
        "regions": [],
        "logic_zone": None,
        "created_at": created["created_at"],
        "updated_at": created["updated_at"],
    }
    assert client.get("/v1/grayscale/rules/canary", headers=ADMIN).json() == created
    create(client, ZONE)
    generated = create(client, {"priority": 20, "accounts": ["vip-1", "vip-2"], "logic_zone": "v"})
    assert generated["id"].startswith("r-")
    listed = client.get("/v1/grayscale/rules", headers=ADMIN).json()["data"]
    assert [r["id"] for r in listed] == ["ios-zone", "canary", generated["id"]]

    patched = client.patch(
        "/v1/grayscale/rules/canary",
        json={"percent": 50, "min_version": "2.0", "description": "half"},
        headers=ADMIN,
    ).json()
    assert (patched["percent"], patched["min_version"], patched["description"]) == (
        50.0,
        "2.0",
        "half",
    )
    cleared = client.patch(
        "/v1/grayscale/rules/canary", json={"min_version": None}, headers=ADMIN
    ).json()
    assert cleared["min_version"] is None
    assert client.delete("/v1/grayscale/rules/canary", headers=ADMIN).status_code == 204
    assert client.get("/v1/grayscale/rules/canary", headers=ADMIN).status_code == 404
    assert client.delete("/v1/grayscale/rules/canary", headers=ADMIN).status_code == 404
    assert client.patch("/v1/grayscale/rules/nope", json={}, headers=ADMIN).status_code == 404


def test_duplicate_priority_is_contradictory(client: TestClient) -> None:
    create(client, CANARY)
    clash = client.post(
        "/v1/grayscale/rules", json={**ZONE, "priority": CANARY["priority"]}, headers=ADMIN
    )
    assert clash.status_code == 409
    assert "contradictory" in clash.json()["detail"]
    create(client, ZONE)
    moved = client.patch("/v1/grayscale/rules/ios-zone", json={"priority": 10}, headers=ADMIN)
    assert moved.status_code == 409
    assert "contradictory" in moved.json()["detail"]
    same = client.patch("/v1/grayscale/rules/canary", json={"priority": 10}, headers=ADMIN)
    assert same.status_code == 200
    duplicate_id = client.post(
        "/v1/grayscale/rules", json={**CANARY, "priority": 99}, headers=ADMIN
    )
    assert duplicate_id.status_code == 409


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"priority": 1, "tenant": "acme"}, "action"),
        ({"priority": 1, "gateway_pool": "canary"}, "condition"),
        ({"priority": 1, "percent": 101, "gateway_pool": "c"}, "100"),
        ({"priority": 1, "percent": -5, "gateway_pool": "c"}, "0"),
        (
            {"priority": 1, "min_version": "2.0", "max_version": "1.9.9", "logic_zone": "z"},
            "greater",
        ),
        ({"priority": 1, "min_version": "latest", "logic_zone": "z"}, "dotted"),
        ({"priority": "first", "tenant": "acme", "gateway_pool": "c"}, "integer"),
        ({"tenant": "acme", "gateway_pool": "c"}, "priority"),
        ({"priority": 1, "tenant": "Acme!", "gateway_pool": "c"}, "pattern"),
        ({"priority": 1, "accounts": ["a,b"], "gateway_pool": "c"}, "pattern"),
        ({"priority": 1, "accounts": [f"u{i}" for i in range(101)], "gateway_pool": "c"}, "100"),
        ({"priority": 1, "regions": ["EU"], "gateway_pool": "c"}, "pattern"),
        ({"priority": 1, "tenant": "acme", "gateway_pool": ""}, "pattern"),
        ({"priority": 1, "tenant": "acme", "gateway_pool": "c", "weight": 3}, "extra"),
    ],
)
def test_invalid_rules_are_422(client: TestClient, body: dict[str, Any], reason: str) -> None:
    response = client.post("/v1/grayscale/rules", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert reason in response.text
    assert client.get("/v1/grayscale/rules", headers=ADMIN).json() == {"data": []}


@pytest.mark.parametrize(
    "body",
    [
        {"gateway_pool": None},  # leaves the rule without an action
        {"tenant": None, "percent": None},  # leaves it without a condition
        {"max_version": "0.1"},
        {"priority": None},
        {"enabled": None},
        {"accounts": None},
        {"percent": 200},
    ],
)
def test_invalid_rule_updates_are_422(client: TestClient, body: dict[str, Any]) -> None:
    create(client, CANARY)
    create(client, {**ZONE, "id": "z", "min_version": "1.0"})
    target = "z" if "max_version" in body else "canary"
    response = client.patch(f"/v1/grayscale/rules/{target}", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert (
        client.get("/v1/grayscale/rules/canary", headers=ADMIN).json()["gateway_pool"] == "canary"
    )


def test_internal_rules_are_what_gateways_parse(client: TestClient) -> None:
    empty = client.get("/internal/v1/grayscale", headers=CLUSTER)
    assert empty.json() == {"rules": []}
    create(client, CANARY)
    create(client, {**ZONE, "min_version": "1.2", "enabled": False})
    response = client.get("/internal/v1/grayscale", headers=CLUSTER)
    assert response.status_code == 200
    document = response.json()
    assert document["rules"][0] == {
        "id": "ios-zone",
        "priority": 5,
        "enabled": False,
        "tenant": None,
        "accounts": [],
        "percent": None,
        "min_version": "1.2",
        "max_version": None,
        "platforms": ["ios"],
        "regions": [],
        "gateway_pool": None,
        "logic_zone": "z-ios",
    }
    rules = rules_from_json(document)
    assert rules == [
        GrayscaleRule(
            id="ios-zone",
            priority=5,
            enabled=False,
            min_version="1.2",
            platforms=("ios",),
            logic_zone="z-ios",
        ),
        GrayscaleRule(id="canary", priority=10, tenant="acme", percent=10.0, gateway_pool="canary"),
    ]
    assert evaluate(rules, ClientFacts("globex", "x")).gateway_pool is None

    etag = response.headers["ETag"]
    assert (
        client.get("/internal/v1/grayscale", headers={**CLUSTER, "If-None-Match": etag}).status_code
        == 304
    )
    client.patch("/v1/grayscale/rules/ios-zone", json={"enabled": True}, headers=ADMIN)
    changed = client.get("/internal/v1/grayscale", headers={**CLUSTER, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["rules"][0]["enabled"] is True
    assert client.get("/internal/v1/grayscale", headers=ADMIN).status_code == 401
