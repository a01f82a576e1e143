"""Sans-I/O codec of the cirno-im client protocol: bytes in, packets out.

The protocol is described in docs/protocol.md; the codec's place among the parts in
docs/design.md, "The parts".

Shared by the gateway, the logic node, the SDK, the tests and the benchmarks. It depends
on the standard library and protobuf only -- never on anyio, asyncio, redis or sockets.

- :mod:`.packet`: :func:`decode_packet` (one whole packet per buffer: a WebSocket
  message or a TCP frame's payload);
- :mod:`.logic_packet` / :mod:`.basic_packet`: :class:`LogicPacket` and its encoding,
  :class:`BasicPacket`;
- :mod:`.meta`: :class:`Meta` and :func:`encode_meta` (identity metas spliced on encode);
  :mod:`.meta_runs`: the cache of decoded meta runs the decoder reuses;
- :mod:`.frame`: TCP framing, :class:`FrameDecoder` for arbitrary chunks;
- :mod:`.enums`: commands, statuses, flags, opcodes;
- :mod:`.errors`: :class:`WireError` -> :class:`ProtocolError` -> one class per failure;
- ``pb``: the generated protobuf messages of ``protocol.proto``
  (regenerate with ``python -m data_plane.wire.generate``).
"""

from __future__ import annotations

from data_plane.wire import protocol_pb2 as pb
from data_plane.wire.basic_packet import BASIC_MAGIC, BasicPacket
from data_plane.wire.enums import (
    BasicCode,
    Command,
    Flag,
    MessageType,
    MetaType,
    Opcode,
    Status,
)
from data_plane.wire.errors import (
    BadMagic,
    BadOpcode,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    TruncatedPacket,
    WireError,
)
from data_plane.wire.frame import (
    FRAME_HEADER_SIZE,
    Frame,
    FrameDecoder,
    encode_frame,
    encode_frames,
)
from data_plane.wire.logic_packet import LOGIC_MAGIC, LogicPacket
from data_plane.wire.meta import Meta, encode_meta
from data_plane.wire.packet import DEFAULT_MAX_PACKET_SIZE, Packet, decode_packet

__all__ = [
    "BASIC_MAGIC",
    "DEFAULT_MAX_PACKET_SIZE",
    "FRAME_HEADER_SIZE",
    "LOGIC_MAGIC",
    "BadMagic",
    "BadOpcode",
    "BasicCode",
    "BasicPacket",
    "Command",
    "Flag",
    "Frame",
    "FrameDecoder",
    "LogicPacket",
    "MalformedPacket",
    "MessageType",
    "Meta",
    "MetaType",
    "Opcode",
    "Packet",
    "PacketTooLarge",
    "ProtocolError",
    "Status",
    "TruncatedPacket",
    "WireError",
    "decode_packet",
    "encode_frame",
    "encode_frames",
    "encode_meta",
    "pb",
]
