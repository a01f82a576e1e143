"""Transport errors: one root, :class:`TransportError`."""

from __future__ import annotations


class TransportError(Exception):
    """Root of the transport errors."""


class ConnectionClosed(TransportError):
    """The connection has ended; ``code`` and ``reason`` say how."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason
