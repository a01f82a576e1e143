"""``multirow``: a batch's rows split into a few statements of fixed sizes, run in order."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest

from data_plane.storage.messages.multirow import LARGEST, MultiRowUpsert, row_counts


def test_row_counts_cover_every_row_with_at_most_seven_sizes() -> None:
    sizes: set[int] = set()
    for rows in range(5 * LARGEST):
        counts = row_counts(rows)
        assert sum(counts) == rows
        assert counts == sorted(counts, reverse=True)
        sizes.update(counts)
    assert sizes == {1, 2, 4, 8, 16, 32, 64}
    assert row_counts(3 * LARGEST + 5) == [LARGEST] * 3 + [4, 1]


class _Sqlite:
    """The ``WriterConnection`` methods ``MultiRowUpsert`` uses, on an in-memory sqlite3."""

    mark = "?"

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:")
        self.statements: list[str] = []

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.statements.append(statement)
        self.db.execute(statement, params)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_rows_run_in_order_so_a_repeated_key_adds_up(anyio_backend: str) -> None:
    conn = _Sqlite()
    conn.db.execute("CREATE TABLE c (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    upsert = MultiRowUpsert(
        "INSERT INTO c (k, n)", 2, " ON CONFLICT (k) DO UPDATE SET n = c.n + excluded.n"
    )
    values: list[Any] = []
    for i in range(100):
        values += (f"k{i % 7}", i)
    await upsert.run(conn, values)  # type: ignore[arg-type]
    assert len(conn.statements) == len(row_counts(100)) == 3
    got = dict(conn.db.execute("SELECT k, n FROM c").fetchall())
    assert got == {f"k{j}": sum(i for i in range(100) if i % 7 == j) for j in range(7)}
