"""Logic services: the named groups of commands a logic node may run.

As in kim, a command's service is read off its name's prefix, so a gateway routes a
packet without decoding its body. kim cuts at the first dot (``login``, ``chat``);
cirno-im also splits ``chat`` into its three families, the longest prefix winning:

- ``login.``  → ``login``: ``login.signin``, ``login.signout``
- ``session.`` → ``login``: ``session.refresh`` (the gateway re-asserting a location)
- ``push.`` → ``login``: ``push.register``, ``push.unregister`` (a device's push token,
  like its location, belongs with the sign-in)
- ``presence.`` → ``login``: ``presence.subscribe``, ``presence.unsubscribe`` (presence
  lives in the session store, beside the locations that sign-in and sign-out change)
- ``chat.group.`` → ``group``: ``chat.group.create|join|quit|detail|members|talk`` and the
  administration commands (``dismiss|transfer|update|admin|mute|apply|approve|applications``)
- ``chat.offline.`` → ``sync``: ``chat.offline.index``, ``chat.offline.content``
- ``sync.`` → ``sync``: ``sync.fill``, ``sync.heads`` (a gateway's own, never a client's)
- ``chat.`` → ``chat``: ``chat.user.talk``, ``chat.talk.ack``, ``chat.typing``, and the
  conversation commands ``chat.conversation.list``, ``chat.history``, ``chat.read``,
  ``chat.read.count``, ``chat.recall``, ``chat.delete`` (they read and write the store
  every service shares; read receipts and recalls push like typing, unsequenced)

``chat.talk.ack`` stays in ``chat`` (its prefix says so): the read index it moves lives
in the message store all services share, so ``sync`` reads it wherever that runs.
A command no prefix matches has no service (:func:`service_of` gives None); gateways
send it to any node, which answers NotImplemented.

A logic node runs every service unless configured otherwise (``--services`` /
``CIRNO_LOGIC_SERVICES``) and announces the ones it runs in its link handshake answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Final


class Service(StrEnum):
    """The services a logic node can run."""

    LOGIN = "login"
    CHAT = "chat"
    GROUP = "group"
    SYNC = "sync"


ALL_SERVICES: Final = frozenset(Service)
_NAMES: Final = frozenset(service.value for service in Service)

_PREFIXES: Final = (
    # Longest first: "chat.group." and "chat.offline." before "chat.".
    ("chat.group.", Service.GROUP),
    ("chat.offline.", Service.SYNC),
    ("sync.", Service.SYNC),
    ("session.", Service.LOGIN),
    ("login.", Service.LOGIN),
    ("push.", Service.LOGIN),
    ("presence.", Service.LOGIN),
    ("chat.", Service.CHAT),
)

_MEMO_LIMIT: Final = 64
_memo: dict[str, Service | None] = {}


class UnknownService(ValueError):
    """A service name that is not one of :class:`Service`."""


def service_of(command: str) -> Service | None:
    """The service that serves ``command``, or None when no prefix matches.

    Called for every forwarded packet: the answers for the first few distinct commands
    are kept (a client sending made-up commands cannot grow the memo past its limit).
    """
    try:
        return _memo[command]
    except KeyError:
        pass
    found = next((service for prefix, service in _PREFIXES if command.startswith(prefix)), None)
    if len(_memo) < _MEMO_LIMIT:
        _memo[command] = found
    return found


def parse_services(text: str) -> frozenset[Service]:
    """The services named in a comma-separated list (``"login,chat"``).

    Blank entries are ignored; an empty list means every service. Raises
    :class:`UnknownService` naming each unknown entry and the valid names.
    """
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        return ALL_SERVICES
    unknown = [name for name in names if name not in _NAMES]
    if unknown:
        valid = ", ".join(sorted(ALL_SERVICES))
        raise UnknownService(f"unknown logic service(s) {', '.join(unknown)}: valid are {valid}")
    return frozenset(Service(name) for name in names)


def format_services(services: Iterable[str]) -> str:
    """``services`` as the sorted comma-separated list the handshake carries."""
    return ",".join(sorted(services))
