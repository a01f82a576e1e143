"""Closing the live connections a control-plane change revoked.

The gateway's :class:`~data_plane.cluster.tenants.TenantDirectory` hands every changed
tenant list to :meth:`Revocations.on_tenants`, which walks the channel table once and
closes each channel whose user the rule of :mod:`data_plane.cluster.revocation` no
longer admits: its tenant was disabled or deleted, its account banned, or the signing
key its token was verified with (``Channel.kid``) revoked or rotated out past its
overlap. Each such client first gets a ``KickoutNotify`` push (``login.signin``) whose
``reason`` says why, then the close 4002 (KICKED_OUT) with ``revoked: <reason>``.

Bound: a change reaches this gateway with its next directory refresh, so a revocation
takes effect within ``tenant_refresh_interval`` (1 s by default) plus one request to
the control plane; the walk itself does not suspend. Channels still logging in are in
the table too, so a login racing a revocation is closed as well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from data_plane.cluster.revocation import (
    ACCOUNT_BANNED,
    KEY_REVOKED,
    TENANT_DELETED,
    TENANT_DISABLED,
    revocation,
)
from data_plane.cluster.tenants import TenantInfo
from data_plane.gateway.channel import Channel
from data_plane.gateway.router import ChannelRouter
from data_plane.metrics import REVOKED
from data_plane.transport.connection import CloseCode
from data_plane.wire import Command, LogicPacket, pb

log = logging.getLogger(__name__)

_CAUSES = (
    (TENANT_DISABLED, "tenant_disabled"),
    (TENANT_DELETED, "tenant_deleted"),
    (ACCOUNT_BANNED, "account_banned"),
    (KEY_REVOKED, "key_revoked"),
)


def kickout(channel: Channel, reason: str) -> bytes:
    """The ``KickoutNotify`` push telling ``channel``'s client why it is closed."""
    notify = pb.KickoutNotify(channelId=channel.id, reason=reason)
    return LogicPacket.make_push(Command.LOGIN_SIGNIN, notify).encode()


class Revocations:
    """Closes the channels a tenant-directory change revoked (see the module doc)."""

    def __init__(self, router: ChannelRouter, wall_clock: Callable[[], float] = time.time):
        """``wall_clock`` is epoch seconds: ban expiries are wall-clock times."""
        self._router = router
        self._wall_clock = wall_clock

    def on_tenants(self, tenants: Mapping[str, TenantInfo]) -> None:
        """Close every channel ``tenants`` revokes (a directory subscriber)."""
        now = self._wall_clock()
        for channel in list(self._router.channels.values()):
            reason = revocation(tenants.get(channel.tenant), channel.account, channel.kid, now)
            if reason is not None and not channel.conn.is_closed:
                self.kick(channel, reason)

    def kick(self, channel: Channel, reason: str) -> None:
        """Tell ``channel``'s client why (``KickoutNotify``), then close it (4002)."""
        cause = next((label for prefix, label in _CAUSES if reason.startswith(prefix)), "other")
        REVOKED.labels(cause).inc()
        log.info("closing %s: %s", channel.id, reason)
        self._router.deliver(channel, kickout(channel, reason))
        channel.conn.close(CloseCode.KICKED_OUT, f"revoked: {reason}")
