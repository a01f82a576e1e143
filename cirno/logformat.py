"""How every cirno process writes its log: one line per record, as text or as JSON.

``CIRNO_LOG_FORMAT`` (or ``--log-format``) picks the format:

- ``text`` (the default), for people:
  ``2026-01-02 03:04:05,678 gateway[123] INFO data_plane.gateway.events: login tenant=acme ...``
- ``json``, for machines: one JSON object per line with ``time`` (ISO 8601, UTC, ms),
  ``level``, ``logger``, ``message``, ``role`` and ``pid``, then the event's own fields
  when the record has them (``extra={"event": ..., "fields": {...}}``, as
  :mod:`data_plane.gateway.events` logs), and ``exc`` with the traceback text when there
  is one. A field never replaces one of the fixed keys.

Libraries' chatter (picows' connect and disconnect lines, uvicorn's access and start-up
lines, alembic's migration context, httpx's requests) is shown from WARNING only, unless
``CIRNO_LOG_LEVEL`` is DEBUG.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Final

FORMATS: Final = ("text", "json")

CHATTY_LIBRARIES: Final = (
    "picows",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "alembic",
    "httpx",
    "httpcore",
)

_FIXED: Final = frozenset({"time", "level", "logger", "message", "role", "pid", "event", "exc"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for its members)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self._role = role

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        stamp = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "role": self._role,
            "pid": record.process,
        }
        event = getattr(record, "event", None)
        if isinstance(event, str):
            line["event"] = event
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update((k, v) for k, v in fields.items() if k not in _FIXED)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_format() -> str:
    """``CIRNO_LOG_FORMAT``, checked; ValueError names the variable and the choices."""
    chosen = (os.environ.get("CIRNO_LOG_FORMAT") or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"CIRNO_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {chosen!r}")
    return chosen


def configure(role: str, level: str, chosen: str) -> None:
    """Send every record to stderr in the ``chosen`` format at ``level``."""
    handler = logging.StreamHandler()
    if chosen == "json":
        handler.setFormatter(JsonFormatter(role))
    else:
        fmt = f"%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s"
        handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if root.getEffectiveLevel() > logging.DEBUG:
        for name in CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
