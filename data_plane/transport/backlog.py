"""How many not yet accepted connections a listener may queue: the kernel's ceiling.

asyncio listens with a backlog of 100. A login burst (a thousand clients reconnecting
after a gateway restart) overflows that queue while the loop is busy, the kernel drops
the SYNs beyond it, and each dropped client retries a second later (TCP's initial
retransmission timeout): a p99 of over a second with the server mostly idle. Listening
with the kernel's ``somaxconn`` instead lets the queue absorb the burst; a backlog above
``somaxconn`` is silently cut to it, so asking for more gains nothing.
"""

from __future__ import annotations

from pathlib import Path

SOMAXCONN_PATH = Path("/proc/sys/net/core/somaxconn")
FALLBACK_BACKLOG = 4096
"""Linux's default ``somaxconn`` since 5.4, used where the file cannot be read."""


def listen_backlog(path: Path = SOMAXCONN_PATH) -> int:
    """The kernel's ``somaxconn`` (``FALLBACK_BACKLOG`` when it cannot be read)."""
    try:
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return FALLBACK_BACKLOG
    return value if value > 0 else FALLBACK_BACKLOG
