"""A tenant's moderation hook and recall window over REST (SQLite and MySQL).

Who may configure the hook (admin, the tenant's API key, never another tenant's; 401
without credentials), what is refused (422: a URL that is not http(s), a deadline
outside 10–5000 ms, unknown fields), that the secret is shown once (created, rotated)
and reaches logic nodes through ``/internal/v1/tenants`` with the recall window, and
that deleting a tenant deletes its hook.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.control_plane.conftest import ADMIN, CLUSTER
from tests.control_plane.test_webhooks_api import tenant_with_key

PATH = "/v1/tenants/acme/moderation"


def internal(client: TestClient, tenant: str) -> dict[str, Any]:
    tenants = client.get("/internal/v1/tenants", headers=CLUSTER).json()["tenants"]
    (found,) = [t for t in tenants if t["id"] == tenant]
    return dict(found)


def test_the_hook_is_set_by_the_tenant_backend_and_reaches_logic_nodes(
    client: TestClient,
) -> None:
    acme = tenant_with_key(client, "acme")
    other = tenant_with_key(client, "other")
    assert client.get(PATH, headers=acme).status_code == 404
    assert internal(client, "acme")["moderation"] is None

    body = {"url": "https://mod.example.com/check", "deadline_ms": 300, "fail_open": False}
    created = client.put(PATH, json=body, headers=acme)
    assert created.status_code == 200, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    assert {k: created.json()[k] for k in body} == body

    shown = client.get(PATH, headers=acme).json()
    assert "secret" not in shown and shown["url"] == body["url"]
    assert internal(client, "acme")["moderation"] == {
        "url": body["url"],
        "secret": secret,
        "deadline_ms": 300,
        "fail_open": False,
    }

    # A second PUT keeps the secret (and does not show it); rotate_secret replaces it.
    kept = client.put(PATH, json={"url": "http://127.0.0.1:9/x"}, headers=ADMIN).json()
    assert (kept["secret"], kept["deadline_ms"], kept["fail_open"]) == (None, 500, True)
    assert internal(client, "acme")["moderation"]["secret"] == secret
    rotated = client.put(
        PATH, json={"url": "http://127.0.0.1:9/x", "rotate_secret": True}, headers=acme
    ).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret
    assert internal(client, "acme")["moderation"]["secret"] == rotated["secret"]

    assert client.get(PATH, headers=other).status_code == 403
    assert client.put(PATH, json=body, headers=other).status_code == 403
    assert client.delete(PATH, headers=other).status_code == 403
    assert client.get(PATH).status_code == 401
    assert client.put(PATH, json=body).status_code == 401
    assert client.get("/v1/tenants/nobody/moderation", headers=ADMIN).status_code == 404

    assert client.delete(PATH, headers=acme).status_code == 204
    assert client.delete(PATH, headers=acme).status_code == 404
    assert internal(client, "acme")["moderation"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://mod.example.com/check"},
        {"url": "not a url"},
        {"url": "https://" + "a" * 2100 + ".com"},
        {"url": "https://mod.example.com", "deadline_ms": 0},
        {"url": "https://mod.example.com", "deadline_ms": 9},
        {"url": "https://mod.example.com", "deadline_ms": 5001},
        {"url": "https://mod.example.com", "deadline_ms": "soon"},
        {"url": "https://mod.example.com", "fail_open": "maybe"},
        {"url": "https://mod.example.com", "secret": "whsec_mine"},
        {},
    ],
)
def test_bad_settings_are_422(client: TestClient, body: dict[str, Any]) -> None:
    acme = tenant_with_key(client, "acme")
    answer = client.put(PATH, json=body, headers=acme)
    assert answer.status_code == 422, answer.text
    assert client.get(PATH, headers=acme).status_code == 404


def test_deleting_the_tenant_deletes_its_hook(client: TestClient) -> None:
    tenant_with_key(client, "acme")
    assert client.put(PATH, json={"url": "https://m.example.com"}, headers=ADMIN).status_code == 200
    assert client.delete("/v1/tenants/acme", headers=ADMIN).status_code == 204
    tenant_with_key(client, "acme")
    assert client.get(PATH, headers=ADMIN).status_code == 404


def test_the_recall_window_is_a_tenant_setting(client: TestClient) -> None:
    created = client.post(
        "/v1/tenants", json={"id": "acme", "name": "A", "recall_window_s": 30}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    assert created.json()["recall_window_s"] == 30
    assert internal(client, "acme")["recall_window_s"] == 30
    patched = client.patch("/v1/tenants/acme", json={"recall_window_s": 0}, headers=ADMIN)
    assert patched.json()["recall_window_s"] == 0  # recall turned off
    assert internal(client, "acme")["recall_window_s"] == 0
    cleared = client.patch("/v1/tenants/acme", json={"recall_window_s": None}, headers=ADMIN)
    assert cleared.json()["recall_window_s"] is None  # the logic nodes' default again
    assert internal(client, "acme")["recall_window_s"] is None
    for bad in (-1, 7 * 86400 + 1, 1.5, "long"):
        answer = client.patch("/v1/tenants/acme", json={"recall_window_s": bad}, headers=ADMIN)
        assert answer.status_code == 422, bad
    acme = tenant_with_key(client, "beta")
    assert client.patch(
        "/v1/tenants/beta", json={"recall_window_s": 5}, headers=acme
    ).status_code in (
        401,
        403,
    )
