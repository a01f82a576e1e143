"""In-process implementations of the storage Protocols.

They keep the same promises as the real backends inside one process: every critical
section runs without an ``await`` in it, so asyncio tasks never interleave inside one.
Each public coroutine yields to the event loop once before its critical section, as an
I/O-backed store would, so callers cannot come to rely on it never yielding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from anyio.lowlevel import checkpoint

from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.memory_presence import MemoryPresence
from data_plane.storage.sessions.protocol import Location

_AccountKey = tuple[str, str]


class MemorySessionStore(MemoryPresence):
    """A :class:`~data_plane.storage.sessions.protocol.SessionStore` in dicts, for one logic node.

    Presence (announced states and watches) comes from :class:`MemoryPresence`.

    Locations live as long as the store; there is no TTL. After :meth:`aclose` every
    method raises ``SessionStoreUnavailable``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._accounts: dict[_AccountKey, dict[str, Location]] = {}
        self._closed = False

    async def add_location(self, location: Location) -> Location | None:
        """See :meth:`SessionStore.add_location`."""
        await self._enter()
        devices = self._accounts.setdefault((location.tenant, location.account), {})
        previous = devices.get(location.device)
        devices[location.device] = location
        if previous is None or previous.channel_id == location.channel_id:
            return None
        return previous

    async def refresh_location(self, location: Location) -> bool:
        """See :meth:`SessionStore.refresh_location`."""
        await self._enter()
        devices = self._accounts.setdefault((location.tenant, location.account), {})
        current = devices.get(location.device)
        if current is not None and current.channel_id != location.channel_id:
            return False
        devices[location.device] = location
        return True

    async def remove_location(
        self, tenant: str, account: str, device: str, channel_id: str
    ) -> bool:
        """See :meth:`SessionStore.remove_location`."""
        await self._enter()
        return self._remove(tenant, account, device, channel_id, None)

    async def get_locations(self, tenant: str, account: str) -> list[Location]:
        """See :meth:`SessionStore.get_locations`."""
        await self._enter()
        return self._sorted(tenant, account)

    async def get_locations_many(
        self, tenant: str, accounts: Sequence[str]
    ) -> dict[str, list[Location]]:
        """See :meth:`SessionStore.get_locations_many`."""
        await self._enter()
        found: dict[str, list[Location]] = {}
        for account in accounts:
            locations = self._sorted(tenant, account)
            if locations:
                found[account] = locations
        return found

    async def get_session(self, tenant: str, account: str, channel_id: str) -> Location | None:
        """See :meth:`SessionStore.get_session`."""
        await self._enter()
        for location in self._accounts.get((tenant, account), {}).values():
            if location.channel_id == channel_id:
                return location
        return None

    async def remove_gateway(self, gateway_id: str, locations: Iterable[Location]) -> int:
        """See :meth:`SessionStore.remove_gateway`."""
        await self._enter()
        return sum(
            self._remove(loc.tenant, loc.account, loc.device, loc.channel_id, gateway_id)
            for loc in locations
        )

    async def ping(self) -> float:
        """See :meth:`SessionStore.ping`: the backend is this process; 0.0 while open."""
        await self._enter()
        return 0.0

    async def aclose(self) -> None:
        """See :meth:`SessionStore.aclose`."""
        self._closed = True
        self._accounts.clear()
        self._clear_presence()

    async def _enter(self) -> None:
        await checkpoint()
        if self._closed:
            raise SessionStoreUnavailable("the memory session store is closed")

    def _sorted(self, tenant: str, account: str) -> list[Location]:
        devices = self._accounts.get((tenant, account), {})
        return [devices[device] for device in sorted(devices)]

    def _remove(
        self, tenant: str, account: str, device: str, channel_id: str, gateway_id: str | None
    ) -> bool:
        devices = self._accounts.get((tenant, account))
        if devices is None:
            return False
        current = devices.get(device)
        if current is None or current.channel_id != channel_id:
            return False
        if gateway_id is not None and current.gateway_id != gateway_id:
            return False
        del devices[device]
        if not devices:
            del self._accounts[(tenant, account)]
        return True
