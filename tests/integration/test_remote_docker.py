"""A "remote" Docker host for real: this machine's engine reached through a TCP socket on loopback.

The environment names `tcp://127.0.0.1:PORT`, so cortexlite takes the remote code path: no bind
mount of this machine's paths, the project travels as a bundle through a real S3 server
(SeaweedFS), the spec is copied in through the Docker API, readiness is read inside the
container, and the records and the operator live on the engine's host. Faults come from a
loopback proxy in front of the S3 server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cortexlite.backends.docker import DockerEngine
from cortexlite.image import LOCAL_BASE_IMAGE
from tests.conftest import make_project
from tests.integration.conftest import (
    CORTEXLITE,
    Containers,
    DockerEnv,
    close_docker_env,
    docker,
    make_api_project,
)
from tests.integration.storage_server import FULL, SeaweedServer, TcpProxy

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

DOCKER_SOCKET = "/var/run/docker.sock"
RETRY_BUDGET_S = 4.0


@dataclass
class RemoteEnv(DockerEnv):
    s3_proxy: TcpProxy | None = None

    @property
    def environ(self) -> dict[str, str]:
        return super().environ | {
            "CORTEXLITE_S3_RETRY_BUDGET": str(RETRY_BUDGET_S), "CORTEXLITE_S3_READ_TIMEOUT": "3",
            "CORTEXLITE_OPERATOR_INTERVAL": "2",
        }  # fmt: skip


class SecondEngine:
    """A second dockerd of its own (data root, socket, bridge): a Docker host with an empty image store.

    It gets a bridge interface this test makes: `--bridge none` would make it delete docker0, which the
    first engine's containers need. No iptables rules, so its build steps use the host's network.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.bridge = f"cl-d2-{os.urandom(3).hex()}"  # at most 15 characters
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        subnet = f"172.31.{200 + int(self.bridge[-2:], 16) % 50}.1/24"
        for args in (
            ["link", "add", self.bridge, "type", "bridge"], ["addr", "add", subnet, "dev", self.bridge],
            ["link", "set", self.bridge, "up"],
        ):  # fmt: skip
            subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)
        command = [
            "dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
            "-H", f"unix://{self.socket}", "--pidfile", str(self.root / "dockerd.pid"), "--bridge", self.bridge,
            "--iptables=false", "--ip6tables=false",
        ]  # fmt: skip
        with (self.root / "dockerd.log").open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while self.docker("info", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the second dockerd did not start: {(self.root / 'dockerd.log').read_text()[-2000:]}"
                )
            time.sleep(0.3)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}
        return subprocess.run(["docker", *args], env=environ, capture_output=True, text=True, timeout=120, check=check)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True, timeout=30)
            return
        ids = self.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            self.docker("rm", "-f", *ids, check=False)
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def second_engine(tmp_path_factory: pytest.TempPathFactory, docker_image_options: Path) -> Iterator[SecondEngine]:
    # A short path: unix socket names are limited to 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="cl-d2-", dir="/tmp"))
    engine = SecondEngine(root)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
        # dockerd leaves its default network namespace mounted under the exec root.
        for mount in Path("/proc/mounts").read_text().splitlines():
            point = mount.split()[1]
            if point.startswith(f"{root}/"):
                subprocess.run(["umount", "-l", point], check=False, capture_output=True, timeout=30)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def docker_over_tcp(docker_image_options: Path) -> Iterator[TcpProxy]:
    proxy = TcpProxy(DOCKER_SOCKET)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def remote_env(  # noqa: PLR0917 - pytest passes fixtures by position
    tmp_path: Path, replica_cache: Path, docker_image_options: Path, docker_over_tcp: TcpProxy,
    s3_server: SeaweedServer, s3_proxy: TcpProxy,
) -> Iterator[RemoteEnv]:  # fmt: skip

    s3_server.make_bucket("remote-bundles")
    options = json.loads(docker_image_options.read_text())
    env = _remote_env(tmp_path, replica_cache, options, "rm", docker_over_tcp.port, "remote-bundles", s3_proxy.endpoint)
    env.s3_proxy = s3_proxy
    try:
        yield env
    finally:
        close_docker_env(env)


