"""1:1 chat end to end: durable send, push, offline sync, acks, resend, multi-device."""

from __future__ import annotations

import uuid

import anyio
import pytest

from cirno.harness import Cluster, RawClient, make_token
from data_plane.wire import Command, Flag, Status, pb
from tests.e2e.conftest import SECRET, TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def online(
    cluster: Cluster, account: str, *, tcp: bool = False, device: str = ""
) -> RawClient:
    """A logged-in client of ``account``."""
    client = await (RawClient.tcp(cluster.tcp_addr) if tcp else RawClient.websocket(cluster.ws_url))
    answer = await client.login(make_token(TENANT, account, SECRET), device=device)
    assert answer.status == Status.SUCCESS
    return client


async def send(
    client: RawClient, to: str, body: str, *, client_msg_id: str = "", type: int = 1
) -> pb.MessageResp:
    """Send a text message and return the response (asserting success)."""
    seq = client.request(
        Command.CHAT_USER_TALK,
        pb.MessageReq(type=type, body=body, extra="x", client_msg_id=client_msg_id),
        dest=to,
    )
    answer = await client.response(seq)
    assert answer.status == Status.SUCCESS, answer
    return answer.parse_body(pb.MessageResp)


async def index(client: RawClient, after: int) -> pb.MessageIndexResp:
    """One ``chat.offline.index`` page."""
    seq = client.request(Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=after))
    answer = await client.response(seq)
    assert answer.status == Status.SUCCESS, answer
    return answer.parse_body(pb.MessageIndexResp)


async def ack(client: RawClient, message_id: int) -> None:
    seq = client.request(Command.CHAT_TALK_ACK, pb.MessageAckReq(messageId=message_id))
    assert (await client.response(seq)).status == Status.SUCCESS


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def test_push_repeats_the_response(cluster: Cluster) -> None:
    alice, bob = unique("alice"), unique("bob")
    sender = await online(cluster, alice)
    receiver = await online(cluster, bob, tcp=True)
    resp = await send(sender, bob, "hello bob", type=2)
    assert resp.messageId > 0 and resp.sendTime > 0
    push = await receiver.push(Command.CHAT_USER_TALK)
    assert push.flag == Flag.PUSH and push.meta == ()
    body = push.parse_body(pb.MessagePush)
    assert (body.messageId, body.sendTime) == (resp.messageId, resp.sendTime)
    assert (body.body, body.type, body.sender, body.extra) == ("hello bob", 2, alice, "x")
    assert push.dest == bob
    sender.close()
    receiver.close()


