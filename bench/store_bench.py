"""In-process message store benchmark: CPU per stored message, no network, no servers.

``python -m bench.store_bench [--backends sqlite,mysql] [--mysql-url URL] [--batch 1,10,250]``

Theory of operation
-------------------
The store is opened on a fresh SQLite file or a fresh ``cirno_bench_*`` MySQL database
(dropped afterwards) and measured in two shapes:

- **1:1 batches**: ``batches`` group commits of ``batch`` messages each (senders and
  receivers drawn from ``pairs`` pairs, each message with a ``client_msg_id`` as the SDK
  sends it). A batch is handed to the store's flush directly, the way the group
  committer hands it over when that many sends are queued, so the figure is the SQL
  store's own cost per message: deciding the batch, building and escaping the
  statements' parameters, the driver, and (SQLite) the database engine itself, which
  runs in a thread of this process. The group committer's queueing is not included.
  ``prefill`` messages are stored in the tenant first (not measured), so the batches
  meet a table of a realistic size rather than an empty one.
- **group messages**: one sender sends ``group_messages`` messages one after another to
  a group of ``group_members`` accounts, through the public ``send_group_message``
  (one transaction per message: content, one inbox row per member, the group sequence).

- **conversation operations** (``bench.conversation_bench``): the list, a history
  page, reads (near and 200 rows back), a group read count, recall and delete, each
  ``conversation_ops`` times (``--conversation-ops 0`` leaves them out). Their write cost
  on the send path is inside the two shapes above; the conversation rows' part of it is
  also measured alone after each 1:1 shape of more than one message: the send writer's
  conversation upserts for batches of the same shape, each in a transaction of its own,
  less a one-message batch's (``bench_conversation_upserts``). The history index's cost
  (``ix_messages_conversation``) is inside the 1:1 shape only.

CPU is ``time.process_time`` of this process (all its threads), so it is not disturbed
by other processes on the machine; MariaDB's own CPU is not in it. Wall time is printed
too, for what it is worth on a shared machine. A warm-up batch / message comes first.
``--batch`` takes several sizes (one row each, same store); ``--group-messages 0``
leaves the group shape out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import anyio
from sqlalchemy import create_engine

from bench.conversation_bench import bench_conversation_upserts, bench_conversations
from bench.targets import DEFAULT_MYSQL_URL, fresh_mysql_database
from data_plane.storage.messages.items import Send
from data_plane.storage.messages.schema import metadata
from data_plane.storage.messages.store import SqlMessageStore, open_sql_message_store
from data_plane.storage.urls import sync_url


@dataclass(frozen=True)
class StoreBenchConfig:
    """Shape of one run."""

    batch: int = 250
    batches: int = 20
    pairs: int = 50
    group_members: int = 1000
    group_messages: int = 20
    body_size: int = 100
    prefill: int = 0
    conversation_ops: int = 200


@dataclass
class StoreBenchResult:
    """Figures of one backend."""

    backend: str
    batch: int
    user_cpu_us_per_msg: float
    user_wall_us_per_msg: float
    user_messages: int
    group_cpu_ms_per_msg: float | None
    group_wall_ms_per_msg: float | None
    group_messages: int
    conversation_us_per_op: dict[str, tuple[float, float]] | None = None
    """(CPU µs, wall µs) per conversation operation, by shape."""
    upsert_cpu_us_per_msg: float | None = None
    upsert_wall_us_per_msg: float | None = None
    """The 1:1 shape's conversation upserts alone (``bench_conversation_upserts``)."""


@contextmanager
def _database(backend: str, mysql_url: str) -> Iterator[str]:
    """A URL of an empty database with the message tables, removed afterwards."""
    if backend == "mysql":
        with fresh_mysql_database(mysql_url) as url:
            _create_tables(url)
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="cirno-store-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'messages.db'}"
        _create_tables(url)
        yield url


def _create_tables(url: str) -> None:
    engine = create_engine(sync_url(url))
    metadata.create_all(engine)
    engine.dispose()


@asynccontextmanager
async def _store(url: str) -> AsyncIterator[SqlMessageStore]:
    async with open_sql_message_store(url, node_id=1, max_batch=1024) as store:
        yield store


def _user_batch(tenant: str, config: StoreBenchConfig, number: int) -> list[Send]:
    body = b"x" * config.body_size
    return [
        Send(
            tenant,
            f"s{i % config.pairs}",
            f"r{i % config.pairs}",
            "",
            1,
            body,
            "",
            f"m-{number}-{i}",
        )
        for i in range(config.batch)
    ]


async def _bench_user(store: SqlMessageStore, config: StoreBenchConfig) -> tuple[float, float]:
    """CPU and wall µs per message of 1:1 batches (after one warm-up batch)."""
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    for number in range(-(config.prefill // config.batch) - 1, 0):
        await _flush_checked(store, _user_batch(tenant, config, number))
    cpu = wall = 0.0
    for number in range(config.batches):
        items = _user_batch(tenant, config, number)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await _flush_checked(store, items)
        cpu += time.process_time() - cpu0
        wall += time.perf_counter() - wall0
    messages = config.batch * config.batches
    return cpu / messages * 1e6, wall / messages * 1e6


async def _flush_checked(store: SqlMessageStore, items: list[Send]) -> None:
    outcomes = await store.sends.flush(items)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)} sends failed, the first: {failed[0]!r}")
    if any(o[0].duplicate for o in outcomes if not isinstance(o, BaseException)):
        raise RuntimeError("a fresh send was answered as a duplicate")


