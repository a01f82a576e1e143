"""The gateway's channel table and the packets between its channels and logic nodes.

Packets to a logic node go over the channel's link (picked by the grayscale rules of
:class:`LogicPool`, re-picked when the pool changes) with the client's meta replaced by
the gateway's. Packets from a logic node are responses (routed by channel id) or pushes
(routed to the channels in their ``channels`` meta). A push of a stored message also
carries, per channel, the row's number in that channel's account's inbox (``seqs``
meta): it goes through the channel's inbox stream (:mod:`data_plane.gateway.inbox`: in
order, once; holes filled by :class:`~data_plane.gateway.holes.HoleFiller`). A
push of ``login.signin`` is a KickoutNotify: it is delivered and then the connection is
closed. A client whose send buffer is full is disconnected as a slow consumer; nobody
else waits for it. A kim client (no ``client_version`` at login) gets kim's statuses and
times instead of cirno's (:mod:`data_plane.gateway.kim_compat`), the sequencing alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from data_plane.cluster.grayscale import ClientFacts
from data_plane.cluster.protocol import (
    FILL_COMMAND,
    HEADS_COMMAND,
    INTERNAL_PREFIXES,
    META_CHANNELS,
    META_HEAD,
    META_SEQS,
)
from data_plane.cluster.registry import RegistryClient
from data_plane.gateway import events
from data_plane.gateway.channel import Channel, error_body
from data_plane.gateway.clock import Clock
from data_plane.gateway.holes import HoleFiller
from data_plane.gateway.inbox import InboxStreams
from data_plane.gateway.kim_compat import for_kim, is_kim_client
from data_plane.gateway.logic_link import LogicLink
from data_plane.gateway.logic_pool import LogicPool
from data_plane.gateway.quota import ConnectionQuota
from data_plane.gateway.sequencer import MAX_HELD
from data_plane.gateway.settings import GatewaySettings
from data_plane.transport.connection import CloseCode
from data_plane.wire import Command, Flag, LogicPacket, MalformedPacket, encode_meta, pb

TALK_COMMANDS = frozenset({Command.CHAT_USER_TALK, Command.CHAT_GROUP_TALK})
"""Their answers carry the sender's inbox row (``MessageResp.inbox_seq``)."""

log = logging.getLogger(__name__)


def kickout_reason(packet: LogicPacket) -> str:
    """The close reason of a kickout push: its ``KickoutNotify.reason`` when it gives
    one (the server API's kick), else a login on the same device replaced the channel."""
    try:
        given = packet.parse_body(pb.KickoutNotify).reason
    except MalformedPacket:
        given = ""
    return f"kicked: {given}" if given else "kicked out by a login on the same device"


