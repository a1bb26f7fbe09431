"""Concurrency: the global per-replica cap, processes x threads, batching, replica-wide metrics."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Runtime, StartRuntime, make_project

pytestmark = pytest.mark.timeout(90)


def _post_many(runtime: Runtime, bodies: list[object]) -> list[tuple[httpx.Response, float]]:
    """POST every body at once, each on its own connection; (response, seconds) in order."""

    def post(body: object) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        answer = httpx.post(f"{runtime.url}/", json=body, timeout=30)
        return answer, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, bodies))


def _gauge(runtime: Runtime, name: str) -> float:
    text = runtime.client.get("/metrics").text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics:\n{text}"
    return float(match.group(1))


def test_cap_answers_503_at_once_beyond_the_limit(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "slow"), env={"CORTEX_MAX_REPLICA_CONCURRENCY": "3"})
    results = _post_many(runtime, [{"seconds": 1.5}] * 10)
    codes = sorted(answer.status_code for answer, _ in results)
    assert codes == [200] * 3 + [503] * 7
    rejected = [(answer, seconds) for answer, seconds in results if answer.status_code == 503]
    assert all(seconds < 1.0 for _, seconds in rejected), "503s must not wait for a slot"
    assert "limit of 3" in rejected[0][0].json()["error"]
    assert 'cortexlite_requests_total{status_class="5XX"} 7' in runtime.client.get("/metrics").text


def test_processes_serve_slow_requests_in_parallel(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "slow"), env={"CORTEX_PROCESSES_PER_REPLICA": "2"})
    started = time.monotonic()
    results = _post_many(runtime, [{"seconds": 1.5}] * 2)
    elapsed = time.monotonic() - started
    assert [answer.status_code for answer, _ in results] == [200, 200]
    assert len({answer.json()["pid"] for answer, _ in results}) == 2, "each request on its own process"
    assert elapsed < 2.7, f"two 1.5 s requests on two processes took {elapsed:.1f}s"


def test_busy_process_never_holds_a_request_an_idle_one_could_serve(
    tmp_path: Path, start_runtime: StartRuntime
) -> None:
    """Cortex #839: a request queued behind a busy process while another process idled."""
    runtime = start_runtime(make_project(tmp_path / "p", "slow"), env={"CORTEX_PROCESSES_PER_REPLICA": "2"})
    with ThreadPoolExecutor(max_workers=1) as pool:
        long_one = pool.submit(httpx.post, f"{runtime.url}/", json={"seconds": 3}, timeout=30)
        time.sleep(0.3)
        for _ in range(4):  # sequential short requests, new connections each time
            started = time.monotonic()
            assert httpx.post(f"{runtime.url}/", json={"seconds": 0.05}, timeout=30).status_code == 200
            assert time.monotonic() - started < 1.0
        assert long_one.result().status_code == 200


def test_metrics_are_replica_wide_and_the_cap_is_global(tmp_path: Path, start_runtime: StartRuntime) -> None:
    env = {"CORTEX_PROCESSES_PER_REPLICA": "2", "CORTEX_MAX_REPLICA_CONCURRENCY": "3"}
    runtime = start_runtime(make_project(tmp_path / "p", "slow"), env=env)
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(httpx.post, f"{runtime.url}/", json={"seconds": 2}, timeout=30) for _ in range(3)]
        time.sleep(0.6)
        # Two run (one per process), one waits; every scrape sees the replica's total.
        for _ in range(4):
            assert _gauge(runtime, "cortexlite_in_flight_requests") == 3
            assert _gauge(runtime, "cortexlite_queued_requests") == 1
        extra = [httpx.post(f"{runtime.url}/", json={"seconds": 0}, timeout=30) for _ in range(3)]
        assert [answer.status_code for answer in extra] == [503] * 3
        assert [future.result().status_code for future in futures] == [200] * 3
    assert _gauge(runtime, "cortexlite_in_flight_requests") == 0
    assert 'cortexlite_requests_total{status_class="2XX"} 3' in runtime.client.get("/metrics").text


def test_threads_per_process(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "slow"), env={"CORTEX_THREADS_PER_PROCESS": "3"})
    started = time.monotonic()
    results = _post_many(runtime, [{"seconds": 1.2}] * 3)
    assert [answer.status_code for answer, _ in results] == [200] * 3
    assert time.monotonic() - started < 2.2


