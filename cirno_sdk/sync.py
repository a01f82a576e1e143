"""Offline sync: index pages, and contents by id (docs/design.md, "Delivery promises").

:func:`sync_inbox` pages ``chat.offline.index`` strictly after the store's sync cursor
until ``has_more`` is false. Each page goes to the orderer in inbox order -- known
messages too, which only keep its group counts right -- and the cursor moves past the
page once the page is delivered, so an interrupted sync resumes where it stopped.

What a page's messages carry depends on ``lazy``:

- lazy (``ClientOptions(content="lazy")``, the default, the seed's design; for the
  catch-up sync after each login only -- later syncs of the same connection, gap fills
  and idle pulls, find live messages whose push went missing and are eager): the index
  entries alone (``Message.content_loaded`` False), except where a push of the same id
  is held or buffered (the push has the content). No ``chat.offline.content`` request:
  a long-offline device is not held up by bodies; the application loads them by id
  when it shows them (:mod:`cirno_sdk.contents`).
- eager: the contents it does not have yet (not stored, not held as a push) are fetched
  with ``chat.offline.content`` in batches of at most ``content_batch`` ids, and each
  batch is delivered loaded.

Either way a message is stored (its index at least) before it is delivered, and the ack
follows the store, so an ack never covers a message whose index is not stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message as ProtoMessage

from cirno_sdk.convert import synced_message
from cirno_sdk.errors import RequestRefused
from cirno_sdk.models import Message
from cirno_sdk.ordering import Orderer
from cirno_sdk.store import Store
from data_plane.wire import Command, LogicPacket, ProtocolError, Status, pb

log = logging.getLogger("cirno_sdk")

Request = Callable[[str, ProtoMessage], Awaitable[LogicPacket]]
Deliver = Callable[[list[Message]], None]


def error_text(packet: LogicPacket) -> str:
    """The ``ErrorResp`` message of an error response, or ""."""
    if not packet.body:
        return ""
    try:
        return packet.parse_body(pb.ErrorResp).message
    except ProtocolError:
        return ""


async def sync_inbox(
    request: Request,
    store: Store,
    orderer: Orderer,
    deliver: Deliver,
    *,
    me: str,
    content_batch: int,
    lazy: bool,
) -> None:
    """Walk the inbox after the sync cursor and deliver what is new (``lazy``: index
    entries only, see the module).

    Raises ``RequestRefused`` for an error status and whatever ``request`` raises
    (timeouts, a lost connection); the caller reconnects and syncs again.
    """
    cursor = store.sync_cursor()
    while True:
        packet = await request(Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=cursor))
        if packet.status == Status.NOT_FOUND and cursor:
            # The cursor is not in this inbox (a store of another account?): start
            # again after the server's read index for this device.
            log.warning("sync cursor %d unknown to the server; resetting it", cursor)
            cursor = 0
            store.set_sync_cursor(0)
            continue
        if packet.status != Status.SUCCESS:
            raise RequestRefused(packet.status, error_text(packet))
        page = packet.parse_body(pb.MessageIndexResp)
        entries = list(page.indexes)
        if lazy:
            deliver(orderer.synced([_indexed(entry, orderer, me) for entry in entries]))
        else:
            await _eager_page(request, store, orderer, deliver, entries, me, content_batch)
        if entries:
            cursor = entries[-1].message_id
            store.set_sync_cursor(cursor)
        if not page.has_more or not entries:
            return


def _indexed(entry: pb.MessageIndex, orderer: Orderer, me: str) -> Message:
    """A lazy sync's message: a held or buffered push of the same id (it has the
    content), else the index entry alone."""
    pending = orderer.pending(entry.message_id)
    return pending if pending is not None else synced_message(entry, None, me)


async def _eager_page(
    request: Request,
    store: Store,
    orderer: Orderer,
    deliver: Deliver,
    entries: list[pb.MessageIndex],
    me: str,
    content_batch: int,
) -> None:
    """Deliver one index page with contents, fetching ``content_batch`` at a time."""
    window: list[pb.MessageIndex] = []
    wanted: list[int] = []
    for entry in entries:
        window.append(entry)
        if not store.contains(entry.message_id) and orderer.pending(entry.message_id) is None:
            wanted.append(entry.message_id)
        if len(wanted) >= content_batch:
            deliver(orderer.synced(await _load(request, store, orderer, window, wanted, me)))
            window, wanted = [], []
    if window:
        deliver(orderer.synced(await _load(request, store, orderer, window, wanted, me)))


async def _load(
    request: Request,
    store: Store,
    orderer: Orderer,
    window: list[pb.MessageIndex],
    wanted: list[int],
    me: str,
) -> list[Message]:
    """The messages of ``window`` in order, fetching the contents of ``wanted``."""
    contents: dict[int, pb.MessageContent] = {}
    if wanted:
        packet = await request(
            Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq(message_ids=wanted)
        )
        if packet.status != Status.SUCCESS:
            raise RequestRefused(packet.status, error_text(packet))
        for content in packet.parse_body(pb.MessageContentResp).contents:
            contents[content.messageId] = content
    batch: list[Message] = []
    for entry in window:
        fetched = contents.get(entry.message_id)
        if fetched is not None:
            batch.append(synced_message(entry, fetched, me))
            continue
        pending = orderer.pending(entry.message_id)
        if pending is not None:
            batch.append(pending)
        elif store.contains(entry.message_id):
            batch.append(synced_message(entry, pb.MessageContent(), me))
    return batch
