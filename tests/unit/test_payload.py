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
