"""Delivery planning: which inbox rows a send batch writes, and who numbers them.

A batch's stored sends become inbox rows: the receiver's and the sender's for a 1:1
message, every member's for a group message. Most are numbered in Python from the
counters the batch reserved (``DeliveryPlan.individual``); a large group whose members
get nothing else in the batch is written by the database in bulk from
``group_members`` (``DeliveryPlan.bulk``), giving the same numbers in the same order.
Pure code: no I/O, so the plan is tested without a database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from data_plane.storage.messages.items import RECEIVED, SENT, Delivery, Send


@dataclass(frozen=True, slots=True)
class BulkMessage:
    """A group message whose inbox rows the database writes from ``group_members``.

    Each member's row takes the member's counter (already raised by the whole batch)
    minus ``later``: the number of the batch's messages to this group after this one.
    """

    tenant: str
    group_id: str
    message_id: int
    sender: str
    send_time: int
    later: int


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """A batch's inbox rows: numbered in Python, or in bulk by the database."""

    individual: list[Delivery]
    bulk: list[BulkMessage]
    bulk_counts: dict[tuple[str, str], int]
    """(tenant, group_id) → the batch's messages to that bulk group."""


def plan_deliveries(
    stored: list[tuple[Send, int, int]],
    group_accounts: dict[tuple[str, str], list[str]],
    group_sets: dict[tuple[str, str], set[str]],
    bulk_min_members: int,
) -> DeliveryPlan:
    """Which of the batch's inbox rows the database writes in bulk, and the others.

    A group goes in bulk when it has at least ``bulk_min_members`` members and none
    of them gets any other row in this batch (no 1:1 message, no other group's). Then
    every member gets exactly the batch's messages to that group, so one count per
    group raises all their counters and each message's rows are the counters minus
    the messages after it: the same numbers, in the same batch order, as row by row.
    ``stored`` is (item, message_id, send_time) of the stored sends, in batch order.
    """
    per_group = Counter((i.tenant, i.group_id) for i, _, _ in stored if i.group_id)
    big = [g for g in per_group if len(group_accounts[g]) >= bulk_min_members]
    bulk_groups = _exclusive_groups(stored, big, group_sets) if big else set()
    remaining = {g: per_group[g] for g in bulk_groups}
    individual: list[Delivery] = []
    bulk: list[BulkMessage] = []
    for item, message_id, send_time in stored:
        group = (item.tenant, item.group_id)
        if not item.group_id:
            _add_user_deliveries(individual, item, message_id, send_time)
        elif group in bulk_groups:
            remaining[group] -= 1
            bulk.append(
                BulkMessage(
                    item.tenant, item.group_id, message_id, item.sender, send_time, remaining[group]
                )
            )
        else:
            _add_group_deliveries(individual, item, group_accounts[group], message_id, send_time)
    return DeliveryPlan(individual, bulk, {g: per_group[g] for g in bulk_groups})


def _exclusive_groups(
    stored: list[tuple[Send, int, int]],
    candidates: list[tuple[str, str]],
    group_sets: dict[tuple[str, str], set[str]],
) -> set[tuple[str, str]]:
    """The candidate groups none of whose members gets a row from anything else."""
    user_accounts: dict[str, set[str]] = {}
    groups_of: dict[str, set[str]] = {}
    for item, _, _ in stored:
        if item.group_id:
            groups_of.setdefault(item.tenant, set()).add(item.group_id)
        else:
            user_accounts.setdefault(item.tenant, set()).update((item.sender, item.receiver))
    exclusive: set[tuple[str, str]] = set()
    for tenant, group_id in candidates:
        members = group_sets[(tenant, group_id)]
        if not members.isdisjoint(user_accounts.get(tenant, ())):
            continue
        others = (g for g in groups_of[tenant] if g != group_id)
        if all(members.isdisjoint(group_sets[(tenant, g)]) for g in others):
            exclusive.add((tenant, group_id))
    return exclusive


def _add_user_deliveries(
    deliveries: list[Delivery], item: Send, message_id: int, send_time: int
) -> None:
    """The receiver's inbox row first, then the sender's (one row if they are the same)."""
    if item.receiver != item.sender:
        received = (message_id, RECEIVED, item.sender, "", send_time)
        deliveries.append((item.tenant, item.receiver, received))
    deliveries.append((item.tenant, item.sender, (message_id, SENT, item.receiver, "", send_time)))


def _add_group_deliveries(
    deliveries: list[Delivery],
    item: Send,
    accounts: list[str],
    message_id: int,
    send_time: int,
) -> None:
    """One inbox row per member in join order; all but the sender's share one tail."""
    tenant, sender = item.tenant, item.sender
    received = (message_id, RECEIVED, sender, item.group_id, send_time)
    sent = (message_id, SENT, sender, item.group_id, send_time)
    deliveries.extend((tenant, a, sent if a == sender else received) for a in accounts)
