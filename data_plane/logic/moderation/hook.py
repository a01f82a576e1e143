"""Calling a tenant's moderation hook: one signed POST, one bounded answer, one verdict.

The request is JSON (docs/server_api.md, "Moderation hook") signed like a webhook
(Standard Webhooks: ``webhook-id`` ``mod_…``, ``webhook-timestamp``,
``webhook-signature`` with the tenant's hook secret; ``webhooks.signing``). The answer
must be a 2xx with a JSON object ``{"action": "allow" | "reject" | "replace", ...}``:
``reject`` may carry a ``reason`` (cut to :data:`MAX_REASON_CHARS`), ``replace`` must
carry the new ``body`` (a string). Anything else — a refused connection, no answer
within the deadline, another status, an answer over ``max_answer_bytes``, JSON that is
not such an object — raises :class:`HookFailed`; the caller applies the tenant's
fail-open or fail-closed setting.

Bounds: the deadline covers everything (waiting for one of the node's ``concurrency``
call slots, connecting, sending, reading) and is capped at
``MODERATION_DEADLINE_MAX_MS``; the answer is read up to ``max_answer_bytes`` and no
further.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import anyio
import httpx

from data_plane.cluster.tenants import MODERATION_DEADLINE_MAX_MS, ModerationHook
from data_plane.logic.moderation.metrics import MODERATION_IN_FLIGHT
from data_plane.logic.webhooks.signing import signed_headers

MAX_REASON_CHARS = 256
"""Characters of a hook's rejection reason passed on to the sender."""
DEFAULT_CONCURRENCY = 256
DEFAULT_MAX_ANSWER_BYTES = 256 * 1024
"""Above the largest body a client may send (a 64 KiB packet), JSON-escaped."""
_ERROR_CHARS = 120


class Action(StrEnum):
    """What the hook decided."""

    ALLOW = "allow"
    REJECT = "reject"
    REPLACE = "replace"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The hook's decision: ``reason`` for a rejection, ``body`` for a replacement."""

    action: Action
    reason: str = ""
    body: str = ""


class HookFailed(Exception):
    """The hook gave no usable answer (the message says why, for logs and metrics)."""


def parse_answer(status: int, content: bytes) -> Verdict:
    """The verdict of a hook's answer; raises :class:`HookFailed` when it is not one."""
    if not 200 <= status < 300:
        raise HookFailed(f"the hook answered HTTP {status}")
    try:
        answer = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HookFailed("the hook's answer is not JSON") from exc
    if not isinstance(answer, dict):
        raise HookFailed("the hook's answer is not a JSON object")
    try:
        action = Action(str(answer.get("action")))
    except ValueError:
        raise HookFailed(f"unknown action {str(answer.get('action'))[:_ERROR_CHARS]!r}") from None
    if action is Action.REJECT:
        reason = answer.get("reason", "")
        if not isinstance(reason, str):
            raise HookFailed("a rejection's reason must be a string")
        return Verdict(action, reason=reason[:MAX_REASON_CHARS])
    if action is Action.REPLACE:
        body = answer.get("body")
        if not isinstance(body, str):
            raise HookFailed("a replacement needs the new body as a string")
        return Verdict(action, body=body)
    return Verdict(action)


class HookClient:
    """Asks moderation hooks; at most ``concurrency`` calls at once on this node."""

    def __init__(
        self,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._slots = anyio.CapacityLimiter(concurrency)
        self._max_answer = max_answer_bytes
        self._clock = wall_clock
        self._client = httpx.AsyncClient(
            timeout=MODERATION_DEADLINE_MAX_MS / 1000,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=32),
            follow_redirects=False,
        )

    async def ask(self, hook: ModerationHook, payload: Mapping[str, object]) -> Verdict:
        """POST ``payload`` to the hook and return its verdict (see the module doc)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        msg_id = "mod_" + secrets.token_hex(12)
        deadline_s = min(hook.deadline_ms, MODERATION_DEADLINE_MAX_MS) / 1000
        with anyio.move_on_after(deadline_s):
            async with self._slots:
                MODERATION_IN_FLIGHT.inc()
                try:
                    headers = signed_headers(hook.secret, msg_id, int(self._clock()), body)
                    status, content = await self._post(hook.url, body, headers)
                finally:
                    MODERATION_IN_FLIGHT.dec()
            return parse_answer(status, content)
        raise HookFailed(f"no answer within {deadline_s * 1000:.0f} ms")

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            async with self._client.stream("POST", url, content=body, headers=headers) as answer:
                content = bytearray()
                async for chunk in answer.aiter_bytes():
                    content += chunk
                    if len(content) > self._max_answer:
                        raise HookFailed(f"the hook's answer exceeds {self._max_answer} bytes")
                return answer.status_code, bytes(content)
        except httpx.HTTPError as exc:
            raise HookFailed(f"{type(exc).__name__}: {str(exc)[:_ERROR_CHARS]}") from exc

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
