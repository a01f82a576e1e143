"""Contents by id: what a lazy sync left out, fetched when the application shows it.

Offline sync (``ClientOptions(content="lazy")``, :mod:`cirno_sdk.sync`) stores and
delivers index entries only (``Message.content_loaded`` False). :class:`Contents`
fetches their bodies with ``chat.offline.content`` when the application opens a
conversation (:meth:`Contents.open`) or reads messages (:meth:`Contents.load`).

Guarantees
----------
- **Bounded requests.** Each content request names at most ``batch`` ids (the server
  takes 200), and only ids whose message is not loaded yet.
- **Fetched once.** A fetched content is written to the store (``Store.fill``) before
  it is returned, and a loaded message (fetched, pushed, or sent by us) is never
  fetched again: a conversation opened twice costs one fetch per body.
- **Retried like every call.** Requests wait for the connection and retry until
  ``request_deadline`` (:mod:`cirno_sdk.calls`); a content request only reads, so a
  repeat is harmless.
- **Gone messages.** The server refuses a whole batch (404) when one of its ids is no
  longer in this account's inbox (deleted with ``chat.delete`` on another device after
  its index was synced). The batch is then split in halves until those ids are found
  (about 2·log2(batch) extra requests per gone id); they are removed from the store and
  left out of the result.
- **Recalls.** A recalled message comes as its tombstone (``recalled``, empty body), as
  from an eager sync or history.
"""

from __future__ import annotations

from collections.abc import Iterable

from cirno_sdk.calls import Caller
from cirno_sdk.convert import with_content
from cirno_sdk.errors import RequestRefused
from cirno_sdk.models import Message
from cirno_sdk.store import Store
from data_plane.wire import Command, Status, pb


class Contents:
    """Loads message contents into the store, ``batch`` ids per request."""

    def __init__(self, calls: Caller, store: Store, *, batch: int, request_deadline: float) -> None:
        if not 1 <= batch <= 200:
            raise ValueError("batch must be between 1 and 200")
        self._calls = calls
        self._store = store
        self._batch = batch
        self._request_deadline = request_deadline

    async def load(self, items: Iterable[Message | int]) -> list[Message]:
        """The messages named (messages or ids), loaded, in the order given (each id
        once). An id the store does not have is left out, unless a ``Message`` was
        given for it (it is loaded, not stored). Messages the server no longer has for
        this account are left out (and removed from the store)."""
        order: list[int] = []
        known: dict[int, Message] = {}
        for item in items:
            message_id = item if isinstance(item, int) else item.message_id
            if message_id in known:
                continue
            found = self._store.get(message_id)
            if found is None and isinstance(item, Message):
                found = item
            if found is None:
                continue
            order.append(message_id)
            known[message_id] = found
        wanted = [i for i in order if not known[i].content_loaded]
        contents = await self._fetch(wanted)
        loaded: list[Message] = []
        for message_id in order:
            message = known[message_id]
            if not message.content_loaded:
                content = contents.get(message_id)
                if content is None:
                    continue  # gone: removed from the store
                message = with_content(message, content)
                self._store.fill(message)
            loaded.append(message)
        return loaded

    async def open(self, peer: str, *, group: bool, limit: int) -> list[Message]:
        """The newest ``limit`` stored messages of the conversation with ``peer`` (or
        of group ``peer``), oldest first, loaded (see :meth:`load`)."""
        return await self.load(self._store.conversation(peer, group=group, limit=limit))

    async def _fetch(self, ids: list[int]) -> dict[int, pb.MessageContent]:
        got: dict[int, pb.MessageContent] = {}
        for start in range(0, len(ids), self._batch):
            got.update(await self._fetch_batch(ids[start : start + self._batch]))
        return got

    async def _fetch_batch(self, ids: list[int]) -> dict[int, pb.MessageContent]:
        try:
            packet = await self._calls.call(
                Command.CHAT_OFFLINE_CONTENT,
                pb.MessageContentReq(message_ids=ids),
                deadline=self._calls.deadline(self._request_deadline),
            )
        except RequestRefused as exc:
            if exc.status != Status.NOT_FOUND:
                raise
            if len(ids) == 1:
                self._store.remove(ids[0])
                return {}
            half = len(ids) // 2
            first = await self._fetch_batch(ids[:half])
            return first | await self._fetch_batch(ids[half:])
        contents = packet.parse_body(pb.MessageContentResp).contents
        return {content.messageId: content for content in contents}
