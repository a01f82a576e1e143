"""``control_plane.limits`` without a server: strict JSON and bounded 422 answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from control_plane.limits import MAX_ECHO, MAX_ERRORS, BodyRefused, check_strict_json
from control_plane.limits import validation_error_answer as answer_422


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\ud83d\\ude00"}',  # a surrogate pair is one character, not a lone half
        b'{"a": "\\\\ud800"}',  # an escaped backslash, then the text "ud800"
        b'{"a": 1.5e300, "b": -0.0, "c": [1, 2, 3]}',
        b'{"a": "caf\xc3\xa9"}',
        b'{"a": ',  # malformed JSON is FastAPI's to answer (its usual 422)
    ],
)
def test_strict_json_accepts(body: bytes) -> None:
    check_strict_json(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[NaN]", "NaN"),
        (b'{"x": {"y": [Infinity]}}', "Infinity"),
        (b"-Infinity", "-Infinity"),
        (b"[1e400]", "out of range"),
        (b"[-1e400]", "out of range"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b'["ok", ["\\ud800x"]]', "lone surrogate"),
        (b'["\xed\xa0\x80"]', "not UTF-8"),
        (b"[" + b"9" * 5000 + b"]", "cannot be decoded"),
        (b"[" * 100_000 + b"]" * 100_000, "cannot be decoded"),
    ],
)
def test_strict_json_refuses_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BodyRefused) as refused:
        check_strict_json(body)
    assert refused.value.status_code == 400
    assert reason in refused.value.detail


@pytest.mark.anyio
async def test_a_422_is_bounded_and_always_encodable() -> None:
    large: dict[str, Any] = {
        "type": "t",
        "loc": ("body", "k" * 10_000),
        "msg": "m",
        "input": "x" * 10_000,
    }
    errors = [large] * (MAX_ERRORS * 5)
    errors.append({"type": "t", "loc": ("body",), "msg": "m", "input": float("nan")})
    errors.insert(0, {"type": "t", "loc": ("body", 0), "msg": "m", "input": "\ud800"})
    errors.insert(0, {"type": "t", "loc": ("body", "a"), "msg": "m", "input": [1, "two"]})
    answer = await answer_422(None, RequestValidationError(errors))  # type: ignore[arg-type]
    detail = json.loads(bytes(answer.body))["detail"]
    assert answer.status_code == 422
    assert len(detail) == MAX_ERRORS
    assert detail[0] == {"type": "t", "loc": ["body", "a"], "msg": "m", "input": [1, "two"]}
    assert "input" not in detail[1], "a lone surrogate cannot be echoed"
    assert "input" not in detail[2], "a large input is not echoed"
    assert len(detail[2]["loc"][1]) == MAX_ECHO + 1
    assert len(answer.body) < 20 * 1024