async def test_response_comes_before_the_senders_own_pushes(cluster: Cluster) -> None:
    """The sender's other device gets a push; the sending connection gets only the response."""
    me = unique("multi")
    phone = await online(cluster, me, device="phone")
    laptop = await online(cluster, me, device="laptop", tcp=True)
    resp = await send(phone, unique("peer"), "from my phone")
    copy = (await laptop.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert copy.messageId == resp.messageId and copy.sender == me
    with anyio.move_on_after(0.5):
        extra = await phone.next_packet()
        pytest.fail(f"the sending connection got an extra packet: {extra}")
    phone.close()
    laptop.close()


async def test_offline_user_pulls_ten_messages(cluster: Cluster) -> None:
    sender_name, offline_name = unique("s"), unique("off")
    sender = await online(cluster, sender_name)
    sent = [await send(sender, offline_name, f"message {i}") for i in range(10)]
    receiver = await online(cluster, offline_name)
    page = await index(receiver, 0)
    assert not page.has_more
    assert [e.message_id for e in page.indexes] == [r.messageId for r in sent]
    assert all(e.accountB == sender_name and e.direction == 0 for e in page.indexes)
    assert [e.send_time for e in page.indexes] == [r.sendTime for r in sent]
    seqs = [e.seq for e in page.indexes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    assert list((await index(receiver, page.indexes[-1].message_id)).indexes) == []

    wanted = [r.messageId for r in reversed(sent)]
    seq = receiver.request(Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq(message_ids=wanted))
    answer = await receiver.response(seq)
    assert answer.status == Status.SUCCESS
    contents = answer.parse_body(pb.MessageContentResp).contents
    assert [c.messageId for c in contents] == wanted
    assert [c.body for c in contents] == [f"message {i}" for i in reversed(range(10))]
    # The sender's own inbox has the sent side (direction 1).
    own = await index(sender, 0)
    assert [e.direction for e in own.indexes] == [1] * 10
    assert {e.accountB for e in own.indexes} == {offline_name}
    sender.close()
    receiver.close()


async def test_ack_moves_forward_only(cluster: Cluster) -> None:
    sender, reader_name = await online(cluster, unique("s")), unique("reader")
    sent = [await send(sender, reader_name, f"m{i}") for i in range(5)]
    reader = await online(cluster, reader_name)
    await ack(reader, sent[2].messageId)
    await ack(reader, sent[0].messageId)  # backwards: ignored
    reader.close()
    again = await online(cluster, reader_name)
    page = await index(again, 0)
    assert [e.message_id for e in page.indexes] == [sent[3].messageId, sent[4].messageId]
    sender.close()
    again.close()


async def test_resend_is_stored_once(cluster: Cluster) -> None:
    sender_name, receiver_name = unique("s"), unique("r")
    sender = await online(cluster, sender_name)
    receiver = await online(cluster, receiver_name)
    first = await send(sender, receiver_name, "once", client_msg_id="cmid-1")
    second = await send(sender, receiver_name, "once", client_msg_id="cmid-1")
    assert (first.messageId, first.sendTime) == (second.messageId, second.sendTime)
    push = (await receiver.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert push.messageId == first.messageId and push.client_msg_id == "cmid-1"
    with anyio.move_on_after(0.5):
        extra = await receiver.push(Command.CHAT_USER_TALK)
        pytest.fail(f"a resend was pushed again: {extra}")
    page = await index(receiver, 0)
    assert [e.message_id for e in page.indexes] == [first.messageId]
    sender.close()
    receiver.close()


async def test_every_device_of_the_receiver_gets_the_push(cluster: Cluster) -> None:
    receiver_name = unique("r")
    devices = [
        await online(cluster, receiver_name, device="ios"),
        await online(cluster, receiver_name, device="web", tcp=True),
    ]
    sender = await online(cluster, unique("s"))
    resp = await send(sender, receiver_name, "to both")
    for device in devices:
        push = (await device.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
        assert push.messageId == resp.messageId
        device.close()
    sender.close()


async def test_bad_chat_requests_get_clear_statuses(cluster: Cluster) -> None:
    mine_name = unique("me")
    client = await online(cluster, mine_name)
    other = await online(cluster, unique("other"))
    foreign = await send(other, unique("third"), "not yours")

    async def status_of(command: str, body: bytes | object, dest: str = "") -> tuple[int, str]:
        seq = client.request(command, body, dest=dest)
        answer = await client.response(seq)
        message = answer.parse_body(pb.ErrorResp).message if answer.status else ""
        return answer.status, message

    status, why = await status_of(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="x"))
    assert status == Status.NO_DESTINATION and "dest" in why
    status, why = await status_of(Command.CHAT_USER_TALK, b"\xff\xff", dest="bob")
    assert status == Status.INVALID_PACKET_BODY
    status, why = await status_of(
        Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq(message_ids=[123456789])
    )
    assert status == Status.NOT_FOUND and "123456789" in why
    status, why = await status_of(
        Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq(message_ids=[foreign.messageId])
    )
    assert status == Status.NOT_FOUND and str(foreign.messageId) in why
    status, why = await status_of(
        Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq(message_ids=list(range(1, 202)))
    )
    assert status == Status.TOO_LARGE and "200" in why
    status, _ = await status_of(Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq())
    assert status == Status.INVALID_PACKET_BODY
    status, _ = await status_of(Command.CHAT_TALK_ACK, pb.MessageAckReq(messageId=987654321))
    assert status == Status.NOT_FOUND
    status, _ = await status_of(Command.CHAT_TALK_ACK, pb.MessageAckReq(messageId=0))
    assert status == Status.INVALID_PACKET_BODY
    status, _ = await status_of(Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=42))
    assert status == Status.NOT_FOUND
    status, _ = await status_of(
        Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="x"), dest="bad " * 30
    )
    assert status == Status.NO_DESTINATION  # not an account name (logic.names)
    # The connection still works after all of that.
    assert (await send(client, unique("fine"), "still here")).messageId > 0
    client.close()
    other.close()


async def test_pushes_and_receipts_carry_each_inbox_sequence(cluster: Cluster) -> None:
    """Receiver and sender's other device each get their own inbox's sequence, the sender's
    receipt its own; they match the index, and a message to oneself has one."""
    me, peer = unique("seqme"), unique("seqpeer")
    phone = await online(cluster, me, device="phone")
    laptop = await online(cluster, me, device="laptop", tcp=True)
    receiver = await online(cluster, peer)
    await send(receiver, me, "first, so the inboxes differ")  # me: 1, peer: 1
    await phone.push(Command.CHAT_USER_TALK)
    await laptop.push(Command.CHAT_USER_TALK)
    for expected_mine, expected_peer in ((2, 2), (3, 3)):
        resp = await send(phone, peer, "to peer")
        assert resp.inbox_seq == expected_mine
        to_peer = (await receiver.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
        copy = (await laptop.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
        assert to_peer.messageId == copy.messageId == resp.messageId
        assert (to_peer.inbox_seq, copy.inbox_seq) == (expected_peer, expected_mine)
    await send(receiver, unique("other"), "peer: 4")
    resp = await send(phone, peer, "me: 4, peer: 5")
    assert resp.inbox_seq == 4
    assert (await receiver.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush).inbox_seq == 5
    assert (await laptop.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush).inbox_seq == 4
    note = await send(phone, me, "to myself")
    assert note.inbox_seq == 5
    mine = (await laptop.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert (mine.messageId, mine.inbox_seq) == (note.messageId, 5)
    page = await index(laptop, 0)
    assert [(e.message_id, e.seq) for e in page.indexes][-2:] == [
        (resp.messageId, 4),
        (note.messageId, 5),
    ]
    # A resend is answered as a duplicate: no push, and no inbox number to report.
    again = await send(phone, peer, "again", client_msg_id="dup-1")
    dup = await send(phone, peer, "again", client_msg_id="dup-1")
    assert dup.messageId == again.messageId and again.inbox_seq == 6 and dup.inbox_seq == 0
    for client in (phone, laptop, receiver):
        client.close()
