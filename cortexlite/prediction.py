"""`predict`: one request to an API through the environment's gateway, as a client would send it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from cortexlite.errors import CortexliteError, GatewayError
from cortexlite.workspace import Workspace

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["Prediction", "payload_type", "predict"]


@dataclass(frozen=True)
class Prediction:
    status: int
    content_type: str
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def predict(
    ws: Workspace | Cluster,
    name: str,
    payload: bytes,
    *,
    timeout: float = 60.0,
    content_type: str | None = None,
    api_key: str | None = None,
) -> Prediction:
    """POST `payload` to the API's endpoint on the gateway, typed as `content_type` or by `payload_type`.

    The key sent is `api_key`, else CORTEXLITE_API_KEY, else one `keys create --save` kept for the API.
    """
    url = f"{ws.gateway_url}{_endpoint(ws, name)}"
    headers = {"content-type": content_type or payload_type(payload)}
    key = api_key or os.environ.get("CORTEXLITE_API_KEY") or ws.environment.api_key(name)
    if key:
        headers["authorization"] = f"Bearer {key}"
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            answer = client.post(url, content=payload, headers=headers)
    except httpx.TimeoutException as exc:
        raise CortexliteError(f"{name}: no answer from {url} within {timeout:g}s") from exc
    except httpx.HTTPError as exc:
        raise GatewayError(f"{name}: the gateway at {url} did not answer ({exc}); `cortexlite up` starts it") from exc
    return Prediction(answer.status_code, answer.headers.get("content-type", ""), answer.content)


def payload_type(payload: bytes) -> str:
    """JSON when it parses as JSON; text when it is UTF-8 text; bytes otherwise."""
    try:
        json.loads(payload)
    except ValueError:
        pass
    else:
        return "application/json"
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    printable = all(char.isprintable() or char in "\t\n\r" for char in text)
    return "text/plain; charset=utf-8" if printable else "application/octet-stream"


def _endpoint(ws: Workspace | Cluster, name: str) -> str:
    if not isinstance(ws, Workspace):
        meta = ws.require_api(name).get("Meta") or {}
        return str(meta.get("cortexlite.endpoint") or f"/{name}")
    record = ws.state.api(name)
    if record is None:
        raise ws.unknown_api(name)
    return record.endpoint
