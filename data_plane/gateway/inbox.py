"""Each channel's inbox stream at the gateway: its rows delivered once and in order.

The router hands this every packet that concerns a channel's inbox rows: pushes of
stored messages (with the row's number), the answers to the channel's own sends (their
rows count as delivered: the client has its message) and its sync answers (their rows
count as delivered too). A :class:`~data_plane.gateway.sequencer.Sequencer` per channel
keeps the order, :class:`~data_plane.gateway.holes.HoleFiller` fills its holes. A kim
client (no ``client_version``) syncs right after its login and dedupes nothing, so its
pushes wait for the last page of that sync, and its later syncs leave out what it
already got as pushes (docs/design.md, "Delivery promise", "The login boundary").
"""

from __future__ import annotations

from collections.abc import Callable

from data_plane.gateway.channel import Channel
from data_plane.gateway.clock import Clock
from data_plane.gateway.holes import HoleFiller
from data_plane.gateway.kim_compat import for_kim, is_kim_client
from data_plane.gateway.sequencer import Overflow, Sequencer
from data_plane.metrics import SEQUENCER
from data_plane.wire import LogicPacket, Status, pb

KIM_SYNC_WAIT = 3.0
"""How long a kim client's pushes wait for the end of its login sync (kim's web SDK
syncs right after its login; a client that does not gets its pushes this much later)."""


class InboxStreams:
    """The sequenced delivery of every channel's inbox rows (``deliver`` sends bytes to
    a channel's client)."""

    def __init__(
        self, deliver: Callable[[Channel, bytes], None], holes: HoleFiller, clock: Clock
    ) -> None:
        self.deliver = deliver
        self.holes = holes
        self._clock = clock
        self._duplicate = SEQUENCER.labels("duplicate")
        self._held = SEQUENCER.labels("held")

    def own_send(self, channel: Channel, answer: LogicPacket) -> None:
        """The channel's own message took a row of its inbox: the client has it."""
        if answer.status != Status.SUCCESS:
            return
        seq = pb.MessageResp.FromString(answer.body).inbox_seq
        if seq <= 0:
            return
        if channel.sequencer is None:  # a kim client still in its login sync
            if channel.early_synced is None:
                channel.early_synced = []
            channel.early_synced.append(seq)
        else:
            self.sequenced(channel, seq, None)

    def login_sync_page(self, channel: Channel, answer: LogicPacket) -> None:
        """A page of a kim client's login sync: its rows count as delivered; the last
        page (or a failed one) ends the wait, and the pushes that waited follow it."""
        if answer.status == Status.SUCCESS:
            page = pb.MessageIndexResp.FromString(answer.body)
            if channel.early_synced is None:
                channel.early_synced = []
            channel.early_synced.extend(index.seq for index in page.indexes)
            if page.has_more:
                return
        self._end_login_sync(channel)

    def _end_login_sync(self, channel: Channel) -> None:
        """Start ``channel``'s sequencer after a kim client's login sync (or the wait for
        it): the rows the sync gave count as delivered, the pushes that waited follow."""
        if not channel.awaiting_sync or channel.login_head is None:
            return
        channel.awaiting_sync = False
        if channel.sync_timer is not None:
            channel.sync_timer.cancel()
            channel.sync_timer = None
        s = channel.sequencer = Sequencer(channel.login_head)
        for packet in s.synced(channel.early_synced or ()):
            self.deliver(channel, packet)
        channel.early_synced = None
        early, channel.early = channel.early or (), None
        for seq, data in early:
            self.sequenced(channel, seq, data)
        self.holes.watch(channel)

    def index_answer(self, channel: Channel, answer: LogicPacket, shown: bytes) -> None:
        """A sync answer, delivered as ``shown`` (the client's form of it); its rows count
        as delivered, so a push of one still on its way (e.g. committed after the login
        head, racing the client's login sync) is dropped rather than delivered twice.

        A kim client keeps no store of pushes it could check a sync against, so rows
        this connection already got as pushes (after the login head, before the
        sequencer's next row) are left out of its answers: a push that overtook the
        client's login sync is not shown twice. A page left empty ends the kim client's
        paging, which loses nothing: every later row is the sequencer's to deliver.
        """
        s = channel.sequencer
        assert s is not None
        if answer.status != Status.SUCCESS:
            self.deliver(channel, shown)
            return
        page = pb.MessageIndexResp.FromString(answer.body)
        seqs = [index.seq for index in page.indexes]
        head = channel.login_head
        if head is not None and is_kim_client(channel.client_version):
            first, end = head + 1, s.next_seq
            if any(first <= seq < end for seq in seqs):
                kept = [index for index in page.indexes if not first <= index.seq < end]
                del page.indexes[:]
                page.indexes.extend(kept)
                trimmed = answer.replace(meta=(), body=page.SerializeToString())
                shown = (for_kim(trimmed) or trimmed).encode()
        self.deliver(channel, shown)
        for packet in s.synced(seqs):
            self.deliver(channel, packet)
        self.holes.watch(channel)

    def begin_delivery(self, channel: Channel) -> None:
        """Start ``channel``'s sequencer at its login head, once the login answer was
        sent to the client, and deliver what came meanwhile."""
        if channel.login_head is None:
            for _, data in channel.early or ():  # a node without heads: as it came
                self.deliver(channel, data)
        elif is_kim_client(channel.client_version):
            # Its login sync comes next: pushes that overtook it would reach the client
            # before older messages the sync returns. They wait for its last page.
            channel.awaiting_sync = True
            when = self._clock.now() + KIM_SYNC_WAIT
            channel.sync_timer = self._clock.call_at(when, lambda: self._end_login_sync(channel))
            return
        else:
            channel.sequencer = Sequencer(channel.login_head)
            for seq, data in channel.early or ():
                self.sequenced(channel, seq, data)
        channel.early = None

    def sequenced(self, channel: Channel, seq: int, data: bytes | None) -> None:
        """Row ``seq`` of ``channel``'s inbox: deliver it in order, once (``data`` None:
        the channel's own send took it)."""
        s = channel.sequencer
        assert s is not None
        if seq == s.next_seq and not s.pending:  # the in-order path
            s.next_seq = seq + 1
            if data is not None:
                self.deliver(channel, data)
            return
        try:
            ready = s.offer(seq, data)
        except Overflow as exc:
            self.holes.resync(channel, str(exc))
            return
        if ready is None:
            self._duplicate.inc()
            return
        if not ready:
            self._held.inc()
        for packet in ready:
            self.deliver(channel, packet)
        self.holes.watch(channel)
