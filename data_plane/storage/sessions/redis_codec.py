"""How the Redis session store writes a location down, and reads it back.

One hash per account, ``{prefix}:loc:{<tenant>:<account>}``, field = the device, value =
the location without the parts the key and field already say, as a compact JSON array
``[channel_id, gateway_id, login_at, client_version, zone]`` (trailing empty strings
dropped). ``%``, ``:``, ``{`` and ``}`` in tenant and account are percent-escaped
(``escape``), so the ``{…}`` hash tag is never cut short and no two (tenant, account)
pairs share a key.
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias

from data_plane.storage.sessions.protocol import Location

RawHash: TypeAlias = "dict[bytes | str, bytes | str]"
"""An account hash as ``HGETALL`` returns it."""


def escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A").replace("{", "%7B").replace("}", "%7D")


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def encode(location: Location) -> str:
    fields: list[str | int] = [
        location.channel_id,
        location.gateway_id,
        location.login_at,
        location.client_version,
        location.zone,
    ]
    while fields[-1] == "":
        fields.pop()
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def decode(tenant: str, account: str, device: bytes | str, value: bytes | str) -> Location:
    fields: list[Any] = json.loads(value)
    channel_id, gateway_id, login_at, *rest = fields
    return Location(
        tenant=tenant,
        account=account,
        device=text(device),
        channel_id=channel_id,
        gateway_id=gateway_id,
        login_at=int(login_at),
        client_version=rest[0] if rest else "",
        zone=rest[1] if len(rest) > 1 else "",
    )


def by_device(location: Location) -> str:
    return location.device


_DecodedKey: TypeAlias = "tuple[str, str, bytes | str, bytes | str]"

DECODED_CACHE_SIZE = 16_384
"""Decoded locations (see :class:`LocationDecoder`) and account keys a store keeps."""


class LocationDecoder:
    """Decodes stored locations, remembering recent ones.

    A push decodes the receiver's and the sender's locations, and the same ones again
    for their next message: the JSON parse and the ``Location`` were a visible share of
    a lookup. The cache key is the whole stored record (tenant, account, device field
    and value), so an entry can never be stale: a changed location is a different key.
    Locations are frozen, so one object may be handed to many callers. When full, the
    cache is simply emptied (no bookkeeping per hit).
    """

    def __init__(self, size: int = DECODED_CACHE_SIZE) -> None:
        self._size = size
        self._decoded: dict[_DecodedKey, Location] = {}

    def decode_all(self, tenant: str, account: str, raw: RawHash) -> list[Location]:
        """The account's locations from its ``HGETALL`` reply, sorted by device."""
        decoded = self._decoded
        locations: list[Location] = []
        for field, value in raw.items():
            key = (tenant, account, field, value)
            location = decoded.get(key)
            if location is None:
                location = decode(tenant, account, field, value)
                if len(decoded) >= self._size:
                    decoded.clear()
                decoded[key] = location
            locations.append(location)
        if len(locations) > 1:
            locations.sort(key=by_device)
        return locations
