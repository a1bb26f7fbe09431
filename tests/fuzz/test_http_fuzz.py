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
(`--hypothesis-show-statistics`) list those cases as `no reply ...` events.

KNOWN GAPS, both in how uvicorn's httptools protocol is used (server.py), each with its reproducers (xfail):
- a request its parser refuses gets a plain-text 400 "Invalid HTTP request received.": the fuzz accepts
  exactly that reply, and only for requests with a parser flaw (`_known_parser_gap`;
  `test_parser_rejections_are_answered_with_json`);
- a request with `Connection: Upgrade` and `Upgrade` loses its body: the payload check skips those
  (`_known_upgrade_gap`; `test_an_upgrade_request_keeps_its_body`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, event, given, settings

import cortexlite_runtime
from tests.conftest import Runtime, launch_runtime, make_project
from tests.fuzz.raw_http import PARSER_FLAWS, Exchange, RawRequest, Reply, exchange, raw_requests

pytestmark = pytest.mark.timeout(180)

MAX_PAYLOAD = 65_536  # small, so that generated bodies can pass it
SOURCES = (str(Path(cortexlite_runtime.__file__).resolve().parent), str(Path(uvicorn.__file__).resolve().parents[1]))
PARSER_GAP = b"Invalid HTTP request received."
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


def _known_parser_gap(reply: Reply, request: RawRequest) -> bool:
    """KNOWN GAP (test_parser_rejections_are_answered_with_json): uvicorn's plain-text 400 to a request its parser
    refused. Remove this once the server answers those with JSON."""
    content_type = reply.header(b"content-type") or b""
    if reply.status == 400 and reply.body == PARSER_GAP and content_type.startswith(b"text/plain"):
        assert request.flaws & PARSER_FLAWS, "the parser refused a request without a parser-level flaw"
        return True
    return False


def _check_reply(reply: Reply, request: RawRequest) -> None:
    if reply.status < 200:
        assert reply.status == 100 and b"100-continue" in request.data, f"interim reply {reply.status}"
        return
    assert 200 <= reply.status < 300 or 400 <= reply.status < 600, f"status {reply.status}"
    text = reply.body.decode("utf-8", "replace")
    if "Traceback" not in request.data.decode("utf-8", "replace"):
        assert "Traceback" not in text, text
    assert 'File "' not in text and not any(source in text for source in SOURCES), text
    if reply.status >= 400 and _known_parser_gap(reply, request):
        event(f"plain-text 400 from the parser: {', '.join(sorted(request.flaws & PARSER_FLAWS))}")
        return
    content_type = reply.header(b"content-type") or b""
    if reply.status >= 400:
        assert content_type == b"application/json", f"{reply.status} answered as {content_type!r}: {reply.body!r}"
    if request.method == "HEAD" or not content_type.startswith(b"application/json"):
        return
    answer = _strict_json(reply.body)
    if reply.status >= 400:
        assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer
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


def _known_upgrade_gap(request: RawRequest) -> bool:
    """KNOWN GAP (test_an_upgrade_request_keeps_its_body): with `Connection: Upgrade` and an `Upgrade` header,
    uvicorn's httptools protocol drops the body. Remove this once the server refuses or ignores the upgrade."""
    head = request.data.split(b"\r\n\r\n", 1)[0].lower()
    return b"\r\nupgrade:" in head and re.search(rb"\r\nconnection:[^\r]*upgrade", head) is not None


def _check_echo(result: Exchange, request: RawRequest) -> None:
    """A flawless JSON prediction request reaches the predictor (payload_type) with its payload intact."""
    if request.json_body is None:
        return
    if _known_upgrade_gap(request):
        event("KNOWN GAP: an upgrade request's body is dropped")
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


@pytest.mark.xfail(
    strict=False,
    reason="KNOWN GAP: uvicorn's httptools protocol answers a request its parser refuses with a plain-text 400 "
    "'Invalid HTTP request received.'; the runtime's server (server.py) should answer JSON",
)
@pytest.mark.parametrize("data", list(_PARSER_REJECTED.values()), ids=list(_PARSER_REJECTED))
def test_parser_rejections_are_answered_with_json(json_runtime: Runtime, data: bytes) -> None:
    request = RawRequest(data, data.split(b" ", 1)[0].decode("latin-1"), frozenset({"parser"}), complete=True)
    result = exchange(json_runtime.port, request, patience=5.0)
    finals = [reply for reply in result.replies if reply.status >= 200]
    assert finals, f"no reply (connection {result.ended})"
    for reply in finals:
        assert reply.status == 400 and reply.header(b"content-type") == b"application/json", (reply, reply.body)
        assert isinstance(_strict_json(reply.body).get("error"), str)


_UPGRADE = (
    b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n"
    b'{"a":1}'
)


@pytest.mark.xfail(
    strict=False,
    reason="KNOWN GAP: with `Connection: Upgrade` and an `Upgrade` header (what `curl --http2` sends to an http:// "
    "URL), uvicorn's httptools protocol stops reading at the headers: the predictor gets no body and the connection "
    "stays open; the runtime's server (server.py) should refuse the upgrade or ignore it and read the body",
)
def test_an_upgrade_request_keeps_its_body(json_runtime: Runtime) -> None:
    result = exchange(json_runtime.port, RawRequest(_UPGRADE, "POST", frozenset(), complete=True), patience=5.0)
    assert [reply.status for reply in result.replies] == [200], result
    assert json.loads(result.replies[0].body) == {"type": "dict", "value": {"a": 1}}


def test_no_exception_reached_uvicorn(json_runtime: Runtime, raising_runtime: Runtime) -> None:
    """Runs last: nothing the fuzz sent made the app raise (uvicorn would have answered a plain-text 500)."""
    for runtime in (json_runtime, raising_runtime):
        logs = runtime.logs()
        assert "Exception in ASGI application" not in logs, logs[-5000:]
