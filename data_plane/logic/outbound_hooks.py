"""What the handlers tell the webhook and push machinery, in one place.

Handlers hold an ``OutboundHooks`` and call it after the fact they report has happened
(and after they answered): ``OutboundHooks`` itself does nothing (unit tests, nodes
without outbound delivery); ``LiveOutboundHooks`` writes webhook events
(``webhooks.events``) and queues or cancels push notifications (``notify.offline``).
None of these raise: a failure is logged and counted where it happens.
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.cluster import outbound
from data_plane.logic.notify.offline import OfflineNotifier
from data_plane.logic.webhooks.events import EventRecorder
from data_plane.storage.messages.protocol import Group
from data_plane.storage.sessions.protocol import Location


class OutboundHooks:
    """The calls handlers make; this base does nothing."""

    async def signed_in(self, location: Location, replaced: Location | None) -> None:
        """A device signed in (``replaced``: the connection it kicked out)."""

    async def signed_out(self, tenant: str, account: str, device: str, channel_id: str) -> None:
        """A device signed out or disconnected."""

    async def message_stored(
        self,
        tenant: str,
        recipients: Sequence[str],
        *,
        sender: str,
        group_id: str,
        message_id: int,
        body: str,
    ) -> None:
        """A message to ``recipients`` (its sender left out) was stored and pushed."""

    async def group_created(self, tenant: str, group: Group) -> None:
        """A group was created."""

    async def members_changed(
        self, tenant: str, group_id: str, *, joined: Sequence[str], left: Sequence[str], by: str
    ) -> None:
        """Accounts joined or left a group (``by``: who did it)."""

    async def group_dismissed(self, tenant: str, group_id: str, by: str) -> None:
        """A group was dismissed (deleted)."""

    async def kicked(self, location: Location, reason: str) -> None:
        """The tenant's backend kicked a connection (server API)."""


class LiveOutboundHooks(OutboundHooks):
    """Webhook events and push notifications (see the module docstring)."""

    def __init__(self, events: EventRecorder, notifier: OfflineNotifier) -> None:
        self._events = events
        self._notifier = notifier

    async def signed_in(self, location: Location, replaced: Location | None) -> None:
        """Record ``login`` (and ``kickout`` of the replaced connection); cancel pending
        notifications of the account."""
        tenant = location.tenant
        await self._events.record(
            tenant,
            outbound.LOGIN,
            {
                "account": location.account,
                "device": location.device,
                "channel_id": location.channel_id,
                "gateway_id": location.gateway_id,
                "client_version": location.client_version,
            },
        )
        if replaced is not None:
            await self._events.record(
                tenant,
                outbound.KICKOUT,
                {
                    "account": replaced.account,
                    "device": replaced.device,
                    "channel_id": replaced.channel_id,
                    "reason": "signed in again on the same device",
                },
            )
        await self._notifier.online(tenant, location.account)

    async def kicked(self, location: Location, reason: str) -> None:
        """Record ``kickout`` with the backend's reason."""
        await self._events.record(
            location.tenant,
            outbound.KICKOUT,
            {
                "account": location.account,
                "device": location.device,
                "channel_id": location.channel_id,
                "reason": reason or "kicked by the server API",
            },
        )

    async def signed_out(self, tenant: str, account: str, device: str, channel_id: str) -> None:
        """Record ``logout``."""
        await self._events.record(
            tenant,
            outbound.LOGOUT,
            {"account": account, "device": device, "channel_id": channel_id},
        )

    async def message_stored(
        self,
        tenant: str,
        recipients: Sequence[str],
        *,
        sender: str,
        group_id: str,
        message_id: int,
        body: str,
    ) -> None:
        """Queue push notifications for the recipients with no device online."""
        await self._notifier.offline(
            tenant,
            recipients,
            sender=sender,
            group_id=group_id,
            message_id=message_id,
            preview=body,
        )

    async def group_created(self, tenant: str, group: Group) -> None:
        """Record ``group.created``."""
        await self._events.record(
            tenant,
            outbound.GROUP_CREATED,
            {
                "group_id": group.group_id,
                "name": group.name,
                "owner": group.owner,
                "members": [m.account for m in group.members],
                "created_at": group.created_at,
            },
        )

    async def members_changed(
        self, tenant: str, group_id: str, *, joined: Sequence[str], left: Sequence[str], by: str
    ) -> None:
        """Record ``group.members_changed``."""
        await self._events.record(
            tenant,
            outbound.GROUP_MEMBERS_CHANGED,
            {"group_id": group_id, "joined": list(joined), "left": list(left), "by": by},
        )

    async def group_dismissed(self, tenant: str, group_id: str, by: str) -> None:
        """Record ``group.dismissed``."""
        await self._events.record(
            tenant, outbound.GROUP_DISMISSED, {"group_id": group_id, "by": by}
        )
