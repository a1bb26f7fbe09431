"""The storage server unreachable during a deploy.

A Docker environment whose engine is "remote" (this machine's engine over TCP on loopback) gets its
projects as bundles through a real SeaweedFS server, reached through a loopback proxy. v1 is deployed;
then the proxy stops listening (connections are refused, as from a store that is down) and v2, which
has new files to upload, is deployed: the CLI gives up within its retry budget with one line naming
the store's endpoint, and v1 answers every request meanwhile. With the store back, v2 deploys.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cortexlite_runtime.storage import DEFAULT_RETRY_BUDGET
from tests.conftest import free_port
from tests.faults.conftest import RecordFigure, deploy_that_fails, expect_answer
from tests.integration.conftest import DockerEnv, close_docker_env, make_api_project
from tests.integration.storage_server import FULL, SeaweedServer, TcpProxy

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOCKER_SOCKET = "/var/run/docker.sock"
BUCKET = "fault-bundles"
RETRY_BUDGET_S = DEFAULT_RETRY_BUDGET  # what users get: the figure is the real wait


@dataclass
class StorageEnv(DockerEnv):
    """A Docker environment on tcp://127.0.0.1:PORT (the remote code path), its storage behind `proxy`."""

    proxy: TcpProxy | None = None

    @property
    def environ(self) -> dict[str, str]:
        return super().environ | {"CORTEXLITE_S3_RETRY_BUDGET": f"{RETRY_BUDGET_S:g}"}


@pytest.fixture
def storage_env(
    tmp_path: Path, replica_cache: Path, docker_image_options: Path, s3_server: SeaweedServer, s3_proxy: TcpProxy
) -> Iterator[StorageEnv]:
    s3_server.make_bucket(BUCKET)
    engine = TcpProxy(DOCKER_SOCKET)
    run_id = os.urandom(6).hex()
    env = StorageEnv(
        tmp_path / "home", replica_cache, free_port(), free_port(), name=f"so{run_id[:6]}", run_id=run_id,
        proxy=s3_proxy,
    )  # fmt: skip
    env.home.mkdir(parents=True)
    (env.home / "image.json").write_text(docker_image_options.read_text())
    try:
        env.cli(
            "env", "add", env.name, "--docker-host", f"tcp://127.0.0.1:{engine.port}", "--network", "host",
            "--gateway-port", str(env.port), "--gateway-admin-port", str(env.admin_port),
            "--storage", f"s3://{BUCKET}/team", "--s3-endpoint", s3_proxy.endpoint,
            "--s3-access-key", FULL.access_key, "--s3-secret-key", FULL.secret_key,
        )  # fmt: skip
        yield env
    finally:
        try:
            close_docker_env(env)
        finally:
            engine.close()


def test_an_unreachable_store_fails_the_deploy_in_one_line_and_the_old_version_serves(
    storage_env: StorageEnv, s3_server: SeaweedServer, tmp_path: Path, figures: RecordFigure
) -> None:
    env = storage_env
    assert env.proxy is not None
    project = make_api_project(tmp_path / "project")
    up = env.cli("up", str(project))
    assert f"uploaded to s3://{BUCKET}/team/bundles/" in up.stdout + up.stderr, up.stdout
    expect_answer(env, {"answer": "v1"})

    (project / "cortexlite.yaml").write_text("- name: answer\n  predictor:\n    config: {answer: v2}\n")
    (project / "weights.bin").write_bytes(os.urandom(256 * 1024))
    env.proxy.close()  # the store's address refuses connections from now on
    failed = deploy_that_fails(env, project, figures, interval=0.1, cause=f"retry budget {RETRY_BUDGET_S:g}s")
    assert f"bundle could not be stored in s3://{BUCKET}/team" in failed.error, failed.error
    assert env.proxy.endpoint in failed.error and "Connection refused" in failed.error, failed.error
    assert failed.seconds < RETRY_BUDGET_S + 30, "the retry budget, plus the deploy's own work"

    # The store answers again at the same address: v2 deploys.
    restored = TcpProxy(("127.0.0.1", s3_server.ports["s3"]), port=env.proxy.port)
    try:
        started = time.monotonic()
        deployed = env.cli("deploy", str(project))
        figures("deploy with the store back", time.monotonic() - started, "s")
    finally:
        restored.close()
    assert "uploaded to" in deployed.stdout + deployed.stderr, deployed.stdout
    expect_answer(env, {"answer": "v2"})
