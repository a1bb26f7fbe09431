"""`get API` shows why an API fails: its status with the failure's class, a one-line reason, and the last log
lines of the failing replica (or of the failed build or install), for each class of failure.

Processes and Docker are real (replica processes, a real engine, real Traefik). The Nomad test talks to the
in-process fake agent (`tests/fake_nomad.py`): no Nomad agent runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cortexlite.environments import ConfigFile
from cortexlite.nomad.cluster import Cluster
from cortexlite.nomad.job import NomadRelease, job_id, render_job
from cortexlite.release import make_release
from cortexlite.settings import Settings
from cortexlite_runtime.spec import ApiSpec
from tests.conftest import free_port, make_project
from tests.fake_nomad import FakeNomad
from tests.integration.conftest import DockerEnv, LocalEnv, make_api_project
from tests.integration.nomad_env import NomadEnv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

S3_SECRET = "s3-secret-never-shown-9f2c"


def _view(env: LocalEnv, api: str) -> dict[str, Any]:
    views = json.loads(env.cli("get", api, "-o", "json").stdout)
    assert [view["name"] for view in views] == [api]
    return dict(views[0])


def _failed_up(env: LocalEnv, project: Path) -> str:
    failed = env.cli("up", str(project), check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    return failed.stdout + failed.stderr


# --- processes ------------------------------------------------------------------------------------


def test_a_predictor_whose_init_raises_on_processes(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    _failed_up(env, make_api_project(tmp_path / "broken", "init_error"))

    # Nothing serves: the failed creation is the status, with the replica's last lines.
    view = _view(env, "answer")
    assert view["status"] == "error (predictor init error)", view
    assert "the model file is corrupt" in view["reason"] and "\n" not in view["reason"]
    assert view["log_source"].startswith("replica ") and 0 < len(view["log_tail"]) <= 10
    assert any("the model file is corrupt" in line for line in view["log_tail"]), view["log_tail"]
    assert view["last_deploy_failure"]["kind"] == "predictor init error"
    table = env.cli("get", "answer").stdout
    assert "error (predictor init error)" in table and f"log lines of {view['log_source']}" in table
    assert "ValueError: the model file is corrupt" in table
    assert "error (predictor init error)" in env.cli("get").stdout

    # A deploy that succeeds clears it.
    working = make_api_project(tmp_path / "working")
    env.cli("deploy", str(working))
    view = _view(env, "answer")
    assert view["status"] == "live" and view["last_deploy_failure"] is None and view["log_tail"] == []

    # A failed update: the previous version keeps serving, and the failure shows beside it.
    _failed_up(env, make_api_project(tmp_path / "broken-update", "init_error"))
    view = _view(env, "answer")
    assert view["status"] == "live" and view["up_to_date"] == 1, view
    failure = view["last_deploy_failure"]
    assert failure["kind"] == "predictor init error" and failure["kept"] is True and failure["action"] == "update"
    assert any("the model file is corrupt" in line for line in failure["log_tail"])
    table = env.cli("get", "answer").stdout
    assert "last deploy failed" in table and "(predictor init error)" in table
    assert "the previous version keeps serving" in table
    assert httpx.post(env.url("/answer"), json={}, timeout=5, trust_env=False).json() == {"answer": "v1"}


def test_a_requirement_that_does_not_exist_on_processes(
    local_env: LocalEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = local_env
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip looks in the local find-links only: offline, and quick
    files = {"requirements.txt": "cortexlite-no-such-package==1.0\n"}
    _failed_up(env, make_project(tmp_path / "project", "answer", "- name: answer\n", files))

    view = _view(env, "answer")
    assert view["status"] == "error (dependency install error)", view
    assert view["reason"].startswith("pip install -r requirements.txt failed (exit code 1)"), view["reason"]
    assert view["log_source"] == "pip install -r requirements.txt"
    assert any("cortexlite-no-such-package" in line for line in view["log_tail"]), view["log_tail"]
    assert view["replicas"] == [] and env.replica_records("answer") == []
    assert "error (dependency install error)" in env.cli("get", "answer").stdout

    # An API that was never created is deleted like any other.
    env.cli("delete", "answer")
    missing = env.cli("get", "answer", check=False)
    assert missing.returncode == 1 and "no API named answer" in missing.stderr


# --- Docker ---------------------------------------------------------------------------------------


@pytest.mark.docker
def test_out_of_memory_while_starting_on_docker(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    yaml = "- name: hog\n  predictor: {config: {megabytes: 400}}\n  compute: {mem: 128Mi}\n"
    _failed_up(env, make_project(tmp_path / "project", "init_memory_hog", yaml))

    view = _view(env, "hog")
    assert view["status"] == "error (out of memory)", view
    assert "out of memory" in view["reason"] and "128 MiB" in view["reason"]
    assert view["log_source"].startswith("replica ") and view["log_tail"], view
    assert any("cortexlite-runtime" in line for line in view["log_tail"]), view["log_tail"]
    assert env.replicas("hog") == [], "the failed replica was removed"
    table = env.cli("get", "hog").stdout
    assert "error (out of memory)" in table and "log lines of replica" in table

    # A live replica that runs out of memory later (and at every restart since): the replica says why.
    env.cli("up", str(make_project(tmp_path / "later", "memory_hog", yaml)))
    assert _view(env, "hog")["last_deploy_failure"] is None, "a deploy that succeeds clears the failure"
    httpx.post(env.url("/hog"), json={}, timeout=30, trust_env=False)
    deadline, view = time.monotonic() + 30, {}
    while time.monotonic() < deadline and view.get("status") != "error (out of memory)":
        time.sleep(0.5)
        view = _view(env, "hog")
    assert view["status"] == "error (out of memory)", view
    (container,) = env.replicas("hog")
    assert view["log_source"] == f"replica {container['Config']['Labels']['cortexlite.replica']}"
    assert any("cortexlite-runtime" in line for line in view["log_tail"]), view["log_tail"]


@pytest.mark.docker
def test_a_failing_dependencies_sh_in_the_image_build_on_docker(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    script = "echo installing the frobnicator\necho frobnicator: no such package >&2\nexit 3\n"
    _failed_up(env, make_project(tmp_path / "project", "answer", "- name: answer\n", {"dependencies.sh": script}))

    view = _view(env, "answer")
    assert view["status"] == "error (dependency install error)", view
    assert "building the dependency image cortexlite/deps:" in view["reason"]
    assert view["reason"].endswith("dependencies.sh exited with code 3"), view["reason"]
    assert view["log_source"].startswith("the build of cortexlite/deps:")
    assert "frobnicator: no such package" in view["log_tail"], view["log_tail"]
    assert "installing the frobnicator" in env.cli("get", "answer").stdout


@pytest.mark.docker
def test_compute_the_machine_does_not_have_on_docker(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    _failed_up(env, make_api_project(tmp_path / "gpu", yaml="- name: gpu\n  compute: {gpu: 1}\n"))
    view = _view(env, "gpu")
    assert view["status"] == "compute unavailable", view
    assert "needs 1 GPU(s)" in view["reason"]

    _failed_up(env, make_api_project(tmp_path / "cpu", yaml="- name: cpu\n  compute: {cpu: 1000}\n"))
    view = _view(env, "cpu")
    assert view["status"] == "compute unavailable", view
    assert "CPUs available" in view["reason"], view["reason"]
    assert env.replicas("cpu") == []
    assert "compute unavailable" in env.cli("get").stdout


# --- Nomad, through the in-process fake agent (no Nomad agent runs) -----------------------------


@pytest.fixture
def fake_nomad() -> Iterator[FakeNomad]:
    with FakeNomad() as agent:
        yield agent


@pytest.fixture
def fake_nomad_env(tmp_path: Path, fake_nomad: FakeNomad) -> NomadEnv:
    home = tmp_path / "home"
    env = NomadEnv(home, home / "cache", free_port(), free_port(), fake=fake_nomad)
    env.cli(
        "env", "add", "prod", "--nomad-addr", fake_nomad.url, "--storage", "s3://bucket/prod",
        "--s3-endpoint", "http://127.0.0.1:9", "--s3-access-key", "access", "--s3-secret-key", S3_SECRET,
        "--gateway-port", str(env.port), "--gateway-admin-port", str(env.admin_port), "--no-check",
    )  # fmt: skip
    return env


def _register(env: NomadEnv, name: str, answer: str) -> None:
    """Register the API's job as `deploy` renders it (no image or bundle is made: the fake agent runs nothing)."""
    settings = Settings(home=env.home, cache_dir=env.cache)
    environment = ConfigFile(env.home).environments()["prod"]
    with Cluster.open(settings, environment) as cluster:
        api = ApiSpec.model_validate({"name": name, "predictor": {"path": "predictor.py", "config": {"a": answer}}})
        release = make_release(api, "f" * 64, "127.0.0.1:5000/cortexlite/runtime:test")
        target = NomadRelease(release, release.runtime, "s3://bucket/prod/bundles/test.zip", 1)
        cluster.client.register(render_job(target, cluster.job_settings()), preserve_counts=False)


