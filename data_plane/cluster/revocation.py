"""What revokes a user's right to be connected: one rule, read by gateways and logic nodes.

A user is refused (at login, and on every request a logic node serves) while their
tenant is disabled or their account is banned. A live connection is also revoked when
its tenant is gone, or when the signing key its token was verified with (its ``kid``) is
no longer among the tenant's keys: revoked explicitly, or rotated out and past its
overlap. The reasons are short and stable: clients show them (``KickoutNotify.reason``,
``ErrorResp.message``) and tests match on their first words.
"""

from __future__ import annotations

from datetime import UTC, datetime

from data_plane.cluster.tenants import Ban, TenantInfo

TENANT_DISABLED = "tenant disabled"
TENANT_DELETED = "tenant deleted"
ACCOUNT_BANNED = "account banned"
KEY_REVOKED = "signing key revoked"


def ban_reason(ban: Ban) -> str:
    """``account banned[ until <UTC time>][: <the tenant's reason>]``."""
    text = ACCOUNT_BANNED
    if ban.expires_at is not None:
        until = datetime.fromtimestamp(ban.expires_at, UTC).isoformat(timespec="seconds")
        text += f" until {until}"
    return f"{text}: {ban.reason}" if ban.reason else text


def refusal(info: TenantInfo, account: str, now: float) -> str | None:
    """Why ``account`` of tenant ``info`` may not log in or send at ``now`` (epoch
    seconds), or None when it may."""
    if not info.active:
        return TENANT_DISABLED
    ban = info.ban_of(account, now)
    return ban_reason(ban) if ban is not None else None


def revocation(info: TenantInfo | None, account: str, kid: str, now: float) -> str | None:
    """Why a live connection of ``account`` that logged in with key ``kid`` must close at
    ``now``, or None. ``info`` None: the tenant is no longer known (deleted).

    An empty ``kid`` (a connection whose key is not known) is never revoked for its key.
    """
    if info is None:
        return TENANT_DELETED
    refused = refusal(info, account, now)
    if refused is not None:
        return refused
    if kid and all(key.kid != kid for key in info.keys):
        return f"{KEY_REVOKED} ({kid})"
    return None
