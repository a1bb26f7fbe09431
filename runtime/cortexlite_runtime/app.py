"""The replica's HTTP surface: a raw ASGI app (no framework on the hot path).

`POST /` and `POST /predict` predict; `GET /` summarises; `GET /healthz` says the process is
alive; `GET /readyz` is 200 only when every predictor process finished `__init__` (its body
says why not, otherwise); `GET /metrics` is Prometheus text. Over the replica's cap (active +
queued) a predict request is answered 503 at once; a prediction running longer than
`networking.timeout` is answered 504.

With `networking.auth: api_key` every route but `/healthz` and `/readyz` needs a key (see
auth.py); `/metrics` too when it came through the gateway (X-Forwarded-For), so the operator's
direct scrapes need none.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import __version__
from .auth import Denial, KeyRing
from .payload import Invocation, Outcome, error_outcome, json_bytes
from .replica import Phase, Replica

__all__ = ["App"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_CLOSE = (b"connection", b"close")


class _TooLarge(Exception):
    pass


class App:
    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.max_payload = replica.config.max_payload_bytes
        self._boot: asyncio.Task[None] | None = None
        self._keys: KeyRing | None = None
        self._id_prefix = os.urandom(4).hex() + "-"  # unique per replica process; a counter after it
        self._ids = itertools.count(1)
        self._gets: dict[str, Callable[[], tuple[int, list[tuple[bytes, bytes]], bytes]]] = {
            "/": self._summary,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            denial = self._denial(path, scope["headers"])
            if denial is not None:
                await _respond(send, *_denied(denial))
                return
            if method == "POST" and path in {"/", "/predict"}:
                await self._predict(scope, receive, send)
                return
            route = self._gets.get(path)
            if route is not None and method in ("GET", "HEAD"):
                await _respond(send, *route(), closing=self._closing())
            elif route is not None or path == "/predict":
                await _respond(send, *error_outcome(405, f"method {method} not allowed on {path}"))
            else:
                shown = path if len(path) <= 200 else f"{path[:200]}..."
                await _respond(send, *error_outcome(404, f"no route {shown}; predict with POST / or POST /predict"))
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        replica = self.replica
        serving = replica.phase is Phase.READY or replica.phase is Phase.SHUTTING_DOWN
        if not serving or replica.scheduler is None:
            await _respond(send, *error_outcome(503, f"not ready: {_reason(replica)}"), closing=False)
            return
        settings = replica.settings
        assert settings is not None and replica.scheduler is not None
        started = time.perf_counter()
        if replica.in_flight >= settings.max_concurrency:
            outcome = error_outcome(
                503, f"too many requests: this replica is at its limit of {settings.max_concurrency}"
            )
            await _respond(send, *outcome, closing=self._closing())
            replica.metrics.record(503, time.perf_counter() - started)
            return
        timeout = replica.config.timeout or (replica.api.networking.timeout if replica.api else 60.0)
        replica.in_flight += 1
        # The replica stays charged for a timed-out prediction until its thread returns: it still runs.
        work = asyncio.ensure_future(self._run(scope, receive))
        work.add_done_callback(lambda _: self._done())
        try:
            outcome = await asyncio.wait_for(asyncio.shield(work), timeout)
        except TimeoutError:
            work.add_done_callback(_consume)
            outcome = error_outcome(504, f"the prediction took longer than the API's timeout ({timeout:g}s)")
        await _respond(send, *outcome, closing=self._closing())
        replica.metrics.record(outcome.status, time.perf_counter() - started)

    def _done(self) -> None:
        self.replica.in_flight -= 1

    def _denial(self, path: str, headers: list[tuple[bytes, bytes]]) -> Denial | None:
        if path in ("/healthz", "/readyz"):
            return None
        if path == "/metrics" and not any(name == b"x-forwarded-for" for name, _ in headers):
            return None
        keys = self._keyring()
        return None if keys is None else keys.check(headers)

    def _keyring(self) -> KeyRing | None:
        if self._keys is not None:
            return self._keys
        config, api = self.replica.config, self.replica.api
        mode = config.auth or (api.networking.auth if api is not None else None)
        if mode != "api_key":
            return None
        self._keys = KeyRing(config.api_keys_file)
        return self._keys

    async def _run(self, scope: Scope, receive: Receive) -> Outcome:
        content_type = ""
        request_id = ""
        length = 0
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                length = int(value) if value.isdigit() else 0
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
        request_id = request_id or f"{self._id_prefix}{next(self._ids):x}"
        if length > self.max_payload:
            return error_outcome(
                413, f"payload of {length} bytes exceeds the limit of {self.max_payload} bytes", request_id
            )
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            return error_outcome(413, f"payload exceeds the limit of {self.max_payload} bytes", request_id)
        invocation = Invocation(request_id, body, content_type, scope["query_string"], scope["headers"])
        replica = self.replica
        if replica.batcher is not None:
            return await replica.batcher.submit(invocation)
        assert replica.scheduler is not None
        return (await replica.scheduler.submit([invocation]))[0]

    async def _read_body(self, receive: Receive) -> bytes:
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.max_payload:
                raise _TooLarge
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_payload:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _closing(self) -> bool:
        return self.replica.phase is Phase.SHUTTING_DOWN

    def _healthz(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 200, _JSON, b'{"status":"alive"}'

    def _readyz(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        replica = self.replica
        body: dict[str, Any] = {"ready": replica.ready, "status": replica.phase.value}
        if replica.error:
            body["error"] = replica.error
        if replica.notes:
            body["notes"] = replica.notes
        return (200 if replica.ready else 503), _JSON, json_bytes(body)

    def _summary(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        replica = self.replica
        api, settings = replica.api, replica.settings
        body: dict[str, Any] = {
            "message": f"API {api.name} is {replica.phase.value}" if api else f"replica is {replica.phase.value}",
            "status": replica.phase.value,
            "runtime": f"cortexlite-runtime {__version__}",
        }
        if api is not None:
            body.update(api=api.name, predictor={"type": api.predictor.type.value, "path": api.predictor.path})
        if settings is not None:
            body.update(
                processes=settings.processes, threads=settings.threads, max_replica_concurrency=settings.max_concurrency
            )
        body.update(replica.info)
        if replica.error:
            body["error"] = replica.error
        return 200, _JSON, json_bytes(body)

    def _metrics(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")], self.replica.metrics.render()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._boot = asyncio.create_task(self.replica.boot())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._boot is not None and not self._boot.done():
                    # Still loading: __init__ runs on a thread nothing can interrupt, and the loop's
                    # executor would hold the exit until it returns. Nothing is in flight; leave now.
                    self.replica.abandon_loading()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, closing: bool = False
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    if closing:
        headers.append(_CLOSE)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _denied(denial: Denial) -> Outcome:
    outcome = error_outcome(denial.status, denial.message)
    if denial.status == 401:
        outcome.headers.append((b"www-authenticate", b'Bearer realm="cortexlite"'))
    return outcome


def _consume(work: asyncio.Future[Outcome]) -> None:
    if not work.cancelled():
        work.exception()  # retrieved: a late failure of a timed-out prediction is not "never retrieved"


def _reason(replica: Replica) -> str:
    return replica.error or replica.phase.value
