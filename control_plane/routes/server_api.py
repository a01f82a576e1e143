"""The tenants' server API: messages, presence, kick and history
(``/v1/tenants/{tenant_id}/…``; groups are in ``routes.server_groups``).

Open to an admin and to the tenant's own backend with its API key. Each call is one
``server.*`` request to a live logic node (``control_plane.server_calls``), which runs
the same code a client's request runs: a message sent here is stored, pushed, synced,
hooked (webhooks, offline push notifications) exactly like a client's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from control_plane.db import SessionDep
from control_plane.deps import CredentialDep, NowDep, SettingsDep, unprocessable
from control_plane.models.server_api import (
    AccountPresence,
    DevicePresence,
    HistoryPage,
    KickCreate,
    Kicked,
    MessageSend,
    MessageSent,
    PresencePublic,
)
from control_plane.routes import error_responses
from control_plane.routes.accounts import AccountPath, checked_account
from control_plane.routes.secrets import authorize_tenant
from control_plane.routes.tenants import TenantIdPath
from control_plane.server_calls import LOGIC_ERRORS, ask_logic
from data_plane.cluster import server_api as api
from data_plane.cluster.identity import (
    ACCOUNT_MAX_LENGTH,
    SYSTEM_SENDER,
)

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["server API"])

BAD_INPUT = error_responses(
    e400="The body cannot be decoded (not UTF-8 JSON).",
    e413="The body is larger than `CIRNO_CONTROL_MAX_BODY`, or the message would not fit "
    "a client packet.",
)


@router.post(
    "/messages",
    summary="Send a message",
    operation_id="tenants-messages-send",
    responses={**LOGIC_ERRORS, **BAD_INPUT},
)
def send_message(
    tenant_id: TenantIdPath,
    body: MessageSend,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
) -> MessageSent:
    """Send a message as `from` (absent: the tenant's system sender `{system}`) to the
    account `to` or to the group `group`.

    It is stored and delivered exactly like a client's: inbox rows for the receiver (or
    every member) and the sender, pushed to their connected devices, in their next
    offline sync, announced by the `message.created` webhook and by a push notification
    to receivers with no device online. Calls with the same `client_msg_id` (per sender)
    store one message and all answer its id and time. A `from` account must be a member
    of `group` (else 404, as for a client); the system sender may send to any group.
    """
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    if body.from_ is not None:
        checked_account(body.from_, ("body", "from"))
    if body.to is not None:
        checked_account(body.to, ("body", "to"))
    payload = {
        "to": body.to or "",
        "group": body.group or "",
        "type": body.type,
        "body": body.body,
        "extra": body.extra,
        "client_msg_id": body.client_msg_id,
    }
    sender = body.from_ or SYSTEM_SENDER
    answer = ask_logic(request, session, now, tenant_id, api.SEND, sender, payload)
    return MessageSent.model_validate(answer)


@router.get(
    "/presence",
    summary="Who is online",
    operation_id="tenants-presence-get",
    responses=LOGIC_ERRORS,
)
def get_presence(
    tenant_id: TenantIdPath,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
    accounts: Annotated[
        str,
        Query(
            min_length=1,
            max_length=api.MAX_PRESENCE_ACCOUNTS * (ACCOUNT_MAX_LENGTH + 1),
            description=f"Comma-separated accounts, at most {api.MAX_PRESENCE_ACCOUNTS}.",
        ),
    ],
) -> PresencePublic:
    """Whether each account is online, with each live device and the gateway holding
    it (from the session store, as pushes see it)."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    names = list(dict.fromkeys(accounts.split(",")))
    if len(names) > api.MAX_PRESENCE_ACCOUNTS:
        unprocessable(f"at most {api.MAX_PRESENCE_ACCOUNTS} accounts", ("query", "accounts"))
    for name in names:
        checked_account(name, ("query", "accounts"))
    answer = ask_logic(
        request, session, now, tenant_id, api.PRESENCE, SYSTEM_SENDER, {"accounts": names}
    )
    found = answer.get("accounts", {})
    return PresencePublic(
        accounts=[
            AccountPresence(
                account=name,
                online=bool(found.get(name)),
                devices=[DevicePresence.model_validate(d) for d in found.get(name, [])],
            )
            for name in names
        ]
    )


@router.post(
    "/accounts/{account}/kick",
    summary="Close an account's connections",
    operation_id="tenants-accounts-kick",
    responses={**LOGIC_ERRORS, **BAD_INPUT},
)
def kick_account(
    tenant_id: TenantIdPath,
    account: AccountPath,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
    body: KickCreate | None = None,
) -> Kicked:
    """Close the account's live connections (only `device`'s when given): each client
    gets a `KickoutNotify` with `reason`, then its connection closes (4002). The account
    may sign in again at once (to keep it out, ban it). Answers how many connections
    were told to close."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    checked_account(account)
    kick = body or KickCreate()
    payload = {"account": account, "device": kick.device or "", "reason": kick.reason}
    answer = ask_logic(request, session, now, tenant_id, api.KICK, SYSTEM_SENDER, payload)
    return Kicked.model_validate(answer)


@router.get(
    "/accounts/{account}/messages",
    summary="An account's message history",
    operation_id="tenants-accounts-messages-list",
    responses=LOGIC_ERRORS,
)
def account_history(
    tenant_id: TenantIdPath,
    account: AccountPath,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
    after_seq: Annotated[
        int, Query(ge=0, le=2**62, description="Rows after this inbox sequence.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=api.MAX_HISTORY_PAGE, description="Page size.")] = 100,
) -> HistoryPage:
    """The account's inbox (every 1:1 and group message it sent or received), oldest
    first, paged by inbox sequence: pass `next_after_seq` as `after_seq` for the next
    page. A recalled message is its tombstone (`recalled`, empty body); a message the
    account deleted is left out."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    checked_account(account)
    payload = {"account": account, "after_seq": after_seq, "limit": limit}
    answer = ask_logic(request, session, now, tenant_id, api.HISTORY, SYSTEM_SENDER, payload)
    return HistoryPage.model_validate(answer)
