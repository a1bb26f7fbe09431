"""No secret leaks: a full flow with an S3 secret and an API key, then every output, log and file is grepped."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from cortexlite_runtime.storage import Storage
from tests.conftest import make_project
from tests.integration.conftest import LocalEnv
from tests.integration.storage_server import FULL, SeaweedServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_s3_secret_and_api_keys_appear_nowhere(
    local_env: LocalEnv, s3_server: SeaweedServer, tmp_path: Path
) -> None:
    env = local_env
    s3_server.make_bucket("models-secrets")
    Storage(s3_server.settings()).put_bytes("models-secrets", "m/1/model.bin", b"weights")
    outputs: list[str] = []

    def run(*args: str) -> str:
        result = env.cli(*args)
        outputs.append(result.stdout + result.stderr)
        return result.stdout

    run(
        "env", "add", "local", "--gateway-port", str(env.port), "--gateway-admin-port", str(env.admin_port),
        "--s3-endpoint", s3_server.endpoint, "--s3-access-key", FULL.access_key, "--s3-secret-key", FULL.secret_key,
        "--auth", "api_key",
    )  # fmt: skip
    yaml = "- name: model\n  predictor:\n    model_path: s3://models-secrets/m\n"
    project = make_project(tmp_path / "project", "storage_model", yaml)
    run("deploy", str(project), "--dry-run", "-o", "json")
    run("up", str(project))
    made = json.loads(env.cli("keys", "create", "model", "-o", "json").stdout)
    key = made["key"]
    answer = httpx.post(env.url("/model"), json={}, headers={"x-api-key": key}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert httpx.post(env.url("/model"), json={}, headers={"x-api-key": "wrong"}, timeout=10).status_code == 401
    for args in (
        ("get", "-o", "json"), ("get", "model"), ("get", "model", "-o", "json"), ("env", "list", "-o", "json"),
        ("env", "list"), ("keys", "list"), ("keys", "list", "-o", "json"), ("logs", "model", "--tail", "500"),
        ("deploy", str(project), "--dry-run", "-o", "json"), ("refresh", "model"),
    ):  # fmt: skip
        run(*args)
    payload = tmp_path / "payload.json"
    payload.write_text("{}")
    run("predict", "model", str(payload), "--api-key", key)

    config = env.home / "config.yaml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # the one file that holds the S3 secret, by design
    files = {
        path: path.read_bytes().decode("utf-8", "replace")
        for path in env.home.rglob("*")
        if path.is_file() and path != config
    }
    assert any("logs" in path.parts for path in files)  # replica logs, the gateway's access log, state, specs
    argv = subprocess.run(["ps", "axww", "-o", "args"], capture_output=True, text=True, check=True).stdout
    for secret in (FULL.secret_key, key):
        leaks = [f"CLI output #{n}" for n, text in enumerate(outputs) if secret in text]
        leaks += [str(path) for path, text in files.items() if secret in text]
        leaks += ["a process's argv"] if secret in argv else []
        assert leaks == [], f"{secret[:6]}... appears in {leaks}"
    assert "<secret:s3_secret_key>" in "".join(outputs)  # shown as a reference
