"""The push-size bound of ``logic.push_size``: never below a real push, the quick path
never skips a push that might not fit, and the refusal happens exactly at the limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.logic.handlers.chat import message_push
from data_plane.logic.push_size import _SLACK, push_size, refuse_oversize_push
from data_plane.logic.refusal import Refused
from data_plane.storage.messages.protocol import SendResult
from data_plane.wire import Command, LogicPacket, Status, pb

texts = st.text(max_size=300)
names = st.text(min_size=1, max_size=64)


@settings(max_examples=200, deadline=None)
@given(
    body=texts,
    extra=texts,
    client_msg_id=st.text(max_size=64),
    type_=st.integers(-(2**31), 2**31 - 1),
    sender=names,
    dest=st.text(min_size=1, max_size=300),
    group=st.booleans(),
    numbers=st.tuples(*[st.integers(0, 2**63 - 1)] * 4),
)
def test_the_bound_covers_every_real_push_and_the_quick_path_is_safe(
    body: str,
    extra: str,
    client_msg_id: str,
    type_: int,
    sender: str,
    dest: str,
    group: bool,
    numbers: tuple[int, int, int, int],
) -> None:
    req = pb.MessageReq(type=type_, body=body, extra=extra, client_msg_id=client_msg_id)
    command = Command.CHAT_GROUP_TALK if group else Command.CHAT_USER_TALK
    in_group = dest if group else ""
    message_id, send_time, seq, inbox_seq = numbers
    real = message_push(
        command,
        req,
        sender,
        dest,
        SendResult(message_id, send_time, False, seq),
        in_group,
        0 if group else inbox_seq,
    ).replace(sequence=2**32 - 1)
    bound = push_size(
        lambda result, s: message_push(
            command, req, sender, dest, result, in_group, 0 if group else s
        )
    )
    assert len(real.encode_without_meta(channel_id="")) <= bound
    strings = command + dest + sender + in_group
    assert bound <= len(req.SerializeToString()) + len(strings.encode()) + _SLACK


def test_refused_exactly_above_the_limit() -> None:
    req = pb.MessageReq(type=1, body="x" * 1000)

    def push_of(result: SendResult, seq: int) -> LogicPacket:
        return message_push(Command.CHAT_USER_TALK, req, "alice", "bob", result, "", seq)

    size = push_size(push_of)
    raw = len(req.SerializeToString())
    refuse_oversize_push(push_of, size, raw_body=raw, strings="")  # fits exactly
    with pytest.raises(Refused) as refused:
        refuse_oversize_push(push_of, size - 1, raw_body=raw, strings="")
    assert refused.value.status == Status.TOO_LARGE
    assert f"({size} bytes)" in refused.value.reason
