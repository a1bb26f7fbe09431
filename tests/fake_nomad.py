"""A contract fake of a Nomad agent's HTTP API, served in-process on 127.0.0.1 for tests.

No Nomad agent ran to make or check this fake: it enforces the API's shapes from the recorded
reference data in `tests/data/nomad/` (field map, docker config keys, recorded responses). Request
bodies go through the strict checker (`tests/nomad_schema.py`): where the real agent would silently drop
an unknown or misspelt key, the fake fails loudly (500, text prefixed `fake-nomad strict check:`); where
Go's decoder would refuse a value (a duration as `"30s"`), it answers 400 with the decoder's message.
Response bodies are the recorded ones with fields filled in from the fake's state.

    with FakeNomad(token="secret") as nomad:
        nomad.script_deployment("cortexlite-iris", "failed", after=0.2)
        ...  # point the code under test at nomad.url

Endpoints: jobs (register, read, list, stop/purge, plan, validate, scale), deployments (read, fail), allocations,
evaluations, the Nomad service catalog (`/v1/services`, `/v1/service/:name`, which Traefik reads),
variables and logs (framed or plain, `follow=true`), with `X-Nomad-Token`, `?namespace=`, `?region=`
and blocking queries (`?index=&wait=`). The cluster's behaviour is in `fake_nomad_state.py`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fake_nomad_state import Cluster, Script
from tests.fake_nomad_validation import ApiError, parse_go_duration

__all__ = ["FakeNomad", "Recorded"]

_HEARTBEAT_S = 0.5
_MAX_WAIT_S = 600.0


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None (no body, or not JSON)


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any = None  # JSON
    text: str | None = None  # text/plain instead
    index: int | None = None


class FakeNomad:
    """One fake agent and its cluster; listens from construction, serves between `start()` and `stop()`."""

    def __init__(
        self, *, token: str | None = None, namespace: str = "default", region: str = "global", gpus: int = 0,
        tls: tuple[Path, Path] | None = None,
    ) -> None:  # fmt: skip
        self.token = token
        self.cluster = Cluster(namespace, region, gpus)
        self.requests: list[Recorded] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        if tls is not None:  # (certificate, key): the agent speaks HTTPS, as `tls { http = true }` makes it
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-nomad", daemon=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeNomad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.cluster.close()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        with self._lock:
            for connection in list(self._connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server.server_close()

    def __enter__(self) -> FakeNomad:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- what tests read --------------------------------------------------------------------------

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        """Job ID -> the Job of its latest registration, as sent (purged jobs are gone)."""
        with self.cluster.cond:
            return {job_id: copy.deepcopy(record.sent) for job_id, record in self.cluster.records.items()}

    @property
    def variables(self) -> dict[str, dict[str, str]]:
        with self.cluster.cond:
            return {path: dict(variable["Items"]) for path, variable in self.cluster.variables.items()}

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The job as Nomad holds it now (server fields, counts, reverts), or None."""
        with self.cluster.cond:
            record = self.cluster.records.get(job_id)
            return copy.deepcopy(record.current) if record is not None else None

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # --- scripting the cluster --------------------------------------------------------------------

    def script_deployment(
        self, job_id: str, outcome: str, *, after: float = 0.3, failed_events: list[dict[str, Any]] | None = None
    ) -> None:
        """The next deployment of `job_id` runs for `after` seconds, then ends `outcome`.

        `outcome` is "successful", "failed" or "running" (forever). `failed_events` are the task events of
        the failed allocation (partial events are completed with Nomad's blank fields).
        """
        if outcome not in ("successful", "failed", "running"):
            raise ValueError(f"unknown deployment outcome {outcome!r}")
        with self.cluster.cond:
            self.cluster.scripts[job_id] = Script(outcome, after, failed_events)

    def set_alloc_address(self, job_id: str, index: int, host: str, port: int) -> None:
        """Where the "http" port of allocation `<job>.<group>[index]` points (default 127.0.0.1:20000+)."""
        with self.cluster.cond:
            self.cluster.addresses[(job_id, index)] = (host, port)

    def add_log(self, job_id: str, text: str, stream: str = "stdout") -> None:
        """Bytes every allocation of `job_id` writes to `stream` (followers receive them)."""
        self.cluster.add_log(job_id, stream, text.encode())

    # --- plumbing for the handler ---------------------------------------------------------------

    def _record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(connection)


