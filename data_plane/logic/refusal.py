"""``Refused``: a handler's way to answer a request with a status and a reason.

A handler (or a helper it calls) raises :class:`Refused` anywhere below it; the router
answers with the status and an ``ErrorResp`` holding the reason. The rules many handlers
share raise it from one place each: account names (:mod:`.names`), the size of a push
(:mod:`.push_size`) and group visibility (``handlers.group_access``).
"""

from __future__ import annotations

from data_plane.wire import Status


class Refused(Exception):
    """Answer the request with ``status`` and ``reason`` (nothing was changed)."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
