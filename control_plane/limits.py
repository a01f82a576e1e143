"""Request limits of the control plane's ASGI app: body size, strict JSON, small errors.

Theory of operation. :class:`RequestLimits` is pure ASGI middleware that sits in front of
the FastAPI router (inside the ``/v1/route`` fast path, which never reads a body, so
that path pays nothing for it). For every other HTTP request it

1. answers ``413`` at once, without reading a byte of the body, when ``Content-Length``
   declares more than ``max_body_bytes``;
2. otherwise hands the app a ``receive`` that counts body bytes as they arrive and
   refuses with ``413`` as soon as the count passes the cap (chunked bodies included),
   so at most the cap plus one network read is ever held;
3. for a JSON body (``application/json`` or ``…+json``), checks the complete body before
   the app parses it: ``NaN``, ``Infinity``, ``-Infinity``, numbers beyond a double
   (``1e400``), lone surrogates (``"\\ud800"``) and bytes that are not UTF-8 are refused
   with ``400`` and a reason. Python's ``json`` accepts them all, and a value the app
   cannot encode again turned the answer into a 500.

Refusals raised from ``receive`` are :class:`BodyRefused` (an ``HTTPException``), which
FastAPI lets through its body reading to the app's exception middleware; they are
rendered like every other error, ``{"detail": "…"}``, with ``Connection: close`` when
the rest of the body is left unread. Since FastAPI reads the body before it solves any
dependency, the cap holds before any credential is looked at.

:func:`validation_error_answer` replaces FastAPI's 422 handler: the answer keeps
FastAPI's shape (``{"detail": [{"type", "loc", "msg", …}]}``) but never echoes a large
input. At most :data:`MAX_ERRORS` errors are listed, ``input`` is kept only when its
JSON is at most :data:`MAX_ECHO` characters, strings in ``loc``/``msg`` are cut to
:data:`MAX_ECHO` characters, and nothing that cannot be encoded as JSON survives, so a
422 is always a few kilobytes at most.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.settings import DEFAULT_MAX_BODY_BYTES

MAX_ERRORS = 20
"""Validation errors listed in one 422 answer (a long invalid list yields one per item)."""
MAX_ECHO = 200
"""Characters of an input, a location part or a message a 422 answer may repeat."""

TOO_LARGE = "The request body is larger than {limit} bytes."
_CLOSE = {"Connection": "close"}
# Only a \\uD800-\\uDFFF escape can produce a surrogate once the body decoded as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class BodyRefused(HTTPException):
    """A request body the control plane does not read further (413) or parse (400)."""


class RequestLimits:
    """Pure ASGI middleware capping request bodies and refusing non-strict JSON.

    ``max_body_bytes`` is the largest body accepted. Anything but an HTTP request passes
    through untouched; so does a request whose body the app never reads.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, is_json = _body_headers(scope["headers"])
        if length is not None and length > self.max_body_bytes:
            # Declared too large: answer before reading anything, and close the
            # connection so the server does not read the rest either.
            await _send_too_large(send, self.max_body_bytes)
            return
        reader = _BodyReader(receive, self.max_body_bytes, is_json)
        await self.app(scope, reader.receive, send)


class _BodyReader:
    """The ``receive`` the app sees: counts body bytes and checks JSON bodies whole."""

    __slots__ = ("_is_json", "_limit", "_receive", "_seen")

    def __init__(self, receive: Receive, limit: int, is_json: bool) -> None:
        self._receive = receive
        self._limit = limit
        self._is_json = is_json
        self._seen = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        body: bytes = message.get("body", b"")
        self._count(len(body))
        if not self._is_json or not message.get("more_body", False):
            if self._is_json and body:
                check_strict_json(body)
            return message
        # A JSON body is checked whole before the app sees any of it (it is capped, so
        # holding it costs at most the cap).
        chunks = [body]
        while message.get("more_body", False):
            message = await self._receive()
            if message["type"] != "http.request":
                return message
            chunk: bytes = message.get("body", b"")
            self._count(len(chunk))
            chunks.append(chunk)
        whole = b"".join(chunks)
        if whole:
            check_strict_json(whole)
        return {"type": "http.request", "body": whole, "more_body": False}

    def _count(self, size: int) -> None:
        self._seen += size
        if self._seen > self._limit:
            raise BodyRefused(413, TOO_LARGE.format(limit=self._limit), _CLOSE)


def _body_headers(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """The declared ``Content-Length`` (None when absent or unreadable: the byte count
    still applies) and whether the content type is JSON, as FastAPI decides it."""
    length: int | None = None
    is_json = False
    for name, value in headers:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            is_json = media.startswith(b"application/") and (
                media == b"application/json" or media.endswith(b"+json")
            )
    return length, is_json


async def _send_too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": TOO_LARGE.format(limit=limit)}, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _NotStrict(ValueError):
    """A JSON value that JSON (RFC 8259) or a double cannot represent."""


def _no_constant(name: str) -> Any:
    raise _NotStrict(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotStrict(f"the number {text[:40]} is out of range")
    return value


def check_strict_json(body: bytes) -> None:
    """Raise :class:`BodyRefused` (400) when ``body`` is JSON the app must not parse:
    not UTF-8, ``NaN``/``Infinity``/``-Infinity``, a number that overflows a double, or
    a lone surrogate in a string. Malformed JSON is left to FastAPI (its usual 422).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyRefused(400, f"The body is not UTF-8 (byte {exc.start}).") from exc
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except _NotStrict as exc:
        raise BodyRefused(400, f"The body is not strict JSON: {exc}.") from exc
    except json.JSONDecodeError:
        return
    except (ValueError, RecursionError) as exc:
        # Integers of more than 4300 digits, or nesting deeper than the parser goes.
        raise BodyRefused(400, "The body cannot be decoded as JSON.") from exc
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise BodyRefused(400, "The body is not strict JSON: a string has a lone surrogate.")


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string (key or value) in ``value`` cannot be encoded as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _utf8_encodable(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def validation_error_answer(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 for a :class:`RequestValidationError`, bounded and always
    encodable (see the module docstring)."""
    assert isinstance(exc, RequestValidationError)
    errors = [_bounded_error(error) for error in exc.errors()[:MAX_ERRORS]]
    return JSONResponse({"detail": errors}, status_code=422)


def _bounded_error(error: Any) -> dict[str, Any]:
    bounded: dict[str, Any] = {
        "type": _cut(str(error.get("type", ""))),
        "loc": [part if isinstance(part, int) else _cut(str(part)) for part in error["loc"]],
        "msg": _cut(str(error.get("msg", ""))),
    }
    if "input" in error:
        echoed = _small_json(error["input"])
        if echoed is not None:
            bounded["input"] = echoed
    if "ctx" in error:
        ctx = _small_json(error["ctx"])
        if isinstance(ctx, dict):
            bounded["ctx"] = ctx
    return bounded


def _small_json(value: Any) -> Any:
    """``value`` made JSON-safe when its JSON is at most :data:`MAX_ECHO` characters
    and strictly encodable (finite numbers, no lone surrogates); else None."""
    try:
        safe = jsonable_encoder(value)
        text = json.dumps(safe, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None
    if len(text) > MAX_ECHO or not _utf8_encodable(text):
        return None
    return safe


def _cut(text: str) -> str:
    if len(text) > MAX_ECHO:
        text = text[:MAX_ECHO] + "…"
    return text if _utf8_encodable(text) else text.encode("utf-8", "replace").decode()