def _remote_env(  # noqa: PLR0917 - one call per test, every argument differs
    tmp_path: Path, replica_cache: Path, image_options: dict[str, object], prefix: str, engine_port: int,
    bucket: str, s3_endpoint: str, *extra: str,
) -> RemoteEnv:  # fmt: skip
    """A home with a docker environment on the engine at tcp://127.0.0.1:`engine_port`, storage in `bucket`."""
    from tests.conftest import free_port

    port, admin_port = free_port(), free_port()
    run_id = os.urandom(6).hex()
    env = RemoteEnv(tmp_path / "home", replica_cache, port, admin_port, name=f"{prefix}{run_id[:6]}", run_id=run_id)
    env.home.mkdir(parents=True)
    (env.home / "image.json").write_text(json.dumps(image_options))
    env.cli(
        "env", "add", env.name, "--docker-host", f"tcp://127.0.0.1:{engine_port}", "--network", "host",
        "--gateway-port", str(port), "--gateway-admin-port", str(admin_port),
        "--storage", f"s3://{bucket}/team", "--s3-endpoint", s3_endpoint,
        "--s3-access-key", FULL.access_key, "--s3-secret-key", FULL.secret_key, *extra,
    )  # fmt: skip
    return env


def _answer(env: DockerEnv) -> object:
    return httpx.post(env.url("/answer"), json={}, timeout=10).json()


