"""The control plane's database engine and the per-request session dependency.

The control plane is never on the message path, so it uses the synchronous ORM: routes
are plain ``def`` functions that FastAPI runs in its thread pool. Each app owns its
engine (``app.state.engine``), so tests can create many apps side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event, make_url
from sqlmodel import Session

from data_plane.storage.urls import backend_of, sync_url


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a SQLite URL, or ``None`` (in-memory database or not SQLite)."""
    if backend_of(database_url) != "sqlite":
        return None
    database = make_url(sync_url(database_url)).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_parent(database_url: str) -> None:
    """Create the directory of a SQLite database file if it does not exist yet."""
    path = sqlite_path(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Concurrent writers (the launcher's migrate, a second process) wait, not fail.
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def make_engine(database_url: str) -> Engine:
    """A synchronous engine for a plain ``sqlite:`` or ``mysql:`` URL."""
    url = sync_url(database_url)
    if backend_of(database_url) == "sqlite":
        ensure_sqlite_parent(database_url)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    # A database that drops packets instead of refusing must not hold a request (and the
    # route snapshot's reload) for PyMySQL's default 10 s before it answers 503.
    return create_engine(
        url, pool_pre_ping=True, pool_recycle=3600, connect_args={"connect_timeout": 3}
    )


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, on the engine of the app serving it."""
    engine: Engine = request.app.state.engine
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
