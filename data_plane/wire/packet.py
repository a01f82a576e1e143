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
    raw = data[8:header_end]
    if type(raw) is not bytes:
        raw = bytes(raw)  # a memoryview or bytearray slice: the cache keys on bytes
    if _META_TAG_BYTE in raw:
        header, flag, meta = _parse_header(raw)
    else:
        # No 0x3A byte at all (most client requests, every answer without meta): no meta
        # entry can start anywhere, so this is the whole of it.
        try:
            header = _Header.FromString(raw)
        except DecodeError as exc:
            raise MalformedPacket("header is not a protobuf Header") from exc
        known = _FLAGS.get(header.flag)
        if known is None:
            raise MalformedPacket(f"unknown flag {header.flag}")
        flag = known
        meta = ()
    packet: LogicPacket = _new(LogicPacket)  # _build, inlined: this is the hottest path
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


def _parse_header(raw: bytes) -> tuple[pb.Header, Flag, tuple[Meta, ...]]:
    """Parse a serialized ``Header``: the message, its flag and its meta entries.

    Every packet a gateway forwards ends with the same few metas per client (tenant,
    account, device, ...), and building those :class:`Meta` objects costs several times
    what upb takes to parse the rest. So when the Header's meta entries form one run of
    bytes at its end (as every encoder here writes them: meta is the last field) and that
    run was seen before, only the part before it is parsed and the (immutable) entries
    decoded from the same bytes last time are reused (see :class:`_MetaRuns`). The
    result is what parsing the whole Header gives: protobuf parses a concatenation as the
    merge of its parts, the part before the run holds no meta entry, and the run holds
    nothing but meta entries.
    """
    runs = _META_RUNS
    run = b""
    if runs.paused:
        runs.paused -= 1
    else:
        split = _first_meta_entry(raw)
        if split > 0 and len(raw) - split <= runs.max_run:
            run = raw[split:]
            meta = runs.entries.get(run)
            runs.lookups += 1
            if runs.lookups >= runs.window:
                runs.tally()
            if meta is not None:
                runs.hits += 1
                try:
                    header = _Header.FromString(raw[:split])
                except DecodeError as exc:
                    raise MalformedPacket("header is not a protobuf Header") from exc
                flag = _FLAGS.get(header.flag)
                if flag is None:
                    raise MalformedPacket(f"unknown flag {header.flag}")
                return header, flag, meta
    try:
        header = _Header.FromString(raw)
    except DecodeError as exc:
        raise MalformedPacket("header is not a protobuf Header") from exc
    flag = _FLAGS.get(header.flag)
    if flag is None:
        raise MalformedPacket(f"unknown flag {header.flag}")
    if not header.meta:
        return header, flag, ()
    meta = tuple(_decode_meta(entry) for entry in header.meta)
    if run and not runs.paused and _is_meta_run(run):
        # The whole Header's meta entries are exactly the run's (none before it). That a
        # run is nothing but meta entries depends on its bytes alone: a later hit on the
        # same bytes needs no walk over the run.
        runs.put(run, meta)
    return header, flag, meta


class _MetaRuns:
    """Decoded meta runs by their bytes, bounded, and out of the way when they miss.

    A run is kept until ``max_entries`` are, then all are dropped at once (dropping the
    oldest of a dict one by one is not O(1); clients that stay connected come back at the
    cost of one miss each). When fewer than half of a ``window`` of lookups hit (more
    distinct clients than entries, or metas that never repeat), lookups stop for the next
    ``pause`` packets that may carry meta: a miss costs more than no cache (a walk, a
    check, and objects kept alive for the garbage collector to scan), so thrashing must
    not go on.
    """

    __slots__ = (
        "entries",
        "hits",
        "lookups",
        "max_entries",
        "max_run",
        "pause",
        "paused",
        "window",
    )

    def __init__(
        self,
        *,
        max_entries: int = 16384,
        max_run: int = 1024,
        window: int = 4096,
        pause: int = 65536,
    ) -> None:
        self.entries: dict[bytes, tuple[Meta, ...]] = {}
        self.max_entries = max_entries
        self.max_run = max_run
        """Longer runs (a group push's channel list) are not worth keeping."""
        self.window = window
        self.pause = pause
        self.lookups = 0
        self.hits = 0
        self.paused = 0
        """Packets left to decode without the cache."""

    def put(self, run: bytes, meta: tuple[Meta, ...]) -> None:
        """Keep ``meta`` as the decoding of ``run``."""
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[run] = meta

    def tally(self) -> None:
        """End of a window of lookups: pause when fewer than half of them hit."""
        if self.hits * 2 < self.lookups:
            self.entries.clear()
            self.paused = self.pause
        self.lookups = 0
        self.hits = 0


_META_TAG = 0x3A  # field 7 (meta), wire type 2 (length-delimited)
_META_TAG_BYTE = bytes((_META_TAG,))
_META_RUNS = _MetaRuns()


def _first_meta_entry(raw: bytes) -> int:
    """Where the first meta entry starts in a serialized Header, found by stepping over
    the fields before it; -1 when there is none or the walk meets something it does not
    handle (a multi-byte tag, which could be a field 7 written long, a group, a cut
    field): the caller then parses the Header as a whole, as it would without the cache.
    """
    pos = 0
    end = len(raw)
    try:
        while pos < end:
            tag = raw[pos]
            if tag == _META_TAG:
                return pos
            if tag & 0x80:
                return -1
            pos += 1
            wire_type = tag & 7
            if wire_type == 2:  # _skip_value, inlined: this runs for every packet
                length = 0
                shift = 0
                while True:
                    byte = raw[pos]
                    pos += 1
                    length |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                    shift += 7
                pos += length
            elif wire_type == 0:
                while raw[pos] & 0x80:
                    pos += 1
                pos += 1
            elif wire_type == 5:
                pos += 4
            elif wire_type == 1:
                pos += 8
            else:
                return -1
    except IndexError:
        return -1
    return -1


def _is_meta_run(run: bytes) -> bool:
    """True when ``run`` is one or more whole meta entries (field 7) and nothing else."""
    pos = 0
    end = len(run)
    try:
        while pos < end:
            if run[pos] != _META_TAG:
                return False
            pos = _skip_value(run, pos + 1, 2)
    except (IndexError, ValueError):
        return False
    return pos == end


def _skip_value(raw: bytes, pos: int, wire_type: int) -> int:
    """The offset after the value of ``wire_type`` at ``pos``; IndexError when it is cut
    short, ValueError for a wire type other than varint, fixed and length-delimited."""
    if wire_type == 2:
        length = 0
        shift = 0
        while True:
            byte = raw[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        if pos + length > len(raw):
            raise IndexError("cut short")
        return pos + length
    if wire_type == 0:
        while raw[pos] & 0x80:
            pos += 1
        return pos + 1
    if wire_type == 5:
        return pos + 4
    if wire_type == 1:
        return pos + 8
    raise ValueError(f"wire type {wire_type}")


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
