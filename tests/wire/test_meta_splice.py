"""Spliced meta on encode and the cached meta runs on decode: same bytes, same packets."""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.wire import (
    LOGIC_MAGIC,
    Flag,
    LogicPacket,
    MalformedPacket,
    Meta,
    MetaType,
    decode_packet,
    encode_meta,
    logic_packet,
    meta_runs,
    pb,
)
from data_plane.wire import packet as packet_module
from tests.wire.strategies import logic_packets, metas, short_text

IDENTITY = (
    Meta("tenant", "t_1"),
    Meta("account", "alice"),
    Meta("device", "default"),
    Meta("gateway", "gw-1"),
    Meta("client_version", ""),
)


def _logic_bytes(header: bytes, body: bytes = b"") -> bytes:
    return (
        LOGIC_MAGIC + struct.pack(">I", len(header)) + header + struct.pack(">I", len(body)) + body
    )


def _reference(raw_header: bytes, body: bytes = b"") -> LogicPacket:
    """What the decoder must return: the whole Header parsed by protobuf, nothing cached."""
    header = pb.Header.FromString(raw_header)
    meta = tuple(Meta(m.key, m.value, MetaType(m.type)) for m in header.meta)
    return LogicPacket(
        header.command,
        header.channelId,
        header.sequence,
        Flag(header.flag),
        header.status,
        header.dest,
        meta,
        body,
    )


@settings(max_examples=300)
@given(logic_packets, short_text, metas)
def test_encode_with_is_replace_then_encode(
    packet: LogicPacket, channel_id: str, meta: tuple[Meta, ...]
) -> None:
    expected = packet.replace(channel_id=channel_id, meta=meta).encode()
    assert packet.encode_with(channel_id=channel_id, meta=encode_meta(meta)) == expected


@settings(max_examples=300)
@given(logic_packets, short_text, metas)
def test_spliced_metas_concatenate(
    packet: LogicPacket, channel_id: str, meta: tuple[Meta, ...]
) -> None:
    """The gateway's own requests: its channel's metas, then the packet's (encoded apart)."""
    expected = packet.replace(channel_id=channel_id, meta=meta + packet.meta).encode()
    spliced = encode_meta(meta) + encode_meta(packet.meta)
    assert packet.encode_with(channel_id=channel_id, meta=spliced) == expected


@settings(max_examples=300)
@given(logic_packets, short_text)
def test_encode_without_meta_is_replace_then_encode(packet: LogicPacket, channel_id: str) -> None:
    assert packet.encode_without_meta() == packet.replace(meta=()).encode()
    expected = packet.replace(meta=(), channel_id=channel_id).encode()
    assert packet.encode_without_meta(channel_id=channel_id) == expected


@settings(max_examples=300)
@given(logic_packets)
def test_encode_matches_protobuf_serialization(packet: LogicPacket) -> None:
    raw = packet.encode()
    header_len = struct.unpack_from(">I", raw, 4)[0]
    assert raw[8 : 8 + header_len] == packet.header().SerializeToString()


def test_repeated_decode_reuses_the_meta_entries() -> None:
    raw = LogicPacket("chat.user.talk", "ch", 7, meta=IDENTITY, body=b"b").encode()
    first = decode_packet(raw)
    second = decode_packet(raw)
    assert first == second == LogicPacket("chat.user.talk", "ch", 7, meta=IDENTITY, body=b"b")
    assert second.meta is first.meta  # the cached run, not a fresh decode
    other = decode_packet(LogicPacket("other", "ch2", 9, meta=IDENTITY).encode())
    assert isinstance(first, LogicPacket) and isinstance(other, LogicPacket)
    assert other.meta is first.meta and other.command == "other" and other.sequence == 9


def test_response_echoing_cached_meta_encodes_the_same_bytes() -> None:
    request = decode_packet(LogicPacket("c", "ch", 3, meta=IDENTITY).encode())
    assert isinstance(request, LogicPacket)
    response = request.response(0, b"x")
    assert (
        response.encode()
        == LogicPacket("c", "ch", 3, Flag.RESPONSE, 0, "", IDENTITY, b"x").encode()
    )


