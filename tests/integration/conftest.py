"""Docker fixtures: a running engine and the runtime image once per session; containers removed by label."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import pytest

from cortexlite.image import LOCAL_BASE_IMAGE, ImageOptions, ImageRef, build_runtime_image
from cortexlite.processes import ProcessRef, terminate
from tests.conftest import free_port, make_project
from tests.integration.storage_server import SeaweedServer, TcpProxy

if TYPE_CHECKING:
    from tests.integration.nomad_env import Registry

REPO = Path(__file__).resolve().parents[2]
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CORTEXLITE = Path(sys.executable).parent / "cortexlite"
TEST_LABEL = "cortexlite.test=1"
# Narrows cleanup to this test's containers: another session may share the engine and the label.
RUN_LABEL_KEY = "cortexlite.test.run"
NO_DOCKER = "unix:///nonexistent/cortexlite-test-no-docker.sock"


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The docker CLI, output captured; a failure shows the command and its stderr."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Containers:
    """Names and labels for the containers one test starts; all of them are removed at teardown."""

    run_id: str

    def name(self, prefix: str) -> str:
        return f"cortexlite-test-{prefix}-{uuid.uuid4().hex[:8]}"

    def label_args(self) -> list[str]:
        return ["--label", TEST_LABEL, "--label", f"{RUN_LABEL_KEY}={self.run_id}"]

    def remove_all(self) -> None:
        filters = ["--filter", f"label={TEST_LABEL}", "--filter", f"label={RUN_LABEL_KEY}={self.run_id}"]
        ids = docker("ps", "-aq", *filters).stdout.split()
        if ids:
            docker("rm", "-f", *ids)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine answers: started by scripts/dockerd-start.sh (a no-op when one runs)."""
    started = subprocess.run(
        ["bash", str(REPO / "scripts" / "dockerd-start.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    if started.returncode != 0:
        pytest.fail(f"could not start a Docker engine:\n{started.stderr}")


@pytest.fixture(scope="session")
def image_options() -> ImageOptions:
    """The registry-less base (made by make-base-image.sh when missing); the host CA lets pip reach PyPI."""
    ca_cert = HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None
    return ImageOptions(base_image=LOCAL_BASE_IMAGE, ca_cert=ca_cert)


@pytest.fixture(scope="session")
def runtime_image(docker_engine: None, image_options: ImageOptions) -> ImageRef:
    return build_runtime_image(image_options)


@pytest.fixture
def containers(docker_engine: None) -> Iterator[Containers]:
    tracked = Containers(uuid.uuid4().hex[:12])
    try:
        yield tracked
    finally:
        tracked.remove_all()


# --- the process environment: real Traefik, real replica processes --------------------------------


@dataclass
class LocalEnv:
    """A CORTEXLITE_HOME of its own with a `local` process environment on free gateway ports."""

    home: Path
    cache: Path
    port: int
    admin_port: int
    cli_timeout: ClassVar[float] = 180

    @property
    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "CORTEXLITE_HOME": str(self.home),
            "CORTEXLITE_CACHE_DIR": str(self.cache),
            "CORTEXLITE_ENV": "local",
            "NO_COLOR": "1",
            "COLUMNS": "200",
            # Process environments need no engine; `prune` then leaves the shared engine's images alone.
            "DOCKER_HOST": NO_DOCKER,
        }

    def cli(self, *args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """`cortexlite ARGS` as a user runs it; a failure shows the command and its output."""
        result = subprocess.run(
            [str(CORTEXLITE), *args], env=self.environ, capture_output=True, text=True,
            timeout=timeout or self.cli_timeout,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"cortexlite {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(CORTEXLITE), *args], env=self.environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def url(self, endpoint: str) -> str:
        return f"http://127.0.0.1:{self.port}{endpoint}"

    def routed(self, api: str) -> list[str] | None:
        """What Traefik's own API says it routes `api` to (None: no such service)."""
        answer = httpx.get(f"http://127.0.0.1:{self.admin_port}/api/http/services/cortexlite-{api}@file", timeout=2)
        if answer.status_code == 404:
            return None
        return sorted(server["url"] for server in answer.json().get("loadBalancer", {}).get("servers", []) or [])

    def api_dir(self, api: str) -> Path:
        return self.home / "envs" / "local" / "apis" / api

    def replica_records(self, api: str) -> list[dict[str, Any]]:
        return [json.loads(path.read_text()) for path in sorted((self.api_dir(api) / "replicas").glob("*.json"))]

    def processes(self) -> list[ProcessRef]:
        """Every process this home recorded (replicas and the gateway) that still runs."""
        refs = [
            ProcessRef(int(record["pid"]), float(record["started"]))
            for path in self.home.glob("envs/*/apis/*/replicas/*.json")
            if (record := json.loads(path.read_text())).get("pid")
        ]
        for state_file in ("gateway/state.json", "operator/state.json"):
            path = self.home / "envs" / "local" / state_file
            if path.is_file():
                state = json.loads(path.read_text())
                refs.append(ProcessRef(int(state["pid"]), float(state["started"])))
        return [ref for ref in refs if ref.alive()]


@pytest.fixture(scope="session")
def replica_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Replica venvs, shared by every test of the session (each is made once)."""
    return tmp_path_factory.mktemp("replica-cache")


@pytest.fixture
def local_env(tmp_path: Path, replica_cache: Path) -> Iterator[LocalEnv]:
    port, admin_port = free_port(), free_port()
    env = LocalEnv(tmp_path / "home", replica_cache, port, admin_port)
    env.cli("env", "add", "local", "--gateway-port", str(port), "--gateway-admin-port", str(admin_port))
    try:
        yield env
    finally:
        env.cli("down", check=False, timeout=120)
        leftovers = env.processes()
        terminate(leftovers, timeout=10)
        assert not leftovers, f"`cortexlite down` left processes running: {leftovers}"


def make_api_project(directory: Path, predictor: str = "answer", yaml: str | None = None) -> Path:
    """A project with one API `answer` at /answer serving `tests/predictors/<predictor>.py`."""
    return make_project(directory, predictor, yaml or "- name: answer\n")


# --- the Docker environment: real engine, real Traefik container, host networking -----------------


@pytest.fixture(scope="session")
def docker_image_options(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cortexlite image build` once per session (registry-less base, host CA); its recorded options file."""
    home = tmp_path_factory.mktemp("image-home")
    args = ["image", "build", "--base-image", LOCAL_BASE_IMAGE]
    if HOST_CA_BUNDLE.is_file():
        args += ["--ca-cert", str(HOST_CA_BUNDLE)]
    result = subprocess.run(
        [str(CORTEXLITE), *args], env={**os.environ, "CORTEXLITE_HOME": str(home)}, capture_output=True, text=True,
        timeout=1500, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"cortexlite image build failed:\n{result.stdout}\n{result.stderr[-4000:]}")
    return home / "image.json"


@dataclass
class DockerEnv(LocalEnv):
    """A home of its own with a Docker environment `name` (host networking unless told otherwise).

    Every container, volume and network the CLI makes carries `cortexlite.test=1` and this test's run label.
    """

    name: str = ""
    run_id: str = ""

    @property
    def environ(self) -> dict[str, str]:
        labels = f"{TEST_LABEL},{RUN_LABEL_KEY}={self.run_id}"
        environ = {**super().environ, "CORTEXLITE_ENV": self.name, "CORTEXLITE_LABELS": labels}
        environ.pop("DOCKER_HOST")
        return environ | ({"DOCKER_HOST": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ else {})

    def api_dir(self, api: str) -> Path:
        return self.home / "envs" / self.name / "apis" / api

    def containers(self, *labels: str) -> list[dict[str, Any]]:
        """`docker inspect` of this test's containers that carry every label in `labels`."""
        filters = [
            arg for label in (TEST_LABEL, f"{RUN_LABEL_KEY}={self.run_id}", *labels) for arg in ("-f", f"label={label}")
        ]
        ids = docker("ps", "-aq", *filters).stdout.split()
        if not ids:
            return []
        # A container may be removed between `ps` and `inspect` (the operator replacing one): inspect
        # then fails for it but still prints the others.
        found = docker("inspect", *ids, check=False).stdout.strip()
        return list(json.loads(found)) if found else []

    def replicas(self, api: str) -> list[dict[str, Any]]:
        return self.containers(f"cortexlite.api={api}", "cortexlite.role=replica")

    def remove_all(self) -> None:
        run = f"label={RUN_LABEL_KEY}={self.run_id}"
        ids = docker("ps", "-aq", "-f", f"label={TEST_LABEL}", "-f", run).stdout.split()
        if ids:
            docker("rm", "-f", *ids)
        for kind in ("volume", "network"):
            names = docker(kind, "ls", "-q", "-f", f"label={TEST_LABEL}", "-f", run).stdout.split()
            if names:
                docker(kind, "rm", *names, check=False)


def open_docker_env(tmp_path: Path, replica_cache: Path, options_file: Path, network: str = "host") -> DockerEnv:
    port, admin_port = free_port(), free_port()
    run_id = uuid.uuid4().hex[:12]
    env = DockerEnv(tmp_path / "home", replica_cache, port, admin_port, name=f"dk{run_id[:6]}", run_id=run_id)
    env.home.mkdir(parents=True)
    (env.home / "image.json").write_text(options_file.read_text())
    env.cli(
        "env", "add", env.name, "--backend", "docker", "--network", network,
        "--gateway-port", str(port), "--gateway-admin-port", str(admin_port),
    )  # fmt: skip
    return env


@pytest.fixture
def docker_env(tmp_path: Path, replica_cache: Path, docker_image_options: Path) -> Iterator[DockerEnv]:
    env = open_docker_env(tmp_path, replica_cache, docker_image_options)
    try:
        yield env
    finally:
        close_docker_env(env)


def close_docker_env(env: DockerEnv) -> None:
    """`down`, then prove it removed every container of the test (and remove what it did not)."""
    try:
        env.cli("down", check=False, timeout=180)
        leftovers = [c["Name"] for c in env.containers()]
    finally:
        env.remove_all()
    assert not leftovers, f"`cortexlite down` left containers: {leftovers}"


# --- S3-compatible storage: a real SeaweedFS server with auth on ----------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_proxy(s3_server: SeaweedServer) -> Iterator[TcpProxy]:
    """A loopback proxy in front of the S3 server, for counting bytes and injecting faults."""
    proxy = TcpProxy(("127.0.0.1", s3_server.ports["s3"]))
    try:
        yield proxy
    finally:
        proxy.close()


# --- an image registry: Debian's docker-registry on a loopback port -------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, docker_engine: None) -> Iterator[Registry]:
    from tests.integration.nomad_env import Registry

    server = Registry(tmp_path_factory.mktemp("registry"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
