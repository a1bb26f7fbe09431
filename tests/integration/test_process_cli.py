"""The CLI's other contracts on the process environment: dry runs, JSON, counts, env, prune, logs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from cortexlite.processes import ProcessRef, terminate
from tests.integration.conftest import CORTEXLITE, LocalEnv, make_api_project

pytestmark = pytest.mark.slow


def test_dry_run_changes_nothing_and_json_is_stable(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project", yaml="- name: answer\n  predictor: {env: {MODE: fast}}\n")
    plan = json.loads(env.cli("deploy", str(project), "--dry-run", "-o", "json").stdout)
    assert [(p["name"], p["action"], p["endpoint"]) for p in plan] == [("answer", "created", "/answer")]
    replica = plan[0]["plan"]["replica"]
    assert replica["command"][1:] == ["-m", "cortexlite_runtime"]
    assert replica["env"]["CORTEX_SERVING_HOST"] == "127.0.0.1"
    assert replica["env"]["CORTEXLITE_DEPENDENCIES"] == "preinstalled"
    assert plan[0]["plan"]["resolved_spec"]["api"]["predictor"]["env"] == {"MODE": "fast"}
    assert not (env.home / "envs" / "local" / "apis").exists()
    assert not (env.home / "snapshots").exists()
    assert env.processes() == []  # not even the gateway

    created = json.loads(env.cli("deploy", str(project), "-o", "json").stdout)
    assert created == [{"name": "answer", "action": "created", "endpoint": "/answer", "url": env.url("/answer")}]
    again = json.loads(env.cli("deploy", str(project), "-o", "json").stdout)
    assert again[0]["action"] == "up-to-date"
    assert json.loads(env.cli("deploy", str(project), "--dry-run", "-o", "json").stdout)[0]["action"] == "up-to-date"


def test_the_replica_count_is_kept_and_clamped(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project", yaml="- name: answer\n  autoscaling: {init_replicas: 3}\n")
    env.cli("up", str(project))
    first = {r["id"] for r in env.replica_records("answer")}
    assert len(first) == 3 and len(env.routed("answer") or []) == 3

    # Only the autoscaling bounds change: an update, and no replica is replaced.
    snapshots = sorted((env.home / "snapshots").iterdir())
    (project / "cortexlite.yaml").write_text("- name: answer\n  autoscaling: {init_replicas: 1, max_replicas: 5}\n")
    assert "updating answer" in env.cli("deploy", str(project)).stdout
    assert {r["id"] for r in env.replica_records("answer")} == first
    assert sorted((env.home / "snapshots").iterdir()) == snapshots  # they keep running from theirs

    # The count (3, not the new init_replicas) is clamped to the new maximum.
    (project / "cortexlite.yaml").write_text("- name: answer\n  autoscaling: {max_replicas: 2}\n")
    env.cli("deploy", str(project))
    assert len(env.replica_records("answer")) == 2
    status = json.loads(env.cli("get", "answer", "-o", "json").stdout)[0]
    assert (status["requested"], status["up_to_date"], status["status"]) == (2, 2, "live")

    # A new endpoint moves the route without replacing replicas.
    kept = {r["id"] for r in env.replica_records("answer")}
    (project / "cortexlite.yaml").write_text(
        "- name: answer\n  autoscaling: {max_replicas: 2}\n  networking: {endpoint: /v2/answer}\n"
    )
    env.cli("deploy", str(project))
    assert {r["id"] for r in env.replica_records("answer")} == kept
    assert httpx.post(env.url("/v2/answer"), json={}, timeout=10).json() == {"answer": "v1"}
    assert httpx.post(env.url("/answer"), json={}, timeout=10).status_code == 404


def test_environments(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    env.cli(
        "env", "add", "gpu-box", "--docker-host", "ssh://ops@gpu1", "--storage", "s3://models/cortexlite", "--no-check"
    )
    env.cli("env", "add", "prod", "--nomad-addr", "http://127.0.0.1:9", "--storage", "s3://models/prod", "--no-check")
    conflict = env.cli("env", "add", "x", "--docker-host", "tcp://h:2375", "--nomad-addr", "http://n:4646", check=False)
    assert conflict.returncode == 1 and "conflict" in conflict.stderr
    listing = {row["name"]: row for row in json.loads(env.cli("env", "list", "-o", "json").stdout)}
    assert listing["gpu-box"]["backend"] == "docker" and listing["gpu-box"]["network"] == "bridge"
    assert listing["prod"]["backend"] == "nomad" and listing["local"]["current"] is True

    # A cluster that does not answer is a clear error, not a half deploy.
    project = make_api_project(tmp_path / "project")
    refused = env.cli("-e", "prod", "get", check=False)
    assert refused.returncode == 1 and "Nomad at http://127.0.0.1:9 did not answer" in refused.stderr
    assert "Traceback" not in refused.stderr

    env.cli("up", str(project))
    busy = env.cli("env", "remove", "local", check=False)
    assert busy.returncode == 1 and "down -e local" in busy.stderr
    env.cli("env", "use", "prod")
    # Whether a cluster still runs APIs is asked of it: one that does not answer is removed only when forced.
    unknown = env.cli("env", "remove", "prod", check=False)
    assert unknown.returncode == 1 and "cannot check that it has no APIs" in unknown.stderr
    env.cli("env", "remove", "prod", "--force")
    assert json.loads(env.cli("env", "list", "-o", "json").stdout)
    assert env.cli("env", "use", "nowhere", check=False).returncode == 1


def test_logs_follow_predict_from_stdin_and_prune(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project", predictor="echo_json")
    env.cli("up", str(project))
    following = subprocess.Popen(
        [str(CORTEXLITE), "logs", "answer", "-f", "--tail", "0"], env=env.environ, stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.0)
        answer = subprocess.run(
            [str(CORTEXLITE), "predict", "answer", "-"], env=env.environ, input='{"x": 1}', capture_output=True,
            text=True, timeout=60, check=True,
        )  # fmt: skip
        assert json.loads(answer.stdout)["payload"] == {"x": 1}
        httpx.post(env.url("/answer?debug=true"), json={"marker": "followed"}, timeout=10)
        deadline = time.monotonic() + 15
        seen = ""
        assert following.stdout is not None
        while "followed" not in seen and time.monotonic() < deadline:
            seen += following.stdout.readline()
        assert "followed" in seen
    finally:
        following.terminate()
        following.communicate(timeout=10)

    (project / "predictor.py").write_text((project / "predictor.py").read_text() + "\n# v2\n")
    env.cli("deploy", str(project))
    snapshots = sorted((env.home / "snapshots").iterdir())
    assert len(snapshots) == 2
    dry = env.cli("prune", "--dry-run", "--min-age", "0").stdout
    assert "would remove snapshot" in dry
    env.cli("prune", "--min-age", "0")
    (left,) = list((env.home / "snapshots").iterdir())
    record = json.loads((env.api_dir("answer") / "api.json").read_text())
    assert record["snapshot"] == str(left)
    assert httpx.post(env.url("/answer"), json={"still": "served"}, timeout=10).status_code == 200


def test_up_is_idempotent_and_brings_a_dead_gateway_back(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project")
    env.cli("up", str(project))
    assert "answer is up to date" in env.cli("up", str(project)).stdout

    # The operator would restart a dead gateway within a second: it goes first, as if it had crashed.
    refs = []
    for part in ("operator", "gateway"):
        state = json.loads((env.home / "envs" / "local" / part / "state.json").read_text())
        refs.append(ProcessRef(int(state["pid"]), float(state["started"])))
    assert terminate(refs, timeout=10) == []
    status = json.loads(env.cli("get", "-o", "json").stdout)[0]
    assert status["status"] == "error" and "the gateway" in status["reason"]

    again = env.cli("up", str(project))
    assert "gateway started" in again.stdout and "answer is up to date" in again.stdout
    assert "operator started" in again.stdout + again.stderr
    assert httpx.post(env.url("/answer"), json={}, timeout=10).json() == {"answer": "v1"}
    assert json.loads(env.cli("get", "-o", "json").stdout)[0]["status"] == "live"

    missing = env.cli("refresh", "nope", check=False)
    assert missing.returncode == 1 and "no API named nope" in missing.stderr
    assert not (env.home / "envs" / "local" / "apis" / "nope").exists()
    assert [a["name"] for a in json.loads(env.cli("get", "-o", "json").stdout)] == ["answer"]
