"""The ceiling: the benchmark's predictor behind a minimal raw ASGI app (no framework) on uvicorn.

`predict` runs inline on the event loop: no thread hop, no queue, no metrics, no logging. Run as
`python -m bench.ceiling` with `PORT` (and optionally `PREDICTOR`, a predictor.py path) set.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

__all__ = ["load_predictor", "main", "make_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_PREDICTOR = Path(__file__).resolve().parent / "projects" / "iris" / "predictor.py"
_READY = b'{"ready":true}'


def load_predictor(path: Path) -> Any:
    """Import `path` and construct its `PythonPredictor` the Cortex way (`config={}`)."""
    spec = importlib.util.spec_from_file_location("bench_ceiling_predictor", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PythonPredictor(config={})


def make_app(predictor: Any) -> ASGIApp:
    """POST (any path) predicts; any other method answers 200, which serves as `/readyz`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = _READY
        if scope["method"] == "POST":
            payload = json.loads(await _read_body(receive))
            # The runtime's encoding, so that both servers send the same bytes.
            body = json.dumps(predictor.predict(payload), separators=(",", ":"), ensure_ascii=False).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def main() -> None:
    port = int(os.environ["PORT"])
    predictor = load_predictor(Path(os.environ.get("PREDICTOR", str(DEFAULT_PREDICTOR))))
    uvicorn.run(
        make_app(predictor),
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="auto",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,  # the runtime sends no Server header either
    )


if __name__ == "__main__":
    main()
