"""Requests that outlive a connection: wait for the link, retry until a deadline.

Guarantees
----------
- A call is sent only on a logged-in connection; while the client is offline it waits
  (reconnecting is the session runner's job) until its deadline.
- After a lost connection or a response timeout the *same* request body is sent again
  -- for a message the same ``client_msg_id``, so the server stores it once -- unless
  the caller said ``retry_unanswered=False`` (the request may have been carried out and
  is not idempotent). Each unanswered attempt doubles the response timeout.
- A 3xx status is retried after a pause (50 ms doubling up to 2 s); 1xx/4xx statuses
  raise the caller's ``refused`` error (``RateLimited`` for a rate-limited send).
- Nothing is retried past the deadline: the last error, or ``DeadlineExceeded``.
"""

from __future__ import annotations

import asyncio
import time

from google.protobuf.message import Message as ProtoMessage

from cirno_sdk.errors import (
    ConnectionLost,
    DeadlineExceeded,
    RateLimited,
    RequestRefused,
    RequestTimeout,
    SendRefused,
    StatusError,
    is_retryable,
)
from cirno_sdk.link import Clock, Link
from cirno_sdk.sync import error_text
from data_plane.wire import LogicPacket, Status


class Caller:
    """Retrying requests over a :class:`~cirno_sdk.link.Link`.

    ``response_timeout`` is the first attempt's wait for a response.
    """

    def __init__(
        self, link: Link, *, response_timeout: float, clock: Clock = time.monotonic
    ) -> None:
        self._link = link
        self._clock = clock
        self.response_timeout = response_timeout

    def deadline(self, after: float) -> float:
        """The deadline ``after`` seconds from now, on this caller's clock."""
        return self._clock() + after

    async def call(
        self,
        command: str,
        body: ProtoMessage,
        *,
        dest: str = "",
        deadline: float,
        retry_unanswered: bool = True,
        refused: type[StatusError] = RequestRefused,
    ) -> LogicPacket:
        """A request that waits for the connection and retries until ``deadline``.

        Retries after a lost connection or a response timeout (only when
        ``retry_unanswered``: the request may have been carried out) and on 3xx
        statuses. Raises ``refused`` for 1xx/4xx statuses.
        """
        timeout = self.response_timeout
        pause = 0.05
        while True:
            transport = await self._link.wait_online(deadline)
            remaining = deadline - self._clock()
            try:
                packet = await self._link.request(
                    transport, command, body, dest=dest, timeout=min(timeout, remaining)
                )
            except (RequestTimeout, ConnectionLost):
                if not retry_unanswered or self._clock() >= deadline:
                    raise
                timeout *= 2
                continue
            if packet.status == Status.SUCCESS:
                return packet
            if not is_retryable(packet.status):
                if refused is SendRefused and packet.status == Status.RATE_LIMITED:
                    raise RateLimited(packet.status, error_text(packet))
                raise refused(packet.status, error_text(packet))
            if self._clock() + pause >= deadline:
                raise DeadlineExceeded(f"{command} kept failing with status {packet.status}")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
