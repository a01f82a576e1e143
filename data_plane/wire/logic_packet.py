"""LogicPkt: a command header plus a raw protobuf body.

Layout (integers big-endian)::

    C3 11 A3 65 | u32 header length | protobuf Header | u32 body length | body

Only the ``Header`` is ever parsed; the body stays raw bytes so the gateway can pass it
through untouched, and whoever handles the command parses it with
:meth:`LogicPacket.parse_body`. Decoding is in :mod:`data_plane.wire.packet`; it builds
packets through the slot setters defined here (:func:`_build` and its inlined copy).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from google.protobuf.message import DecodeError, Message

from data_plane.wire import protocol_pb2 as pb
from data_plane.wire.enums import Flag, Status
from data_plane.wire.errors import MalformedPacket
from data_plane.wire.meta import Meta, encode_meta

LOGIC_MAGIC = bytes.fromhex("c311a365")

M = TypeVar("M", bound=Message)

_U32 = struct.Struct(">I")
_LOGIC_HEAD = struct.Struct(">4sI")  # magic | header length
_Header = pb.Header


def _to_bytes(body: bytes | Message) -> bytes:
    """A body given as bytes or as a protobuf message, as bytes."""
    if isinstance(body, Message):
        return body.SerializeToString()
    return bytes(body)  # no copy for bytes itself


@dataclass(frozen=True, slots=True)
class LogicPacket:
    """A LogicPkt: a command header plus a raw protobuf body.

    ``status`` is a plain ``int`` (not :class:`Status`) because peers may send codes this
    version does not know. ``sequence`` is a uint32 and ``status`` an int32 on the wire;
    :meth:`encode` raises ``ValueError`` outside those ranges.
    """

    command: str
    channel_id: str = ""
    sequence: int = 0
    flag: Flag = Flag.REQUEST
    status: int = 0
    dest: str = ""
    meta: tuple[Meta, ...] = ()
    body: bytes = b""

    @classmethod
    def request(
        cls,
        command: str,
        body: bytes | Message = b"",
        *,
        sequence: int = 0,
        dest: str = "",
        channel_id: str = "",
        meta: Iterable[Meta] = (),
    ) -> LogicPacket:
        """A request (flag Request, status 0); a protobuf ``body`` is serialized."""
        if cls is not LogicPacket:  # a subclass gets its own __init__
            return cls(
                command,
                channel_id=channel_id,
                sequence=sequence,
                dest=dest,
                meta=tuple(meta),
                body=_to_bytes(body),
            )
        return _build(
            command, channel_id, sequence, Flag.REQUEST, 0, dest, tuple(meta), _to_bytes(body)
        )

    @classmethod
    def make_push(
        cls,
        command: str,
        body: bytes | Message,
        *,
        channel_id: str = "",
        dest: str = "",
        meta: Iterable[Meta] = (),
    ) -> LogicPacket:
        """A server push (flag Push, sequence 0); a protobuf ``body`` is serialized."""
        if cls is not LogicPacket:  # a subclass gets its own __init__
            return cls(
                command,
                channel_id=channel_id,
                flag=Flag.PUSH,
                dest=dest,
                meta=tuple(meta),
                body=_to_bytes(body),
            )
        return _build(command, channel_id, 0, Flag.PUSH, 0, dest, tuple(meta), _to_bytes(body))

    def response(self, status: int = Status.SUCCESS, body: bytes | Message = b"") -> LogicPacket:
        """The response to this request: same command, channel id, sequence and meta,
        flag Response, ``dest`` cleared, the given status and body."""
        return _build(
            self.command,
            self.channel_id,
            self.sequence,
            Flag.RESPONSE,
            int(status),
            "",
            self.meta,
            _to_bytes(body),
        )

    def error_response(self, status: int, message: str = "") -> LogicPacket:
        """A response with ``status`` and an ``ErrorResp{message}`` body (kim's habit)."""
        return self.response(status, pb.ErrorResp(message=message) if message else b"")

    def meta_value(self, key: str) -> str | None:
        """The value of the first meta entry named ``key``, or ``None``."""
        for entry in self.meta:
            if entry.key == key:
                return entry.value
        return None

    def with_meta(self, **values: str) -> LogicPacket:
        """A copy whose meta is exactly ``values`` (string metas), replacing all meta."""
        meta = tuple(Meta(key, value) for key, value in values.items())
        return dataclasses.replace(self, meta=meta)

    def replace(self, **changes: Any) -> LogicPacket:
        """A copy with the given fields changed, as ``dataclasses.replace`` makes it
        (``TypeError`` for a name that is not a field), at a third of its cost."""
        if not changes.keys() <= _LOGIC_FIELD_SET:
            unknown = ", ".join(sorted(changes.keys() - _LOGIC_FIELD_SET))
            raise TypeError(f"LogicPacket has no field(s) {unknown}")
        get = changes.get
        return _build(
            get("command", self.command),
            get("channel_id", self.channel_id),
            get("sequence", self.sequence),
            get("flag", self.flag),
            get("status", self.status),
            get("dest", self.dest),
            get("meta", self.meta),
            get("body", self.body),
        )

    def parse_body(self, message_type: type[M]) -> M:
        """Parse the body as ``message_type``; :class:`MalformedPacket` if it does not parse."""
        try:
            return message_type.FromString(self.body)
        except DecodeError as exc:
            name = message_type.DESCRIPTOR.name
            raise MalformedPacket(f"body is not a valid {name}") from exc

    def header(self) -> pb.Header:
        """The protobuf ``Header`` of this packet (a new message each call)."""
        header = self._header_without_meta(self.channel_id)
        if self.meta:
            add = header.meta.add
            for m in self.meta:
                add(key=m.key, value=m.value, type=cast("pb.MetaType.ValueType", m.type))
        return header

    def _header_without_meta(self, channel_id: str) -> pb.Header:
        """Fields 1-6 of the ``Header``, ``channel_id`` given separately.

        Only non-default fields are assigned: proto3 omits defaults on the wire anyway,
        and each assignment is a call into upb (this is the hot path of every forward).
        """
        header = _Header()
        if self.command:
            header.command = self.command
        if channel_id:
            header.channelId = channel_id
        if self.sequence:
            header.sequence = self.sequence
        if self.flag:
            header.flag = cast("pb.Flag.ValueType", self.flag)
        if self.status:
            header.status = cast("pb.Status.ValueType", self.status)
        if self.dest:
            header.dest = self.dest
        return header

    def encode(self) -> bytes:
        """The packet's bytes: magic | u32 header length | Header | u32 body length | body."""
        meta = self.meta
        return self._encode(self.channel_id, encode_meta(meta) if meta else b"")

    def encode_with(self, *, channel_id: str, meta: bytes) -> bytes:
        """Exactly ``self.replace(channel_id=channel_id, meta=M).encode()`` where ``meta``
        is :func:`encode_meta` of ``M``, without building that copy.

        The gateway encodes its channels' constant metas once per login and splices them
        onto every packet it forwards. This is byte-for-byte the same packet because
        protobuf serializes fields in field-number order and ``meta`` (7) is the
        Header's last field, and a parser concatenates repeated fields.
        """
        return self._encode(channel_id, meta)

    def encode_without_meta(self, *, channel_id: str | None = None) -> bytes:
        """Exactly ``self.replace(meta=())`` (and ``channel_id`` if given) encoded."""
        return self._encode(self.channel_id if channel_id is None else channel_id, b"")

    def _encode(self, channel_id: str, meta: bytes) -> bytes:
        raw = self._header_without_meta(channel_id).SerializeToString() + meta
        body = self.body
        return b"".join((_LOGIC_HEAD.pack(LOGIC_MAGIC, len(raw)), raw, _U32.pack(len(body)), body))


# A frozen dataclass's __init__ sets every field through object.__setattr__, which costs
# more than parsing the Header; the decoder fills the slots through their descriptors.
_new = object.__new__
_LOGIC_FIELDS = (
    "command", "channel_id", "sequence", "flag", "status", "dest", "meta", "body"
)  # fmt: skip
if tuple(f.name for f in dataclasses.fields(LogicPacket)) != _LOGIC_FIELDS:  # pragma: no cover
    raise RuntimeError("update _LOGIC_FIELDS and _decode_logic")  # guards the setters below
(
    _set_command,
    _set_channel_id,
    _set_sequence,
    _set_flag,
    _set_status,
    _set_dest,
    _set_meta,
    _set_body,
) = (LogicPacket.__dict__[name].__set__ for name in _LOGIC_FIELDS)
_LOGIC_FIELD_SET = frozenset(_LOGIC_FIELDS)


def _build(
    command: str,
    channel_id: str,
    sequence: int,
    flag: Flag,
    status: int,
    dest: str,
    meta: tuple[Meta, ...],
    body: bytes,
) -> LogicPacket:
    """``LogicPacket(...)`` without the frozen ``__init__``'s eight ``object.__setattr__``
    calls (the dataclass has no ``__post_init__``: this is the same object)."""
    packet: LogicPacket = _new(LogicPacket)
    _set_command(packet, command)
    _set_channel_id(packet, channel_id)
    _set_sequence(packet, sequence)
    _set_flag(packet, flag)
    _set_status(packet, status)
    _set_dest(packet, dest)
    _set_meta(packet, meta)
    _set_body(packet, body)
    return packet
