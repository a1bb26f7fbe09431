"""The operator: autoscaling on load and healing, with short windows (processes, and healing in Docker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_project
from tests.integration.conftest import CORTEXLITE, DockerEnv, LocalEnv, docker, make_api_project
from tests.integration.load import Load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# Decisions every 2 s (the default is 10 s); windows of 10 s.
FAST = {"CORTEXLITE_OPERATOR_INTERVAL": "2"}
SLOW_YAML = """\
- name: slow
  predictor: {threads_per_process: 2}
  autoscaling:
    window: 10s
    target_replica_concurrency: 1
    upscale_stabilization_period: 0s
    downscale_stabilization_period: 10s
    max_replicas: 5
"""


def _cli(env: LocalEnv, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(CORTEXLITE), *args], env={**env.environ, **FAST}, capture_output=True, text=True, timeout=240,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(
            f"cortexlite {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def _operator_log(env: LocalEnv) -> str:
    """The operator's events: its log file (processes) or its container's log (Docker)."""
    if isinstance(env, DockerEnv):
        (operator,) = env.containers("cortexlite.role=operator")
        done = docker("logs", operator["Id"])
        return done.stdout + done.stderr
    path = env.home / "envs" / "local" / "operator" / "operator.log"
    return path.read_text() if path.is_file() else ""


def _answers(env: LocalEnv) -> bool:
    """Whether the gateway serves /answer now."""
    try:
        return httpx.post(env.url("/answer"), json={}, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _requested(env: LocalEnv, api: str) -> int:
    return int(json.loads((env.api_dir(api) / "api.json").read_text())["requested"])


def _wait(condition: object, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if callable(condition) and condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:g}s")


def _burst(url: str, clients: int, seconds: float, stop: threading.Event) -> list[int]:
    statuses: list[int] = []

    def client() -> None:
        deadline = time.monotonic() + seconds
        with httpx.Client(timeout=30, trust_env=False) as http:
            while time.monotonic() < deadline and not stop.is_set():
                statuses.append(http.post(url, json={"seconds": 0.5}).status_code)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 35)
    return statuses


def test_a_burst_scales_up_quiet_scales_down_and_a_deploy_keeps_the_count(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_project(tmp_path / "project", "slow", SLOW_YAML)
    up = _cli(env, "up", str(project))
    assert "operator started" in up.stdout + up.stderr

    stop = threading.Event()
    statuses: list[int] = []
    burst = threading.Thread(target=lambda: statuses.extend(_burst(env.url("/slow"), 6, 40, stop)), daemon=True)
    burst.start()
    try:
        took = _wait(lambda: _requested(env, "slow") >= 3, 30, "scaling 1 -> 3 under a burst")
        print(f"operator: 1 -> {_requested(env, 'slow')} replicas {took:.1f}s into a burst of 6 slow clients")
        # A deploy while the operator scales: it waits its turn and keeps the operator's count.
        (project / "predictor.py").write_text((project / "predictor.py").read_text() + "\n# v2\n")
        deployed = _cli(env, "deploy", str(project))
        assert "updating slow" in deployed.stdout
        count = _requested(env, "slow")
        assert count >= 3, deployed.stdout
        assert len(env.replica_records("slow")) == count
    finally:
        stop.set()
        burst.join(60)
    assert statuses and set(statuses) == {200}, {code: statuses.count(code) for code in set(statuses)}
    assert "autoscaling event: slow 1 -> 2" in _operator_log(env)

    took = _wait(lambda: _requested(env, "slow") == 1, 90, "back to min_replicas when quiet")
    print(f"operator: back to 1 replica {took:.1f}s after the burst")
    _wait(lambda: len(env.replica_records("slow")) == 1, 30, "the surplus replicas drained")
    status = json.loads(env.cli("get", "slow", "-o", "json").stdout)[0]
    assert status["requested"] == 1 and status["last_scaling"]["after"] == 1
    assert "last scaling:" in env.cli("get", "slow").stdout


def test_healing_under_load_replaces_a_killed_replica_and_the_gateway(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    yaml = "- name: answer\n  autoscaling: {min_replicas: 2, init_replicas: 2}\n"
    project = make_api_project(tmp_path / "project", yaml=yaml)
    _cli(env, "up", str(project))
    before = {record["id"]: record for record in env.replica_records("answer")}
    assert len(before) == 2

    load = Load(env.url("/answer"), rate=80)
    load.start()
    try:
        _wait(lambda: load.successes() >= 100, 20, "load running")
        victim = next(iter(before.values()))
        killed_at = time.monotonic()
        os.kill(int(victim["pid"]), signal.SIGKILL)

        def replaced() -> bool:
            records = env.replica_records("answer")
            routed = set(env.routed("answer") or [])
            fresh = [r for r in records if r["id"] not in before]
            return len(records) == 2 and bool(fresh) and all(f"http://127.0.0.1:{r['port']}" in routed for r in fresh)

        _wait(replaced, 30, "a replacement replica ready and routed")
        replacement_s = time.monotonic() - killed_at

        gateway = json.loads((env.home / "envs" / "local" / "gateway" / "state.json").read_text())
        gateway_killed = time.monotonic()
        os.kill(int(gateway["pid"]), signal.SIGKILL)

        time.sleep(0.2)
        _wait(lambda: _answers(env), 30, "the gateway back")
        gateway_s = time.monotonic() - gateway_killed
        time.sleep(1)
    finally:
        load.stop()
    failed_around_replica = [r for r in load.results if r[1] != 200 and r[0] < gateway_killed]
    print(
        f"healing: replica SIGKILL -> replacement ready in {replacement_s:.1f}s, "
        f"{len(failed_around_replica)} of {sum(1 for r in load.results if r[0] < gateway_killed)} requests failed; "
        f"gateway SIGKILL -> answering again in {gateway_s:.1f}s"
    )
    assert len(failed_around_replica) <= 2, failed_around_replica[:5]
    log = _operator_log(env)
    assert f"healing: answer replica {victim['id']}" in log and "healing: the gateway is back" in log


@pytest.mark.docker
def test_healing_in_docker_after_docker_kill_kill_9_and_a_dead_gateway(docker_env: DockerEnv, tmp_path: Path) -> None:
    """`docker kill` cancels Docker's restart policy; `kill -9` of the main PID from the host does not."""
    env = docker_env
    yaml = "- name: answer\n  autoscaling: {min_replicas: 2, init_replicas: 2}\n"
    project = make_api_project(tmp_path / "project", yaml=yaml)
    _cli(env, "up", str(project))
    first = {c["Id"] for c in env.replicas("answer")}
    assert len(first) == 2

    def serving() -> set[str]:
        running = [c for c in env.replicas("answer") if c["State"]["Running"]]
        routed = set(env.routed("answer") or [])
        ports = {c["Id"]: c["Config"]["Labels"]["cortexlite.port"] for c in running}
        return {cid for cid, port in ports.items() if f"http://127.0.0.1:{port}" in routed}

    figures: list[str] = []
    load = Load(env.url("/answer"), rate=80)
    load.start()
    try:
        _wait(lambda: load.successes() >= 100, 20, "load running")
        victim = sorted(first)[0]
        killed = time.monotonic()
        docker("kill", victim)
        _wait(lambda: len(serving()) == 2 and victim not in serving(), 40, "a replacement for the killed container")
        figures.append(f"docker kill -> replacement ready in {time.monotonic() - killed:.1f}s")

        other = next(iter(serving() - {victim}))
        pid = int(docker("inspect", "-f", "{{.State.Pid}}", other).stdout.strip())
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        def recovered() -> bool:
            # Docker may restart it (unless-stopped) before the operator replaces it: either heals it.
            now_serving = serving()
            restarted = other in now_serving and docker("inspect", "-f", "{{.State.Pid}}", other).stdout.strip() != str(
                pid
            )
            return len(now_serving) == 2 and (other not in now_serving or restarted)

        _wait(recovered, 40, "two replicas serving again after kill -9")
        figures.append(f"kill -9 of the main PID -> 2 serving again in {time.monotonic() - killed:.1f}s")
        load.stop()
        failed = [r for r in load.results if r[1] != 200]
        figures.append(
            f"{len(failed)} of {len(load.results)} requests failed at {len(load.results) / load.duration:.0f}/s"
        )

        (gateway,) = env.containers("cortexlite.role=gateway")
        killed = time.monotonic()
        docker("kill", gateway["Id"])

        time.sleep(0.3)
        _wait(lambda: _answers(env), 40, "the gateway container back")
        figures.append(f"docker kill of the gateway -> answering again in {time.monotonic() - killed:.1f}s")
    finally:
        load.stop()
    print("docker healing: " + "; ".join(figures))
    assert len(failed) <= 2, failed[:5]
    (operator,) = env.containers("cortexlite.role=operator")
    assert operator["HostConfig"]["PidMode"] == "host" and operator["HostConfig"]["NetworkMode"] == "host"
    log = _operator_log(env)
    assert "healing: answer replica" in log and "healing: the gateway is back" in log