class ChannelRouter:
    """Every channel of this gateway, by id, and its way to and from the logic nodes."""

    def __init__(
        self,
        settings: GatewaySettings,
        registry: RegistryClient,
        quota: ConnectionQuota,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.quota = quota
        self.channels: dict[str, Channel] = {}
        self.holes = HoleFiller(clock, self.channels, self.send_internal)
        self.pool = LogicPool(settings, registry, self.on_logic_packet, self.holes.links_changed)
        self.inbox = InboxStreams(self.deliver, self.holes, clock)
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
        # = packet.replace(channel_id=channel.id, meta=<its metas>).encode(), byte for byte
        return link.send(packet.encode_with(channel_id=channel.id, meta=channel.meta_raw))

    def send_internal(self, channel: Channel, packet: LogicPacket) -> bool:
        """Forward the gateway's own request for ``channel`` (``sync.fill``,
        ``sync.heads``) with the channel's meta and the packet's; False when no logic
        node is available."""
        link = self._pick_link(channel, packet.command)
        if link is None:
            return False
        # The channel's metas, then the packet's: repeated fields concatenate, so this
        # is packet.replace(channel_id=..., meta=<its metas> + packet.meta).encode().
        meta = channel.meta_raw + encode_meta(packet.meta)
        return link.send(packet.encode_with(channel_id=channel.id, meta=meta))

    def drop_channel(self, channel: Channel) -> None:
        """Forget ``channel``, free its quota slot, and tell the logic node it left (so
        the location goes if it still belongs to this channel). Idempotent."""
        self.channels.pop(channel.id, None)
        if channel.sequencer is not None and channel.sequencer.timer is not None:
            channel.sequencer.timer.cancel()
        if channel.sync_timer is not None:
            channel.sync_timer.cancel()
            channel.sync_timer = None
        if channel.stall_timer is not None:
            channel.stall_timer.cancel()
            channel.stall_timer = None
        channel.backlog = None
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
        if channel is None:
            return  # the client left meanwhile
        command = packet.command
        if command.startswith(INTERNAL_PREFIXES):
            if command == FILL_COMMAND:
                self.holes.on_fill_answer(channel, packet)
            elif command == HEADS_COMMAND:
                self.holes.on_heads_answer(channel, packet)
            return  # the gateway's own request
        if not channel.logged_in and command == Command.LOGIN_SIGNIN:
            head = packet.meta_value(META_HEAD)
            channel.login_head = int(head) if head is not None and head.isdigit() else None
            channel.login_answer = packet.replace(meta=()) if packet.meta else packet
            if channel.login_done is not None:
                channel.login_done.set()
            return
        shown = for_kim(packet) if is_kim_client(channel.client_version) else None
        if shown is not None:  # the answer as a kim client must see it
            raw = shown.encode_without_meta()
        elif packet.meta:
            raw = packet.encode_without_meta()
        # Otherwise the logic node answered without meta (it strips it): then the bytes it
        # sent are already what the client gets, and re-encoding them would only copy them.
        if command == Command.CHAT_OFFLINE_INDEX and channel.sequencer is not None:
            self.inbox.index_answer(channel, packet, raw)
        elif command == Command.CHAT_OFFLINE_INDEX and channel.awaiting_sync:
            self.deliver(channel, raw)
            self.inbox.login_sync_page(channel, packet)
        else:
            self.deliver(channel, raw)
            if command in TALK_COMMANDS and (channel.sequencer or channel.awaiting_sync):
                self.inbox.own_send(channel, packet)
            elif command == Command.LOGIN_SIGNOUT:
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
        targets = seqs = None
        for entry in packet.meta:  # one pass (a push carries two entries at most)
            if entry.key == META_CHANNELS:
                targets = entry.value
            elif entry.key == META_SEQS:
                seqs = entry.value
        if not targets:
            return
        data = packet.encode_without_meta(channel_id="")
        kim_data: bytes | None = None  # built once, for the first kim client among them
        channels = self.channels
        if seqs is None:  # no inbox row: a kickout or a group notify
            kickout = packet.command == Command.LOGIN_SIGNIN
            reason = kickout_reason(packet) if kickout else ""
            for channel_id in targets.split(","):
                channel = channels.get(channel_id)
                if channel is None:
                    continue
                if is_kim_client(channel.client_version):
                    if kim_data is None:
                        kim_data = self._for_kim(packet, data)
                    self.deliver(channel, kim_data)
                else:
                    self.deliver(channel, data)
                if kickout:
                    channel.conn.close(CloseCode.KICKED_OUT, reason)
                    events.kickout(channel)
            return
        for channel_id, seq_text in zip(targets.split(","), seqs.split(","), strict=False):
            channel = channels.get(channel_id)
            if channel is None:
                continue
            payload = data
            if is_kim_client(channel.client_version):
                if kim_data is None:
                    kim_data = self._for_kim(packet, data)
                payload = kim_data
            s = channel.sequencer
            if s is not None:
                seq = int(seq_text)
                if seq == s.next_seq and not s.pending:  # the in-order path
                    s.next_seq = seq + 1
                    self.deliver(channel, payload)
                else:
                    self.inbox.sequenced(channel, seq, payload)
            elif channel.logged_in and not channel.awaiting_sync:
                self.deliver(channel, payload)  # logged in through a node without heads
            elif channel.early is None:
                channel.early = [(int(seq_text), payload)]
            elif len(channel.early) < MAX_HELD:
                channel.early.append((int(seq_text), payload))
            else:
                self.holes.resync(channel, "too many pushes before the login completed")

    @staticmethod
    def _for_kim(packet: LogicPacket, data: bytes) -> bytes:
        """The push ``data`` (``packet`` without meta) as a kim client must see it."""
        kim = for_kim(packet)
        return data if kim is None else kim.encode_without_meta(channel_id="")

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
