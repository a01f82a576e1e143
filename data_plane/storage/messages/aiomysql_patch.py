"""The one process-wide patch the message store applies: aiomysql's bytes escaper.

What it patches: the module attribute ``aiomysql.connection.escape_bytes_prefixed``,
which ``aiomysql.connection.Connection.escape`` calls for every ``bytes`` value (message
bodies, on both the engine's connections and the writers' own ones).

Why: aiomysql 0.3.2 imports that function from ``pymysql.converters``. PyMySQL 1.2.3
turned the name into a placeholder *string* ("DO NOT IMPORT THIS!!!", kept only so
aiomysql's import does not fail; PyMySQL/PyMySQL#1274), so every statement with a bytes
parameter fails with ``TypeError: 'str' object is not callable``. Upstream issue:
https://github.com/aio-libs/aiomysql/issues/1080 (fix proposed in
https://github.com/aio-libs/aiomysql/pull/1081, which defines the same one-line function
inside aiomysql).

The patch sets the function that fix defines (``_binary X'…'``, the form PyMySQL 1.2.3
itself produces). It is idempotent and does nothing once the attribute is callable again
(aiomysql fixed, or PyMySQL pinned below 1.2.3), so it can be deleted then without any
other change.
"""

from __future__ import annotations


def escape_bytes_prefixed(value: bytes) -> str:
    """``value`` as a MySQL binary string literal (what aiomysql#1081 defines)."""
    return f"_binary X'{value.hex()}'"


def apply() -> None:
    """Give aiomysql a callable bytes escaper again, if it lacks one (idempotent)."""
    import aiomysql.connection

    if not callable(getattr(aiomysql.connection, "escape_bytes_prefixed", None)):
        aiomysql.connection.escape_bytes_prefixed = escape_bytes_prefixed