@pytest.mark.docker
def test_the_operator_container_scales_docker_replicas_up_and_down(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    project = make_project(tmp_path / "project", "slow", SLOW_YAML)
    up = _cli(env, "up", str(project))
    assert "operator started (container cortexlite-" in up.stdout + up.stderr
    stop = threading.Event()
    statuses = _burst_until(env, stop, lambda: _requested(env, "slow") >= 3, 30)
    assert statuses and set(statuses) == {200}
    took = _wait(lambda: _requested(env, "slow") == 1, 90, "back to min_replicas when quiet")
    print(f"docker operator: scaled to >= 3 under a burst, back to 1 replica {took:.1f}s after it")
    _wait(lambda: len(env.replicas("slow")) == 1, 30, "the surplus containers removed")
    assert "autoscaling event: slow 1 -> 2" in _operator_log(env)


def _burst_until(env: LocalEnv, stop: threading.Event, done: object, timeout: float) -> list[int]:
    statuses: list[int] = []
    burst = threading.Thread(target=lambda: statuses.extend(_burst(env.url("/slow"), 6, 40, stop)), daemon=True)
    burst.start()
    try:
        took = _wait(done, timeout, "scaling up under a burst")
        print(f"scaled up {took:.1f}s into a burst of 6 slow clients")
    finally:
        stop.set()
        burst.join(60)
    return statuses


def test_a_restarted_operator_keeps_its_stabilization_windows(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_project(tmp_path / "project", "slow", SLOW_YAML)
    _cli(env, "up", str(project))
    state_file = env.api_dir("slow") / "autoscaler.json"
    _wait(state_file.is_file, 20, "the operator's first decision")
    started = json.loads(state_file.read_text())["started_at"]
    record = json.loads((env.home / "envs" / "local" / "operator" / "state.json").read_text())
    os.kill(int(record["pid"]), signal.SIGKILL)
    again = _cli(env, "up", str(project))
    assert "operator started" in again.stdout + again.stderr
    mtime = state_file.stat().st_mtime
    _wait(lambda: state_file.stat().st_mtime > mtime, 20, "a decision of the new operator")
    assert json.loads(state_file.read_text())["started_at"] == started
