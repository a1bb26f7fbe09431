"""What the Nomad contract tests share: a fake Nomad agent (no Nomad agent runs), a real registry, a real
Traefik reading the fake's service catalog, real storage and the real Docker engine that builds images.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

from cortexlite.gateway.process import find_traefik
from cortexlite.nomad.job import JobSettings
from cortexlite.nomad.system_jobs import render_gateway_job
from tests.conftest import free_port
from tests.fake_nomad import FakeNomad
from tests.integration.conftest import LocalEnv, docker
from tests.integration.storage_server import FULL, SeaweedServer

__all__ = ["TOKEN", "NomadEnv", "Registry", "TraefikOnFake", "open_nomad_env"]

TOKEN = "nomad-acl-token-5d7e"


class Registry:
    """Debian's docker-registry (distribution 2.8) on a loopback port: the engine pushes to it over plain HTTP
    (127.0.0.0/8 registries need no TLS), and tests read its manifests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is missing: `make system` installs Debian's docker-registry")
        config = self.root / "config.yml"
        config.write_text(
            f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        with (self.root / "registry.log").open("wb") as log:
            self.process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://{self.address}/v2/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {(self.root / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def has(self, reference: str) -> bool:
        """Whether the registry holds `reference` (`127.0.0.1:PORT/repo:tag`)."""
        repository, _, tag = reference.removeprefix(f"{self.address}/").rpartition(":")
        answer = httpx.head(
            f"http://{self.address}/v2/{repository}/manifests/{tag}", timeout=5,
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )  # fmt: skip
        return answer.status_code == 200

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        # The tags cortexlite gave local images for this registry (the images themselves stay).
        tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
        ours = [tag for tag in tags if tag.startswith(f"{self.address}/")]
        if ours:
            docker("rmi", *ours, check=False)


class TraefikOnFake:
    """A real Traefik with the gateway job's own arguments, its Nomad provider reading the fake agent."""

    def __init__(self, fake: FakeNomad, log: Path, port: int, admin_port: int) -> None:
        self.port, self.admin_port = port, admin_port
        args = render_gateway_job(JobSettings(env="prod"), "unused", self.port, self.admin_port)["TaskGroups"][0][
            "Tasks"
        ][0]["Config"]["args"]
        args = [arg.replace("refreshInterval=5s", "refreshInterval=1s") for arg in args]
        args += [f"--providers.nomad.endpoint.address={fake.url}", f"--providers.nomad.endpoint.token={TOKEN}"]
        with log.open("wb") as out:
            self.process = subprocess.Popen([str(find_traefik(None)), *args], stdout=out, stderr=subprocess.STDOUT)

    def url(self, endpoint: str) -> str:
        return f"http://127.0.0.1:{self.port}{endpoint}"

    def wait_routed(self, endpoint: str, timeout: float = 20, headers: dict[str, str] | None = None) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = httpx.post(self.url(endpoint), json={}, headers=headers, timeout=5)
                if answer.status_code == 200:
                    return answer
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Traefik never routed {endpoint}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@dataclass
class NomadEnv(LocalEnv):
    """A CORTEXLITE_HOME of its own with a nomad environment `prod` on the fake agent (`port`, `admin_port`:
    its gateway's, where a test's Traefik listens)."""

    fake: FakeNomad | None = None
    extra: dict[str, str] = field(default_factory=dict)
    cli_timeout: ClassVar[float] = 600  # the first deploy builds images

    @property
    def environ(self) -> dict[str, str]:
        environ = super().environ | {"CORTEXLITE_ENV": "prod", "CORTEXLITE_S3_RETRY_BUDGET": "5"}
        for name in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION"):
            environ.pop(name, None)
        environ.pop("DOCKER_HOST")  # the process environments' "no engine": Nomad images are built on this one
        if "DOCKER_HOST" in os.environ:
            environ["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
        return environ | self.extra

    def requests(self, method: str, path: str) -> list[Any]:
        assert self.fake is not None
        return self.fake.requests_to(method, path)


def open_nomad_env(  # noqa: PLR0917 - one call per test
    tmp_path: Path, fake: FakeNomad, registry: Registry, s3: SeaweedServer, image_options: Path, bucket: str
) -> NomadEnv:
    home = tmp_path / "home"
    home.mkdir(parents=True)
    (home / "image.json").write_text(image_options.read_text())
    s3.make_bucket(bucket)
    port, admin_port = free_port(), free_port()
    env = NomadEnv(home, home / "cache", port, admin_port, fake=fake)
    env.cli(
        "env", "add", "prod", "--nomad-addr", fake.url, "--nomad-token", TOKEN, "--registry", registry.address,
        "--storage", f"s3://{bucket}/prod", "--s3-endpoint", s3.endpoint, "--s3-access-key", FULL.access_key,
        "--s3-secret-key", FULL.secret_key, "--gateway-port", str(port), "--gateway-admin-port", str(admin_port),
        "--datacenters", "dc1",
    )  # fmt: skip
    return env


def job_env(job: dict[str, Any]) -> dict[str, str]:
    return dict(job["TaskGroups"][0]["Tasks"][0]["Env"])
