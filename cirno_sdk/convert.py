"""Protobuf bodies to SDK models, in one place."""

from __future__ import annotations

import dataclasses

from cirno_sdk.models import Direction, GroupInfo, JoinPolicy, Member, Message
from data_plane.wire import LogicPacket, pb


def push_to_message(packet: LogicPacket, me: str) -> Message:
    """A ``MessagePush`` (1:1 or group) as seen by account ``me``.

    A push of our own message (sent from another device) names the receiver only when
    the server sets the header's ``dest``. A 1:1 push's ``inbox_seq`` is the sequence in
    ``me``'s inbox (the server sends each account's devices their own).
    """
    push = packet.parse_body(pb.MessagePush)
    sent = push.sender == me
    to = "" if push.group else (packet.dest if sent else me)
    return Message(
        message_id=push.messageId,
        sender=push.sender,
        to=to,
        group=push.group,
        type=push.type,
        body=push.body,
        extra=push.extra,
        send_time=push.sendTime,
        seq=push.seq if push.group else 0,
        client_msg_id=push.client_msg_id,
        direction=Direction.SENT if sent else Direction.RECEIVED,
        inbox_seq=0 if push.group else push.inbox_seq,
    )


def synced_message(index: pb.MessageIndex, content: pb.MessageContent | None, me: str) -> Message:
    """An inbox entry plus its content (offline sync); with ``content`` None, the entry
    alone (``content_loaded`` False, lazy sync). For a group message ``accountB`` is
    always the sender; for a 1:1 message it is the other party."""
    direction = Direction.SENT if index.direction == Direction.SENT else Direction.RECEIVED
    if index.group:
        sender, to = index.accountB, ""
    elif direction == Direction.SENT:
        sender, to = me, index.accountB
    else:
        sender, to = index.accountB, me
    if content is None:
        return Message(
            message_id=index.message_id,
            sender=sender,
            to=to,
            group=index.group,
            type=0,
            body="",
            extra="",
            send_time=index.send_time,
            direction=direction,
            inbox_seq=index.seq,
            content_loaded=False,
        )
    return Message(
        message_id=index.message_id,
        sender=sender,
        to=to,
        group=index.group,
        type=content.type,
        body=content.body,
        extra=content.extra,
        send_time=index.send_time,
        direction=direction,
        inbox_seq=index.seq,
        recalled=content.recalled,
    )


def with_content(message: Message, content: pb.MessageContent) -> Message:
    """``message`` (known from the index) with its fetched content, marked loaded."""
    return dataclasses.replace(
        message,
        type=content.type,
        body=content.body,
        extra=content.extra,
        recalled=content.recalled,
        content_loaded=True,
    )


def member(raw: pb.Member) -> Member:
    """A protobuf ``Member``."""
    return Member(raw.account, raw.alias, raw.avatar, raw.join_time, raw.admin, raw.muted)


def group_info(raw: pb.GroupGetResp) -> GroupInfo:
    """A protobuf ``GroupGetResp``."""
    return GroupInfo(
        group_id=raw.id,
        name=raw.name,
        avatar=raw.avatar,
        introduction=raw.introduction,
        owner=raw.owner,
        created_at=raw.created_at,
        members=tuple(member(m) for m in raw.members),
        announcement=raw.announcement,
        join_policy=JOIN_POLICIES.get(raw.join_policy, JoinPolicy.INVITE),
        muted=raw.muted,
    )


JOIN_POLICIES = {
    pb.JoinInvite: JoinPolicy.INVITE,
    pb.JoinOpen: JoinPolicy.OPEN,
    pb.JoinApproval: JoinPolicy.APPROVAL,
}
"""Wire join policies by number (an unknown number reads as invite-only)."""
WIRE_POLICIES = {policy: number for number, policy in JOIN_POLICIES.items()}
