"""The HTTP contract of predict: payload by Content-Type, return mapping, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import StartRuntime, make_project

pytestmark = pytest.mark.timeout(60)


def test_json_in_json_out_with_query_headers_and_config(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = "- name: echo\n  predictor:\n    type: python\n    path: predictor.py\n    config: {k: v}\n"
    runtime = start_runtime(make_project(tmp_path / "p", "echo_json", yaml))
    for route in ("/", "/predict"):
        answer = runtime.client.post(route, params={"a": "1"}, json={"x": [1, 2]}, headers={"x-test": "t"})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {"payload": {"x": [1, 2]}, "query": {"a": "1"}, "agent": "t", "config": {"k": "v"}}


def test_text_in_text_out(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "text"))
    answer = runtime.client.post("/", content="héllo".encode(), headers={"content-type": "text/plain; charset=utf-8"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "str:HÉLLO"


def test_bytes_in_bytes_out(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "raw_bytes"))
    answer = runtime.client.post("/", content=b"\x00\x01\xff", headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.content == b"\xff\x01\x00"


def test_no_content_type_is_json_when_it_parses_else_bytes(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "payload_type"))
    # httpx sends no Content-Type for raw content, as Cortex 0.15 clients did.
    as_json = runtime.client.post("/", content=b'{"a": 1}')
    assert as_json.json() == {"type": "dict", "value": {"a": 1}}
    as_bytes = runtime.client.post("/", content=b"not json")
    assert as_bytes.json() == {"type": "bytes", "value": "not json"}
    form = runtime.client.post("/", data={"field": "value"})
    assert form.json() == {"type": "form", "value": {"field": "value"}}
    upload = runtime.client.post("/", files={"file": ("a.txt", b"contents")})
    assert upload.json() == {"type": "form", "value": {"file": "contents"}}


def test_bad_json_is_400(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "echo_json"))
    answer = runtime.client.post("/", content=b"{nope", headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("invalid JSON")
    assert runtime.client.post("/", json={"ok": 1}).status_code == 200


def test_response_passes_through(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "response_passthrough"))
    answer = runtime.client.post("/", json={})
    assert (answer.status_code, answer.text, answer.headers["x-custom"]) == (201, "created", "yes")
    streamed = runtime.client.post("/", params={"stream": "1"}, json={})
    assert (streamed.status_code, streamed.text) == (202, "abc")
    assert streamed.headers["content-type"].startswith("text/csv")


def test_predict_error_is_500_and_the_next_request_works(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "predict_error"))
    failed = runtime.client.post("/", json={"fail": True}, headers={"x-request-id": "req-42"})
    assert failed.status_code == 500
    assert "RuntimeError: boom on purpose (predictor.py:4)" in failed.json()["error"]
    assert failed.json()["request_id"] == "req-42"
    assert runtime.client.post("/", json={"fail": False}).json() == {"ok": True}
    assert '"request_id": "req-42"' in runtime.logs()


def test_payload_limit_is_413(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "raw_bytes"), env={"CORTEX_MAX_PAYLOAD_BYTES": "1000"})
    octet = {"content-type": "application/octet-stream"}
    assert runtime.client.post("/", content=b"x" * 1000, headers=octet).status_code == 200
    too_big = runtime.client.post("/", content=b"x" * 1001, headers=octet)
    assert too_big.status_code == 413
    assert "1000" in too_big.json()["error"]

    def chunks() -> object:
        yield b"x" * 600
        yield b"x" * 600

    chunked = runtime.client.post("/", content=chunks(), headers=octet)  # no content-length: counted as read
    assert chunked.status_code == 413
    assert runtime.client.post("/", content=b"ok", headers=octet).status_code == 200


def test_routes_and_methods(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "echo_json"))
    summary = runtime.client.get("/").json()
    assert summary["api"] == "api" and summary["status"] == "ready"
    assert summary["processes"] == 1 and summary["max_replica_concurrency"] == 1024
    assert runtime.client.get("/healthz").status_code == 200
    assert runtime.client.get("/nope").status_code == 404
    assert runtime.client.delete("/predict").status_code == 405
    assert runtime.client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_debug_logs_payload_and_prediction(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "predict_error"))
    runtime.client.post("/", params={"debug": "true"}, json={"secret_marker": 1})
    logs = runtime.logs()
    assert "payload: {'secret_marker': 1}" in logs
    assert "prediction: {'ok': True}" in logs


def test_forms_and_streaming_still_work_once_predict_runs_on_the_loop(
    tmp_path: Path, start_runtime: StartRuntime
) -> None:
    """A proven-fast 1x1 predictor runs inline on the event loop: the async helpers must cope."""
    forms = start_runtime(make_project(tmp_path / "a", "payload_type"))
    for _ in range(110):  # 100 fast calls prove the predictor; the rest run inline
        assert forms.client.post("/", json=1).status_code == 200
    assert forms.client.post("/", data={"field": "value"}).json() == {"type": "form", "value": {"field": "value"}}
    upload = forms.client.post("/", files={"file": ("a.txt", b"contents")})
    assert upload.json() == {"type": "form", "value": {"file": "contents"}}

    streams = start_runtime(make_project(tmp_path / "b", "response_passthrough"))
    for _ in range(110):
        assert streams.client.post("/", json={}).status_code == 201
    streamed = streams.client.post("/", params={"stream": "1"}, json={})
    assert (streamed.status_code, streamed.text) == (202, "abc")


def test_predict_may_run_its_own_event_loop_on_either_path(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "uses_asyncio"))
    answers = [runtime.client.post("/", json=i).json() for i in range(110)]
    assert [a["value"] for a in answers] == [2 * i for i in range(110)]
    assert answers[0]["thread"] == "predict-0" and answers[-1]["thread"] == "MainThread"