async def _bench_group(store: SqlMessageStore, config: StoreBenchConfig) -> tuple[float, float]:
    """CPU and wall ms per group message (after one warm-up message)."""
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    members = [f"u{i:05d}" for i in range(config.group_members)]
    group = await store.create_group(tenant, members[0], "bench", "", "", members)
    body = b"x" * config.body_size

    async def send(number: int) -> None:
        _, receivers = await store.send_group_message(
            tenant, members[0], group.group_id, 1, body, "", f"g-{number}"
        )
        if len(receivers) != config.group_members:
            raise RuntimeError(f"{len(receivers)} receivers, expected {config.group_members}")

    await send(-1)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for number in range(config.group_messages):
        await send(number)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    return cpu / config.group_messages * 1e3, wall / config.group_messages * 1e3


async def run_store_bench(
    backend: str,
    config: StoreBenchConfig,
    mysql_url: str = DEFAULT_MYSQL_URL,
    batches: tuple[int, ...] = (),
) -> list[StoreBenchResult]:
    """Measure one backend (``sqlite`` or ``mysql``) on a database of its own: the 1:1
    shape at each of ``batches`` (default: ``config.batch``), then the group shape."""
    results: list[StoreBenchResult] = []
    with _database(backend, mysql_url) as url:
        async with _store(url) as store:
            for batch in batches or (config.batch,):
                shape = replace(config, batch=batch)
                user_cpu, user_wall = await _bench_user(store, shape)
                upsert: tuple[float | None, float | None] = (None, None)
                if config.conversation_ops > 0 and batch > 1:
                    cpu, wall = await bench_conversation_upserts(
                        url, batch, config.batches, config.pairs
                    )
                    upsert = (round(cpu, 1), round(wall, 1))
                results.append(
                    StoreBenchResult(
                        backend,
                        batch,
                        round(user_cpu, 1),
                        round(user_wall, 1),
                        batch * config.batches,
                        None,
                        None,
                        0,
                        None,
                        *upsert,
                    )
                )
            if config.group_messages > 0:
                group_cpu, group_wall = await _bench_group(store, config)
                results[-1] = replace(
                    results[-1],
                    group_cpu_ms_per_msg=round(group_cpu, 2),
                    group_wall_ms_per_msg=round(group_wall, 2),
                    group_messages=config.group_messages,
                )
            if config.conversation_ops > 0:
                ops = await bench_conversations(
                    store, config.conversation_ops, config.pairs, config.group_members
                )
                rounded = {k: (round(c, 1), round(w, 1)) for k, (c, w) in ops.items()}
                results[-1] = replace(results[-1], conversation_us_per_op=rounded)
    return results


def format_table(results: list[StoreBenchResult], config: StoreBenchConfig) -> str:
    """The results as a Markdown table."""
    lines = [
        "| backend | batch | 1:1 CPU µs/msg | 1:1 wall µs/msg "
        "| of which conversation upserts, CPU / wall µs/msg "
        f"| group CPU ms/msg ({config.group_members} members) | group wall ms/msg |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        group_cpu = "–" if r.group_cpu_ms_per_msg is None else f"{r.group_cpu_ms_per_msg:.1f}"
        group_wall = "–" if r.group_wall_ms_per_msg is None else f"{r.group_wall_ms_per_msg:.1f}"
        upsert = (
            "–"
            if r.upsert_cpu_us_per_msg is None or r.upsert_wall_us_per_msg is None
            else f"{r.upsert_cpu_us_per_msg:.0f} / {r.upsert_wall_us_per_msg:.0f}"
        )
        lines.append(
            f"| {r.backend} | {r.batch} | {r.user_cpu_us_per_msg:.0f} "
            f"| {r.user_wall_us_per_msg:.0f} | {upsert} | {group_cpu} | {group_wall} |"
        )
    conversations = [r for r in results if r.conversation_us_per_op]
    if conversations:
        lines += [
            "",
            "| backend | conversation op | CPU µs/op | wall µs/op |",
            "|---|---|---:|---:|",
        ]
        for r in conversations:
            assert r.conversation_us_per_op is not None
            for op, (cpu, wall) in r.conversation_us_per_op.items():
                lines.append(f"| {r.backend} | {op} | {cpu:.0f} | {wall:.0f} |")
    return "\n".join(lines)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backends", default="sqlite,mysql")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL)
    parser.add_argument(
        "--batch", default=str(StoreBenchConfig.batch), help="batch sizes, comma-separated"
    )
    parser.add_argument("--batches", type=int, default=StoreBenchConfig.batches)
    parser.add_argument("--group-members", type=int, default=StoreBenchConfig.group_members)
    parser.add_argument("--group-messages", type=int, default=StoreBenchConfig.group_messages)
    parser.add_argument(
        "--prefill", type=int, default=0, help="1:1 messages stored before measuring"
    )
    parser.add_argument(
        "--conversation-ops",
        type=int,
        default=StoreBenchConfig.conversation_ops,
        help="operations per conversation shape (0: none)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    sizes = tuple(int(size) for size in args.batch.split(","))
    config = StoreBenchConfig(
        batch=sizes[0],
        batches=args.batches,
        group_members=args.group_members,
        group_messages=args.group_messages,
        prefill=args.prefill,
        conversation_ops=args.conversation_ops,
    )
    results = [
        result
        for backend in args.backends.split(",")
        for result in anyio.run(run_store_bench, backend, config, args.mysql_url, sizes)
    ]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(format_table(results, config))


if __name__ == "__main__":
    main()
