"""The account names a request refers to pass the rule a login account passes.

Every account a message or a group names (a 1:1 ``dest``, group members, the account a
group command acts on) is checked here with ``cluster.identity``'s rule, the one the
control plane and the gateway apply to login accounts: a name no one can log in as
(``a,b{c}``, ``bob\\x00``, 65 characters) is refused before anything is stored, instead
of being stored and delivered nowhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from data_plane.cluster.identity import ACCOUNT_RULE, is_account
from data_plane.logic.refusal import Refused
from data_plane.wire import Status


def account(value: str, what: str, status: Status = Status.INVALID_PACKET_BODY) -> str:
    """``value`` if it is a valid account name, else :class:`Refused` with ``status``."""
    if not is_account(value):
        raise Refused(status, f"{what} {_shown(value)} is not an account: {ACCOUNT_RULE}")
    return value


def receiver(value: str) -> str:
    """A 1:1 ``dest``: refused with NoDestination (100) when it is not an account name."""
    return account(value, "dest", Status.NO_DESTINATION)


def accounts(values: Iterable[str], what: str) -> list[str]:
    """Every one of ``values`` checked with :func:`account` (InvalidPacketBody)."""
    return [account(value, what) for value in values]


def _shown(value: str) -> str:
    """The name as a reason can quote it: escaped, and cut at 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
