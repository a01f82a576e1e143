"""What the application reads: the message feed and the event feed.

Guarantees
----------
- :meth:`Feeds.message` is called only for messages the store has just taken for the
  first time (see :class:`~cirno_sdk.delivery.Delivery`), so the message feed carries
  each message once, in the order it was delivered.
- Every event goes to the event feed and, if set, to the ``on_event`` callback (on the
  event loop, synchronously); a failing callback is logged and never stops the client.
- After :meth:`Feeds.close` both iterators end, for every later reader too (the end
  marker is put back for the next one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from cirno_sdk.models import Event, Message

log = logging.getLogger("cirno_sdk")


class Feeds:
    """The two unbounded queues between the client's tasks and the application."""

    def __init__(self, *, on_event: Callable[[Event], None] | None) -> None:
        self._on_event = on_event
        self._messages: asyncio.Queue[Message | None] = asyncio.Queue()
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()

    def message(self, message: Message) -> None:
        """Queue a newly stored message for :meth:`messages`."""
        self._messages.put_nowait(message)

    def emit(self, event: Event) -> None:
        """Queue ``event`` for :meth:`events` and call the ``on_event`` callback."""
        self._events.put_nowait(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("on_event callback failed")

    def close(self) -> None:
        """End both iterators (after what is already queued)."""
        self._messages.put_nowait(None)
        self._events.put_nowait(None)

    async def messages(self) -> AsyncIterator[Message]:
        """The queued messages, then the ones to come, until :meth:`close`."""
        while True:
            message = await self._messages.get()
            if message is None:
                self._messages.put_nowait(None)
                return
            yield message

    async def events(self) -> AsyncIterator[Event]:
        """The queued events, then the ones to come, until :meth:`close`."""
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)
                return
            yield event