header_fields = st.one_of(
    st.builds(lambda v: pb.Header(command=v).SerializeToString(), short_text),
    st.builds(lambda v: pb.Header(channelId=v).SerializeToString(), short_text),
    st.builds(lambda v: pb.Header(dest=v).SerializeToString(), short_text),
    st.builds(lambda v: pb.Header(sequence=v).SerializeToString(), st.integers(0, 2**32 - 1)),
    st.builds(lambda v: pb.Header(status=v).SerializeToString(), st.integers(-(2**31), 2**31 - 1)),
    st.builds(lambda v: pb.Header(flag=v).SerializeToString(), st.integers(0, 2)),
    st.builds(encode_meta, metas),
    # Fields this Header does not know (kept by protobuf as unknown fields): 9 varint,
    # 10 fixed32, 11 fixed64, 12 bytes, and a two-byte tag (field 20).
    st.builds(lambda v: b"\x48" + bytes([v]), st.integers(0, 127)),
    st.just(b"\x55abcd"),
    st.just(b"\x5912345678"),
    st.builds(lambda v: b"\x62" + bytes([len(v)]) + v, st.binary(max_size=20)),
    st.just(b"\xa0\x01\x05"),
    st.just(b"\x38\x01"),  # field 7 (meta) with the wrong wire type
)


@settings(max_examples=500)
@given(st.lists(header_fields, max_size=8), st.binary(max_size=20))
def test_decode_equals_plain_protobuf_parse_in_any_field_order(
    fields: list[bytes], body: bytes
) -> None:
    """Metas before, between or after the other fields, scalars repeated after the meta
    run, unknown fields: decoding twice (the second time with every run cached) gives what
    protobuf gives for the whole Header."""
    raw_header = b"".join(fields)
    expected = _reference(raw_header, body)
    for _ in range(2):
        assert decode_packet(_logic_bytes(raw_header, body)) == expected


def test_non_canonical_meta_run_decodes_the_same_from_the_cache() -> None:
    # One Meta with value (2) before key (1): valid protobuf, not how anyone encodes it.
    entry = b"\x12\x01v\x0a\x01k"
    run = b"\x3a" + bytes([len(entry)]) + entry
    raw_header = pb.Header(command="c").SerializeToString() + run
    for _ in range(2):
        decoded = decode_packet(_logic_bytes(raw_header))
        assert decoded == LogicPacket("c", meta=(Meta("k", "v", MetaType.INT),))
    assert packet_module._META_RUNS.entries[run] == (Meta("k", "v", MetaType.INT),)


def test_fields_after_the_meta_entries_are_not_a_cached_run() -> None:
    run = encode_meta(IDENTITY)
    raw_header = run + pb.Header(command="late").SerializeToString()
    for _ in range(2):
        assert decode_packet(_logic_bytes(raw_header)) == LogicPacket("late", meta=IDENTITY)
    decode_packet(LogicPacket("c", meta=IDENTITY).encode())  # now the run alone is cached
    assert decode_packet(_logic_bytes(raw_header)) == LogicPacket("late", meta=IDENTITY)


def test_unknown_meta_type_is_malformed_on_every_path() -> None:
    bad_run = b"\x3a\x05\x0a\x01k\x18\x07"  # Meta{key="k", type=7}
    raw = _logic_bytes(pb.Header(command="c").SerializeToString() + bad_run)
    for _ in range(2):
        with pytest.raises(MalformedPacket, match="unknown meta type 7"):
            decode_packet(raw)
    assert bad_run not in packet_module._META_RUNS.entries


def test_unknown_flag_is_reported_before_a_bad_meta_type() -> None:
    bad_run = b"\x3a\x05\x0a\x01k\x18\x07"
    raw = _logic_bytes(pb.Header(command="c", flag=9).SerializeToString() + bad_run)  # type: ignore[arg-type]
    with pytest.raises(MalformedPacket, match="unknown flag 9"):
        decode_packet(raw)


def test_garbage_before_a_cached_run_is_still_malformed() -> None:
    decode_packet(LogicPacket("c", meta=IDENTITY).encode())  # the run is cached now
    run = encode_meta(IDENTITY)
    for prefix in (b"\x0a\x05ab", b"\x0f", b"\x0a\x02\xff\xfe"):  # cut, group, bad UTF-8
        with pytest.raises(MalformedPacket):
            decode_packet(_logic_bytes(prefix + run))


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packet_module, "_META_RUNS", meta_runs._MetaRuns(max_entries=8))
    for i in range(50):
        meta = (Meta("account", f"user{i}"),)
        assert decode_packet(LogicPacket("c", meta=meta).encode()).meta == meta  # type: ignore[union-attr]
        assert len(packet_module._META_RUNS.entries) <= 8
    newest = encode_meta((Meta("account", "user49"),))
    assert packet_module._META_RUNS.entries[newest] == (Meta("account", "user49"),)