def test_a_remote_engine_gets_the_project_through_storage(remote_env: RemoteEnv, tmp_path: Path) -> None:
    env = remote_env
    assert env.s3_proxy is not None
    project = make_api_project(tmp_path / "project")
    (project / "weights.bin").write_bytes(os.urandom(300 * 1024))
    dry = env.cli("deploy", str(project), "--dry-run", "-o", "json").stdout
    assert FULL.secret_key not in dry and "<secret:AWS_SECRET_ACCESS_KEY>" in dry, dry

    first = env.cli("up", str(project))
    assert "uploaded to s3://remote-bundles/team/bundles/" in first.stdout + first.stderr, first.stdout
    assert _answer(env) == {"answer": "v1"}
    # The operator runs on the engine's host, its state in a volume there; nothing runs here for it.
    (operator,) = env.containers("cortexlite.role=operator")
    assert operator["State"]["Running"] and not operator["HostConfig"].get("Binds", [])[1:]
    assert [m["Name"] for m in operator["Mounts"] if m["Type"] == "volume"] == [f"cortexlite-{env.name}-state"]
    assert not (env.home / "envs" / env.name / "operator").exists()
    # Another machine with only the environment's definition sees the same API: the records are on the host.
    other = tmp_path / "other-home"
    other.mkdir()
    for name in ("config.yaml", "image.json"):
        (other / name).write_bytes((env.home / name).read_bytes())
    seen = subprocess.run(
        [str(CORTEXLITE), "get", "-o", "json"], env={**env.environ, "CORTEXLITE_HOME": str(other)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert seen.returncode == 0, seen.stderr
    assert [(view["name"], view["status"], view["requested"]) for view in json.loads(seen.stdout)] == [
        ("answer", "live", 1)
    ]
    (replica,) = env.replicas("answer")
    assert not replica["HostConfig"].get("Binds"), replica["HostConfig"].get("Binds")
    variables = dict(item.split("=", 1) for item in replica["Config"]["Env"])
    assert variables["CORTEX_PROJECT_URI"].startswith("s3://remote-bundles/team/bundles/")
    assert variables["AWS_ENDPOINT_URL"] == env.s3_proxy.endpoint
    logs = env.cli("logs", "answer", "--tail", "50").stdout
    assert "extracted into /mnt/project" in logs, logs

    # The same files deployed again: the bundle is already stored, nothing is uploaded.
    env.cli("delete", "answer")
    sent = env.s3_proxy.sent
    second = env.cli("deploy", str(project))
    assert "nothing uploaded" in second.stdout + second.stderr, second.stdout
    assert env.s3_proxy.sent - sent < 100 * 1024, "only a HEAD and the replica's download went through"
    (project / "cortexlite.yaml").write_text("- name: answer\n  predictor:\n    config: {answer: v2}\n")
    env.cli("deploy", str(project))
    assert _answer(env) == {"answer": "v2"}

    # New files while the store cuts every upload: the deploy fails inside the retry budget and v2 serves.
    (project / "weights.bin").write_bytes(os.urandom(300 * 1024))
    env.s3_proxy.cut_after = 64 * 1024
    started = time.monotonic()
    failed = env.cli("deploy", str(project), check=False)
    elapsed = time.monotonic() - started
    env.s3_proxy.reset()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    message = failed.stdout + failed.stderr
    assert "upload" in message and "remote-bundles" in message and env.s3_proxy.endpoint in message, message
    assert "Traceback" not in message
    assert elapsed < 60, elapsed
    assert _answer(env) == {"answer": "v2"}
    status = json.loads(env.cli("get", "answer", "-o", "json").stdout)
    assert status[0]["status"] == "live", status

    # The operator on the engine's host heals the replica.
    (victim,) = env.replicas("answer")
    docker("kill", victim["Id"])  # `docker kill` cancels Docker's own restart
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = [c for c in env.replicas("answer") if c["State"]["Running"] and c["Id"] != victim["Id"]]
        if running and env.routed("answer") == [
            f"http://127.0.0.1:{running[0]['Config']['Labels']['cortexlite.port']}"
        ]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no replacement for {victim['Id'][:12]}: {env.replicas('answer')}")
    assert _answer(env) == {"answer": "v2"}
    events = docker("logs", operator["Id"]).stdout + docker("logs", operator["Id"]).stderr
    assert f"healing: answer replica {victim['Config']['Labels']['cortexlite.replica']}" in events, events


def test_api_keys_on_a_remote_engine_are_read_from_its_state_volume(remote_env: RemoteEnv, tmp_path: Path) -> None:
    """The replicas run on the engine's host: their key hashes come from the state volume there, read-only."""
    env = remote_env
    project = make_api_project(tmp_path / "project", yaml="- name: answer\n  networking:\n    auth: api_key\n")
    env.cli("up", str(project))
    refused = httpx.post(env.url("/answer"), json={}, timeout=10)
    assert refused.status_code == 401 and "API key is required" in refused.json()["error"]
    made = json.loads(env.cli("keys", "create", "answer", "--save", "-o", "json").stdout)
    # Valid as soon as `keys create` returns (an unknown key makes the replica re-read its file at once).
    assert httpx.post(env.url("/answer"), json={}, headers={"X-Api-Key": made["key"]}, timeout=10).json() == {
        "answer": "v1"
    }
    (tmp_path / "payload.json").write_text("{}")
    assert json.loads(env.cli("predict", "answer", str(tmp_path / "payload.json")).stdout) == {"answer": "v1"}
    (replica,) = env.replicas("answer")
    state = [m for m in replica["Mounts"] if m["Type"] == "volume" and m["Name"] == f"cortexlite-{env.name}-state"]
    assert state and not state[0]["RW"], replica["Mounts"]
    assert replica["Config"]["User"] == "10001:10001"
    assert made["key"] not in json.dumps(replica), "only the hash reaches the host"

    env.cli("keys", "revoke", made["id"])
    deadline = time.monotonic() + 5
    while httpx.post(env.url("/answer"), json={}, headers={"X-Api-Key": made["key"]}, timeout=10).status_code != 403:
        assert time.monotonic() < deadline, "the revocation never reached the remote replica"
        time.sleep(0.1)

    # A failed first deploy is listed from the host's records (with the key lock's directory beside them).
    broken = make_project(tmp_path / "broken", "init_error", "- name: broken\n")
    assert env.cli("deploy", str(broken), check=False).returncode == 1
    views = {view["name"]: view for view in json.loads(env.cli("get", "-o", "json").stdout)}
    assert set(views) == {"answer", "broken"}
    assert views["broken"]["last_deploy_failure"]["kind"] == "predictor init error"


def test_gpus_of_a_remote_host_are_read_there(remote_env: RemoteEnv) -> None:
    """This engine has no NVIDIA runtime: the short-lived inventory container is refused its GPUs for real."""
    shown = remote_env.cli("gpus")
    assert "no GPUs found (the engine gives containers no GPUs" in shown.stdout, shown.stdout + shown.stderr
    assert json.loads(remote_env.cli("gpus", "-o", "json").stdout) == []
    assert not remote_env.containers("cortexlite.role=gpus"), "the inventory container is removed"


def test_a_host_with_an_empty_image_store_gets_its_images_built_there(
    second_engine: SecondEngine, tmp_path: Path, replica_cache: Path, docker_image_options: Path,
    s3_server: SeaweedServer,
) -> None:  # fmt: skip
    """A second dockerd, reached over TCP: the base image is copied from this machine's engine, the runtime,
    gateway and operator images are built on it, the project arrives through storage, and the operator runs
    there. Its socket is not the usual one on the host: told nothing, the operator finds another engine at
    /var/run/docker.sock (this machine's) and refuses it; told `--host-socket`, it serves its own."""
    s3_server.make_bucket("second-engine")
    proxy = TcpProxy(str(second_engine.socket))
    # The second engine's bridge has no NAT: its build steps use the host's network (`image build --build-network`).
    options = json.loads(docker_image_options.read_text()) | {"build_network": "host"}
    env = _remote_env(tmp_path, replica_cache, options, "se", proxy.port, "second-engine", s3_server.endpoint)
    try:
        assert not second_engine.docker("images", "-q").stdout.strip(), "the second engine starts empty"
        project = make_api_project(tmp_path / "project")
        up = env.cli("up", str(project), timeout=900)
        output = up.stdout + up.stderr
        assert "copying cortexlite/base:bookworm from the engine at" in output, output
        assert _answer(env) == {"answer": "v1"}
        tags = second_engine.docker("images", "--format", "{{.Repository}}").stdout.split()
        assert {"cortexlite/base", "cortexlite/runtime", "cortexlite/gateway", "cortexlite/operator"} <= set(tags)
        replicas = second_engine.docker("ps", "-q", "--filter", "label=cortexlite.role=replica").stdout.split()
        assert len(replicas) == 1
        operator = f"cortexlite-{env.name}-operator"
        refusal = "reaches the Docker engine"
        deadline = time.monotonic() + 60
        while refusal not in (logs := second_engine.docker("logs", operator, check=False)).stderr + logs.stdout:
            assert time.monotonic() < deadline, f"the operator did not refuse this machine's engine: {logs}"
            time.sleep(0.5)
        assert "--host-socket" in logs.stderr + logs.stdout
        env.cli("down", timeout=300)
        assert not second_engine.docker("ps", "-aq", "--filter", f"label=cortexlite.env={env.name}").stdout.strip()

        # Told where the engine's socket is on its host, the operator serves that engine.
        env.cli("env", "remove", env.name)
        env.cli(
            "env", "add", env.name, "--docker-host", f"tcp://127.0.0.1:{proxy.port}", "--network", "host",
            "--gateway-port", str(env.port), "--gateway-admin-port", str(env.admin_port),
            "--storage", "s3://second-engine/team", "--s3-endpoint", s3_server.endpoint,
            "--s3-access-key", FULL.access_key, "--s3-secret-key", FULL.secret_key,
            "--host-socket", str(second_engine.socket),
        )  # fmt: skip
        env.cli("up", str(project), timeout=900)
        started = time.monotonic() + 60
        while "started" not in (logs := second_engine.docker("logs", operator, check=False)).stdout:
            assert time.monotonic() < started, f"the operator did not start: {logs}"
            time.sleep(0.5)
        time.sleep(3)  # a few of its ticks
        assert refusal not in logs.stdout + logs.stderr
        assert second_engine.docker("inspect", "-f", "{{.State.Running}}", operator).stdout.strip() == "true"
        assert not docker("ps", "-aq", "--filter", f"label=cortexlite.env={env.name}").stdout.strip(), (
            "nothing of this environment runs on this machine's engine"
        )
        assert subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False).returncode == 0
        env.cli("down", timeout=300)
        assert not second_engine.docker("ps", "-aq", "--filter", f"label=cortexlite.env={env.name}").stdout.strip()
    finally:
        env.cli("down", check=False, timeout=300)
        proxy.close()


def test_exec_output_and_locks_survive_a_tcp_engine(docker_over_tcp: TcpProxy, containers: Containers) -> None:
    """Over TCP, an exec's output often arrives with the response's headers: none of it may be lost (the SDK's
    bare socket loses it). A lock held by an exec'd process excludes others and ends with its connection."""
    name = containers.name("exec")
    docker("run", "-d", "--name", name, *containers.label_args(), LOCAL_BASE_IMAGE, "sleep", "300")
    engine = DockerEngine.from_env(f"tcp://127.0.0.1:{docker_over_tcp.port}")
    try:
        answers = [engine.exec(name, ["echo", str(n)]) for n in range(60)]
        assert answers == [(0, f"{n}\n") for n in range(60)]
        code, output = engine.exec(name, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert code == 3 and sorted(output.split()) == ["err", "out"]  # two streams: their order may vary
        held = engine.flock(name, "/tmp/api.lock", blocking=False)
        assert held is not None and engine.flock(name, "/tmp/api.lock", blocking=False) is None
        assert engine.exec(name, ["flock", "-n", "/tmp/api.lock", "true"])[0] == 1
        held.release()
        deadline = time.monotonic() + 10
        while engine.exec(name, ["flock", "-n", "/tmp/api.lock", "true"])[0] != 0:
            assert time.monotonic() < deadline, "the lock outlived its holder's connection"
            time.sleep(0.1)
        again = engine.flock(name, "/tmp/api.lock", blocking=False)
        assert again is not None
        again.release()
    finally:
        engine.close()