def test_a_dead_predictor_process_is_replaced(tmp_path: Path, start_runtime: StartRuntime) -> None:
    import os
    import signal

    runtime = start_runtime(make_project(tmp_path / "p", "slow"), env={"CORTEX_PROCESSES_PER_REPLICA": "2"})
    with ThreadPoolExecutor(max_workers=1) as pool:
        doomed = pool.submit(httpx.post, f"{runtime.url}/", json={"seconds": 5}, timeout=30)
        time.sleep(0.5)
        for pid in _predictor_processes(runtime.process.pid):  # killing both surely hits the busy one
            os.kill(pid, signal.SIGKILL)
        answer = doomed.result()
    assert answer.status_code == 500 and "predictor process exited" in answer.json()["error"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if runtime.client.post("/", json={"seconds": 0}).status_code == 200:
            break
        time.sleep(0.2)
    assert runtime.client.post("/", json={"seconds": 0}).status_code == 200


def _predictor_processes(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]


BATCH_YAML = (
    "- name: batch\n  predictor:\n    path: predictor.py\n"
    "    server_side_batching: {{max_batch_size: {size}, batch_interval: {interval}}}\n"
)


def test_full_batch_is_one_call(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = BATCH_YAML.format(size=4, interval="5s")
    runtime = start_runtime(make_project(tmp_path / "p", "batch_size", yaml))
    results = _post_many(runtime, [{"n": i} for i in range(4)])
    assert [answer.json() for answer, _ in results] == [{"batch": 4, "item": {"n": i}} for i in range(4)]
    assert all(seconds < 3 for _, seconds in results), "a full batch must not wait for the interval"
    assert "cortexlite_batch_size_count 1" in runtime.client.get("/metrics").text


def test_lone_request_is_flushed_after_the_interval(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = BATCH_YAML.format(size=8, interval="300ms")
    runtime = start_runtime(make_project(tmp_path / "p", "batch_size", yaml))
    started = time.monotonic()
    answer = runtime.client.post("/", json="alone")
    elapsed = time.monotonic() - started
    assert answer.json() == {"batch": 1, "item": "alone"}
    assert 0.29 <= elapsed < 2.0


def test_batching_does_not_need_threads_equal_to_batch_size(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = BATCH_YAML.format(size=8, interval="50ms")
    runtime = start_runtime(make_project(tmp_path / "p", "batch_size", yaml))
    results = _post_many(runtime, [{"n": i} for i in range(16)])
    sizes = [answer.json()["batch"] for answer, _ in results]
    assert all(answer.status_code == 200 for answer, _ in results)
    assert max(sizes) > 1, f"1 thread must still batch: {sizes}"


def test_wrong_length_batch_fails_every_request(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = BATCH_YAML.format(size=3, interval="5s")
    runtime = start_runtime(make_project(tmp_path / "p", "batch_wrong_length", yaml))
    results = _post_many(runtime, [1, 2, 3])
    assert [answer.status_code for answer, _ in results] == [500] * 3
    assert all("must return a list of 3 predictions" in answer.json()["error"] for answer, _ in results)
    assert runtime.client.get("/healthz").status_code == 200


def test_batching_across_processes(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = BATCH_YAML.format(size=2, interval="2s")
    env = {"CORTEX_PROCESSES_PER_REPLICA": "2"}
    runtime = start_runtime(make_project(tmp_path / "p", "batch_size", yaml), env=env)
    results = _post_many(runtime, [{"n": i} for i in range(4)])
    assert sorted(answer.json()["batch"] for answer, _ in results) == [2, 2, 2, 2]


def test_a_proven_fast_predictor_runs_on_the_loop(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "thread_name"))
    threads = [runtime.client.post("/", json={}).json()["thread"] for _ in range(130)]
    assert threads[:100] == ["predict-0"] * 100, "the first calls prove the predictor on its thread"
    assert threads[-10:] == ["MainThread"] * 10
    slow = runtime.client.post("/", json={"seconds": 0.05}).json()["thread"]
    assert slow == "MainThread"  # ran inline (it had proven fast), and was caught being slow
    after = [runtime.client.post("/", json={}).json()["thread"] for _ in range(5)]
    assert after == ["predict-0"] * 5, "a slow inline call sends the predictor back to its thread"


def test_inline_can_be_turned_off_and_slow_predictors_never_qualify(
    tmp_path: Path, start_runtime: StartRuntime
) -> None:
    off = start_runtime(make_project(tmp_path / "a", "thread_name"), env={"CORTEXLITE_INLINE_PREDICT_LIMIT": "0"})
    assert {off.client.post("/", json={}).json()["thread"] for _ in range(120)} == {"predict-0"}
    slow = start_runtime(make_project(tmp_path / "b", "thread_name"), env={"CORTEXLITE_INLINE_PREDICT_LIMIT": "1ms"})
    answers = {slow.client.post("/", json={"seconds": 0.002}).json()["thread"] for _ in range(120)}
    assert answers == {"predict-0"}


def test_health_answers_during_a_slow_predict(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "slow"))
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(httpx.post, f"{runtime.url}/", json={"seconds": 2}, timeout=30)
        time.sleep(0.3)
        started = time.monotonic()
        assert runtime.client.get("/healthz").status_code == 200
        assert runtime.client.get("/metrics").status_code == 200
        assert time.monotonic() - started < 0.5
        assert slow.result().status_code == 200
