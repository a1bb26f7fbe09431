"""Request payloads in, predictions out: the HTTP contract of `predict`.

Payload by Content-Type: JSON -> object (bad JSON -> 400), `text/plain` -> str (an unknown charset
-> 400), forms -> form data, no Content-Type -> JSON when the body parses as JSON (Cortex 0.15
clients send none), else bytes; any other type -> bytes. Return: bytes -> octet-stream, str ->
text/plain, a starlette `Response` passes through, anything else -> JSON (strict: NaN and infinities
cannot be encoded, as in Cortex).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Mapping, MutableMapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from starlette.responses import Response

__all__ = [
    "BadPayload",
    "Invocation",
    "Outcome",
    "decode_headers",
    "decode_payload",
    "decode_query",
    "encode_prediction",
    "error_outcome",
    "json_bytes",
]

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
_OCTET = b"application/octet-stream"


class Invocation(NamedTuple):
    """One request as the predictor's process sees it (picklable, raw)."""

    request_id: str
    body: bytes
    content_type: str
    query_string: bytes
    headers: list[tuple[bytes, bytes]]


class Outcome(NamedTuple):
    """One response: status, headers (content-type included) and the whole body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class BadPayload(Exception):
    """The body does not match its Content-Type (answered with a 400)."""


def decode_payload(body: bytes, content_type: str) -> Any:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(body) if body else None
        except ValueError as exc:
            raise BadPayload(f"invalid JSON: {exc}") from None
        except RecursionError:
            raise BadPayload("invalid JSON: arrays or objects are nested too deeply") from None
    if media.startswith("text/"):
        return _decode_text(body, _charset(content_type))
    if media in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        return _parse_form(body, content_type)
    if not media:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return body
    return body


def decode_query(query_string: bytes) -> dict[str, str]:
    if not query_string:
        return {}
    return dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))


def decode_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in raw}


def encode_prediction(result: Any) -> Outcome:
    if isinstance(result, bytes | bytearray | memoryview):
        return Outcome(200, [(b"content-type", _OCTET)], bytes(result))
    if isinstance(result, str):
        return Outcome(200, [(b"content-type", _TEXT)], result.encode("utf-8"))
    if isinstance(result, Response):
        return _render_response(result)
    return Outcome(200, [(b"content-type", _JSON)], json_bytes(result))


def json_bytes(value: Any) -> bytes:
    text = _ENCODER.encode(value)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a "\ud800" escape in a JSON payload: keep it escaped
        return _ASCII_ENCODER.encode(value).encode()


def error_outcome(status: int, message: str, request_id: str | None = None) -> Outcome:
    body: dict[str, Any] = {"error": message}
    if request_id:
        body["request_id"] = request_id
    return Outcome(status, [(b"content-type", _JSON)], json_bytes(body))


def _to_json(value: Any) -> Any:
    # numpy arrays and scalars, pydantic models, dataclasses, sets: what predictors commonly return.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Mapping):  # e.g. starlette's FormData
        return dict(value)
    raise TypeError(f"predict returned a {type(value).__name__}, which is not JSON serializable")


# One encoder for every response: json.dumps would build a new one per call for these options.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_to_json)
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_to_json)


def _decode_text(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        raise BadPayload(f"unknown charset {charset!r}") from None
    except ValueError as exc:  # a codec that is not for text, or that cannot replace errors (idna)
        raise BadPayload(f"cannot decode the body as {charset!r}: {exc}") from None


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def _parse_form(body: bytes, content_type: str) -> Any:
    from starlette.requests import Request

    async def parse() -> Any:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type.encode())]}
        form = await Request(scope, receive).form()
        # Read uploads now: the form outlives this event loop.
        items = []
        for key, value in form.multi_items():
            items.append((key, value if isinstance(value, str) else await _upload(value)))
        return items

    try:
        from starlette.datastructures import FormData

        return FormData(asyncio.run(parse()))
    except Exception as exc:  # a malformed form is the client's fault
        raise BadPayload(f"invalid form data: {exc}") from None


async def _upload(upload: Any) -> Any:
    from starlette.datastructures import UploadFile

    data = await upload.read()
    return UploadFile(io.BytesIO(data), filename=upload.filename, size=len(data), headers=upload.headers)


def _render_response(response: Response) -> Outcome:
    if response.background is None and hasattr(response, "body"):
        return Outcome(response.status_code, _without_framing(response.raw_headers), bytes(response.body))
    # Streaming and file responses, and background tasks: run the response as ASGI, keep what it sends.
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "asgi": {"spec_version": "2.4"}}
    asyncio.run(response(scope, receive, send))
    return Outcome(status, _without_framing(headers), b"".join(chunks))


def _without_framing(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    # The whole body is sent at once; the server sets content-length itself.
    return [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"transfer-encoding")]
