"""Errors of the SDK: one tree under :class:`CirnoError`.

Statuses are classified in one place (:func:`is_retryable`): 1xx and 4xx are the
caller's problem and are raised; 3xx (and 503) are the server's and are retried by the
client until a deadline, after which :class:`DeadlineExceeded` is raised.
"""

from __future__ import annotations

from data_plane.wire import Status


class CirnoError(Exception):
    """Root of every error the SDK raises."""


class ConnectFailed(CirnoError):
    """The gateway could not be reached (refused, unreachable, handshake failed)."""


class ClientClosed(CirnoError):
    """The client was closed (by :meth:`Client.aclose`, a kickout or a refused relogin)."""


class ConnectionLost(CirnoError):
    """The connection ended while a request was waiting for its response."""


class RequestTimeout(CirnoError):
    """No response arrived within the response timeout."""


class DeadlineExceeded(CirnoError):
    """A request kept failing (timeouts, reconnects, retryable statuses) until its deadline."""


class StatusError(CirnoError):
    """The server answered with a non-zero status; ``message`` is its ``ErrorResp`` text."""

    def __init__(self, status: int, message: str = "") -> None:
        name = _status_name(status)
        super().__init__(f"{name} ({status}): {message}" if message else f"{name} ({status})")
        self.status = status
        self.message = message


class LoginRefused(StatusError):
    """``login.signin`` was refused (bad or expired token, unknown tenant, ...)."""


class SendRefused(StatusError):
    """A message was refused with a 1xx or 4xx status (not retried)."""


class RateLimited(SendRefused):
    """The tenant's message rate was exceeded (429): slow down before sending again."""


class RequestRefused(StatusError):
    """Any other request was refused with a 1xx or 4xx status."""


class KickedOut(ClientClosed):
    """The same account logged in on the same device elsewhere; this client stopped."""


def is_retryable(status: int) -> bool:
    """3xx (system errors) and 503 (unavailable) are worth retrying; 1xx/4xx are not."""
    return 300 <= status < 400 or status == Status.UNAVAILABLE


def _status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return "STATUS"
