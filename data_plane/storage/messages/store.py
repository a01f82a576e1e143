"""The SQL ``MessageStore`` (SQLite, MySQL): a facade over the rooms that do the work.

Theory of operation — where each part lives:

- Sends (1:1 and group) and acks each go through a ``writer.BatchWriter``: a
  ``group_commit.GroupCommitter`` queue, one transaction per batch on a connection the
  writer holds (``link.WriterLink``, ``connections``), the batch's statements written
  out per dialect (``statements``, ``statements_mysql``) and decided in
  ``sends.SendWrites`` / ``acks.AckWrites``; which inbox rows the database numbers
  itself is ``delivery``. Nothing is awaited between a caller and its queue slot, and
  items are decided in queue order, so one sender's pipelined messages keep their order.
- Inbox heads (read by every login) are coalesced: one reader task, one round trip
  for every call queued meanwhile (``heads``).
- Reads (``reads``), group changes (``groups``) and the conversation methods other
  than the list's upkeep on send (``conversations``) use the engine's pool
  (``engine.PooledConnections``).
- MySQL runs at READ COMMITTED; deadlocks, lock wait timeouts and unique-key races roll a
  transaction back and run it again (``engine.Retrying``); the retry of a key race reads
  the winner's row and answers ``duplicate=True``. SQLite has one writer: write
  transactions start with ``BEGIN IMMEDIATE``; reads run in autocommit.
- Any database or connection failure surfaces as ``MessageStoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from data_plane.storage.ids import SnowflakeIds
from data_plane.storage.messages.acks import AckWrites
from data_plane.storage.messages.conversation_protocol import (
    Conversation,
    ConversationKind,
    ConversationPage,
    HistoryPage,
    ReadCount,
    ReadResult,
    RecallResult,
)
from data_plane.storage.messages.conversations import SqlConversations
from data_plane.storage.messages.engine import (
    PooledConnections,
    Retrying,
    create_message_engine,
    group_concat_command,
)
from data_plane.storage.messages.group_admin import GroupAdmin
from data_plane.storage.messages.group_commit import DEFAULT_LINGER_S, DEFAULT_MAX_BATCH
from data_plane.storage.messages.group_model import (
    Access,
    Application,
    GroupChanges,
    JoinPolicy,
    Role,
)
from data_plane.storage.messages.groups import Groups
from data_plane.storage.messages.heads import HeadReads
from data_plane.storage.messages.items import Ack, Send, SendOutcome
from data_plane.storage.messages.link import WriterLink
from data_plane.storage.messages.outbox import Outbound
from data_plane.storage.messages.protocol import (
    Content,
    Group,
    InboxMessage,
    IndexPage,
    Member,
    SendResult,
    check_device,
    check_id,
    check_message,
)
from data_plane.storage.messages.push_queue import PushQueue
from data_plane.storage.messages.reads import Reads
from data_plane.storage.messages.sends import SendWrites
from data_plane.storage.messages.statements import SendStatements
from data_plane.storage.messages.statements_mysql import MysqlSendStatements
from data_plane.storage.messages.writer import BatchWriter


class SqlMessageStore:
    """A ``MessageStore`` on SQLite or MySQL.

    ``run`` must be running (in a task group) while the store is used; use
    ``open_sql_message_store`` or ``factory.open_message_store``, which also close it.
    ``sends`` and ``acks`` are the two writers; ``send_writes`` holds the send batch's
    tunables (``bulk_min_members``, ``optimistic_max``) and its statements.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        node_id: int,
        linger_s: float = DEFAULT_LINGER_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        ids: SnowflakeIds | None = None,
        busy_timeout_s: float = 5.0,
        connect_timeout_s: int = 5,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        mysql = engine.dialect.name in ("mysql", "mariadb")
        statements = MysqlSendStatements() if mysql else SendStatements()
        self._ids = ids if ids is not None else SnowflakeIds(node_id)
        self._retrying = Retrying()
        self._pool = PooledConnections(engine, self._retrying)
        self._reads = Reads(self._pool)
        self._heads = HeadReads(self._pool)
        self._groups = Groups(self._pool, self._ids)
        self._conversations = SqlConversations(self._pool, self._ids.now_ms)
        self._admin = GroupAdmin(self._pool, self._ids, self._groups)
        self.send_writes = SendWrites(statements, self._ids)
        self.outbound = Outbound(self._pool)
        self.push_queue = PushQueue(self._pool)
        """The webhook outbox and deliveries (``outbox``); ``push_queue`` the push jobs."""
        # Each writer holds a connection of its own (see ``link``); the engine's pool
        # serves the reads and the group writes, which run concurrently.
        url = engine.url.render_as_string(hide_password=False)

        def link() -> WriterLink:
            return WriterLink(
                url,
                connect_timeout_s=connect_timeout_s,
                busy_timeout_s=busy_timeout_s,
                mysql_init_command=group_concat_command(),
            )

        self.sends: BatchWriter[Send, SendOutcome] = BatchWriter(
            self.send_writes,
            link(),
            self._retrying,
            linger_s=linger_s,
            max_batch=max_batch,
            sleep=sleep,
        )
        self.acks: BatchWriter[Ack, bool] = BatchWriter(
            AckWrites(statements),
            link(),
            self._retrying,
            linger_s=linger_s,
            max_batch=max_batch,
            sleep=sleep,
        )
        self._closed = False

    @property
    def flushes(self) -> int:
        """Send batches flushed so far (one transaction each, retries aside)."""
        return self.sends.flushes

    @property
    def ack_flushes(self) -> int:
        """Ack batches flushed so far."""
        return self.acks.flushes

    @property
    def head_reads(self) -> int:
        """Round trips that read inbox heads so far (each serves every call queued)."""
        return self._heads.round_trips

    @property
    def retries(self) -> int:
        """Write transactions run again after a deadlock, lock timeout or key race."""
        return self._retrying.count

    async def run(self) -> None:
        """Run the send and ack writers and the head reader until ``aclose``."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.sends.run)
            tg.start_soon(self.acks.run)
            tg.start_soon(self._heads.run)

    async def aclose(self) -> None:
        """Let the writers flush what is queued, then release every connection."""
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        self.sends.close()
        self.acks.close()
        self._heads.close()
        await self.sends.aclose()
        await self.acks.aclose()
        await self._heads.wait_stopped()
        await self._pool.dispose()

    # -- writes through the writers --------------------------------------------------

    async def send_user_message(
        self,
        tenant: str,
        sender: str,
        receiver: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> SendResult:
        """See ``MessageStore.send_user_message``."""
        check_message(tenant, sender, type, body, extra, client_msg_id)
        check_id("receiver", receiver)
        item = Send(tenant, sender, receiver, "", type, bytes(body), extra, client_msg_id)
        result, _ = await self.sends.submit(item)
        return result

    async def send_group_message(
        self,
        tenant: str,
        sender: str,
        group_id: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> tuple[SendResult, list[str]]:
        """See ``MessageStore.send_group_message``."""
        check_message(tenant, sender, type, body, extra, client_msg_id)
        check_id("group_id", group_id)
        item = Send(tenant, sender, "", group_id, type, bytes(body), extra, client_msg_id)
        return await self.sends.submit(item)

    async def ack(self, tenant: str, account: str, device: str, message_id: int) -> bool:
        """See ``MessageStore.ack``."""
        check_device(device)
        return await self.acks.submit(Ack(tenant, account, device, message_id))

    # -- reads and groups on the pool -------------------------------------------------

    async def list_index(
        self, tenant: str, account: str, device: str, after_message_id: int, limit: int
    ) -> IndexPage:
        """See ``MessageStore.list_index``."""
        return await self._reads.list_index(tenant, account, device, after_message_id, limit)

    async def get_contents(
        self, tenant: str, account: str, message_ids: Sequence[int]
    ) -> list[Content]:
        """See ``MessageStore.get_contents``."""
        return await self._reads.get_contents(tenant, account, message_ids)

    async def is_sent(self, tenant: str, sender: str, client_msg_id: str) -> bool:
        """See ``MessageStore.is_sent``."""
        return await self._reads.is_sent(tenant, sender, client_msg_id)

    async def inbox_heads(self, tenant: str, accounts: Sequence[str]) -> dict[str, int]:
        """See ``MessageStore.inbox_heads``: coalesced with concurrent calls (``heads``)."""
        return await self._heads.read(tenant, accounts)

    async def read_inbox(
        self, tenant: str, account: str, after_seq: int, limit: int
    ) -> list[InboxMessage]:
        """See ``MessageStore.read_inbox``."""
        return await self._reads.read_inbox(tenant, account, after_seq, limit)

    async def create_group(
        self,
        tenant: str,
        owner: str,
        name: str,
        avatar: str,
        introduction: str,
        members: Sequence[str],
        join_policy: JoinPolicy = JoinPolicy.INVITE,
    ) -> Group:
        """See ``MessageStore.create_group``."""
        return await self._groups.create_group(
            tenant, owner, name, avatar, introduction, members, join_policy
        )

    async def join_group(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.join_group``."""
        return await self._groups.join_group(tenant, group_id, account)

    async def quit_group(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.quit_group``."""
        return await self._groups.quit_group(tenant, group_id, account)

    async def get_group(self, tenant: str, group_id: str) -> Group:
        """See ``MessageStore.get_group``."""
        return await self._groups.get_group(tenant, group_id)

    async def members(self, tenant: str, group_id: str) -> list[Member]:
        """See ``MessageStore.members``."""
        return await self._groups.members(tenant, group_id)

    async def is_member(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.is_member``."""
        return await self._groups.is_member(tenant, group_id, account)

    # -- conversations on the pool ----------------------------------------------------

    async def list_conversations(
        self, tenant: str, account: str, before_seq: int, limit: int
    ) -> ConversationPage:
        """See ``ConversationStore.list_conversations``."""
        return await self._conversations.list_conversations(tenant, account, before_seq, limit)

    async def get_conversation(
        self, tenant: str, account: str, kind: ConversationKind, peer: str
    ) -> Conversation | None:
        """See ``ConversationStore.get_conversation``."""
        return await self._conversations.get_conversation(tenant, account, kind, peer)

    async def history(
        self,
        tenant: str,
        account: str,
        kind: ConversationKind,
        peer: str,
        before_message_id: int,
        limit: int,
    ) -> HistoryPage:
        """See ``ConversationStore.history``."""
        return await self._conversations.history(
            tenant, account, kind, peer, before_message_id, limit
        )

    async def mark_read(
        self, tenant: str, account: str, kind: ConversationKind, peer: str, message_id: int
    ) -> ReadResult:
        """See ``ConversationStore.mark_read``."""
        return await self._conversations.mark_read(tenant, account, kind, peer, message_id)

    async def read_count(self, tenant: str, account: str, message_id: int) -> ReadCount:
        """See ``ConversationStore.read_count``."""
        return await self._conversations.read_count(tenant, account, message_id)

    async def recall(
        self, tenant: str, account: str, message_id: int, sent_after: int
    ) -> RecallResult:
        """See ``ConversationStore.recall``."""
        return await self._conversations.recall(tenant, account, message_id, sent_after)

    async def hide_message(self, tenant: str, account: str, message_id: int) -> bool:
        """See ``ConversationStore.hide_message``."""
        return await self._conversations.hide_message(tenant, account, message_id)

    # -- group administration ------------------------------------------------------------

    async def group_access(self, tenant: str, group_id: str, account: str) -> Access | None:
        """See ``MessageStore.group_access``."""
        return await self._admin.group_access(tenant, group_id, account)

    async def update_group(self, tenant: str, group_id: str, changes: GroupChanges) -> Group:
        """See ``MessageStore.update_group``."""
        return await self._admin.update_group(tenant, group_id, changes)

    async def set_member(
        self,
        tenant: str,
        group_id: str,
        account: str,
        *,
        role: Role | None = None,
        muted: bool | None = None,
    ) -> bool:
        """See ``MessageStore.set_member``."""
        return await self._admin.set_member(tenant, group_id, account, role=role, muted=muted)

    async def transfer_group(self, tenant: str, group_id: str, new_owner: str) -> bool:
        """See ``MessageStore.transfer_group``."""
        return await self._admin.transfer_group(tenant, group_id, new_owner)

    async def dismiss_group(self, tenant: str, group_id: str) -> list[str]:
        """See ``MessageStore.dismiss_group``."""
        return await self._admin.dismiss_group(tenant, group_id)

    async def add_application(self, tenant: str, group_id: str, account: str, message: str) -> bool:
        """See ``MessageStore.add_application``."""
        return await self._admin.add_application(tenant, group_id, account, message)

    async def applications(self, tenant: str, group_id: str) -> list[Application]:
        """See ``MessageStore.applications``."""
        return await self._admin.applications(tenant, group_id)

    async def take_application(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.take_application``."""
        return await self._admin.take_application(tenant, group_id, account)


@asynccontextmanager
async def open_sql_message_store(
    url: str,
    *,
    node_id: int,
    linger_s: float = DEFAULT_LINGER_S,
    max_batch: int = DEFAULT_MAX_BATCH,
    pool_size: int = 10,
) -> AsyncIterator[SqlMessageStore]:
    """A ``SqlMessageStore`` on ``url`` whose writers run for the life of the context.

    The tables must exist (``alembic upgrade head``, or ``metadata.create_all`` in
    tests). Connections are opened lazily: an unreachable database shows up as
    ``MessageStoreUnavailable`` from the operations, not here.
    """
    store = SqlMessageStore(
        create_message_engine(url, pool_size=pool_size),
        node_id=node_id,
        linger_s=linger_s,
        max_batch=max_batch,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.run)
            try:
                yield store
            finally:
                with anyio.CancelScope(shield=True):
                    await store.aclose()
    except BaseExceptionGroup as group:
        # The task group wraps the body's own exception; give the caller that one back.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
