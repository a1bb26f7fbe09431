"""Fuzzing the replica's HTTP surface with raw HTTP/1.1: whatever arrives, errors are JSON and the server serves on.

Two real runtimes, started once for the module: one whose predictor answers JSON for any payload, one whose
predictor raises or returns what JSON cannot hold when the query asks (`?do=...`), in two processes. For
every generated request (tests/fuzz/raw_http.py):

- every reply is HTTP/1.1 with a 2xx, 4xx or 5xx status (a 100 only after `Expect: 100-continue`);
- a 4xx/5xx reply is `application/json` holding `{"error": "..."}`, a JSON 2xx is strict JSON (no NaN), and
  no request makes the runtime itself fail (a 500 "internal error": only a predictor's SystemExit may);
- no reply holds a traceback or a path of the runtime's (or its libraries') source;
- a flawless JSON prediction reaches the JSON predictor intact (it answers with the payload it got);
- afterwards the server answers `GET /healthz` with 200 and a prediction with the right answer.

No reply at all is accepted only for a request whose body stops short of its framing (the server rightly
waits) or with a flaw below the application (`PARSER_FLAWS`): the hypothesis statistics
(`--hypothesis-show-statistics`) list those cases as `no reply ...` events. What the parser refuses is
answered by the runtime's protocol (server.py) in JSON too: 400, 414 for a target over 64 KiB, 431 for
headers over the limit; and an `Upgrade` request (h2c) is served as HTTP/1.1, its body intact.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, event, given, settings

import cortexlite_runtime
from tests.conftest import Runtime, launch_runtime, make_project
from tests.fuzz.raw_http import PARSER_FLAWS, Exchange, RawRequest, Reply, exchange, parse_replies, raw_requests

pytestmark = pytest.mark.timeout(180)

MAX_PAYLOAD = 65_536  # small, so that generated bodies can pass it
SOURCES = (str(Path(cortexlite_runtime.__file__).resolve().parent), str(Path(uvicorn.__file__).resolve().parents[1]))
_FUZZ = settings(
    max_examples=250,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def _start(tmp_path_factory: pytest.TempPathFactory, predictor: str, yaml: str) -> Runtime:
    workdir = tmp_path_factory.mktemp(f"http-fuzz-{predictor}")
    project = make_project(workdir / "project", predictor, yaml)
    return launch_runtime(project, workdir, {"CORTEX_MAX_PAYLOAD_BYTES": str(MAX_PAYLOAD)})


@pytest.fixture(scope="module")
def json_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = _start(tmp_path_factory, "payload_type", "- name: fuzz-json\n")
    yield runtime
    runtime.stop(timeout=15)


@pytest.fixture(scope="module")
def raising_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    yaml = "- name: fuzz-raise\n  predictor: {processes_per_replica: 2, threads_per_process: 2}\n"
    runtime = _start(tmp_path_factory, "raise_on_input", yaml)
    yield runtime
    runtime.stop(timeout=15)


def _strict_json(body: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def _check_reply(reply: Reply, request: RawRequest) -> None:
    if reply.status < 200:
        assert reply.status == 100 and b"100-continue" in request.data, f"interim reply {reply.status}"
        return
    assert 200 <= reply.status < 300 or 400 <= reply.status < 600, f"status {reply.status}"
    text = reply.body.decode("utf-8", "replace")
    if "Traceback" not in request.data.decode("utf-8", "replace"):
        assert "Traceback" not in text, text
    assert 'File "' not in text and not any(source in text for source in SOURCES), text
    if reply.status in (400, 414, 431):
        event(f"{reply.status} from the protocol: {', '.join(sorted(request.flaws)) or 'no flaw'}")
    content_type = reply.header(b"content-type") or b""
    if reply.status >= 400:
        assert content_type == b"application/json", f"{reply.status} answered as {content_type!r}: {reply.body!r}"
    if request.method == "HEAD" or not content_type.startswith(b"application/json"):
        return
    answer = _strict_json(reply.body)
    if reply.status >= 400:
        assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer
        assert len(answer["error"]) <= 1000, f"an error message of {len(answer['error'])} characters"
        # "internal error" is the runtime's own failure; only a predictor's SystemExit (?do=exit) may cause one
        if answer["error"].startswith("internal error") and b"do=exit" not in request.data:
            raise AssertionError(f"the runtime failed on this request: {answer['error']}")


def _check_serving(runtime: Runtime, prediction: dict[str, Any]) -> None:
    assert runtime.process.poll() is None, f"the runtime exited:\n{runtime.logs()[-3000:]}"
    health = runtime.client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "alive"})
    answer = runtime.client.post("/predict", json={"x": 1})
    assert (answer.status_code, answer.json()) == (200, prediction)


def _fuzz(runtime: Runtime, request: RawRequest, prediction: dict[str, Any]) -> Exchange:
    result = exchange(runtime.port, request, patience=5.0 if request.complete else 0.3)
    for reply in result.replies:
        _check_reply(reply, request)
    assert result.leftover == b"" or result.leftover.startswith(b"HTTP/1.1 "), f"garbled reply: {result.leftover!r}"
    finals = [reply.status for reply in result.replies if reply.status >= 200]
    if finals:
        event(f"first reply {finals[0]}")
    else:
        why = sorted(request.flaws & PARSER_FLAWS) or (["incomplete body"] if not request.complete else [])
        assert why, f"no reply to a request without a parser-level flaw (connection {result.ended})"
        event(f"no reply ({result.ended}): {', '.join(why)}")
    _check_serving(runtime, prediction)
    return result


def _check_echo(result: Exchange, request: RawRequest) -> None:
    """A flawless JSON prediction request reaches the predictor (payload_type) with its payload intact."""
    if request.json_body is None:
        return
    payload = json.loads(request.json_body) if request.json_body else None
    event("a valid prediction: its payload checked")
    finals = [reply for reply in result.replies if reply.status >= 200]
    assert finals and finals[0].status == 200, f"a valid prediction got {finals[0].status if finals else 'no reply'}"
    assert json.loads(finals[0].body) == {"type": type(payload).__name__, "value": payload}


@_FUZZ
@given(raw_requests())
def test_any_request_to_a_json_predictor(json_runtime: Runtime, request: RawRequest) -> None:
    result = _fuzz(json_runtime, request, {"type": "dict", "value": {"x": 1}})
    _check_echo(result, request)


@_FUZZ
@given(raw_requests())
def test_any_request_to_a_raising_predictor(raising_runtime: Runtime, request: RawRequest) -> None:
    _fuzz(raising_runtime, request, {"ok": True, "type": "dict"})


_CLOSE = b"Host: x\r\nConnection: close\r\n"
_PARSER_REJECTED = {
    "NUL in a header value": b"GET /healthz HTTP/1.1\r\n" + _CLOSE + b"X-A: a\x00b\r\n\r\n",
    "unknown method": b"FOO / HTTP/1.1\r\n" + _CLOSE + b"\r\n",
    "non-ASCII byte in the target": b"GET /\xff HTTP/1.1\r\n" + _CLOSE + b"\r\n",
    "target over 64 KiB": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n" + _CLOSE + b"\r\n",
    "raw UTF-8 in the query": b"GET /healthz?x=\xc3\xa9 HTTP/1.1\r\n" + _CLOSE + b"\r\n",
    "bare LF line ends": b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n",
    "two Content-Length": b"POST / HTTP/1.1\r\n" + _CLOSE + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    "negative Content-Length": b"POST / HTTP/1.1\r\n" + _CLOSE + b"Content-Length: -1\r\n\r\n{}",
    "Transfer-Encoding and Content-Length": (
        b"POST / HTTP/1.1\r\n" + _CLOSE + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    ),
    "invalid chunk size": b"POST / HTTP/1.1\r\n" + _CLOSE + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "garbage after the body": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}garbage\r\n\r\n",
}


@pytest.mark.parametrize("data", list(_PARSER_REJECTED.values()), ids=list(_PARSER_REJECTED))
def test_parser_rejections_are_answered_with_json(json_runtime: Runtime, data: bytes) -> None:
    request = RawRequest(data, data.split(b" ", 1)[0].decode("latin-1"), frozenset({"parser"}), complete=True)
    result = exchange(json_runtime.port, request, patience=5.0)
    finals = [reply for reply in result.replies if reply.status >= 200]
    assert finals, f"no reply (connection {result.ended})"
    expected = 414 if len(data) > 65_536 else 400  # the target over 64 KiB
    for reply in finals:
        assert reply.status == expected and reply.header(b"content-type") == b"application/json", (reply, reply.body)
        assert reply.header(b"connection") == b"close"
        error = _strict_json(reply.body).get("error")
        assert isinstance(error, str) and len(error) < 200, error
    assert result.ended in ("eof", "reset"), "the connection stays open after a refusal"


@pytest.mark.parametrize(
    "headers",
    [
        [b"X-Huge: " + b"v" * 70_000],  # one line over the limit
        [b"X-Many-%d: %s" % (i, b"v" * 100) for i in range(700)],  # many lines, together over it
        [b"X-Huge: " + b"v" * 16_000_000],  # one endless line: refused before it ends
    ],
    ids=["one-long-header", "many-headers", "sixteen-megabytes"],
)
def test_headers_over_the_limit_are_answered_431(json_runtime: Runtime, headers: list[bytes]) -> None:
    data = b"POST /predict HTTP/1.1\r\nHost: x\r\n" + b"".join(h + b"\r\n" for h in headers)
    data += b"Content-Length: 2\r\n\r\n{}"
    result = exchange(json_runtime.port, RawRequest(data, "POST", frozenset(), complete=True), patience=10.0)
    assert [reply.status for reply in result.replies] == [431], result
    reply = result.replies[0]
    assert reply.header(b"content-type") == b"application/json" and reply.header(b"connection") == b"close"
    assert _strict_json(reply.body) == {"error": "the request's headers exceed the limit of 65536 bytes"}
    _check_serving(json_runtime, {"type": "dict", "value": {"x": 1}})


def test_headers_under_the_limit_are_served(json_runtime: Runtime) -> None:
    lines = b"".join(b"X-Many-%d: %s\r\n" % (i, b"v" * 100) for i in range(500))  # about 55 KiB
    data = b"POST /predict HTTP/1.1\r\nHost: x\r\n" + lines + b"Content-Length: 7\r\n\r\n" + b'{"a":1}'
    result = exchange(json_runtime.port, RawRequest(data, "POST", frozenset(), complete=True), patience=5.0)
    assert [reply.status for reply in result.replies] == [200], result


_UPGRADE = (
    b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n"
    b'{"a":1}'
)


@pytest.mark.parametrize("split", [None, _UPGRADE.index(b"{"), 10], ids=["whole", "body-apart", "head-in-pieces"])
def test_an_upgrade_request_is_served_as_http_1_1(json_runtime: Runtime, split: int | None) -> None:
    """`curl --http2` to an http:// URL: the upgrade is ignored (RFC 9110 7.8) and the request served, body and all,
    on a connection that stays usable (a second request follows on it)."""
    second = b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{"b":2}'
    with socket.create_connection(("127.0.0.1", json_runtime.port), timeout=5) as sock:
        if split is None:
            sock.sendall(_UPGRADE)
        else:
            sock.sendall(_UPGRADE[:split])
            time.sleep(0.2)
            sock.sendall(_UPGRADE[split:])
        time.sleep(0.2)
        sock.sendall(second)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    replies, rest = parse_replies(data, head=False)
    assert [reply.status for reply in replies] == [200, 200] and rest == b"", data
    assert json.loads(replies[0].body) == {"type": "dict", "value": {"a": 1}}
    assert json.loads(replies[1].body) == {"type": "dict", "value": {"b": 2}}


def test_a_predictors_base_exception_is_a_predict_failure(raising_runtime: Runtime) -> None:
    for _ in range(4):  # every thread of both processes, and the process still serves
        answer = raising_runtime.client.post("/predict?do=base", json={"x": 1})
        assert answer.status_code == 500, answer.text
        assert answer.json()["error"].startswith("predict failed: Interrupted: a BaseException"), answer.text
    _check_serving(raising_runtime, {"ok": True, "type": "dict"})


def test_a_404_does_not_echo_a_long_path(json_runtime: Runtime) -> None:
    answer = json_runtime.client.get("/" + "a" * 60_000)
    assert answer.status_code == 404
    assert len(answer.json()["error"]) < 300, answer.json()


def test_no_exception_reached_uvicorn(json_runtime: Runtime, raising_runtime: Runtime) -> None:
    """Runs last: nothing the fuzz sent made the app raise (uvicorn would have answered a plain-text 500)."""
    for runtime in (json_runtime, raising_runtime):
        logs = runtime.logs()
        assert "Exception in ASGI application" not in logs, logs[-5000:]
