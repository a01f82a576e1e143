"""``/v1/regions``: CRUD, one default at a time, a country or continent in one region."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.control_plane.conftest import ADMIN

EU = {
    "id": "eu",
    "name": "Europe",
    "countries": ["DE", "FR"],
    "continents": ["EU"],
    "zones": [{"zone": "eu-1a", "weight": 3}, {"zone": "eu-1b", "weight": 1}],
}
US = {"id": "us", "name": "Americas", "countries": ["US"], "continents": ["NA", "SA"]}


def create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/regions", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def defaults(client: TestClient) -> list[str]:
    data = client.get("/v1/regions", headers=ADMIN).json()["data"]
    return [r["id"] for r in data if r["is_default"]]


def test_crud(client: TestClient) -> None:
    created = create(client, EU)
    assert {k: created[k] for k in EU} == {
        **EU,
        "countries": ["DE", "FR"],
        "zones": [{"zone": "eu-1a", "weight": 3}, {"zone": "eu-1b", "weight": 1}],
    }
    assert created["is_default"] is True  # the first region is the default
    assert client.get("/v1/regions/eu", headers=ADMIN).json() == created

    updated = client.patch(
        "/v1/regions/eu",
        json={"name": "EU", "countries": ["IT"], "zones": [{"zone": "eu-2", "weight": 2}]},
        headers=ADMIN,
    ).json()
    assert updated["name"] == "EU"
    assert updated["countries"] == ["IT"]
    assert updated["continents"] == ["EU"]  # left out: kept
    assert updated["zones"] == [{"zone": "eu-2", "weight": 2}]
    assert client.patch("/v1/regions/eu", json={}, headers=ADMIN).json() == updated

    create(client, US)
    listed = client.get("/v1/regions", headers=ADMIN).json()
    assert listed["count"] == 2
    assert [r["id"] for r in listed["data"]] == ["eu", "us"]
    assert client.delete("/v1/regions/us", headers=ADMIN).status_code == 204
    assert client.get("/v1/regions/us", headers=ADMIN).status_code == 404
    assert client.delete("/v1/regions/us", headers=ADMIN).status_code == 404
    # US is free again.
    create(client, {**US, "id": "americas"})


def test_exactly_one_default(client: TestClient) -> None:
    create(client, EU)
    create(client, {**US, "is_default": False})
    assert defaults(client) == ["eu"]
    create(client, {"id": "asia", "name": "Asia", "continents": ["AS"], "is_default": True})
    assert defaults(client) == ["asia"]
    patched = client.patch("/v1/regions/us", json={"is_default": True}, headers=ADMIN)
    assert patched.json()["is_default"] is True
    assert defaults(client) == ["us"]

    refused = client.patch("/v1/regions/us", json={"is_default": False}, headers=ADMIN)
    assert refused.status_code == 409
    assert "default" in refused.json()["detail"]
    assert client.delete("/v1/regions/us", headers=ADMIN).status_code == 409
    assert client.delete("/v1/regions/eu", headers=ADMIN).status_code == 204
    assert client.delete("/v1/regions/asia", headers=ADMIN).status_code == 204
    assert defaults(client) == ["us"]
    assert client.delete("/v1/regions/us", headers=ADMIN).status_code == 204  # the last one


def test_country_and_continent_conflicts_are_409(client: TestClient) -> None:
    create(client, EU)
    clash = client.post(
        "/v1/regions", json={"id": "de", "name": "DE", "countries": ["DE"]}, headers=ADMIN
    )
    assert clash.status_code == 409
    assert clash.json() == {"detail": "country DE belongs to region 'eu'"}
    continent = client.post(
        "/v1/regions", json={"id": "x", "name": "X", "continents": ["EU"]}, headers=ADMIN
    )
    assert continent.status_code == 409
    assert "continent EU" in continent.json()["detail"]
    create(client, US)
    moved = client.patch("/v1/regions/us", json={"countries": ["US", "FR"]}, headers=ADMIN)
    assert moved.status_code == 409
    assert client.get("/v1/regions/us", headers=ADMIN).json()["countries"] == ["US"]
    # A region may re-list its own countries.
    same = client.patch("/v1/regions/eu", json={"countries": ["FR", "DE"]}, headers=ADMIN)
    assert same.status_code == 200
    assert same.json()["countries"] == ["DE", "FR"]
    duplicate = client.post("/v1/regions", json={**US, "countries": []}, headers=ADMIN)
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "region exists"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "x"},
        {"id": "X", "name": "x"},
        {"id": "-x", "name": "x"},
        {"id": "x", "name": ""},
        {"id": "x", "name": "x", "countries": ["de"]},
        {"id": "x", "name": "x", "countries": ["DEU"]},
        {"id": "x", "name": "x", "countries": ["DE", "DE"]},
        {"id": "x", "name": "x", "countries": "DE"},
        {"id": "x", "name": "x", "continents": ["EUROPE"]},
        {"id": "x", "name": "x", "continents": ["EU", "EU"]},
        {"id": "x", "name": "x", "zones": [{"zone": "a", "weight": 0}]},
        {"id": "x", "name": "x", "zones": [{"zone": "", "weight": 1}]},
        {"id": "x", "name": "x", "zones": [{"zone": "a"}, {"zone": "a"}]},
        {"id": "x", "name": "x", "zones": [{"zone": "a", "weight": 1, "extra": 1}]},
        {"id": "x", "name": "x", "is_default": "maybe"},
        {"id": "x", "name": "x", "color": "red"},
    ],
)
def test_malformed_region_is_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/v1/regions", json=body, headers=ADMIN).status_code == 422
    assert client.get("/v1/regions", headers=ADMIN).json()["count"] == 0


@pytest.mark.parametrize(
    "body",
    [{"name": None}, {"countries": None}, {"is_default": None}, {"countries": ["xx"]}],
)
def test_malformed_region_update_is_422(client: TestClient, body: dict[str, Any]) -> None:
    create(client, EU)
    assert client.patch("/v1/regions/eu", json=body, headers=ADMIN).status_code == 422


def test_regions_need_the_admin_token(client: TestClient) -> None:
    assert client.get("/v1/regions").status_code == 401
    assert client.post("/v1/regions", json=EU).status_code == 401
    assert client.get("/v1/regions/EU", headers=ADMIN).status_code == 422
