"""Rollouts of the process environment: zero failed requests under load, interruptions, takeovers."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import LocalEnv, make_api_project
from tests.integration.load import Load

pytestmark = pytest.mark.slow


def _yaml(answer: str, init: float = 0, replicas: int = 1) -> str:
    predictor = f"{{config: {{answer: {answer}, init_seconds: {init}}}}}"
    return f"- name: answer\n  predictor: {predictor}\n  autoscaling: {{init_replicas: {replicas}}}\n"


def _watch_routing(env: LocalEnv, api: str, stop: threading.Event, seen: list[tuple[str, ...]]) -> None:
    while not stop.is_set():
        servers = tuple(env.routed(api) or ())
        if not seen or seen[-1] != servers:
            seen.append(servers)
        time.sleep(0.01)


def test_update_under_load_fails_no_request(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project", yaml=_yaml("v1", replicas=2))
    env.cli("up", str(project))
    old = {f"http://127.0.0.1:{r['port']}" for r in env.replica_records("answer")}
    assert len(old) == 2

    load = Load(env.url("/answer"))
    seen: list[tuple[str, ...]] = []
    watching = threading.Event()
    watcher = threading.Thread(target=_watch_routing, args=(env, "answer", watching, seen), daemon=True)
    load.start()
    watcher.start()
    try:
        deadline = time.monotonic() + 20
        while load.successes() < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        (project / "cortexlite.yaml").write_text(_yaml("v2", replicas=2))
        deployed = env.cli("deploy", str(project))
        finished = time.monotonic()
        time.sleep(1.5)
    finally:
        load.stop()
        watching.set()
        watcher.join(5)

    assert "updating answer" in deployed.stdout
    print(f"load: {len(load.results)} requests in {load.duration:.1f}s, routing seen: {len(seen)} sets")
    statuses = Counter(status for _, status, _ in load.results)
    failures = [(status, body[:200]) for _, status, body in load.results if status != 200]
    assert failures == [], f"{len(failures)} failed requests of {len(load.results)}: {failures[:5]}"
    assert len(load.results) / load.duration >= 100, (len(load.results), load.duration, statuses)

    answers = [json.loads(body)["answer"] for _, _, body in load.results]
    assert answers[0] == "v1" and answers[-1] == "v2"
    assert {json.loads(body)["answer"] for at, _, body in load.results if at > finished} == {"v2"}
    first_new = answers.index("v2")
    assert answers[:first_new] == ["v1"] * first_new

    # Traefik's API showed the membership move: old pair, mixed sets while new replicas joined, new pair.
    new = {f"http://127.0.0.1:{r['port']}" for r in env.replica_records("answer")}
    assert len(new) == 2 and not new & old
    assert set(seen[0]) == old and set(seen[-1]) == new
    assert all(servers for servers in seen), f"routing went empty: {seen}"
    assert any(set(servers) & old and set(servers) & new for servers in seen), seen


def test_interrupted_rollout_is_rolled_back_by_the_next_command(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project", yaml=_yaml("v1"))
    env.cli("up", str(project))
    (old,) = env.replica_records("answer")

    # A crash (SIGKILL) mid-rollout: the new replica is still loading (its __init__ takes 30 s).
    (project / "cortexlite.yaml").write_text(_yaml("v2", init=30))
    deploying = env.popen("deploy", str(project))
    new = _wait_for_new_replica(env, old["id"])
    assert (env.api_dir("answer") / "rollout.json").is_file()
    deploying.send_signal(signal.SIGKILL)
    deploying.communicate(timeout=10)

    got = env.cli("get", "answer")
    assert "rolling back the interrupted update" in got.stdout
    assert [r["id"] for r in env.replica_records("answer")] == [old["id"]]
    assert not (env.api_dir("answer") / "rollout.json").exists()
    assert env.routed("answer") == [f"http://127.0.0.1:{old['port']}"]
    assert _pid_gone(new["pid"])
    assert httpx.post(env.url("/answer"), json={}, timeout=10).json() == {"answer": "v1"}

    # Ctrl-C mid-rollout: the CLI says the next command rolls back; that command then deploys.
    deploying = env.popen("deploy", str(project))
    _wait_for_new_replica(env, old["id"])
    deploying.send_signal(signal.SIGINT)
    output, _ = deploying.communicate(timeout=20)
    assert deploying.returncode == 130, output
    assert "rolled back by the next cortexlite command" in output
    (project / "cortexlite.yaml").write_text(_yaml("v3"))
    redeploy = env.cli("deploy", str(project))
    assert "rolling back the interrupted update" in redeploy.stdout
    assert httpx.post(env.url("/answer"), json={}, timeout=10).json() == {"answer": "v3"}
    assert len(env.replica_records("answer")) == 1


def test_a_deploy_during_an_update_needs_force(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project", yaml=_yaml("v1"))
    env.cli("up", str(project))
    (old,) = env.replica_records("answer")

    (project / "cortexlite.yaml").write_text(_yaml("v2", init=30))
    started = env.cli("deploy", str(project), "--no-wait")
    assert "update started" in started.stdout
    _wait_for_new_replica(env, old["id"])
    status = json.loads(env.cli("get", "-o", "json").stdout)
    assert status[0]["status"] == "updating"

    (project / "cortexlite.yaml").write_text(_yaml("v3"))
    refused = env.cli("deploy", str(project), check=False)
    assert refused.returncode == 1
    assert "is being updated" in refused.stderr and "--force" in refused.stderr

    forced = env.cli("deploy", str(project), "--force")
    assert "interrupting the update in progress" in forced.stdout
    assert "rolling back the interrupted update" in forced.stdout
    assert httpx.post(env.url("/answer"), json={}, timeout=10).json() == {"answer": "v3"}
    assert len(env.replica_records("answer")) == 1
    assert json.loads(env.cli("get", "-o", "json").stdout)[0]["status"] == "live"


def test_refresh_replaces_every_replica(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project", yaml=_yaml("v1", replicas=2))
    env.cli("up", str(project))
    before = {r["id"] for r in env.replica_records("answer")}
    env.cli("refresh", "answer")
    after = {r["id"] for r in env.replica_records("answer")}
    assert len(after) == 2 and not before & after
    assert httpx.post(env.url("/answer"), json={}, timeout=10).json() == {"answer": "v1"}


def _wait_for_new_replica(env: LocalEnv, old_id: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in env.replica_records("answer"):
            if record["id"] != old_id and record.get("pid"):
                return record
        time.sleep(0.05)
    raise AssertionError("no new replica started")


def _pid_gone(pid: object, timeout: float = 10) -> bool:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(int(str(pid))).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False
