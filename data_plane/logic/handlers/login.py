"""``login.signin`` and ``login.signout``.

The gateway has verified the token; the logic node records the location of (tenant,
account, device), then reads the account's inbox head and answers ``LoginResp`` with
the head in the ``head`` meta (the gateway starts the channel's sequencer there and
strips it), and kicks the connection it replaced on the same device. The order is
what makes the sequencer's start race-free: a message committed after the head read
finds the location and is pushed; one at or below the head is the client's own sync
after its login (docs/design.md, "Delivery promise"). A login whose head cannot be
read fails (SystemException) and its location is removed: the client retries.
Sign-out (explicit or on disconnect) removes the location only if it still belongs to
that channel, so a late sign-out never removes a newer login.

Sign-ins and sign-outs run at most ``LoginGate.limit`` at once, refreshes in a gate
of their own (:mod:`.login_gate`): a burst waits in line, and a sign-in that cannot
start within the gate's patience is answered Unavailable (503) with nothing stored.

After a sign-in or sign-out (and with each refresh) :class:`~.presence.Presence`, when
given, settles the account's presence and keeps the connection's watches: after the
answer, and never failing the login or logout.
"""

from __future__ import annotations

import logging
import time

from data_plane.cluster.protocol import META_HEAD
from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.handlers.login_gate import REFRESH_LIMIT, LoginGate
from data_plane.logic.handlers.presence import Presence
from data_plane.logic.outbound_hooks import OutboundHooks
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.errors import StorageError
from data_plane.storage.sessions.protocol import Location, SessionStore
from data_plane.wire import Command, LogicPacket, Meta, pb

log = logging.getLogger(__name__)


class LoginHandlers:
    """Sign-in and sign-out over a session store."""

    def __init__(
        self,
        sessions: SessionStore,
        hub: GatewayHub,
        stores: TenantStores,
        presence: Presence | None = None,
        *,
        hooks: OutboundHooks | None = None,
        gate: LoginGate | None = None,
        refresh_gate: LoginGate | None = None,
    ) -> None:
        self._sessions = sessions
        self._gate = gate or LoginGate()
        self._refresh_gate = refresh_gate or LoginGate(REFRESH_LIMIT)
        self._hub = hub
        self._stores = stores
        self._presence = presence
        self._hooks = hooks or OutboundHooks()

    @staticmethod
    def _location(request: Request) -> Location:
        return Location(
            tenant=request.tenant,
            account=request.account,
            device=request.device,
            channel_id=request.channel_id,
            gateway_id=request.gateway_id,
            login_at=int(time.time() * 1000),
            client_version=request.client_version,
        )

    async def signin(self, request: Request) -> None:
        """Store the location, read the inbox head, answer, then kick the replaced
        connection; in turn (the gate)."""
        async with self._gate.signin():
            await self._signin(request)

    async def _signin(self, request: Request) -> None:
        location = self._location(request)
        previous = await self._sessions.add_location(location)
        try:
            store = await self._stores.get(request.tenant)
            heads = await store.inbox_heads(request.tenant, [request.account])
        except StorageError:
            await self.signout_quietly(request)
            raise
        request.reply(
            body=pb.LoginResp(channelId=request.channel_id, account=request.account),
            meta=(Meta(META_HEAD, str(heads[request.account])),),
        )
        if previous is not None:
            kick = LogicPacket.make_push(
                Command.LOGIN_SIGNIN,
                pb.KickoutNotify(channelId=previous.channel_id),
                channel_id=previous.channel_id,
            )
            self._hub.push([previous], kick)
        await self._hooks.signed_in(location, previous)  # webhooks; cancel pending pushes
        if self._presence is not None:
            await self._presence.signed_in(request)

    async def signout_quietly(self, request: Request) -> None:
        """Remove the location if it is still this channel's; failures only logged."""
        try:
            await self._sessions.remove_location(
                request.tenant, request.account, request.device, request.channel_id
            )
        except StorageError as exc:
            log.warning("location of failed login %s not removed: %s", request.channel_id, exc)

    async def refresh(self, request: Request) -> None:
        """Re-assert a live channel's location (never displacing a newer login); the
        gateway expects no answer, so failures are only logged."""
        async with self._refresh_gate.wait():
            await self._refresh(request)

    async def _refresh(self, request: Request) -> None:
        try:
            await self._sessions.refresh_location(self._location(request))
        except StorageError as exc:
            log.warning("location refresh of %s failed: %s", request.channel_id, exc)
        if self._presence is not None:
            await self._presence.refresh(request)

    async def signout(self, request: Request) -> None:
        """Remove the location if it is still this channel's; answer Success."""
        async with self._gate.wait():
            await self._signout(request)

    async def _signout(self, request: Request) -> None:
        await self._sessions.remove_location(
            request.tenant, request.account, request.device, request.channel_id
        )
        request.reply()
        await self._hooks.signed_out(
            request.tenant, request.account, request.device, request.channel_id
        )
        if self._presence is not None:
            await self._presence.connection_left(request)
