"""LogicPkt and BasicPkt: the two packets of the kim client protocol.

Theory of operation
-------------------
A packet always arrives whole: one WebSocket binary message, or the payload of one TCP
frame (see :mod:`data_plane.wire.frame`). :func:`decode_packet` therefore takes one
buffer and either returns a packet or raises a :class:`~data_plane.wire.errors.
ProtocolError` subclass -- never anything else, whatever the bytes are.

Layouts (integers big-endian)::

    LogicPkt  C3 11 A3 65 | u32 header length | protobuf Header | u32 body length | body
    BasicPkt  C3 15 A7 65 | u16 code | u16 body length | body

Only the ``Header`` is parsed; the body stays raw bytes so the gateway can pass it through
untouched. Whoever handles the command parses it with :meth:`LogicPacket.parse_body`.
Packets are frozen, slotted dataclasses: derive new ones with :meth:`LogicPacket.replace`,
:meth:`LogicPacket.with_meta` or :meth:`LogicPacket.response`.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar, cast

from google.protobuf.message import DecodeError, Message

from data_plane.wire import protocol_pb2 as pb
from data_plane.wire.enums import BasicCode, Flag, MetaType, Status
from data_plane.wire.errors import BadMagic, MalformedPacket, PacketTooLarge, TruncatedPacket

LOGIC_MAGIC = bytes.fromhex("c311a365")
BASIC_MAGIC = bytes.fromhex("c315a765")
DEFAULT_MAX_PACKET_SIZE = 64 * 1024

M = TypeVar("M", bound=Message)

_U32 = struct.Struct(">I")
_LOGIC_HEAD = struct.Struct(">4sI")  # magic | header length
_BASIC_HEAD = struct.Struct(">4sHH")  # magic | code | body length
_LOGIC_MAGIC_U32: int = _U32.unpack(LOGIC_MAGIC)[0]
_BASIC_MAGIC_U32: int = _U32.unpack(BASIC_MAGIC)[0]
_FLAGS = {flag.value: flag for flag in Flag}
_META_TYPES = {meta_type.value: meta_type for meta_type in MetaType}
_Header = pb.Header
_PbMeta = pb.Meta


def _to_bytes(body: bytes | Message) -> bytes:
    """A body given as bytes or as a protobuf message, as bytes."""
    if isinstance(body, Message):
        return body.SerializeToString()
    return bytes(body)  # no copy for bytes itself


@dataclass(frozen=True, slots=True)
class Meta:
    """One ``Header.meta`` entry: a string value, read as ``type`` says."""

    key: str
    value: str
    type: MetaType = MetaType.STRING


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
        return cls(
            command,
            channel_id=channel_id,
            sequence=sequence,
            dest=dest,
            meta=tuple(meta),
            body=_to_bytes(body),
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
        return cls(
            command,
            channel_id=channel_id,
            flag=Flag.PUSH,
            dest=dest,
            meta=tuple(meta),
            body=_to_bytes(body),
        )

    def response(self, status: int = Status.SUCCESS, body: bytes | Message = b"") -> LogicPacket:
        """The response to this request: same command, channel id, sequence and meta,
        flag Response, ``dest`` cleared, the given status and body."""
        return LogicPacket(
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
        """A copy with the given fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def parse_body(self, message_type: type[M]) -> M:
        """Parse the body as ``message_type``; :class:`MalformedPacket` if it does not parse."""
        try:
            return message_type.FromString(self.body)
        except DecodeError as exc:
            name = message_type.DESCRIPTOR.name
            raise MalformedPacket(f"body is not a valid {name}") from exc

    def header(self) -> pb.Header:
        """The protobuf ``Header`` of this packet (a new message each call)."""
        header = _Header(
            command=self.command,
            channelId=self.channel_id,
            sequence=self.sequence,
            flag=cast("pb.Flag.ValueType", self.flag),
            status=cast("pb.Status.ValueType", self.status),
            dest=self.dest,
        )
        if self.meta:
            add = header.meta.add
            for m in self.meta:
                add(key=m.key, value=m.value, type=cast("pb.MetaType.ValueType", m.type))
        return header

    def encode(self) -> bytes:
        """The packet's bytes: magic | u32 header length | Header | u32 body length | body."""
        raw = self.header().SerializeToString()
        body = self.body
        return b"".join((_LOGIC_HEAD.pack(LOGIC_MAGIC, len(raw)), raw, _U32.pack(len(body)), body))


@dataclass(frozen=True, slots=True)
class BasicPacket:
    """A BasicPkt: a u16 code (1 ping, 2 pong) and a short raw body."""

    code: int
    body: bytes = b""

    @classmethod
    def ping(cls, body: bytes = b"") -> BasicPacket:
        """A ping."""
        return cls(BasicCode.PING, body)

    @classmethod
    def pong(cls, body: bytes = b"") -> BasicPacket:
        """A pong, the answer to a ping."""
        return cls(BasicCode.PONG, body)

    def encode(self) -> bytes:
        """The packet's bytes: magic | u16 code | u16 length | body.

        ``ValueError`` if the code or the body length does not fit in 16 bits.
        """
        try:
            head = _BASIC_HEAD.pack(BASIC_MAGIC, self.code, len(self.body))
        except struct.error as exc:
            raise ValueError(f"BasicPacket code or body length out of range: {exc}") from exc
        return head + self.body


