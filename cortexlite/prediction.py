"""`predict`: one request to an API through the environment's gateway, as a client would send it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from cortexlite.errors import CortexliteError, GatewayError
from cortexlite.workspace import Workspace

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["Prediction", "predict"]


@dataclass(frozen=True)
class Prediction:
    status: int
    content_type: str
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def predict(ws: Workspace | Cluster, name: str, payload: bytes, timeout: float = 60.0) -> Prediction:
    """POST `payload` to the API's endpoint on the gateway: JSON when it parses as JSON, else bytes."""
    url = f"{ws.gateway_url}{_endpoint(ws, name)}"
    try:
        json.loads(payload)
        content_type = "application/json"
    except ValueError:
        content_type = "application/octet-stream"
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            answer = client.post(url, content=payload, headers={"content-type": content_type})
    except httpx.TimeoutException as exc:
        raise CortexliteError(f"{name}: no answer from {url} within {timeout:g}s") from exc
    except httpx.HTTPError as exc:
        raise GatewayError(f"{name}: the gateway at {url} did not answer ({exc}); `cortexlite up` starts it") from exc
    return Prediction(answer.status_code, answer.headers.get("content-type", ""), answer.content)


def _endpoint(ws: Workspace | Cluster, name: str) -> str:
    if not isinstance(ws, Workspace):
        meta = ws.require_api(name).get("Meta") or {}
        return str(meta.get("cortexlite.endpoint") or f"/{name}")
    record = ws.state.api(name)
    if record is None:
        raise ws.unknown_api(name)
    return record.endpoint