_WRITE = ("PUT", "POST")
_JOB = r"/v1/job/(?P<target>[^/]+)"
# path pattern -> method -> Cluster method (target, query, body), or "logs" (streamed by _Logs)
_ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(pattern), methods)
    for pattern, methods in [
        (r"/v1/jobs", {"GET": "list_jobs", **dict.fromkeys(_WRITE, "register")}),
        (r"/v1/validate/job", dict.fromkeys(_WRITE, "validate")),
        (_JOB + "/plan", dict.fromkeys(_WRITE, "plan")),
        (_JOB + "/deployment", {"GET": "deployment"}),
        (_JOB + "/allocations", {"GET": "allocations"}),
        (_JOB + "/evaluations", {"GET": "evaluations"}),
        (_JOB + "/scale", {"GET": "scale_status", **dict.fromkeys(_WRITE, "scale")}),
        (_JOB, {"GET": "read_job", "DELETE": "deregister", **dict.fromkeys(_WRITE, "register")}),
        (r"/v1/allocation/(?P<target>[^/]+)", {"GET": "allocation"}),
        (r"/v1/deployment/fail/(?P<target>[^/]+)", dict.fromkeys(_WRITE, "fail_deployment")),
        (r"/v1/services", {"GET": "services"}),
        (r"/v1/service/(?P<target>[^/]+)", {"GET": "service"}),
        (r"/v1/var/(?P<target>.+)", {"GET": "get_variable", "PUT": "put_variable", "DELETE": "delete_variable"}),
        (r"/v1/client/fs/logs/(?P<target>[^/]+)", {"GET": "logs"}),
    ]
]
_BLOCKING = ("read_job", "deployment", "allocations", "evaluations", "scale_status")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-nomad"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go out apart
        self._fake()._track(self.connection, True)

    def finish(self) -> None:
        self._fake()._track(self.connection, False)
        super().finish()

    def _fake(self) -> FakeNomad:
        fake: FakeNomad = self.server.fake  # type: ignore[attr-defined]
        return fake

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # --- one request ------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        fake = self._fake()
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        headers = {name.lower(): value for name, value in self.headers.items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body, parse_error = _parse(raw)
        fake._record(Recorded(method, url.path, query, headers, body))
        try:
            _authorize(fake.token, headers)
            if query.get("region") not in (None, "", fake.cluster.region):
                raise ApiError(500, "No path to region")
            name, target = _route(method, url.path)
            if method in _WRITE and (parse_error is not None or not raw.strip()):
                raise ApiError(400, parse_error or "Request body is empty")
            if name == "logs":
                _Logs(self, fake.cluster, target, query).stream()
                return
            answer = _call(fake.cluster, name, target, query, body)
        except ApiError as error:
            answer = _Answer(error.status, text=error.text)
        self._send(answer)

    def _send(self, answer: _Answer) -> None:
        if answer.text is not None:
            payload, kind = answer.text.encode(), "text/plain; charset=utf-8"
        else:
            payload, kind = json.dumps(answer.body).encode(), "application/json"
        self.send_response(answer.status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        if answer.index is not None:
            self.send_header("X-Nomad-Index", str(answer.index))
            self.send_header("X-Nomad-KnownLeader", "true")
            self.send_header("X-Nomad-LastContact", "0")
        self.end_headers()
        self.wfile.write(payload)


class _Logs:
    """`GET /v1/client/fs/logs/:alloc`: JSON frames (or plain bytes) over chunked encoding; follows on request."""

    def __init__(self, handler: _Handler, cluster: Cluster, alloc_id: str, query: dict[str, str]) -> None:
        self.handler, self.cluster, self.query = handler, cluster, query
        task, kind = query.get("task"), query.get("type")
        if not task:
            raise ApiError(400, "must provide task name")
        if not kind:
            raise ApiError(400, "must provide log type (stdout/stderr)")
        if kind not in ("stdout", "stderr"):
            raise ApiError(400, f'Illegal log type: "{kind}"')
        self.kind: str = kind
        with cluster.cond:
            try:
                _record, alloc = cluster.find_alloc(alloc_id)
            except ApiError:
                raise ApiError(404, f'Unknown allocation "{alloc_id}"') from None
        if task not in alloc.tasks:
            raise ApiError(400, f'unknown task name "{task}"')
        self.job_id, self.file = alloc.job_id, f"alloc/logs/{task}.{self.kind}.0"
        self.plain, self.follow = query.get("plain") == "true", query.get("follow") == "true"
        self.origin, self.offset = query.get("origin", "start"), _int(query.get("offset", "0"), "offset")
        if self.origin not in ("start", "end"):
            raise ApiError(400, 'origin must be "start" or "end"')

    def stream(self) -> None:
        data = self.cluster.log_data(self.job_id, self.kind)
        position = self.offset if self.origin == "start" else len(data) - self.offset
        position = max(0, min(position, len(data)))
        handler = self.handler
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; charset=utf-8" if self.plain else "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            position = self._emit(data, position)
            while self.follow and not self.cluster.closed and not _peer_closed(handler.connection):
                data = self.cluster.log_data(self.job_id, self.kind, size=position, timeout=_HEARTBEAT_S)
                if len(data) > position:
                    position = self._emit(data, position)
                elif not self.plain:
                    self._chunk(b"{}")
            self._chunk(b"")
        except OSError:
            pass
        if self.follow:
            handler.close_connection = True

    def _emit(self, data: bytes, position: int) -> int:
        if len(data) <= position:
            return position
        piece = data[position:]
        if self.plain:
            self._chunk(piece)
        else:
            frame = {"Offset": len(data), "Data": base64.b64encode(piece).decode(), "File": self.file}
            self._chunk(json.dumps(frame, separators=(",", ":")).encode())
        return len(data)

    def _chunk(self, payload: bytes) -> None:
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.handler.wfile.flush()


def _call(cluster: Cluster, name: str, target: str, query: dict[str, str], body: Any) -> _Answer:
    job_id = target if name in _BLOCKING else None
    if job_id is not None and "index" in query:
        cluster.wait_past(job_id, _int(query["index"], "index"), _wait(query.get("wait")))
    with cluster.cond:
        result = getattr(cluster, name)(target, query, body)
        index = cluster.current_index(job_id)
    if name == "delete_variable":
        return _Answer(200, text="", index=index)
    return _Answer(200, body=result, index=index)


def _authorize(token: str | None, headers: dict[str, str]) -> None:
    if token is None:
        return
    given = headers.get("x-nomad-token") or headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not given:
        raise ApiError(403, "Permission denied")
    if given != token:
        raise ApiError(403, "ACL token not found")


def _route(method: str, path: str) -> tuple[str, str]:
    """The Cluster method for a request and the target (job ID, allocation ID, variable path) in its path."""
    for pattern, methods in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if method not in methods:
            raise ApiError(405, "Invalid method")
        return methods[method], unquote(match.groupdict().get("target") or "")
    raise ApiError(404, "404 page not found")


def _parse(raw: bytes) -> tuple[Any, str | None]:
    """The JSON body and, when it is not JSON, the decoder's complaint (Go's wording where cheap)."""
    if not raw.strip():
        return None, None
    try:
        return json.loads(raw), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if isinstance(exc, json.JSONDecodeError) and exc.pos < len(exc.doc):
            return None, f"invalid character {exc.doc[exc.pos]!r} looking for beginning of value"
        return None, "unexpected EOF"


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f"Invalid {what}: {text!r}") from None


def _wait(text: str | None) -> float:
    if text is None:
        return 300.0  # Nomad's default wait for a blocking query
    try:
        return min(parse_go_duration(text), _MAX_WAIT_S)
    except ValueError:
        raise ApiError(400, "Invalid wait time") from None


def _peer_closed(connection: socket.socket) -> bool:
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except ValueError:  # a TLS socket cannot peek: the stream ends with the test instead
        return False
    except OSError:
        return True
