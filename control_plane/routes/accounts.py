"""The account in a route's path or body: one annotation and one check for every route.

The pattern in :data:`AccountPath` is what OpenAPI shows; :func:`checked_account`
applies the full login rule of :mod:`data_plane.cluster.identity` (which a regular
expression alone cannot: `$` lets a trailing newline through) and answers 422 in
FastAPI's validation shape when it fails.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from control_plane.deps import unprocessable
from data_plane.cluster.identity import (
    ACCOUNT_MAX_LENGTH,
    ACCOUNT_PATTERN,
    ACCOUNT_RULE,
    is_account,
)

AccountPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=ACCOUNT_MAX_LENGTH,
        pattern=ACCOUNT_PATTERN,
        description=f"The account: {ACCOUNT_RULE}.",
    ),
]


def checked_account(account: str, where: tuple[str, ...] = ("path", "account")) -> str:
    """``account`` when it passes the login rule; else a 422 naming ``where``."""
    if not is_account(account):
        unprocessable(f"account must be {ACCOUNT_RULE}", where)
    return account
