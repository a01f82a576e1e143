"""The generated messages match docs/protocol.md: kim's fields and cirno's extensions."""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from data_plane.wire import Flag, MetaType, Status, pb

S = FieldDescriptor.TYPE_STRING
I32 = FieldDescriptor.TYPE_INT32
I64 = FieldDescriptor.TYPE_INT64
U32 = FieldDescriptor.TYPE_UINT32
BOOL = FieldDescriptor.TYPE_BOOL
ENUM = FieldDescriptor.TYPE_ENUM
MSG = FieldDescriptor.TYPE_MESSAGE

# message -> field -> (number, type, repeated)
KIM_FIELDS: dict[str, dict[str, tuple[int, int, bool]]] = {
    "Meta": {"key": (1, S, False), "value": (2, S, False), "type": (3, ENUM, False)},
    "Header": {
        "command": (1, S, False),
        "channelId": (2, S, False),
        "sequence": (3, U32, False),
        "flag": (4, ENUM, False),
        "status": (5, ENUM, False),
        "dest": (6, S, False),
        "meta": (7, MSG, True),
    },
    "LoginReq": {
        "token": (1, S, False),
        "isp": (2, S, False),
        "zone": (3, S, False),
        "tags": (4, S, True),
    },
    "LoginResp": {"channelId": (1, S, False), "account": (2, S, False)},
    "KickoutNotify": {"channelId": (1, S, False)},
    "MessageReq": {"type": (1, I32, False), "body": (2, S, False), "extra": (3, S, False)},
    "MessageResp": {"messageId": (1, I64, False), "sendTime": (2, I64, False)},
    "MessagePush": {
        "messageId": (1, I64, False),
        "type": (2, I32, False),
        "body": (3, S, False),
        "extra": (4, S, False),
        "sender": (5, S, False),
        "sendTime": (6, I64, False),
    },
    "MessageAckReq": {"messageId": (1, I64, False)},
    "ErrorResp": {"message": (1, S, False)},
    "GroupCreateReq": {
        "name": (1, S, False),
        "avatar": (2, S, False),
        "introduction": (3, S, False),
        "owner": (4, S, False),
        "members": (5, S, True),
    },
    "GroupCreateResp": {"group_id": (1, S, False)},
    "GroupCreateNotify": {"group_id": (1, S, False), "members": (2, S, True)},
    "GroupJoinReq": {"account": (1, S, False), "group_id": (2, S, False)},
    "GroupQuitReq": {"account": (1, S, False), "group_id": (2, S, False)},
    "GroupGetReq": {"group_id": (1, S, False)},
    "Member": {
        "account": (1, S, False),
        "alias": (2, S, False),
        "avatar": (3, S, False),
        "join_time": (4, I64, False),
    },
    "GroupGetResp": {
        "id": (1, S, False),
        "name": (2, S, False),
        "avatar": (3, S, False),
        "introduction": (4, S, False),
        "owner": (5, S, False),
        "members": (6, MSG, True),
        "created_at": (7, I64, False),
    },
    "MessageIndexReq": {"message_id": (1, I64, False)},
    "MessageIndexResp": {"indexes": (1, MSG, True)},
    "MessageIndex": {
        "message_id": (1, I64, False),
        "direction": (2, I32, False),
        "send_time": (3, I64, False),
        "accountB": (4, S, False),
        "group": (5, S, False),
    },
    "MessageContentReq": {"message_ids": (1, I64, True)},
    "MessageContentResp": {"contents": (1, MSG, True)},
    "MessageContent": {
        "messageId": (1, I64, False),
        "type": (2, I32, False),
        "body": (3, S, False),
        "extra": (4, S, False),
    },
}

