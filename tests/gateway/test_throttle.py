"""The gateway's rate limits on an injected clock: per connection, per account, talk,
strikes, logins per IP and per tenant, and the tenant overrides (None: the default)."""

from __future__ import annotations

import pytest

from data_plane.cluster.tenants import TenantInfo, parse_tenants
from data_plane.gateway.channel import Channel
from data_plane.gateway.limits import STRIKE_BURST
from data_plane.gateway.settings import GatewaySettings
from data_plane.gateway.throttle import Throttle, client_ip
from data_plane.wire import Command

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def settings(**overrides: float) -> GatewaySettings:
    values: dict[str, float] = {
        "commands_per_second": 10.0,
        "account_commands_per_second": 15.0,
        "logins_per_ip_per_second": 2.0,
        "tenant_logins_per_second": 4.0,
    }
    values.update(overrides)
    return GatewaySettings(cluster_secret="s", **values)  # type: ignore[arg-type]


def channel(account: str = "alice", number: int = 1) -> Channel:
    # The connection is never touched by the throttle.
    return Channel(f"gw_{account}_{number}", None, "acme", account, "phone")  # type: ignore[arg-type]


def allowed(throttle: Throttle, ch: Channel, n: int, command: str = "chat.group.create") -> int:
    return sum(throttle.refusal(ch, command) is None for _ in range(n))


def test_every_command_is_limited_per_connection_by_default() -> None:
    clock = Clock()
    throttle = Throttle(settings(), clock)
    ch = channel()
    throttle.set_up(ch, TenantInfo("acme", True, ()))
    # 30 group creations in a burst: two seconds' worth go through.
    assert allowed(throttle, ch, 30) == 20
    reason = throttle.refusal(ch, Command.CHAT_GROUP_CREATE)
    assert reason == "over 10 requests per second on this connection"
    clock.now += 0.5
    assert allowed(throttle, ch, 30) == 5


def test_an_idle_channel_carries_no_bucket_until_it_needs_one() -> None:
    clock = Clock()
    throttle = Throttle(settings(), clock)
    ch, other = channel(number=1), channel(number=2)
    info = TenantInfo("acme", True, (), messages_per_second=2.0)
    throttle.set_up(ch, info)
    throttle.set_up(other, info)
    assert ch.limits is other.limits  # one shared answer per tenant's settings
    assert (ch.bucket, ch.talk_bucket, ch.strikes) == (None, None, None)
    clock.now += 60.0  # made now, a bucket is full: as one made at login would be
    assert allowed(throttle, ch, 30) == 20
    assert allowed(throttle, ch, 5, Command.CHAT_USER_TALK) == 0  # the connection's ran out
    assert ch.bucket is not None and ch.talk_bucket is None and ch.strikes is None


def test_an_account_shares_its_rate_across_its_connections() -> None:
    clock = Clock()
    throttle = Throttle(settings(), clock)
    info = TenantInfo("acme", True, ())
    phone, laptop, bob = channel(number=1), channel(number=2), channel("bob")
    for ch in (phone, laptop, bob):
        throttle.set_up(ch, info)
    assert allowed(throttle, phone, 20) + allowed(throttle, laptop, 15) == 30
    assert throttle.refusal(laptop, "x") == "over 15 requests per second for this account"
    assert allowed(throttle, bob, 20) == 20  # another account is not affected


def test_tenant_overrides_and_explicit_zero() -> None:
    clock = Clock()
    throttle = Throttle(settings(), clock)
    info = TenantInfo("acme", True, (), commands_per_second=0.0, account_commands_per_second=3.0)
    ch = channel()
    throttle.set_up(ch, info)
    assert ch.bucket is None  # explicitly unlimited per connection
    assert allowed(throttle, ch, 10) == 6  # the account override still holds (2 s' worth)


def test_talk_has_its_own_rate_on_top() -> None:
    clock = Clock()
    throttle = Throttle(settings(), clock)
    ch = channel()
    throttle.set_up(ch, TenantInfo("acme", True, (), messages_per_second=2.0))
    assert allowed(throttle, ch, 5, Command.CHAT_USER_TALK) == 2
    assert allowed(throttle, ch, 5, Command.CHAT_GROUP_MEMBERS) == 5


def test_a_connection_that_keeps_flooding_runs_out_of_strikes() -> None:
    clock = Clock()
    throttle = Throttle(settings(), clock)
    ch = channel()
    throttle.set_up(ch, TenantInfo("acme", True, ()))
    strikes = [throttle.strike(ch) for _ in range(int(STRIKE_BURST) + 1)]
    assert strikes == [False] * int(STRIKE_BURST) + [True]
    clock.now += 10.0  # strikes refill: an occasional 429 never closes
    assert not throttle.strike(ch)


def test_logins_per_ip_and_per_tenant() -> None:
    clock = Clock()
    throttle = Throttle(settings(), clock)
    # Bursts of five seconds' worth, then the rate.
    assert sum(throttle.admits_ip("10.0.0.1:5000") for _ in range(20)) == 10
    assert throttle.admits_ip("10.0.0.2:5000")
    assert sum(throttle.admits_ip("[::1]:1") for _ in range(20)) == 10
    info = TenantInfo("acme", True, ())
    assert sum(throttle.admits_tenant(info) for _ in range(30)) == 20
    unlimited = TenantInfo("globex", True, (), logins_per_second=0.0)
    assert all(throttle.admits_tenant(unlimited) for _ in range(1000))
    clock.now += 1.0
    assert sum(throttle.admits_ip("10.0.0.1:6000") for _ in range(5)) == 2


def test_client_ip() -> None:
    assert client_ip("10.1.2.3:4567") == "10.1.2.3"
    assert client_ip("::1:4567") == "::1"
    assert client_ip("") == ""


def test_parse_tenants_reads_overrides_and_null_as_default() -> None:
    keys = [{"kid": "k1", "secret": "s" * 20}]
    quotas = {
        "max_connections": 0,
        "messages_per_second": 0,
        "commands_per_second": 0,
        "account_commands_per_second": None,
        "logins_per_second": 7.5,
    }
    payload = {"tenants": [{"id": "a", "status": "active", "keys": keys, "quotas": quotas}]}
    info = parse_tenants(payload)["a"]
    assert (info.commands_per_second, info.account_commands_per_second) == (0.0, None)
    assert info.logins_per_second == 7.5
    old = {"tenants": [{"id": "b", "status": "active", "keys": keys}]}
    assert parse_tenants(old)["b"].commands_per_second is None
