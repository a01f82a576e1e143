"""Command → handler routing with one place that turns failures into statuses.

An unknown command gets NotImplemented (301), and so does a command of a service this
node does not run (a gateway should not have sent it here: the answer says which
service it needs, and ``cirno_logic_requests_total`` counts it as ``not_served``).
A handler that raises gets SystemException (300) and the node goes on; an unavailable
store is reported the same way with a reason the client can show (the client may retry:
nothing was acknowledged).
Logical storage errors map to their own statuses: invalid field → InvalidPacketBody,
unknown message or group → NotFound (410), not a member or not the sender → Forbidden
(403), a recall after its window → Expired (440); a handler's ``Refused`` gets its own
status and reason.

``cirno_logic_requests_total`` counts each request by the status it was answered with
(:func:`outcome_of`): ``ok``, ``client_error`` for the client's mistakes (a bad body,
an unknown group, not a member, too large: the client must change the request) and
``error`` for the server's faults (SystemException, Unavailable), the ones to alert on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from data_plane.logic.context import Request
from data_plane.logic.refusal import Refused
from data_plane.metrics import REQUEST_SECONDS, REQUESTS
from data_plane.storage.errors import StorageError
from data_plane.storage.messages.conversation_protocol import NotTheSender, RecallExpired
from data_plane.storage.messages.protocol import (
    GroupNotFound,
    InvalidField,
    NotAMember,
    UnknownMessage,
)
from data_plane.wire import MalformedPacket, Status

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[None]]

_OUTCOMES = ("ok", "client_error", "error")

_SERVER_FAULTS = frozenset({Status.SYSTEM_EXCEPTION, Status.UNAVAILABLE})


def outcome_of(status: int) -> str:
    """The ``outcome`` label of a request answered with ``status`` (-1: never answered,
    which only a handler fault leaves behind)."""
    if status == Status.SUCCESS:
        return "ok"
    if status in _SERVER_FAULTS or status < 0:
        return "error"
    return "client_error"


class Router:
    """Dispatches requests by command."""

    def __init__(
        self, handlers: Mapping[str, Handler], not_served: Mapping[str, str] | None = None
    ) -> None:
        """``handlers`` by command; ``not_served`` maps the commands of the services this
        node does not run to the reason given to whoever sends one."""
        self._handlers: dict[str, Handler] = {str(c): h for c, h in handlers.items()}
        self._not_served = {str(c): reason for c, reason in (not_served or {}).items()}
        # The metric children of every (command, outcome), looked up once here:
        # ``labels()`` hashes and locks on every call, once per request otherwise.
        self._counted = {
            (command, outcome): REQUESTS.labels(command, outcome)
            for command in self._handlers
            for outcome in _OUTCOMES
        }
        self._timed = {command: REQUEST_SECONDS.labels(command) for command in self._handlers}
        self._unknown = REQUESTS.labels("unknown", "not_implemented")
        self._refused = {c: REQUESTS.labels(c, "not_served") for c in self._not_served}

    def _refuse(self, request: Request) -> None:
        command = request.packet.command
        reason = self._not_served.get(command)
        if reason is None:
            request.fail(Status.NOT_IMPLEMENTED, f"unknown command {command!r}")
            self._unknown.inc()
        else:
            request.fail(Status.NOT_IMPLEMENTED, reason)
            self._refused[command].inc()

    async def dispatch(self, request: Request) -> None:
        """Run the handler of ``request``'s command; never raises (but cancellation)."""
        command = request.packet.command
        handler = self._handlers.get(command)
        if handler is None:
            self._refuse(request)
            return
        started = time.perf_counter()
        try:
            await handler(request)
        except Refused as exc:
            request.fail(exc.status, exc.reason)
        except MalformedPacket as exc:
            request.fail(Status.INVALID_PACKET_BODY, f"bad request body: {exc}")
        except InvalidField as exc:
            request.fail(Status.INVALID_PACKET_BODY, str(exc))
        except (UnknownMessage, GroupNotFound) as exc:
            request.fail(Status.NOT_FOUND, str(exc))
        except (NotAMember, NotTheSender) as exc:
            request.fail(Status.FORBIDDEN, str(exc))
        except RecallExpired as exc:
            request.fail(Status.EXPIRED, str(exc))
        except StorageError as exc:
            log.warning("%s failed: storage: %s", request.packet.command, exc)
            request.fail(Status.SYSTEM_EXCEPTION, f"storage unavailable: {exc}")
        except Exception:
            log.exception("handler of %s failed", request.packet.command)
            request.fail(Status.SYSTEM_EXCEPTION, "internal error")
        finally:
            self._counted[command, outcome_of(request.answered)].inc()
            self._timed[command].observe(time.perf_counter() - started)
