"""Models in a real S3 server (SeaweedFS) reaching replicas, on the process backend.

The replicas reach the store through a loopback proxy the test owns (the environment's replica
endpoint), so the bytes they download are counted, not inferred from logs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from cortexlite_runtime.storage import Storage
from tests.conftest import make_project
from tests.integration.conftest import LocalEnv
from tests.integration.storage_server import FULL, SeaweedServer, TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODEL_BYTES = 50 * 2**20


def _storage_env(env: LocalEnv, server: SeaweedServer, replica_endpoint: str) -> None:
    env.cli(
        "env", "add", "local", "--gateway-port", str(env.port), "--gateway-admin-port", str(env.admin_port),
        "--s3-endpoint", server.endpoint, "--s3-replica-endpoint", replica_endpoint,
        "--s3-access-key", FULL.access_key, "--s3-secret-key", FULL.secret_key,
    )  # fmt: skip


def test_a_50_mb_model_is_downloaded_once_for_two_replicas(
    local_env: LocalEnv, s3_server: SeaweedServer, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    s3_server.make_bucket("models-big")
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(MODEL_BYTES))
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    Storage(s3_server.settings()).upload("models-big", "clf/3/model.bin", model)
    _storage_env(local_env, s3_server, s3_proxy.endpoint)
    yaml = (
        "- name: big\n  predictor:\n    model_path: s3://models-big/clf\n"
        "  autoscaling: {min_replicas: 2, max_replicas: 2}\n"
    )
    project = make_project(tmp_path / "project", "storage_model", yaml)
    local_env.cli("up", str(project), timeout=400)
    answers = {tuple(sorted(httpx.post(local_env.url("/big"), json={}, timeout=10).json().items())) for _ in range(6)}
    assert all(dict(answer)["sha256"] == digest for answer in answers), answers
    downloaded = s3_proxy.received
    assert MODEL_BYTES <= downloaded < 1.2 * MODEL_BYTES, f"replicas downloaded {downloaded} bytes"
    logs = local_env.cli("logs", "big", "--tail", "200").stdout
    assert logs.count("nothing downloaded") == 1 and logs.count("downloaded 50.0 MiB") == 1, logs
    # Retrained at the same path, same size: `refresh` picks up the new content.
    model.write_bytes(os.urandom(MODEL_BYTES))
    Storage(s3_server.settings()).upload("models-big", "clf/3/model.bin", model)
    local_env.cli("refresh", "big", timeout=300)
    fresh = hashlib.sha256(model.read_bytes()).hexdigest()
    assert httpx.post(local_env.url("/big"), json={}, timeout=10).json()["sha256"] == fresh


def test_a_predictor_with_plain_boto3_reads_its_model(
    local_env: LocalEnv, s3_server: SeaweedServer, tmp_path: Path
) -> None:
    s3_server.make_bucket("models-boto3")
    storage = Storage(s3_server.settings())
    storage.put_bytes("models-boto3", "tiny/model.txt", b"weights from boto3")
    _storage_env(local_env, s3_server, s3_server.endpoint)
    yaml = "- name: tiny\n  predictor:\n    config: {bucket: models-boto3, key: tiny/model.txt}\n"
    project = make_project(tmp_path / "project", "boto3_model", yaml, files={"requirements.txt": "boto3>=1.36\n"})
    local_env.cli("up", str(project), timeout=400)
    assert httpx.post(local_env.url("/tiny"), json={}, timeout=10).json() == {"model": "weights from boto3"}