EXTENSION_FIELDS: dict[str, dict[str, tuple[int, int, bool]]] = {
    "LoginReq": {"device": (5, S, False), "client_version": (6, S, False)},
    "MessageReq": {"client_msg_id": (4, S, False)},
    "MessageResp": {"seq": (3, I64, False), "inbox_seq": (4, I64, False)},
    "GroupGetReq": {"offset": (2, I32, False), "limit": (3, I32, False)},
    "GroupGetResp": {
        "member_count": (8, I32, False),
        "announcement": (9, S, False),
        "join_policy": (10, ENUM, False),
        "muted": (11, BOOL, False),
    },
    "GroupCreateReq": {"join_policy": (6, ENUM, False)},
    "Member": {"admin": (5, BOOL, False), "muted": (6, BOOL, False)},
    "MessagePush": {
        "client_msg_id": (7, S, False),
        "seq": (8, I64, False),
        "group": (9, S, False),
        "inbox_seq": (10, I64, False),
    },
    "MessageIndex": {"seq": (6, I64, False)},
    "MessageIndexResp": {"has_more": (2, BOOL, False)},
    "MessageContent": {"recalled": (5, BOOL, False)},
    "KickoutNotify": {"reason": (2, S, False)},
    "GroupJoinNotify": {"group_id": (1, S, False), "account": (2, S, False)},
    "GroupQuitNotify": {"group_id": (1, S, False), "account": (2, S, False)},
    "GroupMembersResp": {
        "members": (1, MSG, True),
        "has_more": (2, BOOL, False),
        "member_count": (3, I32, False),
    },
}


def descriptor(name: str) -> Descriptor:
    """The message descriptor of ``pkt.<name>``."""
    return pb.DESCRIPTOR.message_types_by_name[name]


def field_message(message: str, field: str) -> str:
    """The name of the message type of ``message.field``."""
    message_type = descriptor(message).fields_by_name[field].message_type
    assert message_type is not None
    return message_type.name


def check_fields(table: dict[str, dict[str, tuple[int, int, bool]]]) -> None:
    """Every field in ``table`` exists with its number, type and cardinality."""
    for message, fields in table.items():
        desc = descriptor(message)
        for name, (number, type_, repeated) in fields.items():
            field = desc.fields_by_name[name]
            assert (field.number, field.type, field.is_repeated) == (number, type_, repeated), (
                f"{message}.{name}"
            )


def test_package_is_pkt() -> None:
    assert pb.DESCRIPTOR.package == "pkt"
    assert pb.Header.DESCRIPTOR.full_name == "pkt.Header"


def test_kim_fields() -> None:
    check_fields(KIM_FIELDS)


def test_extension_fields() -> None:
    check_fields(EXTENSION_FIELDS)
    assert pb.MessageReq.DESCRIPTOR.fields_by_name["client_msg_id"].number == 4


def test_no_unexpected_fields() -> None:
    for message in set(KIM_FIELDS) | set(EXTENSION_FIELDS):
        expected = set(KIM_FIELDS.get(message, {})) | set(EXTENSION_FIELDS.get(message, {}))
        assert set(descriptor(message).fields_by_name) == expected, message


def test_nested_message_types() -> None:
    assert field_message("Header", "meta") == "Meta"
    assert field_message("GroupGetResp", "members") == "Member"
    assert field_message("GroupMembersResp", "members") == "Member"
    assert field_message("MessageIndexResp", "indexes") == "MessageIndex"
    assert field_message("MessageContentResp", "contents") == "MessageContent"


@pytest.mark.parametrize(
    ("py_enum", "pb_enum"), [(Flag, "Flag"), (MetaType, "MetaType"), (Status, "Status")]
)
def test_enums_match_the_proto(py_enum: type[Flag | MetaType | Status], pb_enum: str) -> None:
    numbers = {value.number for value in pb.DESCRIPTOR.enum_types_by_name[pb_enum].values}
    assert numbers == {int(member) for member in py_enum}


def test_kim_enum_names() -> None:
    assert (pb.Success, pb.NoDestination, pb.InvalidPacketBody, pb.InvalidCommand) == (
        0,
        100,
        101,
        103,
    )
    assert (pb.Unauthorized, pb.SystemException, pb.NotImplemented, pb.SessionNotFound) == (
        105,
        300,
        301,
        404,
    )
    assert (pb.Request, pb.Response, pb.Push) == (0, 1, 2)
    assert pb.MetaType.Value("int") == 0
    assert pb.MetaType.Value("string") == 1
    assert pb.MetaType.Value("float") == 2


def test_wire_imports_no_io() -> None:
    code = (
        "import sys, data_plane.wire\n"
        "bad = {'anyio', 'asyncio', 'redis', 'socket', 'trio', 'ssl', 'selectors'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
