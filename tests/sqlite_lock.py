"""Holding an SQLite database's write lock from outside, as another writer would."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Hold the write lock of the database at ``path`` (``BEGIN IMMEDIATE`` on a
    connection of its own) until the block ends; nothing is written."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()
