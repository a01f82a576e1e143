"""What a handler sees: the request, who sent it, and how to answer and push.

Handlers answer with :meth:`Request.reply` **before** pushing anything the request
causes, so a client always sees its response before the pushes (docs/design.md,
"Delivery promises").
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from google.protobuf.message import Message

from data_plane.cluster.protocol import META_CHANNELS, META_SEQS
from data_plane.metrics import GATEWAY_LINKS
from data_plane.storage.sessions.protocol import Location
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.wire import Flag, LogicPacket, Meta, Status, pb

log = logging.getLogger(__name__)


class GatewayHub:
    """The logic node's live gateway links, by gateway id."""

    def __init__(self) -> None:
        self._links: dict[str, PacketConnection] = {}
        self.on_attach: Callable[[str], None] = lambda gateway_id: None
        """Called with the gateway's id once its link is registered (the pusher sends
        what it held for it)."""

    def attach(self, gateway_id: str, conn: PacketConnection) -> None:
        """Register the link of ``gateway_id`` (a reconnect replaces the old one)."""
        old = self._links.get(gateway_id)
        if old is not None and old is not conn:
            old.close(1000, "replaced by a new link from the same gateway")
        self._links[gateway_id] = conn
        GATEWAY_LINKS.set(len(self._links))
        self.on_attach(gateway_id)

    def linked(self, gateway_id: str) -> bool:
        """Whether a link from ``gateway_id`` is registered."""
        return gateway_id in self._links

    def detach(self, gateway_id: str, conn: PacketConnection) -> None:
        """Forget the link if it is still the registered one."""
        if self._links.get(gateway_id) is conn:
            del self._links[gateway_id]
            GATEWAY_LINKS.set(len(self._links))

    def send(self, gateway_id: str, data: bytes) -> bool:
        """Send an encoded packet to a gateway; False when it is not connected (or does
        not read: then its link is closed, see :func:`send_or_close`)."""
        conn = self._links.get(gateway_id)
        return conn is not None and send_or_close(conn, data)

    def address(
        self,
        locations: Iterable[Location],
        packet: LogicPacket,
        seqs: Mapping[str, int] | None = None,
    ) -> list[tuple[str, bytes]]:
        """``packet`` addressed to every location: one encoded packet per gateway, with
        the channels in the ``channels`` meta and, when ``seqs`` (inbox sequence by
        account) is given, each channel's account's sequence in the ``seqs`` meta."""
        by_gateway: dict[str, list[Location]] = defaultdict(list)
        for location in locations:
            by_gateway[location.gateway_id].append(location)
        p = packet
        addressed: list[tuple[str, bytes]] = []
        for gateway_id, targets in by_gateway.items():
            # Built directly rather than with packet.replace (dataclasses.replace walks
            # the fields on every call; this runs once per push).
            channels = Meta(META_CHANNELS, ",".join([t.channel_id for t in targets]))
            if seqs is None:
                meta: tuple[Meta, ...] = (channels,)
            else:
                numbers = ",".join([str(seqs[t.account]) for t in targets])
                meta = (channels, Meta(META_SEQS, numbers))
            one = LogicPacket(
                p.command, p.channel_id, p.sequence, p.flag, p.status, p.dest, meta, p.body
            )
            addressed.append((gateway_id, one.encode()))
        return addressed

    def push(self, locations: Iterable[Location], packet: LogicPacket) -> int:
        """Push ``packet`` to every location, best effort (kickouts and notifies; stored
        messages go through :class:`~data_plane.logic.pushes.Pusher`, which keeps what
        cannot go out now). Returns how many gateways took it."""
        return sum(self.send(g, data) for g, data in self.address(locations, packet))

    def close_all(self) -> None:
        """Close every gateway link."""
        for conn in list(self._links.values()):
            conn.close(1001, "logic node shutting down")


def send_or_close(conn: PacketConnection, data: bytes) -> bool:
    """Send on a gateway link; a link whose send buffer is full belongs to a gateway
    that does not read, so it is closed (4003, the gateway redials) rather than left to
    drop answers one by one while its buffer holds memory."""
    if conn.send(data):
        return True
    if not conn.is_closed:
        log.warning("closing the link of a gateway that does not read (%s)", conn.remote_address)
        conn.close(CloseCode.SLOW_CONSUMER, "gateway does not read: send buffer full")
    return False


@dataclass(frozen=True, slots=True)
class Request:
    """One client request, as forwarded by a gateway."""

    packet: LogicPacket
    tenant: str
    account: str
    device: str
    channel_id: str
    gateway_id: str
    client_version: str
    conn: PacketConnection
    max_answer_size: int
    answered: int = -1
    """The status this request was answered with (-1 before :meth:`reply`); the router
    counts the request's outcome by it."""

    def reply(
        self,
        status: int = Status.SUCCESS,
        body: bytes | Message = b"",
        meta: tuple[Meta, ...] = (),
    ) -> None:
        """Send the response to the requesting client.

        An answer larger than the client's packet limit is replaced by TooLarge (413), so
        the client gets a clear status instead of a packet it must refuse. ``meta`` is
        for the gateway (it strips every meta before the client sees the answer).
        """
        # The response without the gateway's meta and dest, built in one step (this runs
        # once per request; replace + response would build two packets).
        p = self.packet
        raw = body.SerializeToString() if isinstance(body, Message) else bytes(body)
        answer = LogicPacket(
            p.command, p.channel_id, p.sequence, Flag.RESPONSE, int(status), "", meta, raw
        )
        data = answer.encode()
        if len(data) > self.max_answer_size:
            reason = f"the answer ({len(data)} bytes) exceeds the packet limit: page the request"
            status = Status.TOO_LARGE
            data = answer.replace(
                status=status, body=pb.ErrorResp(message=reason).SerializeToString()
            ).encode()
        # Frozen for handlers; this is the one field the reply itself records.
        object.__setattr__(self, "answered", int(status))
        if not send_or_close(self.conn, data):
            log.warning("response to %s dropped: gateway link full or closed", self.channel_id)

    def fail(self, status: int, message: str) -> None:
        """Answer with ``status`` and an ``ErrorResp`` saying why."""
        self.reply(status, pb.ErrorResp(message=message))
