"""Webhook endpoints, push providers and push tokens over REST (SQLite and MySQL).

Who may call them (admin, the tenant's API key, never another tenant's), what they
store and show (the signing secret once), what logic nodes receive from
``/internal/v1/outbound`` (with ETag), and the delivery log's routes on the message
tables of the same database (the embedded setup).
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlmodel import Session

from control_plane.models import Tenant
from control_plane.outbound_store import MessageDatabases
from data_plane.storage.messages.outbox import FAILED, event_body
from data_plane.storage.messages.schema import event_outbox, push_tokens, webhook_deliveries
from tests.control_plane.conftest import ADMIN, CLUSTER


def tenant_with_key(client: TestClient, tenant_id: str) -> dict[str, str]:
    created = client.post("/v1/tenants", json={"id": tenant_id, "name": tenant_id}, headers=ADMIN)
    assert created.status_code == 201, created.text
    key = client.post(f"/v1/tenants/{tenant_id}/api-key", headers=ADMIN).json()["api_key"]
    return {"X-Api-Key": key}


def tenant_row(client: TestClient, tenant_id: str) -> Tenant:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    return tenant


def create_endpoint(client: TestClient, tenant: str, headers: dict[str, str], **body: Any) -> Any:
    answer = client.post(
        f"/v1/tenants/{tenant}/webhooks",
        json={"url": "https://example.com/hook", **body},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_endpoints_are_managed_by_the_tenant_backend_only(client: TestClient) -> None:
    acme = tenant_with_key(client, "acme")
    other = tenant_with_key(client, "other")
    created = create_endpoint(client, "acme", acme, events=["login", "message.created"])
    assert created["id"].startswith("wh_")
    assert created["events"] == ["login", "message.created"]
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24

    listed = client.get("/v1/tenants/acme/webhooks", headers=acme).json()["data"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]  # shown once, at creation
    assert client.get("/v1/tenants/acme/webhooks", headers=other).status_code == 403
    assert client.get("/v1/tenants/acme/webhooks").status_code == 401
    assert client.get("/v1/tenants/acme/webhooks", headers=ADMIN).status_code == 200

    patched = client.patch(
        f"/v1/tenants/acme/webhooks/{created['id']}",
        json={"enabled": False, "events": []},
        headers=acme,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["enabled"], patched.json()["events"]) == (False, [])
    bad = client.post(
        "/v1/tenants/acme/webhooks", json={"url": "ftp://x", "events": ["nope"]}, headers=acme
    )
    assert bad.status_code == 422

    internal = client.get("/internal/v1/outbound", headers=CLUSTER)
    assert internal.status_code == 200
    (endpoint,) = internal.json()["endpoints"]
    assert (endpoint["tenant"], endpoint["secret"], endpoint["enabled"]) == ("acme", secret, False)
    etag = internal.headers["ETag"]
    unchanged = client.get("/internal/v1/outbound", headers={**CLUSTER, "If-None-Match": etag})
    assert unchanged.status_code == 304

    assert (
        client.delete(f"/v1/tenants/acme/webhooks/{created['id']}", headers=other).status_code
        == 403
    )
    assert (
        client.delete(f"/v1/tenants/acme/webhooks/{created['id']}", headers=acme).status_code == 204
    )
    assert (
        client.delete(f"/v1/tenants/acme/webhooks/{created['id']}", headers=acme).status_code == 404
    )
    assert client.get("/internal/v1/outbound", headers=CLUSTER).json()["endpoints"] == []


def test_test_events_deliveries_and_redelivery_use_the_message_tables(client: TestClient) -> None:
    acme = tenant_with_key(client, "acme")
    endpoint = create_endpoint(client, "acme", acme)["id"]
    test = client.post(f"/v1/tenants/acme/webhooks/{endpoint}/test", headers=acme)
    assert test.status_code == 202
    databases: MessageDatabases = client.app.state.message_databases  # type: ignore[attr-defined]
    engine = databases.engine_for(tenant_row(client, "acme"))
    with engine.connect() as conn:
        row = conn.execute(select(event_outbox)).one()
    assert (row.tenant, row.event_type, row.endpoint_id) == ("acme", "webhook.test", endpoint)
    assert test.json()["event_id"] == f"evt_{row.id}"

    with engine.begin() as conn:  # a delivery that failed for good, as a dispatcher leaves it
        conn.execute(
            insert(webhook_deliveries).values(
                tenant="acme",
                endpoint_id=endpoint,
                event_id=7,
                event_type="login",
                payload=event_body("login", 1, {"account": "a"}),
                status=FAILED,
                attempts=8,
                next_attempt_at=1,
                created_at=1,
                finished_at=2,
                last_status_code=500,
                last_error="HTTP 500: boom",
                latency_ms=12,
            )
        )
    (failed,) = client.get(f"/v1/tenants/acme/webhooks/{endpoint}/deliveries", headers=acme).json()[
        "data"
    ]
    assert (failed["status"], failed["attempts"], failed["event_id"]) == ("failed", 8, "evt_7")
    assert failed["last_error"] == "HTTP 500: boom"
    again = client.post(
        f"/v1/tenants/acme/webhooks/{endpoint}/deliveries/{failed['id']}/redeliver", headers=acme
    )
    assert again.status_code == 202, again.text
    assert (again.json()["status"], again.json()["event_id"]) == ("pending", "evt_7")
    listed = client.get(f"/v1/tenants/acme/webhooks/{endpoint}/deliveries", headers=acme).json()
    assert [d["status"] for d in listed["data"]] == ["pending", "failed"]
    missing = client.post(
        f"/v1/tenants/acme/webhooks/{endpoint}/deliveries/999999/redeliver", headers=acme
    )
    assert missing.status_code == 404


def test_push_provider_and_tokens(client: TestClient) -> None:
    acme = tenant_with_key(client, "acme")
    assert client.get("/v1/tenants/acme/push-provider", headers=acme).status_code == 404
    no_project = client.put(
        "/v1/tenants/acme/push-provider",
        json={"kind": "fcm", "url": "https://fcm.googleapis.com"},
        headers=acme,
    )
    assert no_project.status_code == 422
    provider = client.put(
        "/v1/tenants/acme/push-provider",
        json={
            "kind": "fcm",
            "url": "https://fcm.googleapis.com",
            "project_id": "p1",
            "auth_token": "ya29.secret",
            "collapse_ms": 500,
        },
        headers=acme,
    )
    assert provider.status_code == 200, provider.text
    assert provider.json()["has_auth_token"] is True and "auth_token" not in provider.json()
    (internal,) = client.get("/internal/v1/outbound", headers=CLUSTER).json()["providers"]
    assert (internal["tenant"], internal["auth_token"], internal["collapse_ms"]) == (
        "acme",
        "ya29.secret",
        500,
    )

    url = "/v1/tenants/acme/accounts/bob/push-tokens"
    token = {"device": "phone", "token": "tok-1", "platform": "android"}
    assert client.post(url, json=token, headers=acme).status_code == 204
    assert client.post(url, json={**token, "token": "tok-2"}, headers=acme).status_code == 204
    databases: MessageDatabases = client.app.state.message_databases  # type: ignore[attr-defined]
    with databases.engine_for(tenant_row(client, "acme")).connect() as conn:
        rows = conn.execute(select(push_tokens.c.device, push_tokens.c.token)).all()
    assert [tuple(r) for r in rows] == [("phone", "tok-2")]  # replaced, not added
    assert client.post(url, json={**token, "token": "has space"}, headers=acme).status_code == 422
    assert client.delete(url + "?device=phone", headers=acme).status_code == 204
    assert client.delete(url + "?device=phone", headers=acme).status_code == 404
    assert client.delete("/v1/tenants/acme/push-provider", headers=acme).status_code == 204
