"""Decoding the two packets of the kim client protocol, LogicPkt and BasicPkt.

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

The packets live beside this module, one job each: :mod:`.logic_packet` (LogicPkt and
its encoding), :mod:`.basic_packet` (BasicPkt), :mod:`.meta` (meta entries, encoded on
their own for splicing) and :mod:`.meta_runs` (the cache of decoded meta runs used by
:func:`_parse_header`). This module re-exports their public names.
"""

from __future__ import annotations

from typing import TypeAlias

from google.protobuf.message import DecodeError

from data_plane.wire import protocol_pb2 as pb
from data_plane.wire.basic_packet import BASIC_MAGIC, BasicPacket, _decode_basic
from data_plane.wire.enums import Flag
from data_plane.wire.errors import BadMagic, MalformedPacket, PacketTooLarge, TruncatedPacket
from data_plane.wire.logic_packet import (
    _U32,
    LOGIC_MAGIC,
    LogicPacket,
    _new,
    _set_body,
    _set_channel_id,
    _set_command,
    _set_dest,
    _set_flag,
    _set_meta,
    _set_sequence,
    _set_status,
)
from data_plane.wire.meta import Meta, _decode_meta, encode_meta
from data_plane.wire.meta_runs import _META_TAG_BYTE, _first_meta_entry, _is_meta_run, _MetaRuns

__all__ = [
    "BASIC_MAGIC",
    "DEFAULT_MAX_PACKET_SIZE",
    "LOGIC_MAGIC",
    "BasicPacket",
    "LogicPacket",
    "Meta",
    "Packet",
    "decode_packet",
    "encode_meta",
]

DEFAULT_MAX_PACKET_SIZE = 64 * 1024

_LOGIC_MAGIC_U32: int = _U32.unpack(LOGIC_MAGIC)[0]
_BASIC_MAGIC_U32: int = _U32.unpack(BASIC_MAGIC)[0]
_FLAGS = {flag.value: flag for flag in Flag}
_Header = pb.Header

Packet: TypeAlias = LogicPacket | BasicPacket

_META_RUNS = _MetaRuns()
"""The process's meta-run cache, read by :func:`_parse_header` (tests swap it)."""


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
