"""API keys end to end: the CLI makes them, replicas check them, the gateway carries them (real Traefik)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import DockerEnv, LocalEnv, make_api_project

pytestmark = pytest.mark.slow

_AUTH_YAML = "- name: answer\n  autoscaling: {init_replicas: 2}\n"


def _create(env: LocalEnv | DockerEnv, *args: str) -> tuple[str, str]:
    made = json.loads(env.cli("keys", "create", *args, "-o", "json").stdout)
    return made["id"], made["key"]


def _post(url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, json={"x": 1}, headers=headers, timeout=10)


def test_keys_guard_an_api_and_rotate_under_load_without_a_failure(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    exposed = env.cli("env", "add", "lan", "--gateway-bind", "0.0.0.0")
    assert "warning: the gateway of lan listens on 0.0.0.0" in exposed.stderr
    assert "warning" not in env.cli("env", "add", "lan2", "--gateway-bind", "0.0.0.0", "--auth", "api_key").stderr
    refused = env.cli("env", "add", "bad", "--gateway-bind", "everywhere", check=False)
    assert refused.returncode != 0 and "IP address" in refused.stderr and "Traceback" not in refused.stderr
    # The environment's default: every API needs a key unless its spec says otherwise.
    env.cli(
        "env", "add", "local", "--gateway-port", str(env.port), "--gateway-admin-port", str(env.admin_port),
        "--auth", "api_key",
    )  # fmt: skip
    project = make_api_project(tmp_path / "project", yaml=_AUTH_YAML + "- name: open\n  networking: {auth: none}\n")
    env.cli("up", str(project))
    url = env.url("/answer")

    old_id, old_key = _create(env, "answer", "--label", "first client")
    other_id, other_key = _create(env)  # every API of the environment
    revoked_id, revoked_key = _create(env, "answer")
    env.cli("keys", "revoke", revoked_id)
    table = {
        "no key": ({}, 401),
        "wrong key": ({"authorization": "Bearer clk_not-a-key"}, 401),
        "wrong scheme": ({"authorization": f"Basic {old_key}"}, 401),
        "revoked key": ({"authorization": f"Bearer {revoked_key}"}, 403),
        "bearer": ({"authorization": f"Bearer {old_key}"}, 200),
        "x-api-key": ({"x-api-key": old_key}, 200),
        "environment-wide key": ({"x-api-key": other_key}, 200),
    }
    for case, (headers, expected) in table.items():
        answer = _post(url, headers)
        assert answer.status_code == expected, (case, answer.status_code, answer.text)
        if expected != 200:
            assert "error" in answer.json() and "Traceback" not in answer.text, case
            assert (answer.headers.get("www-authenticate") is not None) == (expected == 401), case
        else:
            assert answer.json() == {"answer": "v1"}
    assert httpx.get(f"{url}/", timeout=5).status_code == 401  # the summary is guarded too
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # health is not
    assert httpx.get(f"{url}/metrics", timeout=5).status_code == 401  # metrics through the gateway need a key
    assert _post(env.url("/open"), {}).status_code == 200  # networking.auth: none overrides the default

    # Rotation under load: clients move to a new key, then the old one is revoked; no request fails.
    current = {"key": old_key}
    failures: list[str] = []
    sent = [0]
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline and sent[0] < 3000:
                key = current["key"]
                answer = http.post(url, json={"x": 1}, headers={"x-api-key": key})
                sent[0] += 1
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text}")

    workers = [threading.Thread(target=client) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)
    new_id, new_key = _create(env, "answer", "--label", "rotated")
    current["key"] = new_key
    time.sleep(0.5)  # requests already sent with the old key finish
    env.cli("keys", "revoke", old_id)
    time.sleep(1.5)
    stop.set()
    for worker in workers:
        worker.join(timeout=20)
    print(f"rotation under load: {sent[0]} requests, {len(failures)} failed")
    assert sent[0] > 50 and failures == [], (sent[0], failures[:5])
    assert _post(url, {"x-api-key": old_key}).status_code == 403

    listed = json.loads(env.cli("keys", "list", "answer", "-o", "json").stdout)
    assert {(k["id"], k["status"]) for k in listed} == {
        (old_id, "revoked"), (other_id, "active"), (revoked_id, "revoked"), (new_id, "active"),
    }  # fmt: skip
    record = env.home / "envs" / "local" / "keys.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert new_key not in record.read_text() and "sha256" in record.read_text()

    # `predict` sends a key: given, from CORTEXLITE_API_KEY, or saved with --save.
    payload = tmp_path / "payload.json"
    payload.write_text('{"x": 1}')
    refused = env.cli("predict", "answer", str(payload), check=False)
    assert refused.returncode == 1 and "401" in refused.stderr and "Traceback" not in refused.stderr
    assert "v1" in env.cli("predict", "answer", str(payload), "--api-key", new_key).stdout
    saved_id, saved_key = _create(env, "answer", "--save")
    assert "v1" in env.cli("predict", "answer", str(payload)).stdout
    config = env.home / "config.yaml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    # No key, and no hash, in what the CLI shows or the replicas log.
    shown = "".join(
        env.cli(*args).stdout
        for args in (
            ("get", "-o", "json"), ("get", "answer", "-o", "json"), ("env", "list", "-o", "json"),
            ("keys", "list", "-o", "json"), ("deploy", str(project), "--dry-run", "-o", "json"), ("logs", "answer"),
        )
    )  # fmt: skip
    logs = "".join(path.read_text(errors="replace") for path in env.home.glob("envs/local/apis/*/logs/*"))
    listing = subprocess.run(["ps", "axeww"], capture_output=True, text=True, check=True).stdout
    for secret in (old_key, new_key, other_key, saved_key, revoked_key):
        assert secret not in shown and secret not in logs and secret not in listing
    assert saved_id in shown  # the listing shows ids


@pytest.mark.docker
def test_docker_replicas_check_keys_as_an_unprivileged_user(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    project = make_api_project(tmp_path / "project", yaml="- name: answer\n  networking: {auth: api_key}\n")
    env.cli("up", str(project))
    url = env.url("/answer")
    assert _post(url, {}).status_code == 401
    key_id, key = _create(env, "answer")
    assert _post(url, {"authorization": f"Bearer {key}"}).json() == {"answer": "v1"}
    env.cli("keys", "revoke", key_id)
    deadline = time.monotonic() + 5
    while _post(url, {"authorization": f"Bearer {key}"}).status_code != 403:
        assert time.monotonic() < deadline, "the revocation never reached the replica"
        time.sleep(0.2)

    container = env.replicas("answer")[0]
    inspected = json.loads(
        subprocess.run(["docker", "inspect", container["Id"]], capture_output=True, text=True, check=True).stdout
    )[0]
    assert inspected["Config"]["User"] == "10001:10001"
    assert inspected["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]
    assert all(bind.endswith(":ro") for bind in inspected["HostConfig"]["Binds"])
    assert not any(key in entry for entry in inspected["Config"]["Env"])
    assert os.stat(env.home / "envs" / env.name / "keys.json").st_mode & 0o077 == 0
