"""The requests push providers receive: a generic HTTP endpoint, and FCM HTTP v1.

Pure code: a job and a provider in, (URL, headers, JSON body) out.

- ``http``: ``POST {url}`` with the notification as one JSON object (below).
- ``fcm``: ``POST {url}/v1/projects/{project_id}/messages:send`` with
  ``{"message": {"token", "notification": {"title", "body"}, "data": {…strings…},
  "android": {"collapse_key"}, "apns": {"headers": {"apns-collapse-id"}}}}`` — the
  shape of Firebase Cloud Messaging's HTTP v1 API, whose ``data`` values must all be
  strings. ``url`` is ``https://fcm.googleapis.com`` in production (tests point it at a
  local server). Both send ``Authorization: Bearer {auth_token}`` when one is set (for
  FCM an OAuth 2 access token the operator obtains; no Google library is involved).
"""

from __future__ import annotations

from typing import Any

from data_plane.cluster.outbound import Provider
from data_plane.storage.messages.push_queue import PushJob

PREVIEW_CHARS = 120


def title_and_body(job: PushJob) -> tuple[str, str]:
    """What the notification shows: who wrote, and the newest text or a count."""
    title = f"{job.sender} in {job.group_id}" if job.group_id else job.sender
    if job.count > 1:
        return title, f"{job.count} new messages"
    return title, job.preview[:PREVIEW_CHARS]


def notification_data(job: PushJob) -> dict[str, str]:
    """The notification's machine-readable fields, as strings."""
    return {
        "tenant": job.tenant,
        "account": job.account,
        "device": job.device,
        "count": str(job.count),
        "sender": job.sender,
        "group_id": job.group_id,
        "message_id": str(job.message_id),
    }


def build_request(provider: Provider, job: PushJob) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(URL, headers, JSON body) of the request that sends ``job`` through ``provider``."""
    headers = {"content-type": "application/json"}
    if provider.auth_token:
        headers["authorization"] = f"Bearer {provider.auth_token}"
    title, body = title_and_body(job)
    if provider.kind == "fcm":
        url = f"{provider.url.rstrip('/')}/v1/projects/{provider.project_id}/messages:send"
        collapse = f"{job.tenant}:{job.account}"
        message = {
            "message": {
                "token": job.token,
                "notification": {"title": title, "body": body},
                "data": notification_data(job),
                "android": {"collapse_key": collapse},
                "apns": {"headers": {"apns-collapse-id": collapse[:64]}},
            }
        }
        return url, headers, message
    return (
        provider.url,
        headers,
        {"token": job.token, "title": title, "body": body, **notification_data(job)},
    )


def retryable(status_code: int) -> bool:
    """Whether a provider's answer is worth another attempt (no answer: 0)."""
    return status_code == 0 or status_code == 429 or status_code >= 500
