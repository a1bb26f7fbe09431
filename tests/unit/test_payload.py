"""Payload decoding and prediction encoding (pure)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from starlette.responses import JSONResponse

from cortexlite_runtime.payload import BadPayload, decode_payload, decode_query, encode_prediction


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"a": 1}', "application/json", {"a": 1}),
        (b'{"a": 1}', "application/vnd.api+json; charset=utf-8", {"a": 1}),
        (b"", "application/json", None),
        (b"caf\xe9", "text/plain; charset=latin-1", "café"),
        (b"[1, 2]", "", [1, 2]),
        (b"\x89PNG", "", b"\x89PNG"),
        (b"\x89PNG", "image/png", b"\x89PNG"),
    ],
)
def test_decode(body: bytes, content_type: str, expected: object) -> None:
    assert decode_payload(body, content_type) == expected


def test_bad_json() -> None:
    with pytest.raises(BadPayload, match="invalid JSON"):
        decode_payload(b"{", "application/json")


def test_query() -> None:
    assert decode_query(b"a=1&b=&c=x%20y") == {"a": "1", "b": "", "c": "x y"}


@dataclasses.dataclass
class Point:
    x: int


def test_encode() -> None:
    assert encode_prediction(b"\x00").headers == [(b"content-type", b"application/octet-stream")]
    assert encode_prediction("hi").body == b"hi"
    numpy_answer = encode_prediction({"a": np.array([1, 2]), "b": np.float32(0.5), "p": Point(3), "s": (1,)})
    assert json.loads(numpy_answer.body) == {"a": [1, 2], "b": 0.5, "p": {"x": 3}, "s": [1]}
    response = encode_prediction(JSONResponse({"k": 1}, status_code=202))
    assert response.status == 202 and b"content-length" not in dict(response.headers)
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode_prediction({"x": object()})


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("text/plain; charset=bogus", "unknown charset 'bogus'"),
        ("text/plain; charset=rot13", "unknown charset 'rot13'"),  # a codec, but not for text
        ("text/plain; charset=idna", "cannot decode the body as 'idna'"),  # cannot replace errors
    ],
)
def test_a_charset_that_cannot_decode_is_a_bad_payload(content_type: str, message: str) -> None:
    # Before, these escaped as LookupError/UnicodeError: a 500 "internal error" for a client's mistake.
    with pytest.raises(BadPayload, match=message):
        decode_payload(b"hi", content_type)


def test_json_nested_too_deeply_is_a_bad_payload_or_bytes() -> None:
    deep = b"[" * 100_000
    with pytest.raises(BadPayload, match="nested too deeply"):
        decode_payload(deep, "application/json")
    assert decode_payload(deep, "") == deep  # no Content-Type: not JSON, so bytes


def test_predictions_are_strict_json() -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        encode_prediction({"score": float("nan")})
    # A lone surrogate (a JSON payload's "\ud800" escape echoed back) stays escaped instead of failing.
    answer = encode_prediction({"echo": "\ud800 é"})
    assert answer.body == b'{"echo":"\\ud800 \\u00e9"}'
    assert json.loads(answer.body) == {"echo": "\ud800 é"}
    assert encode_prediction({"echo": "é"}).body == '{"echo":"é"}'.encode()
