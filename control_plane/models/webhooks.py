"""Webhook endpoints and push providers of a tenant, and the delivery log's answers.

Configuration lives here, in the control-plane database, and reaches logic nodes through
``GET /internal/v1/outbound`` (polled like the tenant list). What happens to events —
the outbox, each endpoint's deliveries and their attempts, push tokens and jobs — lives
in the tenant's message database (``data_plane.storage.messages.schema``), because the
outbox row of a message must be written in the message's own transaction.

An endpoint's signing secret (``whsec_`` + base64 of 24 random bytes, the Standard
Webhooks format) is shown once, by the request that creates it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, AnyHttpUrl, ConfigDict
from sqlmodel import Field, SQLModel

from control_plane.models.common import MYSQL_TABLE, PartialUpdate
from data_plane.cluster.outbound import EVENT_TYPES

ENDPOINT_ID_MAX = 64
URL_MAX = 2048
EVENTS_MAX = 512
SECRET_MAX = 128
DESCRIPTION_MAX = 256
PROJECT_MAX = 128
AUTH_TOKEN_MAX = 4096
MAX_ENDPOINTS_PER_TENANT = 20
MAX_COLLAPSE_MS = 3_600_000
PRINTABLE = r"^[\x21-\x7e]+$"
"""Push devices and tokens: printable ASCII without spaces."""


class EventType(StrEnum):
    """The events an endpoint may subscribe to (``data_plane.cluster.outbound``)."""

    MESSAGE_CREATED = "message.created"
    LOGIN = "login"
    LOGOUT = "logout"
    KICKOUT = "kickout"
    GROUP_CREATED = "group.created"
    GROUP_MEMBERS_CHANGED = "group.members_changed"
    GROUP_DISMISSED = "group.dismissed"


assert {e.value for e in EventType} == set(EVENT_TYPES)


def _http_url(value: AnyHttpUrl) -> str:
    return str(value)


HttpUrl = Annotated[AnyHttpUrl, AfterValidator(_http_url)]


class WebhookEndpoint(SQLModel, table=True):
    """One endpoint of a tenant: where events are POSTed and with which secret."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = MYSQL_TABLE

    id: str = Field(primary_key=True, max_length=ENDPOINT_ID_MAX)
    tenant_id: str = Field(max_length=64, index=True)
    url: str = Field(max_length=URL_MAX)
    events: str = Field(max_length=EVENTS_MAX)
    """Comma-separated event types; '' means every event."""
    secret: str = Field(max_length=SECRET_MAX)
    enabled: bool = True
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    created_at: int = Field(sa_type=sa.BigInteger)
    """Epoch milliseconds."""


class WebhookCreate(SQLModel):
    """Body of ``POST /v1/tenants/{tenant_id}/webhooks``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    url: HttpUrl = Field(max_length=URL_MAX, description="`http(s)://` URL events are POSTed to.")
    events: list[EventType] = Field(
        default_factory=list,
        max_length=len(EventType),
        description="Event types to deliver; empty = every event.",
    )
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    enabled: bool = True


class WebhookUpdate(PartialUpdate):
    """Body of ``PATCH /v1/tenants/{tenant_id}/webhooks/{endpoint_id}``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    url: HttpUrl | None = Field(default=None, max_length=URL_MAX)
    events: list[EventType] | None = Field(default=None, max_length=len(EventType))
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    enabled: bool | None = None


class WebhookPublic(SQLModel):
    """An endpoint as answers show it (without its secret)."""

    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: int = Field(description="Epoch milliseconds.")


class WebhookCreated(WebhookPublic):
    """The answer creating an endpoint: the only one that shows its secret."""

    secret: str = Field(description="`whsec_` + base64: verify `webhook-signature` with it.")


class WebhooksPublic(SQLModel):
    """Body of ``GET /v1/tenants/{tenant_id}/webhooks``."""

    data: list[WebhookPublic]


class DeliveryStatus(StrEnum):
    """Where a delivery stands (``outbox.PENDING``, ``DELIVERED``, ``FAILED``)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryPublic(SQLModel):
    """One event's delivery to one endpoint."""

    id: int
    event_id: str = Field(description="The `webhook-id` header of every attempt.")
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int = Field(description="HTTP status of the last attempt; 0 = none.")
    last_error: str
    latency_ms: int = Field(description="Duration of the last attempt.")
    created_at: int
    finished_at: int = Field(description="When it was delivered or failed; 0 = pending.")


class DeliveriesPublic(SQLModel):
    """Body of ``GET …/webhooks/{endpoint_id}/deliveries``: newest first."""

    data: list[DeliveryPublic]


class TestEventQueued(SQLModel):
    """Answer of ``POST …/webhooks/{endpoint_id}/test``."""

    event_id: str


class PushProviderKind(StrEnum):
    """Where offline notifications go."""

    HTTP = "http"
    FCM = "fcm"


class PushProvider(SQLModel, table=True):
    """A tenant's push provider (one per tenant)."""

    __tablename__ = "push_provider"
    __table_args__ = MYSQL_TABLE

    tenant_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    url: str = Field(max_length=URL_MAX)
    project_id: str = Field(max_length=PROJECT_MAX)
    auth_token: str = Field(max_length=AUTH_TOKEN_MAX)
    collapse_ms: int


class PushProviderSet(SQLModel):
    """Body of ``PUT /v1/tenants/{tenant_id}/push-provider``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    kind: PushProviderKind
    url: HttpUrl = Field(
        max_length=URL_MAX,
        description="`http`: the endpoint notifications are POSTed to. `fcm`: the API base "
        "URL (`https://fcm.googleapis.com`); `/v1/projects/{project_id}/messages:send` is "
        "appended.",
    )
    project_id: str = Field(default="", max_length=PROJECT_MAX, description="FCM project id.")
    auth_token: str = Field(
        default="",
        max_length=AUTH_TOKEN_MAX,
        description="Sent as `Authorization: Bearer …` (FCM: an OAuth 2 access token).",
    )
    collapse_ms: int = Field(
        default=2000,
        ge=0,
        le=MAX_COLLAPSE_MS,
        description="Messages to one device within this window make one notification.",
    )


class PushProviderPublic(SQLModel):
    """A tenant's push provider as answers show it (the token is never shown)."""

    kind: PushProviderKind
    url: str
    project_id: str
    collapse_ms: int
    has_auth_token: bool


class PushTokenSet(SQLModel):
    """Body of ``POST /v1/tenants/{tenant_id}/accounts/{account}/push-tokens``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    device: str = Field(min_length=1, max_length=32, schema_extra={"pattern": PRINTABLE})
    token: str = Field(min_length=1, max_length=512, schema_extra={"pattern": PRINTABLE})
    platform: Literal["android", "ios", "web", "other"] = "other"


class OutboundEndpoint(SQLModel):
    """One endpoint as logic nodes receive it (with its secret)."""

    id: str
    tenant: str
    url: str
    events: list[str]
    secret: str
    enabled: bool


class OutboundProvider(SQLModel):
    """A tenant's push provider as logic nodes receive it."""

    tenant: str
    kind: str
    url: str
    project_id: str
    auth_token: str
    collapse_ms: int


class OutboundConfig(SQLModel):
    """Body of ``GET /internal/v1/outbound``."""

    endpoints: list[OutboundEndpoint]
    providers: list[OutboundProvider]
