"""Delivery order and de-duplication of incoming messages (sans-I/O).

Theory of operation
-------------------
Messages reach a client two ways: live pushes, and offline sync (index pages in inbox
order, then contents by id). :class:`Orderer` merges both into one stream in which every
message id appears once and

- 1:1 messages keep inbox order: pushes are delivered as they arrive while the client is
  live; **while a sync runs** every push is buffered and released after the sync, so
  messages the sync fetches (older) always come before pushes that arrived meanwhile
  (newer), and a push the sync also returned is dropped as a duplicate;
- group messages keep the group's sequence: a push whose ``seq`` is not the next one of
  its group is *held* and :attr:`Orderer.wants_sync` turns on; the client runs a sync,
  which fetches the missing messages in inbox order (the same order as the group's).
  Held messages are released as soon as the gap closes, when a sync that started after
  they were held has finished (that sync saw everything committed before them, so the
  gap is real: e.g. the client was not a member then), or after ``gap_wait`` seconds.

Synced messages do not carry the group sequence (the index only has the inbox's), so
the orderer infers it: the next number after the group's last delivered one, unless the
same id is held or buffered as a push, whose ``seq`` is then authoritative. Our own
group messages are never pushed back to the sending connection; :meth:`Orderer.own_sent`
registers them so that they fill their slot in the sequence instead of looking like a gap:
the exact slot when the send receipt carried the sequence (``MessageResp.seq``), else
the next free slots in the order they were sent (older servers). The exact slot matters:
pushes of other members' messages committed just before ours may arrive after our
receipt, and guessing "next free slot" would then let a later push overtake them.

1:1 messages carry no group sequence, but pushes from servers with the extension carry
their **inbox sequence** (``Message.inbox_seq``), and so does every synced message and
the receipt of our own 1:1 send (:meth:`Orderer.own_inbox`). The orderer keeps the inbox
sequence up to which it has seen everything; a 1:1 push beyond the next one means an
earlier message's push was lost (e.g. its logic node died between commit and push). That
push is buffered as if a sync were running, :attr:`Orderer.wants_sync` turns on, and
every push after it is buffered too, so the sync delivers the missing message first and
the buffered pushes follow in order (those the sync returned are dropped as duplicates).
Group messages occupy inbox sequences too without their pushes saying which, so such a
"gap" may hold only group messages the client already has: one index request finds that
out and nothing is delivered twice. Sequences above the next one that are already known
(our own receipts) do not count as a gap. Until a sync has shown where the inbox stands
(the login sync may find nothing new), the first 1:1 push counts as a gap too: one index
request sets the baseline, so a push lost just before it is caught as well. A push that
a finished sync has already answered for is never held twice, so a gap the index does
not fill cannot loop.

Where a group's sequence stands is learnt from its first push after the client starts
(or joins), or is 0 for a group created while the client is online (its create notify or
our own ``chat.group.create``): without that, when the first two pushes of a new group
came from different logic nodes in reverse order, the later one would set the baseline.

Known ids come from the store (``is_known``); every message this class returns must be
stored by the caller before its next call.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from cirno_sdk.models import Message


@dataclass(slots=True)
class _Held:
    message: Message
    held_at: float


class _InboxPrefix:
    """The inbox sequence up to which every message is known (``top``; None until a
    sync or a push showed where the inbox stands), and the known ones beyond it."""

    def __init__(self) -> None:
        self.top: int | None = None
        self._above: set[int] = set()

    def is_gap(self, seq: int) -> bool:
        """Whether ``seq`` is beyond the next expected one (or nothing is known yet)."""
        return self.top is None or seq > self.top + 1

    def known(self, seq: int) -> None:
        """Inbox sequence ``seq`` is delivered or stored: move the known prefix on."""
        if self.top is None or seq > self.top + 1:
            self._above.add(seq)  # a sync or the pushes in between will join it up
            return
        self.top = max(self.top, seq)
        self._advance()

    def synced(self, seq: int) -> None:
        """A sync walked inbox sequence ``seq``: it walks every row after the cursor and
        the rows before it were walked earlier, so everything up to ``seq`` is known."""
        self.top = seq if self.top is None else max(self.top, seq)
        self._advance()

    def _advance(self) -> None:
        assert self.top is not None
        above = self._above
        while self.top + 1 in above:
            self.top += 1
        if above:
            above.difference_update([s for s in above if s <= self.top])


class Orderer:
    """Merges pushes and synced messages into one ordered, de-duplicated stream."""

    def __init__(
        self,
        *,
        is_known: Callable[[int], bool],
        gap_wait: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._known = is_known
        self._gap_wait = gap_wait
        self._clock = clock
        self._syncing = False
        self._sync_started = 0.0
        self._buffer: list[Message] = []
        self._buffer_seq: dict[int, int] = {}
        self._buffer_ids: set[int] = set()
        self._inbox = _InboxPrefix()
        self._inbox_held: set[int] = set()
        self._last: dict[str, int] = {}
        self._held: dict[str, dict[int, _Held]] = {}
        self._held_ids: dict[int, tuple[str, int]] = {}
        self._own: dict[str, list[int]] = {}
        self._own_seqs: dict[str, set[int]] = {}
        self._gap = False
        self._out: list[Message] = []
        self._out_ids: set[int] = set()

    # -- state -------------------------------------------------------------------------

    @property
    def syncing(self) -> bool:
        """Whether a sync is running (pushes are being buffered)."""
        return self._syncing

    @property
    def wants_sync(self) -> bool:
        """A group or inbox gap appeared since the last sync started: run one to fill it."""
        return self._gap

    @property
    def inbox_seq(self) -> int | None:
        """The inbox sequence up to which every message is known (None: not known yet)."""
        return self._inbox.top

    def last_seq(self, group: str) -> int | None:
        """The last delivered sequence of ``group`` (None: not known yet)."""
        return self._last.get(group)

    def pending(self, message_id: int) -> Message | None:
        """A held or buffered push with this id (its content need not be fetched)."""
        where = self._held_ids.get(message_id)
        if where is not None:
            return self._held[where[0]][where[1]].message
        if message_id in self._buffer_ids:
            for message in self._buffer:
                if message.message_id == message_id:
                    return message
        return None

    def next_deadline(self) -> float | None:
        """When the oldest held message is due for release regardless (clock units)."""
        oldest = min(
            (held.held_at for group in self._held.values() for held in group.values()),
            default=None,
        )
        return None if oldest is None else oldest + self._gap_wait

    # -- inputs ------------------------------------------------------------------------

    def push(self, message: Message) -> list[Message]:
        """A live push arrived; returns what can be delivered now."""
        self._take(message, check_inbox=True)
        return self._drain()

    def own_inbox(self, seq: int) -> None:
        """Our own 1:1 message took inbox sequence ``seq`` (its send receipt said so; 0:
        the server did not say). It is in the store already and is not pushed back to
        us, so its slot is known and a push right after it is no gap."""
        if seq > 0:
            self._inbox.known(seq)

    def own_sent(self, group: str, message_id: int, seq: int = 0) -> list[Message]:
        """Our own group message was stored with sequence ``seq`` (0: unknown, it takes
        the group's next free number); it is not pushed back to us. Returns held
        messages that its slot unblocks."""
        if seq <= 0:
            if group in self._last:
                self._own.setdefault(group, []).append(message_id)
            return []
        last = self._last.get(group)
        if last is not None and seq <= last:
            return []
        self._own_seqs.setdefault(group, set()).add(seq)
        if last is not None:
            self._advance(group, last)
        return self._drain()

    def group_created(self, group: str) -> None:
        """``group`` was just created: its sequence starts at 0, so the first push need
        not set the baseline (pushes from two logic nodes may arrive out of order)."""
        self._last.setdefault(group, 0)

    def reset_group(self, group: str) -> None:
        """Forget where ``group``'s sequence stands (we joined or quit it)."""
        self._last.pop(group, None)
        self._own.pop(group, None)
        self._own_seqs.pop(group, None)

    def start_sync(self) -> None:
        """A sync (or a login followed by one) begins: buffer pushes from now on."""
        self._begin_buffering()
        self._gap = False

    def synced(self, batch: list[Message]) -> list[Message]:
        """Messages a sync fetched, in inbox order; returns them minus duplicates, with
        group sequences filled in, plus any held pushes they unblock."""
        for message in batch:
            group = message.group
            if message.inbox_seq > 0:
                self._inbox.synced(message.inbox_seq)
            if self._is_dup(message.message_id):
                own = self._own.get(group)
                if own and message.message_id in own:
                    own.remove(message.message_id)
                    self._advance(group, self._last[group] + 1)
                continue
            if not group:
                self._emit(message)
                continue
            seq = self._authoritative_seq(message.message_id)
            last = self._last.get(group)
            if seq is None:
                seq = last + 1 if last is not None else 0
            self._unhold(message.message_id)
            self._emit(dataclasses.replace(message, seq=seq))
            if seq:
                self._advance(group, seq)
        return self._drain()

    def finish_sync(self) -> list[Message]:
        """The sync finished: release buffered pushes, and held pushes whose gap the
        sync showed to be real."""
        self._syncing = False
        buffered, self._buffer = self._buffer, []
        self._buffer_seq.clear()
        self._buffer_ids.clear()
        answered, self._inbox_held = self._inbox_held, set()
        for group, held in list(self._held.items()):
            if any(h.held_at <= self._sync_started for h in held.values()):
                self._flush(group)
        for message in buffered:
            # A push held for an inbox gap before this sync began is not held again: the
            # sync saw everything committed before it. Later pushes may show a new gap;
            # holding one buffers the rest again, so they keep their order.
            self._take(message, check_inbox=message.message_id not in answered)
        return self._drain()

    def expire(self) -> list[Message]:
        """Release groups whose oldest held push waited ``gap_wait`` seconds (not while a
        sync runs: its end releases them in order)."""
        if self._syncing:
            return []
        now = self._clock()
        for group, held in list(self._held.items()):
            if min(h.held_at for h in held.values()) + self._gap_wait <= now:
                self._flush(group)
        return self._drain()

    # -- internals ---------------------------------------------------------------------

    def _is_dup(self, message_id: int) -> bool:
        return message_id in self._out_ids or self._known(message_id)

    def _emit(self, message: Message) -> None:
        self._out.append(message)
        self._out_ids.add(message.message_id)

    def _drain(self) -> list[Message]:
        out, self._out = self._out, []
        self._out_ids.clear()
        return out

    def _authoritative_seq(self, message_id: int) -> int | None:
        where = self._held_ids.get(message_id)
        if where is not None:
            return where[1]
        return self._buffer_seq.get(message_id)

    def _begin_buffering(self) -> None:
        if not self._syncing:
            self._syncing = True
            self._sync_started = self._clock()

    def _take(self, message: Message, *, check_inbox: bool) -> None:
        """Buffer one push while a sync runs (or is due), else place it."""
        if self._syncing:
            self._buffer.append(message)
            self._buffer_ids.add(message.message_id)
            if message.group and message.seq > 0:
                self._buffer_seq[message.message_id] = message.seq
            return
        self._accept(message, check_inbox=check_inbox)

    def _accept(self, message: Message, *, check_inbox: bool) -> None:
        """Place one push (not syncing): deliver, hold, or drop as a duplicate."""
        group, seq = message.group, message.seq
        inbox_seq = 0 if group else message.inbox_seq
        if self._is_dup(message.message_id) or message.message_id in self._held_ids:
            if inbox_seq > 0:
                self._inbox.known(inbox_seq)
            return
        if inbox_seq > 0:
            if check_inbox and self._inbox.is_gap(inbox_seq):
                # An earlier message of this inbox is missing (its push was lost, or it
                # is a group message), or we do not know where the inbox stands (the
                # login sync found nothing new): wait for a sync and buffer what follows.
                self._begin_buffering()
                self._gap = True
                self._inbox_held.add(message.message_id)
                self._take(message, check_inbox=False)
                return
            self._emit(message)
            self._inbox.known(inbox_seq)
            return
        if not group or seq <= 0:
            self._emit(message)
            return
        last = self._last.get(group)
        if last is None:
            self._own.pop(group, None)
            own_seqs = self._own_seqs.get(group)
            if own_seqs:
                own_seqs.difference_update([s for s in own_seqs if s <= seq])
            self._emit(message)
            self._advance(group, seq)
            return
        gap = seq - last - 1
        own = self._own.get(group)
        if 0 < gap <= len(own or ()):
            assert own is not None
            del own[:gap]  # our own messages filled the slots in between
            gap = 0
        if gap == 0:
            self._emit(message)
            self._advance(group, seq)
        elif gap < 0:
            self._emit(message)  # late but unseen: deliver rather than lose it
        else:
            self._held.setdefault(group, {})[seq] = _Held(message, self._clock())
            self._held_ids[message.message_id] = (group, seq)
            self._gap = True

    def _advance(self, group: str, seq: int) -> None:
        """``seq`` of ``group`` was delivered: move on over our own messages' slots and
        release what that unblocks."""
        self._last[group] = max(seq, self._last.get(group, 0))
        held = self._held.get(group)
        own = self._own_seqs.get(group)
        while True:
            following = self._last[group] + 1
            if own and following in own:
                own.discard(following)
                self._last[group] = following
                continue
            nxt = held.pop(following, None) if held else None
            if nxt is None:
                break
            del self._held_ids[nxt.message.message_id]
            if not self._is_dup(nxt.message.message_id):
                self._emit(nxt.message)
            self._last[group] = following
        if held is not None and not held:
            del self._held[group]
        if own is not None:
            own.difference_update([s for s in own if s <= self._last[group]])
            if not own:
                del self._own_seqs[group]

    def _unhold(self, message_id: int) -> None:
        where = self._held_ids.pop(message_id, None)
        if where is not None:
            group, seq = where
            del self._held[group][seq]
            if not self._held[group]:
                del self._held[group]

    def _flush(self, group: str) -> None:
        """Deliver every held push of ``group`` in sequence order, gaps or not."""
        held = self._held.pop(group, {})
        for seq in sorted(held):
            message = held[seq].message
            del self._held_ids[message.message_id]
            if not self._is_dup(message.message_id):
                self._emit(message)
            self._last[group] = max(seq, self._last.get(group, 0))
