"""The Docker backend against a real engine and a real Traefik container, host networking (all on loopback)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_project
from tests.integration.conftest import (
    CORTEXLITE,
    DockerEnv,
    close_docker_env,
    docker,
    make_api_project,
    open_docker_env,
)
from tests.integration.load import Load

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]


def _yaml(answer: str, replicas: int = 1, extra: str = "") -> str:
    predictor = f"{{config: {{answer: {answer}}}}}"
    return f"- name: answer\n  predictor: {predictor}\n  autoscaling: {{init_replicas: {replicas}}}\n{extra}"


def _answer(env: DockerEnv) -> str:
    reply = httpx.post(env.url("/answer"), json={}, timeout=10, trust_env=False)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["answer"])


def test_up_update_under_load_broken_deploy_delete_down(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    project = make_api_project(tmp_path / "project", yaml=_yaml("v1", replicas=2))
    up = env.cli("up", str(project))
    assert "gateway started" in up.stdout and "Traefik container" in up.stdout
    assert _answer(env) == "v1"

    replicas = env.replicas("answer")
    assert len(replicas) == 2
    for container in replicas:
        labels = container["Config"]["Labels"]
        assert {"cortexlite.api", "cortexlite.env", "cortexlite.spec", "cortexlite.replica"} <= labels.keys()
        assert labels["cortexlite.env"] == env.name and labels["cortexlite.api"] == "answer"
        host = container["HostConfig"]
        assert host["NetworkMode"] == "host" and host["RestartPolicy"]["Name"] == "unless-stopped"
        assert host["Memory"] == 0 and host["NanoCpus"] == 0, "no limits unless the spec sets them"
        assert container["Config"]["StopTimeout"] >= 2 + 30 + 5
        mounts = {mount["Destination"]: mount for mount in container["Mounts"]}
        assert mounts["/mnt/project"]["RW"] is False
        assert Path(mounts["/mnt/project"]["Source"]).parent == env.home / "snapshots"
        assert "CORTEXLITE_DEPENDENCIES=preinstalled" in container["Config"]["Env"]
    ports = {int(c["Config"]["Labels"]["cortexlite.port"]) for c in replicas}
    assert len(ports) == 2 and not ports & {env.port, env.admin_port}
    assert env.routed("answer") == sorted(f"http://127.0.0.1:{port}" for port in ports)

    # An update under load: no request fails, and the old containers are gone afterwards.
    load = Load(env.url("/answer"), rate=140)
    load.start()
    try:
        deadline = time.monotonic() + 20
        while load.successes() < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        (project / "cortexlite.yaml").write_text(_yaml("v2", replicas=2))
        deployed = env.cli("deploy", str(project))
        finished = time.monotonic()
        time.sleep(1.0)
    finally:
        load.stop()
    assert "updating answer" in deployed.stdout
    failures = [(status, body[:200]) for _, status, body in load.results if status != 200]
    rate = len(load.results) / load.duration
    print(f"docker update under load: {len(load.results)} requests at {rate:.0f}/s, {len(failures)} failed")
    assert failures == [], f"{len(failures)} failed of {len(load.results)}: {failures[:5]}"
    assert rate >= 100, Counter(status for _, status, _ in load.results)
    assert {json.loads(body)["answer"] for at, _, body in load.results if at > finished} == {"v2"}
    after = env.replicas("answer")
    assert len(after) == 2 and not {c["Id"] for c in after} & {c["Id"] for c in replicas}

    # A broken version never replaces the serving one.
    make_project(project, "import_error", _yaml("v3", replicas=2))
    broken = env.cli("deploy", str(project), check=False)
    assert broken.returncode == 1
    assert "definitely_not_an_installed_module" in broken.stderr
    assert "previous version keeps serving" in broken.stderr
    assert _answer(env) == "v2"
    assert {c["Id"] for c in env.replicas("answer")} == {c["Id"] for c in after}

    status = json.loads(env.cli("get", "answer", "-o", "json").stdout)[0]
    assert status["status"] == "live" and status["up_to_date"] == 2
    assert {replica["container"] for replica in status["replicas"]} == {c["Name"].lstrip("/") for c in after}

    env.cli("delete", "answer")
    assert env.replicas("answer") == []
    assert httpx.post(env.url("/answer"), json={}, timeout=5, trust_env=False).status_code == 404
    env.cli("down")
    assert env.containers() == [], "down removes the gateway container too"


def test_dependency_image_is_built_once_and_reused(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    files = {
        "requirements.txt": "six==1.16.0\n",
        "dependencies.sh": "set -e\nmkdir -p /opt/cortexlite-test\n"
        "echo from-dependencies-sh > /opt/cortexlite-test/marker\n",
    }
    limits = "  compute: {cpu: 500m, mem: 256Mi}\n"
    project = make_project(tmp_path / "project", "dependencies", _yaml("x", extra=limits), files)
    plan = json.loads(env.cli("deploy", str(project), "--dry-run", "-o", "json").stdout)[0]["plan"]
    planned = plan["replica"]["container"]["Image"]
    assert planned.startswith("cortexlite/deps:")
    docker("rmi", "-f", planned, check=False)  # made by an earlier run of this test: "built once" starts here
    first = env.cli("up", str(project))
    assert "made the replica runtime cortexlite/deps:" in first.stdout
    reply = httpx.post(env.url("/answer"), json={}, timeout=10, trust_env=False).json()
    assert reply == {"six": "1.16.0", "marker": "from-dependencies-sh"}
    (container,) = env.replicas("answer")
    image = container["Config"]["Image"]
    assert image.startswith("cortexlite/deps:")
    assert container["HostConfig"]["NanoCpus"] == 500_000_000
    assert container["HostConfig"]["Memory"] == container["HostConfig"]["MemorySwap"] == 256 * 2**20

    # A code change keeps the dependency files: the same image, not built again, and no pip at start.
    (project / "predictor.py").write_text((project / "predictor.py").read_text() + "\n# v2\n")
    second = env.cli("deploy", str(project))
    assert "updating answer" in second.stdout and "made the replica runtime" not in second.stdout
    (replaced,) = env.replicas("answer")
    assert replaced["Config"]["Image"] == image and replaced["Id"] != container["Id"]
    logs = docker("logs", replaced["Id"]).stdout + docker("logs", replaced["Id"]).stderr
    assert "pip install" not in logs and "preinstalled" in logs

    # Another requirement: another image.
    (project / "requirements.txt").write_text("six==1.16.0\nidna==3.7\n")
    plan = json.loads(env.cli("deploy", str(project), "--dry-run", "-o", "json").stdout)[0]["plan"]
    assert plan["replica"]["container"]["Image"] != image
    docker("rmi", "-f", plan["replica"]["container"]["Image"], check=False)
    third = env.cli("deploy", str(project))
    assert "made the replica runtime cortexlite/deps:" in third.stdout
    current = env.replicas("answer")[0]["Config"]["Image"]
    assert current != image

    # The replaced dependency image is unused now: prune would remove it, never the one in use.
    pruned = env.cli("prune", "--dry-run", "--min-age", "0").stdout
    assert f"would remove image {image}" in pruned and current not in pruned


def test_an_oom_killed_replica_is_reported_as_out_of_memory(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    yaml = "- name: hog\n  predictor: {config: {megabytes: 400}}\n  compute: {mem: 128Mi}\n"
    project = make_project(tmp_path / "project", "memory_hog", yaml)
    env.cli("up", str(project))
    reply = httpx.post(env.url("/hog"), json={}, timeout=30, trust_env=False)
    assert reply.status_code in (502, 503, 500), reply.text  # the replica died under the request

    deadline = time.monotonic() + 30
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = json.loads(env.cli("get", "hog", "-o", "json").stdout)[0]
        if status["status"] == "error (out of memory)":
            break
        time.sleep(0.5)
    assert status["status"] == "error (out of memory)", status
    assert "out of memory" in str(status["reason"]) and "128 MiB" in str(status["reason"])
    (container,) = env.replicas("hog")
    assert container["State"]["OOMKilled"] is True
    table = env.cli("get", "hog").stdout
    assert "error (out of memory)" in table


def test_logs_follow_every_container_interleaved(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    project = make_api_project(tmp_path / "project", "echo_json", yaml=_yaml("v1", replicas=2))
    env.cli("up", str(project))
    ids = {c["Config"]["Labels"]["cortexlite.replica"] for c in env.replicas("answer")}
    recent = env.cli("logs", "answer", "--tail", "5").stdout
    assert {line.split(" | ")[0] for line in recent.splitlines() if " | " in line} == ids

    follower = env.popen("logs", "answer", "-f", "--tail", "0")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        time.sleep(1.5)
        with httpx.Client(trust_env=False, timeout=5) as client:
            for port in (int(c["Config"]["Labels"]["cortexlite.port"]) for c in env.replicas("answer")):
                client.post(f"http://127.0.0.1:{port}/?debug=true", json={"marker": f"followed-{port}"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and {line.split(" | ")[0] for line in lines if "followed-" in line} != ids:
            time.sleep(0.2)
    finally:
        follower.terminate()
        reader.join(10)
        follower.communicate(timeout=10)
    assert {line.split(" | ")[0] for line in lines if "followed-" in line} == ids, lines


def test_gpu_replicas_without_the_nvidia_runtime_name_the_toolkit(docker_env: DockerEnv, tmp_path: Path) -> None:
    """Scripted NVML inventory (fake GPUs: this machine has none); the Docker engine and its refusal are real."""
    env = docker_env
    fake = json.dumps([{"index": 0, "uuid": "GPU-0f6c1c1e-0000-4000-8000-000000000000", "name": "Fake H100"}])
    project = make_api_project(tmp_path / "project", yaml=_yaml("v1", extra="  compute: {gpu: 1}\n"))
    plan = json.loads(env.cli("deploy", str(project), "--dry-run", "-o", "json").stdout)[0]["plan"]
    assert plan["replica"]["container"]["HostConfig"]["DeviceRequests"][0]["Capabilities"] == [["gpu"]]

    result = subprocess.run(
        [str(CORTEXLITE), "up", str(project)], env={**env.environ, "CORTEXLITE_FAKE_GPUS": fake},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "nvidia-container-toolkit" in result.stderr, result.stderr
    assert env.replicas("answer") == []

    none = subprocess.run(
        [str(CORTEXLITE), "up", str(project)], env={**env.environ, "CORTEXLITE_FAKE_GPUS": "[]"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert none.returncode == 1 and "compute unavailable" in none.stderr, none.stderr


def test_bridge_network_publishes_only_the_gateway(
    tmp_path: Path, replica_cache: Path, docker_image_options: Path
) -> None:
    """A few functional requests through the gateway's published port (the bridge is not for load)."""
    env = open_docker_env(tmp_path, replica_cache, docker_image_options, network="bridge")
    try:
        project = make_api_project(tmp_path / "project", yaml=_yaml("v1", replicas=2))
        env.cli("up", str(project))
        for _ in range(4):
            assert _answer(env) == "v1"
        (gateway,) = env.containers("cortexlite.role=gateway")
        published = gateway["HostConfig"]["PortBindings"]
        assert {binding[0]["HostIp"] for binding in published.values()} == {"127.0.0.1"}
        assert {binding[0]["HostPort"] for binding in published.values()} == {str(env.port), str(env.admin_port)}
        for replica in env.replicas("answer"):
            assert replica["HostConfig"]["NetworkMode"] == f"cortexlite-{env.name}"
            assert not replica["HostConfig"].get("PortBindings"), "replicas publish nothing"
        (project / "cortexlite.yaml").write_text(_yaml("v2", replicas=2))
        env.cli("deploy", str(project))
        assert _answer(env) == "v2"
        env.cli("down")
        assert docker("network", "ls", "-q", "-f", f"name=^cortexlite-{env.name}$").stdout.strip() == ""
    finally:
        close_docker_env(env)


def test_local_resolves_to_docker_when_an_engine_answers(docker_env: DockerEnv, tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    environ = {**docker_env.environ, "CORTEXLITE_HOME": str(home)}
    environ.pop("CORTEXLITE_ENV")
    found = subprocess.run(
        [str(CORTEXLITE), "get"], env=environ, capture_output=True, text=True, timeout=60, check=True
    )
    assert "using the Docker backend" in found.stderr + found.stdout
    assert "backend: docker" in (home / "config.yaml").read_text()

    other = tmp_path / "no-engine-home"
    environ = {**environ, "CORTEXLITE_HOME": str(other), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    found = subprocess.run(
        [str(CORTEXLITE), "get"], env=environ, capture_output=True, text=True, timeout=60, check=True
    )
    assert "backend: process" in (other / "config.yaml").read_text()
