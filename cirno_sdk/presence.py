"""Presence and typing: follow accounts, send typing indicators, turn their pushes
into events.

Guarantees
----------
- Subscriptions are the server's per *connection*; this module remembers the accounts
  the application follows and subscribes to them again on every later login (after a
  reconnect), emitting a :class:`~cirno_sdk.models.PresenceChanged` (``at=0``) for each
  followed account's state then, so a change missed while offline is corrected.
- Presence and typing pushes become :class:`~cirno_sdk.models.PresenceChanged` and
  :class:`~cirno_sdk.models.Typing` events, at most once each (the server pushes them
  best effort and never stores them; they are not messages and never touch the inbox
  order or the store).
- :meth:`Presence.typing` is sent once, never retried (a late indicator is worse than
  none); the server allows one per 2 s per conversation and connection, and a refused
  one returns False.
- Every other push goes to the wrapped session parts (message delivery) unchanged.
"""

from __future__ import annotations

import asyncio
import logging

from cirno_sdk.calls import Caller
from cirno_sdk.errors import CirnoError, RequestRefused
from cirno_sdk.feeds import Feeds
from cirno_sdk.models import PresenceChanged, Typing
from cirno_sdk.session import SessionParts
from cirno_sdk.transport import Transport
from data_plane.wire import Command, LogicPacket, Status, pb

log = logging.getLogger("cirno_sdk")

MAX_SUBSCRIPTIONS = 200
"""The server's bound on the accounts one connection follows."""


class Presence:
    """Presence subscriptions and typing on behalf of one client; also the session
    parts the runner sees (presence and typing pushes here, the rest to ``inner``)."""

    def __init__(
        self, calls: Caller, feeds: Feeds, inner: SessionParts, *, request_deadline: float
    ) -> None:
        self._calls = calls
        self._feeds = feeds
        self._inner = inner
        self._request_deadline = request_deadline
        self._followed: dict[str, None] = {}  # insertion-ordered set
        self._sessions = 0

    # -- the public API's calls ----------------------------------------------------------

    async def subscribe(self, accounts: list[str]) -> dict[str, bool]:
        """Follow ``accounts``; their online states now. Raises RequestRefused (413)
        beyond :data:`MAX_SUBSCRIPTIONS`."""
        states = await self._subscribe(accounts)
        self._followed.update(dict.fromkeys(accounts))
        return states

    async def unsubscribe(self, accounts: list[str]) -> None:
        """Stop following ``accounts``."""
        for account in accounts:
            self._followed.pop(account, None)
        await self._calls.call(
            Command.PRESENCE_UNSUBSCRIBE,
            pb.PresenceSubscribeReq(accounts=accounts),
            deadline=self._calls.deadline(self._request_deadline),
        )

    async def typing(self, to: str, *, group: bool, stopped: bool) -> bool:
        """Tell ``to`` (a peer, or a group) that we are typing; False when the server
        rate-limited it. Raises RequestRefused for a group we are not in (403), an
        unknown group (410) or one too large for typing indicators (413)."""
        if group:
            req = pb.TypingReq(group=to, stopped=stopped)
        else:
            req = pb.TypingReq(peer=to, stopped=stopped)
        try:
            await self._calls.call(
                Command.CHAT_TYPING,
                req,
                deadline=self._calls.deadline(self._calls.response_timeout),
                retry_unanswered=False,
            )
        except RequestRefused as exc:
            if exc.status == Status.RATE_LIMITED:
                return False
            raise
        return True

    @property
    def followed(self) -> tuple[str, ...]:
        """The accounts followed, in the order first followed."""
        return tuple(self._followed)

    async def _subscribe(self, accounts: list[str]) -> dict[str, bool]:
        packet = await self._calls.call(
            Command.PRESENCE_SUBSCRIBE,
            pb.PresenceSubscribeReq(accounts=accounts),
            deadline=self._calls.deadline(self._request_deadline),
        )
        resp = packet.parse_body(pb.PresenceSubscribeResp)
        return {state.account: state.online for state in resp.states}

    # -- SessionParts --------------------------------------------------------------------

    def session_starting(self) -> None:
        """See :class:`SessionParts`."""
        self._inner.session_starting()

    def logged_in(self) -> None:
        """See :class:`SessionParts`."""
        self._sessions += 1
        self._inner.logged_in()

    def on_push(self, packet: LogicPacket) -> None:
        """Presence and typing pushes become events; the rest go to the inner parts."""
        if packet.command == Command.PRESENCE_SUBSCRIBE:
            notify = packet.parse_body(pb.PresenceNotify)
            self._feeds.emit(PresenceChanged(notify.account, notify.online, notify.at))
        elif packet.command == Command.CHAT_TYPING:
            typing = packet.parse_body(pb.TypingNotify)
            self._feeds.emit(Typing(typing.account, typing.group, typing.stopped))
        else:
            self._inner.on_push(packet)

    async def serve(self, transport: Transport) -> None:
        """The inner parts' work, and after a reconnect a re-subscribe."""
        if self._sessions <= 1 or not self._followed:
            await self._inner.serve(transport)
            return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._inner.serve(transport))
            tg.create_task(self._resubscribe())

    async def _resubscribe(self) -> None:
        accounts = list(self._followed)
        try:
            states = await self._subscribe(accounts)
        except CirnoError as exc:
            log.warning("presence re-subscribe failed: %s", exc)
            return
        for account, online in states.items():
            self._feeds.emit(PresenceChanged(account, online, 0))
