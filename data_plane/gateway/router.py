"""The gateway's channel table and the packets between its channels and logic nodes.

Packets to a logic node go over the channel's link (picked by the grayscale rules of
:class:`LogicPool`, re-picked when the pool changes) with the client's meta replaced by
the gateway's. Packets from a logic node are responses (routed by channel id) or pushes
(routed to the channels in their ``channels`` meta). A push of ``login.signin`` is a
KickoutNotify: it is delivered and then the connection is closed. A client whose send
buffer is full is disconnected as a slow consumer; nobody else waits for it. A kim
client (no ``client_version`` at login) gets kim's statuses and times instead of
cirno's (:mod:`data_plane.gateway.kim_compat`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from data_plane.cluster.grayscale import ClientFacts
from data_plane.cluster.protocol import INTERNAL_PREFIXES, META_CHANNELS
from data_plane.cluster.registry import RegistryClient
from data_plane.gateway import events
from data_plane.gateway.channel import Channel, error_body
from data_plane.gateway.kim_compat import for_kim, is_kim_client
from data_plane.gateway.logic_link import LogicLink
from data_plane.gateway.logic_pool import LogicPool
from data_plane.gateway.quota import ConnectionQuota
from data_plane.gateway.settings import GatewaySettings
from data_plane.transport.connection import CloseCode
from data_plane.wire import Command, Flag, LogicPacket

log = logging.getLogger(__name__)


class ChannelRouter:
    """Every channel of this gateway, by id, and its way to and from the logic nodes."""

    def __init__(
        self, settings: GatewaySettings, registry: RegistryClient, quota: ConnectionQuota
    ) -> None:
        self.settings = settings
        self.quota = quota
        self.channels: dict[str, Channel] = {}
        self.pool = LogicPool(settings, registry, self.on_logic_packet)
        self.on_answer: Callable[[Channel], None] = lambda channel: None
        """Called after each answer to a channel's request (the session's backlog)."""

    # -- towards the logic nodes -------------------------------------------------------

    def _pick_link(self, channel: Channel, command: str) -> LogicLink | None:
        if channel.routes is None:
            facts = ClientFacts(
                tenant=channel.tenant,
                account=channel.account,
                version=channel.client_version or None,
                platform=channel.device,
                region=self.settings.region,
            )
            channel.routes = self.pool.routes(facts)
        return channel.routes.link_for(command)

    def send_to_logic(self, channel: Channel, packet: LogicPacket) -> bool:
        """Forward ``packet`` for ``channel``; False when no logic node is available."""
        link = self._pick_link(channel, packet.command)
        if link is None:
            return False
        # = packet.replace(channel_id=channel.id, meta=channel.meta).encode(), byte for byte
        return link.send(packet.encode_with(channel_id=channel.id, meta=channel.meta_raw))

    def drop_channel(self, channel: Channel) -> None:
        """Forget ``channel``, free its quota slot, and tell the logic node it left (so
        the location goes if it still belongs to this channel). Idempotent."""
        self.channels.pop(channel.id, None)
        if channel.stall_timer is not None:
            channel.stall_timer.cancel()
            channel.stall_timer = None
        channel.backlog.clear()
        if channel.counted:
            channel.counted = False
            self.quota.release(channel.tenant)
        if channel.logged_in:
            bye = LogicPacket.request(Command.LOGIN_SIGNOUT)
            self.send_to_logic(channel, bye)

    # -- from the logic nodes ----------------------------------------------------------

    def on_logic_packet(self, link: LogicLink, packet: LogicPacket, raw: bytes) -> None:
        """Route one packet a logic node sent (the pool's callback)."""
        if packet.flag == Flag.PUSH:
            self._on_push(packet)
            return
        channel = self.channels.get(packet.channel_id)
        if channel is None or packet.command.startswith(INTERNAL_PREFIXES):
            return  # the client left meanwhile, or an answer to the gateway's own request
        if not channel.logged_in and packet.command == Command.LOGIN_SIGNIN:
            channel.login_answer = packet.replace(meta=()) if packet.meta else packet
            channel.login_done.set()
            return
        if is_kim_client(channel.client_version):
            kim = for_kim(packet)
            if kim is not None:
                packet, raw = kim, kim.encode_without_meta()
        # The logic node answers without meta (it strips it): then the bytes it sent are
        # already what the client gets, and re-encoding them would only copy them.
        self.deliver(channel, packet.encode_without_meta() if packet.meta else raw)
        if packet.command == Command.LOGIN_SIGNOUT:
            channel.logged_in = False  # the logic node already removed the location
            channel.conn.close(CloseCode.NORMAL, "signed out")
            return
        if packet.flag == Flag.RESPONSE:
            channel.answers += 1
            if channel.in_flight > 0:
                channel.in_flight -= 1
            if channel.backlog:
                self.on_answer(channel)

    def _on_push(self, packet: LogicPacket) -> None:
        targets = packet.meta_value(META_CHANNELS)
        if not targets:
            return
        data = packet.encode_without_meta(channel_id="")
        kim_data: bytes | None = None  # built once, for the first kim client among them
        kickout = packet.command == Command.LOGIN_SIGNIN
        for channel_id in targets.split(","):
            channel = self.channels.get(channel_id)
            if channel is None:
                continue
            if is_kim_client(channel.client_version):
                if kim_data is None:
                    kim = for_kim(packet)
                    kim_data = data if kim is None else kim.encode_without_meta(channel_id="")
                self.deliver(channel, kim_data)
            else:
                self.deliver(channel, data)
            if kickout:
                channel.conn.close(CloseCode.KICKED_OUT, "kicked out by a login on the same device")
                events.kickout(channel)

    # -- towards the client ------------------------------------------------------------

    def deliver(self, channel: Channel, data: bytes) -> None:
        """Send ``data`` to the client; a full send buffer closes it (slow consumer)."""
        if len(data) > self.settings.max_packet_size:
            log.warning("dropped a %d-byte packet for %s: over the limit", len(data), channel.id)
            return
        if not channel.conn.send(data):
            channel.conn.close(CloseCode.SLOW_CONSUMER, "client too slow: send buffer full")

    def answer(self, channel: Channel, packet: LogicPacket, status: int, reason: str) -> None:
        """Answer a client request here, with ``status`` and an ``ErrorResp``."""
        answer = packet.replace(meta=(), channel_id=channel.id).response(status, error_body(reason))
        if is_kim_client(channel.client_version):
            answer = for_kim(answer) or answer
        self.deliver(channel, answer.encode())