def test_cache_pauses_while_it_thrashes(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = meta_runs._MetaRuns(max_entries=4, window=16, pause=32)
    monkeypatch.setattr(packet_module, "_META_RUNS", runs)
    for i in range(16):  # 16 distinct accounts through 4 entries: every lookup misses
        decode_packet(LogicPacket("c", meta=(Meta("account", f"user{i}"),)).encode())
    assert runs.paused == 32 and not runs.entries
    again = LogicPacket("c", meta=IDENTITY).encode()
    for _ in range(32):  # decoded right, without the cache
        assert decode_packet(again) == LogicPacket("c", meta=IDENTITY)
    assert runs.paused == 0 and not runs.entries
    first = decode_packet(again)  # back on: cached, then hit
    second = decode_packet(again)
    assert isinstance(first, LogicPacket) and isinstance(second, LogicPacket)
    assert second.meta is first.meta and runs.hits == 1


def test_hits_keep_the_cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = meta_runs._MetaRuns(max_entries=4, window=16, pause=32)
    monkeypatch.setattr(packet_module, "_META_RUNS", runs)
    raw = LogicPacket("c", meta=IDENTITY).encode()
    for _ in range(100):
        decode_packet(raw)
    assert runs.paused == 0 and list(runs.entries) == [encode_meta(IDENTITY)]


def test_long_meta_runs_are_not_cached() -> None:
    channels = ",".join(f"gw_user{i}_{i}" for i in range(200))
    meta = (Meta("channels", channels),)
    raw = LogicPacket("chat.group.talk", meta=meta).encode()
    assert decode_packet(raw).meta == meta  # type: ignore[union-attr]
    assert encode_meta(meta) not in packet_module._META_RUNS.entries


@settings(max_examples=200)
@given(logic_packets, logic_packets)
def test_replace_is_dataclasses_replace(packet: LogicPacket, other: LogicPacket) -> None:
    changes: dict[str, Any] = {"channel_id": other.channel_id, "meta": other.meta, "status": 5}
    assert packet.replace(**changes) == dataclasses.replace(packet, **changes)
    assert packet.replace() == packet
    everything = {name: getattr(other, name) for name in logic_packet._LOGIC_FIELDS}
    assert packet.replace(**everything) == other


def test_replace_unknown_field_is_type_error() -> None:
    with pytest.raises(TypeError, match="bogus"):
        LogicPacket("c").replace(bogus=1)


@settings(max_examples=200)
@given(logic_packets, st.integers(-(2**31), 2**31 - 1), st.binary(max_size=50))
def test_response_is_the_documented_copy(packet: LogicPacket, status: int, body: bytes) -> None:
    expected = LogicPacket(
        packet.command, packet.channel_id, packet.sequence, Flag.RESPONSE, status, "",
        packet.meta, body,
    )  # fmt: skip
    assert packet.response(status, body) == expected


@settings(max_examples=100)
@given(logic_packets)
def test_request_and_make_push_build_the_documented_packets(packet: LogicPacket) -> None:
    request = LogicPacket.request(
        packet.command,
        packet.body,
        sequence=packet.sequence,
        dest=packet.dest,
        channel_id=packet.channel_id,
        meta=list(packet.meta),
    )
    assert request == LogicPacket(
        packet.command, packet.channel_id, packet.sequence, Flag.REQUEST, 0, packet.dest,
        packet.meta, packet.body,
    )  # fmt: skip
    push = LogicPacket.make_push(
        packet.command, packet.body, channel_id=packet.channel_id, dest=packet.dest,
        meta=packet.meta,
    )  # fmt: skip
    assert push == LogicPacket(
        packet.command, packet.channel_id, 0, Flag.PUSH, 0, packet.dest, packet.meta,
        packet.body,
    )  # fmt: skip
    assert type(request) is LogicPacket and type(push) is LogicPacket