def _deployment_ends(fake: FakeNomad, name: str, status: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        deployments = fake.cluster.records[job_id(name)].deployments
        if deployments and deployments[-1].status == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"the deployment of {name} never became {status}")


_RUNTIME_LOG = (
    '{"time": "2026-01-05T10:00:00+00:00", "level": "INFO", "message": "cortexlite-runtime 0.1 serving '
    '/mnt/project on 0.0.0.0:8888"}\n'
    f'{{"time": "2026-01-05T10:00:01+00:00", "level": "INFO", "message": "fetching s3 with {S3_SECRET}"}}\n'
    '{"time": "2026-01-05T10:00:02+00:00", "level": "ERROR", "message": "not ready: PythonPredictor.__init__ '
    'failed: ValueError: the model file is corrupt (predictor.py:3)"}\n'
)
_UNHEALTHY = [{"Type": "Alloc Unhealthy", "DisplayMessage": "Task not running for min_healthy_time"}]


def test_a_failed_update_and_a_failing_api_on_fake_nomad(fake_nomad_env: NomadEnv, fake_nomad: FakeNomad) -> None:
    env, fake = fake_nomad_env, fake_nomad
    _register(env, "answer", "v1")
    _deployment_ends(fake, "answer", "successful")
    fake.add_log(job_id("answer"), _RUNTIME_LOG, "stderr")
    fake.script_deployment(job_id("answer"), "failed", after=0.2, failed_events=_UNHEALTHY)
    _register(env, "answer", "v2")
    _deployment_ends(fake, "answer", "failed")

    # Nomad reverted: version 0's task group serves, and the failed deploy shows beside it.
    view = _view(env, "answer")
    assert view["status"] == "live", view
    failure = view["last_deploy_failure"]
    assert failure["kind"] == "predictor init error" and failure["kept"] is True, failure
    assert "job version 1" in failure["message"] and "Task not running" in failure["message"]
    assert any("the model file is corrupt" in line for line in failure["log_tail"])
    table = env.cli("get", "answer").stdout
    assert "last deploy failed" in table and "the previous version keeps serving" in table

    # A job whose first deployment failed (nothing to revert to): the failing allocation is the status.
    fake.add_log(job_id("broken"), _RUNTIME_LOG, "stderr")
    fake.script_deployment(job_id("broken"), "failed", after=0.2, failed_events=_UNHEALTHY)
    _register(env, "broken", "v1")
    _deployment_ends(fake, "broken", "failed")
    view = _view(env, "broken")
    assert view["status"] == "error (predictor init error)", view
    assert view["log_source"].startswith("allocation ")
    assert any("the model file is corrupt" in line for line in view["log_tail"])
    shown = env.cli("get", "broken").stdout + json.dumps(view)
    assert S3_SECRET not in shown and "<secret>" in shown, "log lines never show the environment's secrets"
