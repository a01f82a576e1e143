"""The control plane's reads and writes in a tenant's message database.

Webhook deliveries and push tokens live beside the tenant's messages (the outbox row of
a message commits with the message), so the routes that show deliveries, queue a test
event, redeliver, or register a push token work in that database: the tenant's own
``database_url`` when it is ``dedicated``, else the shared message database
(``CIRNO_MESSAGE_DATABASE_URL``, or the control plane's own in the embedded setup). The
tables are ``data_plane.storage.messages.schema``'s; engines are opened once per URL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, delete, insert, select, update

from control_plane.db import make_engine
from control_plane.models import Isolation, Tenant
from control_plane.settings import ControlPlaneSettings
from data_plane.cluster.outbound import TEST_EVENT
from data_plane.storage.messages.outbox import PENDING, event_body
from data_plane.storage.messages.schema import (
    event_outbox,
    push_jobs,
    push_tokens,
    webhook_deliveries,
)


class MessageDatabases:
    """Engines of the message databases the routes reach, one per URL, owned by the app
    (``app.state.message_databases``, disposed when it shuts down). The control plane's
    own database is reached through the app's engine."""

    def __init__(self, settings: ControlPlaneSettings, own: Engine) -> None:
        self._settings = settings
        self._own = own
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def url_for(self, tenant: Tenant) -> str:
        """Where the tenant's messages (and so its deliveries and push tokens) are."""
        if tenant.isolation == Isolation.DEDICATED and tenant.database_url:
            return tenant.database_url
        return self._settings.message_database_url or self._settings.database_url

    def engine_for(self, tenant: Tenant) -> Engine:
        """An engine of the tenant's message database."""
        url = self.url_for(tenant)
        if url == self._settings.database_url:
            return self._own
        with self._lock:
            engine = self._engines.get(url)
            if engine is None:
                engine = self._engines[url] = make_engine(url)
            return engine

    def dispose(self) -> None:
        """Close every engine this object opened."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.dispose()


def databases_of(request: Request) -> MessageDatabases:
    """The message databases of the app serving ``request``."""
    databases: MessageDatabases = request.app.state.message_databases
    return databases


MessageDatabasesDep = Annotated[MessageDatabases, Depends(databases_of)]


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One delivery as the routes show it."""

    id: int
    event_id: int
    event_type: str
    status: int
    attempts: int
    last_status_code: int
    last_error: str
    latency_ms: int
    created_at: int
    finished_at: int


def list_deliveries(engine: Engine, tenant: str, endpoint_id: str, limit: int) -> list[DeliveryRow]:
    """The endpoint's newest deliveries first (pending ones included)."""
    c = webhook_deliveries.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                c.id,
                c.event_id,
                c.event_type,
                c.status,
                c.attempts,
                c.last_status_code,
                c.last_error,
                c.latency_ms,
                c.created_at,
                c.finished_at,
            )
            .where(c.tenant == tenant, c.endpoint_id == endpoint_id)
            .order_by(c.id.desc())
            .limit(limit)
        ).all()
    return [DeliveryRow(*tuple(row)) for row in rows]


def redeliver(
    engine: Engine, tenant: str, endpoint_id: str, delivery_id: int
) -> DeliveryRow | None:
    """Queue the delivery's event again, at the end of the endpoint's queue (a new
    delivery with the same event id and body); None when there is no such delivery."""
    c = webhook_deliveries.c
    now = int(time.time() * 1000)
    with engine.begin() as conn:
        row = conn.execute(
            select(c.event_id, c.event_type, c.payload).where(
                c.id == delivery_id, c.tenant == tenant, c.endpoint_id == endpoint_id
            )
        ).first()
        if row is None:
            return None
        result = conn.execute(
            insert(webhook_deliveries).values(
                tenant=tenant,
                endpoint_id=endpoint_id,
                event_id=row.event_id,
                event_type=row.event_type,
                payload=row.payload,
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                finished_at=0,
                last_status_code=0,
                last_error="",
                latency_ms=0,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        new_id = int(key[0])
    return DeliveryRow(new_id, row.event_id, row.event_type, PENDING, 0, 0, "", 0, now, 0)


def queue_test_event(engine: Engine, tenant: str, endpoint_id: str) -> int:
    """Write a ``webhook.test`` event addressed to one endpoint; its event id."""
    now = int(time.time() * 1000)
    body = event_body(TEST_EVENT, now, {"tenant": tenant, "endpoint_id": endpoint_id})
    with engine.begin() as conn:
        result = conn.execute(
            insert(event_outbox).values(
                tenant=tenant,
                event_type=TEST_EVENT,
                endpoint_id=endpoint_id,
                payload=body,
                created_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def forget_endpoint(engine: Engine, tenant: str, endpoint_id: str) -> None:
    """Drop a deleted endpoint's deliveries (its queue and history)."""
    c = webhook_deliveries.c
    with engine.begin() as conn:
        conn.execute(
            delete(webhook_deliveries).where(c.tenant == tenant, c.endpoint_id == endpoint_id)
        )


def register_push_token(
    engine: Engine, tenant: str, account: str, device: str, token: str, platform: str
) -> None:
    """Store the device's push token (replacing an older one); as ``push.register``."""
    c = push_tokens.c
    now = int(time.time() * 1000)
    with engine.begin() as conn:
        conn.execute(
            delete(push_tokens).where(c.tenant == tenant, c.account == account, c.device == device)
        )
        conn.execute(
            insert(push_tokens).values(
                tenant=tenant,
                account=account,
                device=device,
                token=token,
                platform=platform,
                updated_at=now,
            )
        )
        # A pending job keeps the token it was queued for; point it at the new one.
        j = push_jobs.c
        conn.execute(
            update(push_jobs)
            .where(j.tenant == tenant, j.account == account, j.device == device)
            .values(token=token)
        )


def unregister_push_token(engine: Engine, tenant: str, account: str, device: str) -> bool:
    """Forget the device's token and pending job; whether it had a token."""
    c = push_tokens.c
    j = push_jobs.c
    with engine.begin() as conn:
        conn.execute(
            delete(push_jobs).where(j.tenant == tenant, j.account == account, j.device == device)
        )
        result = conn.execute(
            delete(push_tokens).where(c.tenant == tenant, c.account == account, c.device == device)
        )
        return result.rowcount > 0
