"""Hypothesis strategies for wire packets and frames."""

from __future__ import annotations

from hypothesis import strategies as st

from data_plane.wire import BasicPacket, Command, Flag, LogicPacket, Meta, MetaType, Opcode

short_text = st.text(max_size=24)
commands = st.one_of(st.sampled_from(list(Command)).map(str), st.text(max_size=40))
sequences = st.integers(min_value=0, max_value=2**32 - 1)
statuses = st.integers(min_value=-(2**31), max_value=2**31 - 1)
metas = st.lists(
    st.builds(Meta, short_text, short_text, st.sampled_from(list(MetaType))), max_size=4
).map(tuple)
bodies = st.binary(max_size=300)

logic_packets = st.builds(
    LogicPacket,
    command=commands,
    channel_id=short_text,
    sequence=sequences,
    flag=st.sampled_from(list(Flag)),
    status=statuses,
    dest=short_text,
    meta=metas,
    body=bodies,
)
basic_packets = st.builds(
    BasicPacket,
    code=st.integers(min_value=0, max_value=0xFFFF),
    body=st.binary(max_size=300),
)
packets = st.one_of(logic_packets, basic_packets)

opcodes = st.sampled_from(list(Opcode))
frames = st.lists(st.tuples(opcodes, st.binary(max_size=200)), max_size=12)