Packet: TypeAlias = LogicPacket | BasicPacket

# A frozen dataclass's __init__ sets every field through object.__setattr__, which costs
# more than parsing the Header; the decoder fills the slots through their descriptors.
_new = object.__new__
_LOGIC_FIELDS = (
    "command", "channel_id", "sequence", "flag", "status", "dest", "meta", "body"
)  # fmt: skip
_META_FIELDS = ("key", "value", "type")
if (
    tuple(f.name for f in dataclasses.fields(LogicPacket)) != _LOGIC_FIELDS
    or tuple(f.name for f in dataclasses.fields(Meta)) != _META_FIELDS
):  # pragma: no cover - guards the setters below when a field is added
    raise RuntimeError("update _LOGIC_FIELDS / _META_FIELDS and _decode_logic")
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
_set_key, _set_value, _set_type = (Meta.__dict__[name].__set__ for name in _META_FIELDS)


def decode_packet(
    data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX_PACKET_SIZE
) -> Packet:
    """Decode one whole packet held in ``data`` (a byte-format buffer).

    Raises only :class:`~data_plane.wire.errors.ProtocolError` subclasses:
    ``PacketTooLarge`` when ``data`` or a length it declares exceeds ``max_size``,
    ``BadMagic`` for an unknown or short magic, ``TruncatedPacket`` when a declared length
    runs past the data, and ``MalformedPacket`` for trailing bytes or a Header that does
    not parse. The body is returned as raw bytes, not parsed.
    """
    size = len(data)
    if size > max_size:
        raise PacketTooLarge(f"{size} > {max_size} bytes")
    if size < 4:
        raise BadMagic(f"only {size} bytes")
    magic = _U32.unpack_from(data)[0]
    if magic == _LOGIC_MAGIC_U32:
        return _decode_logic(data, size, max_size)
    if magic == _BASIC_MAGIC_U32:
        return _decode_basic(data, size, max_size)
    raise BadMagic(f"{magic:08x}")


def _decode_logic(data: bytes | bytearray | memoryview, size: int, max_size: int) -> LogicPacket:
    """The LogicPkt half of :func:`decode_packet` (the magic is already checked)."""
    if size < 8:
        raise TruncatedPacket("no header length")
    header_len = _U32.unpack_from(data, 4)[0]
    if header_len > max_size:
        raise PacketTooLarge(f"header length {header_len} > {max_size}")
    header_end = 8 + header_len
    if header_end + 4 > size:
        raise TruncatedPacket(f"header length {header_len}, {size - 8} bytes follow")
    body_len = _U32.unpack_from(data, header_end)[0]
    if body_len > max_size:
        raise PacketTooLarge(f"body length {body_len} > {max_size}")
    body_start = header_end + 4
    end = body_start + body_len
    if end > size:
        raise TruncatedPacket(f"body length {body_len}, {size - body_start} bytes follow")
    if end < size:
        raise MalformedPacket(f"{size - end} trailing bytes")
    try:
        # upb parses any byte buffer; the stub only admits bytes.
        header = _Header.FromString(cast(bytes, data[8:header_end]))
    except DecodeError as exc:
        raise MalformedPacket("header is not a protobuf Header") from exc
    flag = _FLAGS.get(header.flag)
    if flag is None:
        raise MalformedPacket(f"unknown flag {header.flag}")
    meta: tuple[Meta, ...] = ()
    if header.meta:
        meta = tuple(_decode_meta(entry) for entry in header.meta)
    packet: LogicPacket = _new(LogicPacket)
    _set_command(packet, header.command)
    _set_channel_id(packet, header.channelId)
    _set_sequence(packet, header.sequence)
    _set_flag(packet, flag)
    _set_status(packet, header.status)
    _set_dest(packet, header.dest)
    _set_meta(packet, meta)
    _set_body(packet, bytes(data[body_start:end]))
    return packet


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


def _decode_basic(data: bytes | bytearray | memoryview, size: int, max_size: int) -> BasicPacket:
    """The BasicPkt half of :func:`decode_packet` (the magic is already checked)."""
    if size < 8:
        raise TruncatedPacket("no code and length")
    _, code, body_len = _BASIC_HEAD.unpack_from(data)
    if body_len > max_size:
        raise PacketTooLarge(f"body length {body_len} > {max_size}")
    end = 8 + body_len
    if end > size:
        raise TruncatedPacket(f"body length {body_len}, {size - 8} bytes follow")
    if end < size:
        raise MalformedPacket(f"{size - end} trailing bytes")
    return BasicPacket(code, bytes(data[8:end]))
