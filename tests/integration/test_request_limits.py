"""Request limits on a process environment: a real runtime behind a real Traefik gateway.

The replica answers its own limits in JSON (413 body, 431 headers, 504 `networking.timeout`); the gateway
adds its own: a cap on header bytes, a read timeout that cuts slow clients, and a per-API response timeout
that outlasts the replica's 504. What Traefik answers itself (its 431, its cut connections) is plain Go,
not JSON: only the status is asserted there.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.conftest import LocalEnv, make_api_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

READ_TIMEOUT_S = 2.0
MAX_PAYLOAD = 32 * 1024 * 1024  # the runtime's default CORTEX_MAX_PAYLOAD_BYTES
_YAML = """\
- name: slow
  predictor: {threads_per_process: 2}
  networking: {timeout: 1s}
- name: long
  networking: {timeout: 6s}
"""


@pytest.fixture
def deployed(local_env: LocalEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalEnv]:
    """`slow` and `long` (both sleep `seconds`) with timeouts of 1 s and 6 s, behind a gateway whose read timeout
    is 2 s."""
    monkeypatch.setenv("CORTEXLITE_GATEWAY_READ_TIMEOUT", f"{READ_TIMEOUT_S:g}")
    local_env.cli("up", str(make_api_project(tmp_path / "project", "slow", _YAML)))
    yield local_env


def _replica(env: LocalEnv) -> str:
    (url,) = env.routed("slow") or [None]  # one replica
    assert url is not None
    return str(url)


def _error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) <= {"error", "request_id"} and "Traceback" not in body["error"], body
    return str(body["error"])


def test_a_body_over_the_limit_is_refused_with_json(deployed: LocalEnv) -> None:
    body = b"x" * (MAX_PAYLOAD + 1)
    headers = {"content-type": "application/octet-stream"}
    for url in (_replica(deployed) + "/predict", deployed.url("/slow")):  # direct, then through the gateway
        error = _error(httpx.post(url, content=body, headers=headers, timeout=60), 413)
        assert f"exceeds the limit of {MAX_PAYLOAD} bytes" in error
    assert httpx.post(deployed.url("/slow"), json={"seconds": 0}, timeout=10).status_code == 200


def test_headers_over_the_limit(deployed: LocalEnv) -> None:
    huge = {"x-huge": "v" * 100_000}
    direct = httpx.post(_replica(deployed) + "/predict", json={"seconds": 0}, headers=huge, timeout=10)
    assert _error(direct, 431) == "the request's headers exceed the limit of 65536 bytes"
    # Traefik's own answer (entryPoints.web.http.maxHeaderBytes): Go's plain-text 431, not the replica's JSON.
    through = httpx.post(deployed.url("/slow"), json={"seconds": 0}, headers=huge, timeout=10)
    assert through.status_code == 431
    assert httpx.post(deployed.url("/slow"), json={"seconds": 0}, timeout=10).status_code == 200


def test_a_prediction_past_the_timeout_is_a_json_504_through_the_gateway(deployed: LocalEnv) -> None:
    started = time.monotonic()
    answer = httpx.post(deployed.url("/slow"), json={"seconds": 3}, timeout=30)
    elapsed = time.monotonic() - started
    assert "took longer than the API's timeout (1s)" in _error(answer, 504)
    assert 0.9 < elapsed < 2.0, f"the 504 came after {elapsed:.2f}s"
    served = httpx.post(deployed.url("/slow"), json={"seconds": 0}, timeout=10)  # the other thread is free
    assert served.status_code == 200 and "pid" in served.json()


def test_a_prediction_longer_than_the_read_timeout_is_not_cut(deployed: LocalEnv) -> None:
    """The gateway's read timeout bounds receiving the request, not the prediction (Go's ReadTimeout)."""
    started = time.monotonic()
    answer = httpx.post(deployed.url("/long"), json={"seconds": READ_TIMEOUT_S + 1.5}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started > READ_TIMEOUT_S + 1.5


def test_a_slow_client_is_cut_off_while_others_are_served(deployed: LocalEnv) -> None:
    outcome: dict[str, float | str] = {}

    def trickle() -> None:
        started, ended = time.monotonic(), "still open"
        with socket.create_connection(("127.0.0.1", deployed.port), timeout=10) as sock:
            try:
                sock.sendall(b"POST /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                while time.monotonic() - started < 4 * READ_TIMEOUT_S:
                    sock.sendall(b"v")  # one header byte every 0.5 s: never a whole request
                    time.sleep(0.5)
                    if _closed(sock):
                        ended = "closed"
                        break
            except OSError as exc:
                ended = type(exc).__name__
        outcome.update(ended=ended, after=time.monotonic() - started)

    thread = threading.Thread(target=trickle)
    thread.start()
    served = []
    while thread.is_alive():
        answer = httpx.post(deployed.url("/slow"), json={"seconds": 0}, timeout=5)
        served.append(answer.status_code)
        time.sleep(0.2)
    thread.join()
    assert outcome.get("ended") != "still open", outcome
    assert READ_TIMEOUT_S - 0.2 < float(outcome["after"]) < READ_TIMEOUT_S + 1.5, outcome
    assert served and set(served) == {200}, served


def _closed(sock: socket.socket) -> bool:
    """Whether the peer closed (what it sent before, such as Go's plain-text 400, is read and dropped)."""
    sock.setblocking(False)
    try:
        while chunk := sock.recv(4096):
            del chunk
        return True
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def test_each_api_has_the_gateway_outwait_its_timeout(deployed: LocalEnv) -> None:
    for api, expected in (("slow", "6s"), ("long", "11s")):
        routes = yaml.safe_load((deployed.home / "envs" / "local" / "gateway" / "dynamic" / f"{api}.yml").read_text())
        transport = routes["http"]["serversTransports"][f"cortexlite-{api}"]
        assert transport == {"forwardingTimeouts": {"responseHeaderTimeout": expected}}
        url = f"http://127.0.0.1:{deployed.admin_port}/api/http/services/cortexlite-{api}@file"
        service = httpx.get(url, timeout=2).json()  # what Traefik applied
        assert (
            service["status"] == "enabled" and service["loadBalancer"]["serversTransport"] == f"cortexlite-{api}@file"
        )
