"""The process environment end to end, through the CLI: real Traefik, real replica processes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import LocalEnv, make_api_project

pytestmark = pytest.mark.slow


def _answer(env: LocalEnv) -> str:
    reply = httpx.post(env.url("/answer"), json={}, timeout=10)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["answer"])


def test_up_update_fail_delete_down(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project")

    up = env.cli("up", str(project))
    assert "creating answer" in up.stdout
    assert f"answer is live at {env.url('/answer')}" in up.stdout
    assert _answer(env) == "v1"
    (first,) = env.replica_records("answer")
    assert env.routed("answer") == [f"http://127.0.0.1:{first['port']}"]

    # The prefix is stripped: /answer/predict reaches the replica's /predict, GET /answer its summary.
    assert httpx.post(env.url("/answer/predict"), json={}, timeout=10).json() == {"answer": "v1"}
    assert httpx.get(env.url("/answer"), timeout=10).json()["api"] == "answer"
    assert httpx.get(env.url("/answers"), timeout=10).status_code == 404

    again = env.cli("deploy", str(project))
    assert again.stdout.strip() == "answer is up to date"
    assert [r["id"] for r in env.replica_records("answer")] == [first["id"]]

    predictor = project / "predictor.py"
    predictor.write_text(predictor.read_text().replace('ANSWER = "v1"', 'ANSWER = "v2"'))
    updated = env.cli("deploy", str(project))
    assert "updating answer" in updated.stdout
    assert _answer(env) == "v2"
    (second,) = env.replica_records("answer")
    assert second["id"] != first["id"]

    predictor.write_text("import definitely_not_an_installed_module\n" + predictor.read_text())
    broken = env.cli("deploy", str(project), check=False)
    assert broken.returncode == 1
    assert "the update failed" in broken.stderr
    assert "No module named 'definitely_not_an_installed_module'" in broken.stderr
    assert "the previous version keeps serving" in broken.stderr
    assert "last " in broken.stderr and "log lines of replica" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert _answer(env) == "v2"
    assert [r["id"] for r in env.replica_records("answer")] == [second["id"]]
    assert not (env.api_dir("answer") / "rollout.json").exists()

    listing = json.loads(env.cli("get", "-o", "json").stdout)
    assert [(a["name"], a["status"], a["requested"], a["up_to_date"]) for a in listing] == [("answer", "live", 1, 1)]
    assert listing[0]["requests"]["2XX"] >= 4
    assert listing[0]["replicas"][0]["id"] == second["id"]

    table = env.cli("get").stdout
    header = table.splitlines()[0].split()
    assert header[:4] == ["api", "status", "up-to-date", "requested"]
    assert "answer" in table and "live" in table

    logs = env.cli("logs", "answer", "--tail", "50").stdout
    assert f"{second['id']} | " in logs and "ready" in logs

    assert env.cli("predict", "answer", str(project / "predictor.py"), check=False).returncode == 0

    env.cli("delete", "answer")
    assert env.routed("answer") is None
    assert httpx.post(env.url("/answer"), json={}, timeout=10).status_code == 404
    assert not env.api_dir("answer").exists()

    env.cli("down")
    assert env.processes() == []


def test_bad_input_is_a_message_not_a_traceback(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_api_project(
        tmp_path / "project", yaml="- name: answer\n  autoscaling: {min_replicas: 3, max_replicas: 2}\n"
    )
    bad = env.cli("deploy", str(project), check=False)
    assert bad.returncode == 1
    assert "cortexlite.yaml: answer: autoscaling: min_replicas: must be <= max_replicas (got 3 > 2)" in bad.stderr
    assert "Traceback" not in bad.stderr

    (project / "cortexlite.yaml").write_text("- name: answer\n  predictor: {path: missing.py}\n")
    missing = env.cli("deploy", str(project), check=False)
    assert missing.returncode == 1
    assert "cortexlite.yaml: answer: predictor: path: missing.py does not exist" in missing.stderr

    unknown = env.cli("predict", "nope", str(project / "cortexlite.yaml"), check=False)
    assert unknown.returncode == 1 and "no API named nope" in unknown.stderr
    assert env.cli("get", "nope", check=False).returncode == 1
    assert env.cli("deploy", "--no-such-flag", check=False).returncode == 2
    assert env.cli("-e", "nowhere", "get", check=False).returncode == 1
