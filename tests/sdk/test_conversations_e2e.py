"""The SDK's conversation calls and events against real ``cirno up`` processes."""

from __future__ import annotations

import pytest

from cirno.harness import Cluster
from cirno_sdk import ConversationKind, ReadEvent, RecallEvent, RequestRefused
from data_plane.wire import Status
from tests.sdk.conftest import tcp_url
from tests.sdk.test_client_e2e import client, name, next_event, receive

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_list_history_read_receipt_recall_and_delete(cluster: Cluster) -> None:
    url = tcp_url(cluster)
    alice, bob = name("alice"), name("bob")
    async with client(url, alice) as sender, client(url, bob) as reader:
        sent = [await sender.send(bob, f"hello {i}") for i in range(3)]
        await receive(reader, 3)
        page = await reader.conversations()
        [talk] = [c for c in page.conversations if c.peer == alice]
        assert (talk.kind, talk.unread, talk.preview) == (ConversationKind.USER, 3, "hello 2")
        history = await reader.history(alice, limit=2)
        assert [m.body for m in history.messages] == ["hello 2", "hello 1"] and history.has_more
        older = await reader.history(alice, before=history.messages[-1].message_id)
        assert [m.body for m in older.messages] == ["hello 0"] and not older.has_more
        moved, now = await reader.mark_read(alice, sent[2].message_id)
        assert moved and now.unread == 0
        receipt = await next_event(sender, ReadEvent)
        assert (receipt.reader, receipt.message_id) == (bob, sent[2].message_id)
        assert await sender.recall(sent[1].message_id) > 0
        recalled = await next_event(reader, RecallEvent)
        assert (recalled.message_id, recalled.sender) == (sent[1].message_id, alice)
        tombstone = (await reader.history(alice)).messages[1]
        assert tombstone.recalled and tombstone.body == ""
        with pytest.raises(RequestRefused) as refused:
            await reader.recall(sent[0].message_id)
        assert refused.value.status == Status.FORBIDDEN
        await reader.delete(sent[0].message_id)
        left = await reader.history(alice)
        assert [m.message_id for m in left.messages] == [sent[2].message_id, sent[1].message_id]
