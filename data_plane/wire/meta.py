"""Header metas: the :class:`Meta` entry, its encoding on its own, and its decoding.

A LogicPkt's ``Header.meta`` (field 7) is its last field, so the entries serialized on
their own (:func:`encode_meta`) can be appended to a Header serialized without them: the
gateway encodes its channels' identity metas once per login and splices them onto every
packet it forwards (:meth:`~data_plane.wire.logic_packet.LogicPacket.encode_with`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from data_plane.wire import protocol_pb2 as pb
from data_plane.wire.enums import MetaType
from data_plane.wire.errors import MalformedPacket

_META_TYPES = {meta_type.value: meta_type for meta_type in MetaType}
_Header = pb.Header


@dataclass(frozen=True, slots=True)
class Meta:
    """One ``Header.meta`` entry: a string value, read as ``type`` says."""

    key: str
    value: str
    type: MetaType = MetaType.STRING


def encode_meta(meta: Iterable[Meta]) -> bytes:
    """The ``Header.meta`` entries (field 7) serialized on their own.

    Appended to a Header serialized without meta, they give the Header with that meta,
    byte for byte (see :meth:`LogicPacket.encode_with`).
    """
    header = _Header()
    add = header.meta.add
    for m in meta:
        add(key=m.key, value=m.value, type=cast("pb.MetaType.ValueType", m.type))
    return header.SerializeToString()


# A frozen dataclass's __init__ sets every field through object.__setattr__; the decoder
# fills the slots through their descriptors instead (see _decode_meta).
_new = object.__new__
_META_FIELDS = ("key", "value", "type")
if tuple(f.name for f in dataclasses.fields(Meta)) != _META_FIELDS:  # pragma: no cover
    raise RuntimeError("update _META_FIELDS and _decode_meta")  # guards the setters below
_set_key, _set_value, _set_type = (Meta.__dict__[name].__set__ for name in _META_FIELDS)


def _decode_meta(entry: pb.Meta) -> Meta:
    """One protobuf Meta as a :class:`Meta`; an unknown type is malformed."""
    meta_type = _META_TYPES.get(entry.type)
    if meta_type is None:
        raise MalformedPacket(f"unknown meta type {entry.type}")
    meta: Meta = _new(Meta)
    _set_key(meta, entry.key)
    _set_value(meta, entry.value)
    _set_type(meta, meta_type)
    return meta
