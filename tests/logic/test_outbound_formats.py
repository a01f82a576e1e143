"""Pure formats of outbound delivery: Standard Webhooks signatures, provider requests,
back-off.

The signature is checked against the Standard Webhooks specification's published test
vector and against the ``standardwebhooks`` library; the FCM request against the HTTP v1
API's shape (``message.token``, ``notification``, string-only ``data``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from data_plane.cluster.outbound import Provider
from data_plane.logic.notify.providers import build_request, retryable
from data_plane.logic.outbound_settings import OutboundSettings
from data_plane.logic.webhooks.signing import signature, signed_headers
from data_plane.storage.messages.push_queue import PushJob

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
"""The test vector of the Standard Webhooks reference libraries (their own tests)."""


def test_the_signature_matches_the_specification_and_the_library() -> None:
    assert signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    when = datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC)
    library = Webhook(SPEC_SECRET).sign(SPEC_ID, when, SPEC_BODY.decode())
    assert library == SPEC_SIGNATURE


def test_signed_headers_verify_and_a_changed_byte_does_not() -> None:
    now = int(datetime.now(tz=UTC).timestamp())
    headers = signed_headers(SPEC_SECRET, "evt_42", now, b'{"type":"login"}')
    assert Webhook(SPEC_SECRET).verify(b'{"type":"login"}', headers) == {"type": "login"}
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(b'{"type":"logout"}', headers)


JOB = PushJob(
    tenant="acme",
    account="bob",
    device="phone",
    token="tok",
    count=3,
    sender="alice",
    group_id="",
    message_id=77,
    preview="hello",
    due_at=0,
    attempts=0,
)


def test_the_fcm_request_has_the_http_v1_shape() -> None:
    provider = Provider("acme", "fcm", "https://fcm.googleapis.com/", "proj", "ya29.x", 1000)
    url, headers, body = build_request(provider, JOB)
    assert url == "https://fcm.googleapis.com/v1/projects/proj/messages:send"
    assert headers["authorization"] == "Bearer ya29.x"
    message = body["message"]
    assert message["token"] == "tok"
    assert message["notification"] == {"title": "alice", "body": "3 new messages"}
    assert all(isinstance(v, str) for v in message["data"].values())
    assert message["data"]["message_id"] == "77"


def test_the_generic_request_and_what_is_retried() -> None:
    provider = Provider("acme", "http", "http://push.local/n", "", "", 0)
    url, headers, body = build_request(provider, JOB)
    assert (url, "authorization" in headers) == ("http://push.local/n", False)
    assert (body["token"], body["count"], body["body"]) == ("tok", "3", "3 new messages")
    assert [retryable(c) for c in (0, 429, 500, 503, 400, 404)] == [True] * 4 + [False] * 2


def test_back_off_doubles_up_to_its_ceiling() -> None:
    settings = OutboundSettings(backoff_base_s=1.0, backoff_max_s=5.0)
    assert [settings.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    env = {"CIRNO_WEBHOOK_MAX_ATTEMPTS": "3", "CIRNO_WEBHOOK_BACKOFF": "0.5"}
    assert OutboundSettings.from_env(env).max_attempts == 3
    with pytest.raises(ValueError, match="CIRNO_WEBHOOK_TIMEOUT"):
        OutboundSettings.from_env({"CIRNO_WEBHOOK_TIMEOUT": "-1"})


def test_the_documented_stdlib_verifier_accepts_ours_and_refuses_a_forgery() -> None:
    """docs/server_api.md's standard-library snippet stays true."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "server_api.md").read_text()
    snippet = re.findall(r"```python\n(import base64.*?)```", doc, re.S)[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    body = b'{"type":"login"}'
    headers = signed_headers(SPEC_SECRET, "evt_9", int(time.time()), body)
    namespace["verify"](SPEC_SECRET, headers, body)
    with pytest.raises(ValueError, match="bad signature"):
        namespace["verify"](SPEC_SECRET, headers, b'{"type":"logout"}')
