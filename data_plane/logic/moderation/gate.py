"""The send path's moderation step: what ``chat.user.talk`` and ``chat.group.talk`` call
between parsing a message and storing it.

Guarantees:

- A tenant without a hook (the directory's ``moderation`` is None) costs one dict
  lookup and no I/O; its messages pass unchanged. The hook is the one of the tenant
  directory's last good answer: a change applies within one refresh, and while the
  control plane is down the node keeps the hook it knew. A node that never loaded the
  tenant (the control plane down since it started) knows of no hook.
- A resend of a stored message (same sender and ``client_msg_id``; one indexed read) is
  not asked about again: the store answers it as a duplicate with the original id, and
  what was stored — the first verdict's body — stays the only body there is.
- ``allow`` passes the message on. ``reject`` refuses it with Forbidden (403) and
  ``rejected by moderation: <the hook's reason>``; nothing is stored or pushed.
  ``replace`` passes on a copy with the hook's body, which is then what is stored,
  pushed, synced and sent to webhooks and push notifications; a replacement whose push
  would not fit a client packet (the size rule of every client body,
  ``logic.push_size``) counts as a failed answer.
- A failed call (``hook.HookFailed``) lets the message through unchanged when the
  tenant's hook is ``fail_open``, and refuses it with Unavailable (503) otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from data_plane.cluster.tenants import ModerationHook, TenantDirectory
from data_plane.logic.context import Request
from data_plane.logic.moderation.hook import Action, HookClient, HookFailed, Verdict
from data_plane.logic.moderation.metrics import MODERATION_CHECKS, MODERATION_SECONDS
from data_plane.logic.push_size import PushOf, push_size
from data_plane.logic.refusal import Refused
from data_plane.logic.tenant_stores import TenantStores
from data_plane.wire import Status, pb

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 10.0
MAX_LOGGED_TENANTS = 10_000

PushOfReq = Callable[[pb.MessageReq], PushOf]
"""The push builder of a message (``handlers.chat.message_push`` with everything but the
request bound), used to check a replacement's size."""


class ModerationGate:
    """Runs a tenant's moderation hook on a client message (see the module doc)."""

    def __init__(
        self, directory: TenantDirectory | None, stores: TenantStores, client: HookClient
    ) -> None:
        self._directory = directory
        self._stores = stores
        self._client = client
        self._logged: dict[str, float] = {}
        """When each tenant's last hook failure was logged (monotonic seconds)."""

    def _log_failure(self, tenant: str, exc: HookFailed) -> None:
        """Log a tenant's failing hook at most once per :data:`LOG_INTERVAL_S` (a hook
        that is down fails every message; the metric counts them all)."""
        now = time.monotonic()
        if now - self._logged.get(tenant, -LOG_INTERVAL_S) < LOG_INTERVAL_S:
            return
        if len(self._logged) >= MAX_LOGGED_TENANTS:
            self._logged.clear()
        self._logged[tenant] = now
        log.warning("moderation hook of tenant %s failed: %s", tenant, exc)

    async def hook_of(self, tenant: str) -> ModerationHook | None:
        """The tenant's hook as this node last heard of it (a tenant not cached yet is
        looked up: a node that just started does not let its messages pass unchecked)."""
        info = await self._directory.lookup(tenant) if self._directory is not None else None
        return info.moderation if info is not None else None

    async def screen(
        self, request: Request, req: pb.MessageReq, *, receiver: str, group: str, push_of: PushOfReq
    ) -> pb.MessageReq:
        """``req`` as it may be stored (itself, or a copy with the hook's body); raises
        :class:`Refused` when the hook rejects it, or fails and the tenant fails closed."""
        hook = await self.hook_of(request.tenant)
        if hook is None:
            return req
        if req.client_msg_id:
            store = await self._stores.get(request.tenant)
            if await store.is_sent(request.tenant, request.account, req.client_msg_id):
                MODERATION_CHECKS.labels("resent").inc()
                return req
        started = time.perf_counter()
        try:
            verdict = await self._client.ask(hook, _payload(request, req, receiver, group))
            outcome = _apply(verdict, req, request.max_answer_size, push_of)
        except HookFailed as exc:
            MODERATION_CHECKS.labels("failed").inc()
            self._log_failure(request.tenant, exc)
            if hook.fail_open:
                return req
            raise Refused(
                Status.UNAVAILABLE,
                "message not sent: the moderation service is unavailable, try again later",
            ) from exc
        finally:
            MODERATION_SECONDS.observe(time.perf_counter() - started)
        if outcome is None:
            MODERATION_CHECKS.labels("rejected").inc()
            raise Refused(Status.FORBIDDEN, f"rejected by moderation: {verdict.reason}".rstrip())
        MODERATION_CHECKS.labels("rewritten" if outcome is not req else "allowed").inc()
        return outcome


def _apply(
    verdict: Verdict, req: pb.MessageReq, limit: int, push_of: PushOfReq
) -> pb.MessageReq | None:
    """The message a verdict lets through, or None for a rejection."""
    if verdict.action is Action.REJECT:
        return None
    if verdict.action is Action.ALLOW:
        return req
    replaced = pb.MessageReq()
    replaced.CopyFrom(req)
    replaced.body = verdict.body
    size = push_size(push_of(replaced))
    if size > limit:
        raise HookFailed(f"the replacement's push ({size} bytes) exceeds the {limit}-byte limit")
    return replaced


def _payload(request: Request, req: pb.MessageReq, receiver: str, group: str) -> dict[str, object]:
    """The JSON the hook gets (docs/server_api.md, "Moderation hook")."""
    return {
        "type": "message.moderate",
        "tenant": request.tenant,
        "sender": request.account,
        "device": request.device,
        "receiver": receiver,
        "group": group,
        "message": {
            "type": req.type,
            "body": req.body,
            "extra": req.extra,
            "client_msg_id": req.client_msg_id,
        },
    }
