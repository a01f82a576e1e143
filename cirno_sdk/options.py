"""Tuning knobs of :class:`~cirno_sdk.Client`, with the protocol's defaults.

Durations are seconds, except ``ack_interval`` which is milliseconds (as kim clients
configure it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cirno_sdk.models import Event
from data_plane.wire import DEFAULT_MAX_PACKET_SIZE

ContentMode = Literal["lazy", "eager"]
"""How offline sync treats message contents (``ClientOptions.content``)."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How a client times out, retries, pings, acks and orders.

    - ``response_timeout``: wait this long for a response before resending (a send) or
      retrying (idempotent requests); doubles on every retry of the same request.
    - ``send_deadline``: give up on a send (``DeadlineExceeded``) after this long,
      counting reconnects; ``request_deadline`` likewise for other requests.
    - ``connect_timeout``: per connection attempt (TCP connect plus WebSocket upgrade);
      ``first_connect_deadline``: how long ``async with Client(...)`` keeps retrying.
    - ``ping_interval``: BasicPkt ping period; ``read_timeout``: reconnect when nothing at
      all arrived for this long (kim: 55 s and 165 s; the server closes after 180 s).
    - ``backoff_*``: reconnect delays, exponential with jitter (see ``Backoff``).
    - ``ack_interval`` (ms) / ``ack_every`` (messages): batched ack of the newest
      stored message, whichever comes first.
    - ``gap_wait``: how long a group message waits for a missing earlier one.
    - ``pull_interval``: a connected client syncs after this long without a push or a
      sync, scaled by a random factor within ``pull_jitter`` (0.2 = ±20 %); this bounds
      how late a lost push can be. 0 disables the idle pull (see ``cirno_sdk.pull``).
    - ``content``: ``"lazy"`` (the default, the seed's design): offline sync fetches
      only index pages and delivers messages with ``content_loaded`` False; contents
      are fetched by id, ``content_batch`` at a time, when the application calls
      ``Client.load_contents`` or ``Client.open_conversation``, so a long-offline
      device is not held up by bodies it may never show. Only the catch-up after a
      login is lazy: a later sync of the connection (a gap fill, the idle pull) finds
      live messages whose push went missing and loads them. ``"eager"``: sync fetches
      every new message's content right after its index page (``content_batch`` ids
      per request) and delivers messages loaded.
    - ``content_batch``: at most this many ids per ``chat.offline.content`` request
      (the server takes at most 200).
    - ``on_event``: called (on the event loop) with every event, besides ``events()``.
    """

    response_timeout: float = 10.0
    send_deadline: float = 60.0
    request_deadline: float = 30.0
    connect_timeout: float = 10.0
    first_connect_deadline: float = 30.0
    ping_interval: float = 55.0
    read_timeout: float = 165.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_multiplier: float = 2.0
    backoff_jitter: float = 0.5
    ack_interval: int = 500
    ack_every: int = 50
    gap_wait: float = 3.0
    pull_interval: float = 30.0
    pull_jitter: float = 0.2
    content: ContentMode = "lazy"
    content_batch: int = 200
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    on_event: Callable[[Event], None] | None = None

    def __post_init__(self) -> None:
        if self.content not in ("lazy", "eager"):
            raise ValueError(f"content must be 'lazy' or 'eager', not {self.content!r}")
        if not 1 <= self.content_batch <= 200:
            raise ValueError("content_batch must be between 1 and 200")
