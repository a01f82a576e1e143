"""``/internal/v1/tenants``: tenant keys for gateways, behind the cluster secret."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.control_plane.conftest import ADMIN, CLUSTER

SECRET = "acme-existing-secret-0123456789"
PATH = "/internal/v1/tenants"


def test_missing_cluster_secret_is_401(client: TestClient) -> None:
    for headers in ({}, {"X-Cirno-Cluster-Secret": ""}):
        response = client.get(PATH, headers=headers)
        assert response.status_code == 401
        assert "secret" not in response.text.replace("X-Cirno-Cluster-Secret", "")


@pytest.mark.parametrize(
    "headers",
    [
        [(b"X-Cirno-Cluster-Secret", b"wrong")],
        [(b"X-Cirno-Cluster-Secret", "cl\xfcster".encode("latin-1"))],  # non-ASCII: still 403
        [(b"Authorization", b"Bearer admin-token-for-tests"), (b"X-Cirno-Cluster-Secret", b"x")],
    ],
)
def test_wrong_cluster_secret_is_403(
    client: TestClient, headers: list[tuple[bytes, bytes]]
) -> None:
    response = client.get(PATH, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"detail": "invalid cluster secret"}


def test_admin_token_does_not_open_internal_endpoints(client: TestClient) -> None:
    assert client.get(PATH, headers=ADMIN).status_code == 401


def test_lists_tenants_with_keys_and_status(client: TestClient) -> None:
    client.post("/v1/tenants", json={"id": "acme", "name": "A", "secret": SECRET}, headers=ADMIN)
    generated = client.post("/v1/tenants", json={"id": "beta", "name": "B"}, headers=ADMIN)
    client.patch("/v1/tenants/beta", json={"status": "disabled"}, headers=ADMIN)

    response = client.get(PATH, headers=CLUSTER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    shared: dict[str, object] = {
        "quotas": {
            "max_connections": 0,
            "messages_per_second": 0.0,
            "commands_per_second": None,
            "account_commands_per_second": None,
            "logins_per_second": None,
        },
        "isolation": "shared",
        "database_url": None,
        "bans": [],
        "moderation": None,
        "recall_window_s": None,
    }
    assert response.json() == {
        "tenants": [
            {
                "id": "acme",
                "status": "active",
                "keys": [{"kid": "k1", "secret": SECRET}],
                **shared,
            },
            {
                "id": "beta",
                "status": "disabled",
                "keys": [{"kid": "k1", "secret": generated.json()["secret"]}],
                **shared,
            },
        ]
    }


def test_etag_and_304(client: TestClient) -> None:
    empty = client.get(PATH, headers=CLUSTER)
    assert empty.json() == {"tenants": []}
    etag = empty.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')

    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = client.get(PATH, headers={**CLUSTER, "If-None-Match": if_none_match})
        assert cached.status_code == 304, if_none_match
        assert cached.content == b""
        assert cached.headers["ETag"] == etag
    assert client.get(PATH, headers={**CLUSTER, "If-None-Match": '"other"'}).status_code == 200

    client.post("/v1/tenants", json={"id": "acme", "name": "A"}, headers=ADMIN)
    changed = client.get(PATH, headers={**CLUSTER, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert [t["id"] for t in changed.json()["tenants"]] == ["acme"]

    client.patch("/v1/tenants/acme", json={"status": "disabled"}, headers=ADMIN)
    disabled = client.get(PATH, headers={**CLUSTER, "If-None-Match": changed.headers["ETag"]})
    assert disabled.status_code == 200
    assert disabled.json()["tenants"][0]["status"] == "disabled"


def test_etag_ignores_renames(client: TestClient) -> None:
    client.post("/v1/tenants", json={"id": "acme", "name": "A"}, headers=ADMIN)
    etag = client.get(PATH, headers=CLUSTER).headers["ETag"]
    client.patch("/v1/tenants/acme", json={"name": "Renamed"}, headers=ADMIN)
    assert client.get(PATH, headers={**CLUSTER, "If-None-Match": etag}).status_code == 304
