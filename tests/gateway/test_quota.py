"""The gateway's side of cluster-wide connection quotas, without sockets: admission
against its own and the other gateways' counts, and what a heartbeat reports."""

from __future__ import annotations

import pytest

from data_plane.cluster.registry import MAX_TENANT_COUNTS, parse_tenant_counts
from data_plane.gateway.quota import ConnectionQuota


def fill(quota: ConnectionQuota, tenant: str, limit: int) -> int:
    """Acquire slots of ``tenant`` until ``limit`` refuses; returns how many it took."""
    taken = 0
    while quota.admits(tenant, limit):
        quota.acquire(tenant)
        taken += 1
    return taken


def test_own_connections_alone_fill_the_quota() -> None:
    quota = ConnectionQuota()
    assert fill(quota, "acme", 3) == 3
    assert quota.own("acme") == 3
    quota.release("acme")
    assert quota.admits("acme", 3)
    assert quota.admits("other", 3), "quotas are per tenant"


def test_connections_elsewhere_count_towards_the_quota() -> None:
    quota = ConnectionQuota()
    quota.learn({"acme": 2})
    assert quota.elsewhere("acme") == 2
    assert fill(quota, "acme", 3) == 1
    quota.learn({"acme": 3})  # the others grew meanwhile: over the quota, none admitted
    assert not quota.admits("acme", 3)
    quota.learn({})  # an answer that names no tenant: nothing elsewhere
    assert fill(quota, "acme", 3) == 2


def test_zero_means_unlimited() -> None:
    quota = ConnectionQuota()
    quota.learn({"acme": 10**6})
    assert quota.admits("acme", 0)


def test_release_forgets_tenants_without_connections() -> None:
    quota = ConnectionQuota()
    quota.acquire("acme")
    quota.release("acme")
    assert quota.own("acme") == 0
    assert quota.report(lambda tenant: 5) == {}


def test_report_names_only_quota_limited_tenants_with_connections() -> None:
    quota = ConnectionQuota()
    for tenant, n in (("acme", 2), ("free", 4), ("beta", 1)):
        for _ in range(n):
            quota.acquire(tenant)
    limits = {"acme": 3, "beta": 10, "free": 0}
    assert quota.report(lambda tenant: limits.get(tenant, 0)) == {"acme": 2, "beta": 1}


def test_report_is_capped_keeping_the_largest_counts() -> None:
    quota = ConnectionQuota(max_reported=2)
    for tenant, n in (("a", 1), ("b", 5), ("c", 3)):
        for _ in range(n):
            quota.acquire(tenant)
    assert quota.report(lambda tenant: 100) == {"b": 5, "c": 3}
    assert ConnectionQuota().report(lambda tenant: 1) == {}


def test_default_cap_is_the_protocol_cap() -> None:
    quota = ConnectionQuota()
    for i in range(MAX_TENANT_COUNTS + 5):
        quota.acquire(f"t{i}")
    assert len(quota.report(lambda tenant: 1)) == MAX_TENANT_COUNTS


def test_parse_tenant_counts() -> None:
    assert parse_tenant_counts(None) == {}
    assert parse_tenant_counts({"acme": 3}) == {"acme": 3}
    for bad in ([1], {"acme": -1}, {"acme": True}, {"acme": 1.5}, {"acme": "3"}):
        with pytest.raises(ValueError):
            parse_tenant_counts(bad)
    with pytest.raises(ValueError):
        parse_tenant_counts({f"t{i}": 1 for i in range(MAX_TENANT_COUNTS + 1)})
