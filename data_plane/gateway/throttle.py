"""The gateway's rate limits: logins per IP and per tenant, commands per connection and
per account, and the close of a connection that keeps flooding.

Theory of operation
-------------------
Every limit is on by default (:class:`~data_plane.gateway.settings.GatewaySettings`)
and a tenant may override the ones that concern its users (``commands_per_second``,
``account_commands_per_second``, ``logins_per_second``; an explicit 0 is unlimited).

- **Logins per IP** are checked before the token is verified, so a peer with bogus
  tokens costs one bucket lookup per attempt; **logins per tenant** after it (the
  tenant is known only then).
- **Commands**: each request must find a token in its connection's bucket, its
  account's bucket (shared by the account's connections on this gateway) and, for the
  talk commands, the tenant's ``messages_per_second`` bucket. A request without one is
  answered RateLimited (429) here and never reaches a logic node.
- **Strikes**: every 429 takes a token from a second bucket (:data:`STRIKE_BURST`,
  refilled at :data:`STRIKE_RATE`); a connection that empties it is closed with 4008,
  so a client that ignores 429s stops costing even the answers.

Per-account rates are per gateway: an account connected to N gateways can send up to
N times its rate in total (the gateways share no state on the hot path).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from data_plane.cluster.tenants import TenantInfo
from data_plane.gateway.channel import Channel
from data_plane.gateway.limits import (
    STRIKE_BURST,
    STRIKE_RATE,
    CommandLimits,
    KeyedBuckets,
    TokenBucket,
    resolve,
    resolve_limits,
)
from data_plane.gateway.settings import GatewaySettings
from data_plane.wire import Command

TALK_COMMANDS = frozenset({Command.CHAT_USER_TALK, Command.CHAT_GROUP_TALK})
LOGIN_BURST_SECONDS = 5.0
"""Login buckets hold this many seconds' worth: a reconnect wave after a restart."""
COMMAND_BURST_SECONDS = 2.0
"""Command buckets hold this many seconds' worth: a client catching up after a login
(sync, a few pages) is not refused."""


def client_ip(remote_address: str) -> str:
    """The host part of ``host:port`` (IPv6 included: the last colon separates)."""
    return remote_address.rpartition(":")[0] or remote_address


class Throttle:
    """The rate limits of one gateway."""

    def __init__(self, settings: GatewaySettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self._ip_logins: KeyedBuckets[str] = KeyedBuckets(clock)
        self._tenant_logins: KeyedBuckets[str] = KeyedBuckets(clock)
        self._accounts: KeyedBuckets[tuple[str, str]] = KeyedBuckets(clock)

    # -- logins ------------------------------------------------------------------------

    def admits_ip(self, remote_address: str) -> bool:
        """Whether one more login attempt from this peer's IP is within its rate."""
        rate = self.settings.logins_per_ip_per_second
        burst = rate * LOGIN_BURST_SECONDS
        return self._ip_logins.allow(client_ip(remote_address), rate, burst)

    def admits_tenant(self, info: TenantInfo) -> bool:
        """Whether one more verified login of the tenant is within its rate."""
        rate = resolve(info.logins_per_second, self.settings.tenant_logins_per_second)
        return self._tenant_logins.allow(info.id, rate, rate * LOGIN_BURST_SECONDS)

    # -- commands ----------------------------------------------------------------------

    def set_up(self, channel: Channel, info: TenantInfo) -> None:
        """Give a channel that just logged in its limits. Its buckets are made when
        first used: a bucket only loses tokens when used, so until then it would be
        full, as a new one is (an idle channel carries none)."""
        s = self.settings
        channel.limits = _limits(
            s.commands_per_second,
            s.account_commands_per_second,
            info.commands_per_second,
            info.account_commands_per_second,
            info.messages_per_second,
        )

    def refusal(self, channel: Channel, command: str) -> str | None:
        """Why ``command`` may not go through now (a 429's reason), or None when it
        may (its tokens are then taken)."""
        limits = channel.limits
        if limits is None:
            return None
        rate = limits.connection_rate
        if rate > 0:
            bucket = channel.bucket
            if bucket is None:
                bucket = channel.bucket = TokenBucket(
                    rate, self._clock, burst=rate * COMMAND_BURST_SECONDS
                )
            if not bucket.allow():
                return f"over {rate:g} requests per second on this connection"
        key = (channel.tenant, channel.account)
        burst = limits.account_rate * COMMAND_BURST_SECONDS
        if not self._accounts.allow(key, limits.account_rate, burst):
            return f"over {limits.account_rate:g} requests per second for this account"
        if limits.talk_rate > 0 and command in TALK_COMMANDS:
            talk = channel.talk_bucket
            if talk is None:
                talk = channel.talk_bucket = TokenBucket(limits.talk_rate, self._clock)
            if not talk.allow():
                return f"over {limits.talk_rate:g} messages per second"
        return None

    def strike(self, channel: Channel) -> bool:
        """Count one 429 against ``channel``; True when it has earned too many and must
        be closed."""
        strikes = channel.strikes
        if strikes is None:
            strikes = channel.strikes = TokenBucket(STRIKE_RATE, self._clock, burst=STRIKE_BURST)
        return not strikes.allow()


@functools.lru_cache(maxsize=1024)
def _limits(
    default_connection_rate: float,
    default_account_rate: float,
    connection_rate: float | None,
    account_rate: float | None,
    talk_rate: float,
) -> CommandLimits:
    """:func:`resolve_limits`, one shared (frozen) answer per combination: the channels
    of a tenant share theirs."""
    return resolve_limits(
        default_connection_rate=default_connection_rate,
        default_account_rate=default_account_rate,
        connection_rate=connection_rate,
        account_rate=account_rate,
        talk_rate=talk_rate,
    )
