"""The revocation rule (``data_plane.cluster.revocation``) and the bans the tenant
directory parses: pure code, fed the internal endpoint's JSON."""

from __future__ import annotations

from typing import Any

import pytest

from data_plane.cluster.revocation import refusal, revocation
from data_plane.cluster.tenants import parse_tenants

NOW = 1_800_000_000.0


def tenant(**fields: Any) -> dict[str, Any]:
    """One tenant as ``GET /internal/v1/tenants`` lists it."""
    return {
        "id": "acme",
        "status": "active",
        "keys": [{"kid": "k2", "secret": "s" * 16}, {"kid": "k1", "secret": "t" * 16}],
        "quotas": {"max_connections": 0, "messages_per_second": 0.0},
        "isolation": "shared",
        "database_url": None,
        **fields,
    }


def parsed(**fields: Any) -> Any:
    return parse_tenants({"tenants": [tenant(**fields)]})["acme"]


def test_bans_are_parsed_and_expire_on_the_wall_clock() -> None:
    info = parsed(
        bans=[
            {"account": "mallory", "expires_at": NOW + 60, "reason": "spam"},
            {"account": "eve", "expires_at": None, "reason": ""},
        ]
    )
    assert set(info.bans) == {"mallory", "eve"}
    assert refusal(info, "mallory", NOW) == "account banned until 2027-01-15T08:01:00+00:00: spam"
    assert refusal(info, "mallory", NOW + 60) is None  # expired before the next refresh
    assert refusal(info, "eve", NOW + 10**9) == "account banned"
    assert refusal(info, "bob", NOW) is None
    hash(info)  # a tenant stays hashable with its bans


def test_an_answer_without_bans_parses_as_none() -> None:
    info = parsed()
    assert dict(info.bans) == {}
    assert info == parsed(bans=[])


@pytest.mark.parametrize(
    ("fields", "account", "kid", "expected"),
    [
        ({}, "bob", "k1", None),
        ({}, "bob", "", None),  # a connection whose key is not known keeps its key
        ({"status": "disabled"}, "bob", "k1", "tenant disabled"),
        ({"keys": [{"kid": "k2", "secret": "s" * 16}]}, "bob", "k1", "signing key revoked (k1)"),
        ({"keys": [{"kid": "k2", "secret": "s" * 16}]}, "bob", "k2", None),
        ({"bans": [{"account": "bob", "expires_at": None}]}, "bob", "k1", "account banned"),
        ({"bans": [{"account": "bob", "expires_at": None}]}, "al", "k1", None),
    ],
)
def test_what_revokes_a_live_connection(
    fields: dict[str, Any], account: str, kid: str, expected: str | None
) -> None:
    assert revocation(parsed(**fields), account, kid, NOW) == expected


def test_a_deleted_tenant_revokes_everything() -> None:
    assert revocation(None, "bob", "k1", NOW) == "tenant deleted"
