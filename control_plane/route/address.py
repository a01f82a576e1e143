"""The client's address: the socket peer, or a trusted proxy's ``X-Forwarded-For``.

``X-Forwarded-For`` is read only when the socket peer is one of
``CIRNO_TRUSTED_PROXIES``: the rightmost hop that is not itself a trusted proxy (the
leftmost when all are). From any other peer the header is ignored, since anyone can
send it. An unparsable hop from a trusted proxy, or an unparsable ``?ip=``, is a
:class:`BadAddress`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from control_plane.settings import Network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BadAddress(ValueError):
    """An address (``?ip=`` or a trusted proxy's ``X-Forwarded-For``) is unparsable."""


def parse_ip(text: str) -> IPAddress:
    """An IPv4/IPv6 address (IPv4-mapped IPv6 becomes IPv4); BadAddress otherwise."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise BadAddress(f"not an IP address: {text[:64]!r}") from exc
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_hop(hop: str) -> IPAddress:
    text = hop.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    return parse_ip(text)


def is_trusted(address: IPAddress, trusted: Sequence[Network]) -> bool:
    """Whether ``address`` is one of the trusted proxies."""
    return any(address.version == net.version and address in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> IPAddress | None:
    """The client's address: the socket peer, or, when the peer is a trusted proxy, the
    rightmost ``X-Forwarded-For`` hop that is not a trusted proxy (the leftmost when all
    are). ``X-Forwarded-For`` from any other peer is ignored (it is trivially spoofed).

    Raises :class:`BadAddress` when a trusted proxy sends an unparsable hop.
    """
    try:
        address = parse_ip(peer) if peer else None
    except BadAddress:
        return None  # not an IP peer (a Unix socket, a test client): no location
    if address is None or not forwarded_for or not is_trusted(address, trusted):
        return address
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    if not hops:
        return address
    parsed = [_parse_hop(hop) for hop in hops]
    for hop in reversed(parsed):
        if not is_trusted(hop, trusted):
            return hop
    return parsed[0]
