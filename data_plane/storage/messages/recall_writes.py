"""What a recall writes besides the message row, on the recall's own transaction.

:func:`manages_group` reads whether an account may recall someone else's group message
(the group's owner or an admin: ``group_model.Access.manages``'s rule), and
:func:`clear_previews` blanks the preview of every recipient's conversation whose last
message the recall took back (by primary key; group recipients in chunks).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from data_plane.storage.messages.conversation_protocol import ConversationKind
from data_plane.storage.messages.group_model import Role
from data_plane.storage.messages.items import chunks
from data_plane.storage.messages.schema import chat_groups, conversations, group_members

c = conversations.c


async def manages_group(conn: AsyncConnection, tenant: str, group_id: str, account: str) -> bool:
    """Whether ``account`` is group ``group_id``'s owner or one of its admins (a
    member either way: ``group_model.Access.manages``'s rule, read on this
    transaction's connection); '' is a 1:1 message, managed by nobody."""
    if not group_id:
        return False
    row = (
        await conn.execute(
            select(chat_groups.c.owner, group_members.c.role)
            .select_from(
                chat_groups.join(
                    group_members,
                    and_(
                        group_members.c.tenant == chat_groups.c.tenant,
                        group_members.c.group_id == chat_groups.c.group_id,
                    ),
                )
            )
            .where(
                chat_groups.c.tenant == tenant,
                chat_groups.c.group_id == group_id,
                group_members.c.account == account,
            )
        )
    ).first()
    return row is not None and (row[0] == account or row[1] == Role.ADMIN)


async def clear_previews(
    conn: AsyncConnection,
    tenant: str,
    row: tuple[Any, ...],
    recipients: list[str],
    message_id: int,
) -> None:
    """Conversations whose last message was recalled lose its preview."""
    sender, receiver, group_id = row[0], row[1], row[2]
    if group_id:
        targets = [(chunk, ConversationKind.GROUP, group_id) for chunk in chunks(recipients)]
    else:
        targets = [([sender], ConversationKind.USER, receiver)]
        if receiver != sender:
            targets.append(([receiver], ConversationKind.USER, sender))
    for accounts, kind, peer in targets:
        await conn.execute(
            update(conversations)
            .where(
                c.tenant == tenant,
                c.account.in_(accounts),
                c.kind == int(kind),
                c.peer == peer,
                c.last_message_id == message_id,
            )
            .values(preview="")
        )
