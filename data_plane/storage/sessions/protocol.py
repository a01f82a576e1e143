"""The session store: where each device of an account is connected.

Theory of operation. A login on a gateway channel makes that channel the *location* of
its (tenant, account, device); the location record doubles as the channel's session.
Each device has at most one location, so a new login on the same device replaces the
old one and the caller kicks the connection it replaced; other devices of the account
are untouched and all of them receive pushes. A logout or disconnect removes a location
only if it still belongs to the disconnecting channel (compare-and-delete), so a stale
logout never removes the newer login that replaced it.

Implementations live beside this module: ``memory.py`` (one process) and ``redis.py``
(Redis or Redis Cluster). ``tests/storage/test_session_contract.py`` holds the promises
below to every one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.presence import PresenceStore


@dataclass(frozen=True, slots=True)
class Location:
    """Where one device of an account is connected; also the session of that channel.

    ``login_at`` is in milliseconds since the epoch. ``channel_id`` names the connection
    on its gateway ``gateway_id``; a push to this device goes to that gateway, addressed
    to that channel.
    """

    tenant: str
    account: str
    device: str
    channel_id: str
    gateway_id: str
    login_at: int
    client_version: str = ""
    zone: str = ""


class LocationsUnavailable(SessionStoreUnavailable):
    """Some accounts of a lookup could not be read; the others were.

    Redis Cluster reads each account from the master that owns its slot, so one failing
    master fails only the accounts in its slots. ``found`` holds the locations of the
    accounts that were read (absent accounts have none, as in the normal result) and
    ``unavailable`` the accounts that were not, in the order asked; the cause of the
    first failure is chained as ``__cause__``.
    """

    def __init__(
        self, message: str, found: dict[str, list[Location]], unavailable: list[str]
    ) -> None:
        super().__init__(message)
        self.found = found
        self.unavailable = unavailable


class SessionStore(PresenceStore, Protocol):
    """Locations per (tenant, account, device), and presence (:mod:`.presence`).

    Guarantees every implementation keeps:

    - **One location per device.** At any time a (tenant, account, device) has at most one
      location. Tenants are isolated: the same account name in two tenants names two
      accounts.
    - **Atomic replace.** ``add_location`` reads the previous location and stores the new
      one in one atomic step, so among concurrent logins on one device exactly one ends up
      stored and every other one is returned as "previous" to exactly one caller.
    - **Compare-and-delete.** A location is removed only by the channel that holds it.
    - **Unavailability is one error.** When the backend is unreachable or times out, every
      method raises :class:`~data_plane.storage.errors.SessionStoreUnavailable` (the
      backend's exception chained as its cause), never a backend-specific exception.

    Nothing is promised about expiry unless the implementation documents a TTL; the
    gateway that owns a channel is responsible for removing its locations.
    """

    async def add_location(self, location: Location) -> Location | None:
        """Make ``location`` the location of its (tenant, account, device), atomically.

        Returns the location it replaced when that one had a different ``channel_id``
        (the caller kicks that connection), else ``None`` — also when the same channel
        logs in again, in which case the stored record is refreshed with ``location``.
        """
        ...

    async def refresh_location(self, location: Location) -> bool:
        """Re-assert a live channel's location without ever displacing a newer login.

        Atomic: stores ``location`` if its device has no location or one with the same
        channel id (and, with a TTL, extends it); returns False and changes nothing when
        another channel holds the device. Gateways call it periodically for every live
        channel, so locations come back after the store lost them (a Redis restart)
        and, with a TTL, locations of a crashed gateway expire.
        """
        ...

    async def remove_location(
        self, tenant: str, account: str, device: str, channel_id: str
    ) -> bool:
        """Remove the device's location only if it still belongs to ``channel_id``.

        Atomic compare-and-delete: a stale logout (its channel already replaced by a newer
        login) removes nothing and returns ``False``. Returns whether it removed.
        """
        ...

    async def get_locations(self, tenant: str, account: str) -> list[Location]:
        """All locations of the account, one per device, sorted by device."""
        ...

    async def get_locations_many(
        self, tenant: str, accounts: Sequence[str]
    ) -> dict[str, list[Location]]:
        """Locations of many accounts at once, each list sorted by device.

        Accounts with no location are absent from the result; duplicates in ``accounts``
        are looked up once. Remote implementations batch the lookups (one round trip per
        chunk of accounts), so this is the call for a group push, and may coalesce
        concurrent calls (and ``get_locations``) into shared round trips, so a push per
        message does not cost a round trip per message; each caller still gets exactly
        its own accounts' locations, and a cancelled caller does not disturb the others.
        The result is not a snapshot: each account is read atomically, the accounts not
        together.

        When the backend fails for only some of the accounts (one master of a Redis
        Cluster), the call raises :class:`LocationsUnavailable`, which carries the
        locations of the accounts that were read and names the others, so a push can
        go out to those it found and be retried for the rest. When it fails for all of
        them it may raise plain ``SessionStoreUnavailable``.
        """
        ...

    async def get_session(self, tenant: str, account: str, channel_id: str) -> Location | None:
        """The account's location held by ``channel_id``, or ``None``."""
        ...

    async def remove_gateway(self, gateway_id: str, locations: Iterable[Location]) -> int:
        """Remove ``locations`` of a gateway that went away; return how many were removed.

        Each one is a compare-and-delete as in :meth:`remove_location`, and additionally
        removed only while the stored location is on ``gateway_id``, so a device that has
        since logged in elsewhere keeps its new location. The removals are independent:
        not one atomic step.
        """
        ...

    async def ping(self) -> float:
        """Check that the backend answers; the seconds its answer took.

        Raises ``SessionStoreUnavailable`` when it does not answer, or once the store
        was closed.
        """
        ...

    async def aclose(self) -> None:
        """Release the backend's connections. The store must not be used afterwards."""
        ...
