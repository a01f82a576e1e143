"""Account bans over REST (``/v1/tenants/{id}/accounts/{account}/ban``, ``/bans``) and
their distribution to the data plane (``/internal/v1/tenants``), on SQLite and MySQL.

Expiry is driven by the app's fake clock: no test sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from tests.control_plane.conftest import ADMIN, CLUSTER, FakeClock, settings_for

MAX_BANS = 3


@pytest.fixture
def client(migrated_url: str, clock: FakeClock) -> Iterator[TestClient]:
    """An app whose tenants may hold at most ``MAX_BANS`` live bans."""
    settings = settings_for(migrated_url, clock=clock, max_bans_per_tenant=MAX_BANS)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def create(client: TestClient, tenant_id: str) -> dict[str, str]:
    """A tenant; its API key as request headers."""
    answer = client.post("/v1/tenants", json={"id": tenant_id, "name": tenant_id}, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return {"X-Api-Key": answer.json()["api_key"]}


def internal_bans(client: TestClient, tenant_id: str) -> list[dict[str, Any]]:
    tenants = client.get("/internal/v1/tenants", headers=CLUSTER).json()["tenants"]
    bans: list[dict[str, Any]] = next(t for t in tenants if t["id"] == tenant_id)["bans"]
    return bans


def ban(
    client: TestClient, account: str, headers: dict[str, str], tenant: str = "acme", **body: Any
) -> Any:
    return client.post(f"/v1/tenants/{tenant}/accounts/{account}/ban", json=body, headers=headers)


def test_a_ban_reaches_the_data_plane_until_it_expires(
    client: TestClient, clock: FakeClock
) -> None:
    key = create(client, "acme")
    answer = ban(client, "mallory", key, duration_s=60, reason="spam")
    assert answer.status_code == 200, answer.text
    stored = answer.json()
    assert stored["account"] == "mallory"
    assert stored["reason"] == "spam"
    assert datetime.fromisoformat(stored["expires_at"]).timestamp() == pytest.approx(clock.now + 60)
    assert internal_bans(client, "acme") == [
        {"account": "mallory", "expires_at": pytest.approx(clock.now + 60), "reason": "spam"}
    ]
    listed = client.get("/v1/tenants/acme/bans", headers=key).json()
    assert (listed["count"], [b["account"] for b in listed["data"]]) == (1, ["mallory"])

    clock.advance(59)
    assert [b["account"] for b in internal_bans(client, "acme")] == ["mallory"]
    clock.advance(1)  # expired: gone from every answer without a write
    assert internal_bans(client, "acme") == []
    assert client.get("/v1/tenants/acme/bans", headers=ADMIN).json() == {"data": [], "count": 0}


def test_expires_at_or_until_lifted(client: TestClient, clock: FakeClock) -> None:
    create(client, "acme")
    until = datetime.fromtimestamp(clock.now + 3600, UTC).isoformat()
    assert ban(client, "eve", ADMIN, expires_at=until).status_code == 200
    forever = client.post("/v1/tenants/acme/accounts/trudy/ban", headers=ADMIN)  # no body
    assert forever.status_code == 200, forever.text
    assert forever.json()["expires_at"] is None
    clock.advance(10 * 365 * 86400)
    assert [b["account"] for b in internal_bans(client, "acme")] == ["trudy"]

    lifted = client.delete("/v1/tenants/acme/accounts/trudy/ban", headers=ADMIN)
    assert lifted.status_code == 204
    assert internal_bans(client, "acme") == []
    again = client.delete("/v1/tenants/acme/accounts/trudy/ban", headers=ADMIN)
    assert again.status_code == 204  # lifting is idempotent


def test_banning_again_replaces_the_ban(client: TestClient, clock: FakeClock) -> None:
    create(client, "acme")
    ban(client, "mallory", ADMIN, duration_s=10, reason="first")
    ban(client, "mallory", ADMIN, duration_s=100, reason="second")
    [only] = internal_bans(client, "acme")
    assert (only["reason"], only["expires_at"]) == ("second", pytest.approx(clock.now + 100))


def test_the_cap_counts_live_bans_only(client: TestClient, clock: FakeClock) -> None:
    create(client, "acme")
    for account in ("a1", "a2", "a3"):
        assert ban(client, account, ADMIN, duration_s=5).status_code == 200
    over = ban(client, "a4", ADMIN)
    assert over.status_code == 409
    assert "3 live bans" in over.json()["detail"]
    assert ban(client, "a1", ADMIN, duration_s=50).status_code == 200  # a re-ban is no new one
    clock.advance(5)  # a2 and a3 expired: room for two
    assert ban(client, "a4", ADMIN).status_code == 200
    assert ban(client, "a5", ADMIN).status_code == 200
    assert ban(client, "a6", ADMIN).status_code == 409
    assert [b["account"] for b in internal_bans(client, "acme")] == ["a1", "a4", "a5"]


def test_credentials(client: TestClient) -> None:
    acme = create(client, "acme")
    globex = create(client, "globex")
    assert ban(client, "eve", {}).status_code == 401
    assert ban(client, "eve", globex).status_code == 403  # another tenant's key
    assert ban(client, "eve", {"X-Api-Key": "cak_wrong"}).status_code == 403
    assert ban(client, "eve", acme, tenant="nobody").status_code == 403
    assert ban(client, "eve", ADMIN, tenant="nobody").status_code == 404
    assert client.delete("/v1/tenants/acme/accounts/eve/ban", headers=globex).status_code == 403
    assert client.get("/v1/tenants/acme/bans", headers=globex).status_code == 403
    assert internal_bans(client, "acme") == []


def test_bad_bans_are_refused(client: TestClient, clock: FakeClock) -> None:
    create(client, "acme")
    past = datetime.fromtimestamp(clock.now - 1, UTC).isoformat()
    assert ban(client, "eve", ADMIN, expires_at=past).status_code == 422
    future = datetime.fromtimestamp(clock.now + 60, UTC).isoformat()
    both = ban(client, "eve", ADMIN, expires_at=future, duration_s=60)
    assert both.status_code == 422
    assert ban(client, "eve", ADMIN, duration_s=0).status_code == 422
    assert ban(client, "eve", ADMIN, reason="x" * 257).status_code == 422
    assert ban(client, "eve", ADMIN, colour="red").status_code == 422
    assert ban(client, "a%7Bb", ADMIN).status_code == 422  # braces are not in accounts
    assert internal_bans(client, "acme") == []


def test_deleting_a_tenant_deletes_its_bans(client: TestClient) -> None:
    create(client, "acme")
    ban(client, "eve", ADMIN)
    assert client.delete("/v1/tenants/acme", headers=ADMIN).status_code == 204
    create(client, "acme")
    assert internal_bans(client, "acme") == []
