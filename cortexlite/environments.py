"""Environments: where APIs are deployed, defined in `CORTEXLITE_HOME/config.yaml`.

    current: local
    environments:
      local: {backend: process, gateway_port: 8888}
      gpu-box: {backend: docker, docker_host: ssh://ops@gpu1, storage: s3://models/cortexlite}

The built-in `local` environment needs no definition: on first use it resolves to the Docker
backend when an engine answers and to processes otherwise, and the choice is recorded so that
later commands agree. `env add`/`env use` change it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cortexlite.errors import EnvConfigError
from cortexlite.files import Lock, atomic_write

if TYPE_CHECKING:
    from cortexlite_runtime.storage import StorageSettings

__all__ = [
    "DEFAULT_GATEWAY_PORT",
    "LOCAL",
    "BackendKind",
    "ConfigFile",
    "Environment",
    "EnvironmentRequest",
    "Network",
    "build_environment",
    "resolve_environment",
]

LOCAL = "local"
DEFAULT_GATEWAY_PORT = 8888
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_REGISTRY = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9._/-]+)?/?$")
_STORAGE = re.compile(r"^(s3|oss)://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


_NOMAD_FIELDS = (
    "nomad_addr", "nomad_token", "nomad_namespace", "nomad_region", "nomad_datacenters", "nomad_ca_cert",
    "registry", "cpu_mhz_per_core",
)  # fmt: skip


class BackendKind(StrEnum):
    PROCESS = "process"
    DOCKER = "docker"
    NOMAD = "nomad"


class Network(StrEnum):
    BRIDGE = "bridge"
    HOST = "host"


class Environment(BaseModel):
    """One environment's definition, as stored in config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    backend: BackendKind
    docker_host: str | None = None
    nomad_addr: str | None = None
    storage: str | None = None
    gateway_port: int = Field(default=DEFAULT_GATEWAY_PORT, ge=1, le=65535)
    gateway_admin_port: int | None = Field(default=None, ge=1, le=65535, description="None: gateway_port + 1")
    network: Network | None = None
    # Where users reach the gateway; default: the Docker host's name for a remote engine, else 127.0.0.1.
    gateway_host: str | None = None
    # S3-compatible storage (see cortexlite_runtime.storage); unset fields fall back to
    # CORTEXLITE_S3_* and then AWS_* in the environment of the command.
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = Field(default=None, repr=False)
    s3_secure: bool | None = None
    s3_ca_bundle: str | None = None
    s3_replica_endpoint: str | None = None
    # Projects reach this Docker engine as bundles through storage although it is local: the definition the
    # operator of a remote environment runs with, on that environment's host.
    via_storage: bool | None = None
    # Where a remote engine's socket is on its host (for the operator there); None: /var/run/docker.sock.
    host_socket: str | None = None
    # Nomad (see cortexlite.nomad.settings): unset fields fall back to NOMAD_ADDR, NOMAD_TOKEN,
    # NOMAD_NAMESPACE, NOMAD_REGION and NOMAD_CACERT in the environment of the command.
    nomad_token: str | None = Field(default=None, repr=False)
    nomad_namespace: str | None = None
    nomad_region: str | None = None
    nomad_datacenters: tuple[str, ...] | None = None
    nomad_ca_cert: str | None = None
    # Where Nomad clients pull images from (host[:port][/path]); None: the images must already be on them.
    registry: str | None = None
    cpu_mhz_per_core: int | None = Field(default=None, ge=100, le=100_000, description="None: 2000")
    # The default of the APIs' networking.auth: api_key makes every API of the environment need a key.
    auth: Literal["none", "api_key"] | None = None
    # What the gateway's web port binds (e.g. 0.0.0.0); None: 127.0.0.1 unless users reach it from elsewhere.
    gateway_listen: str | None = None
    # Keys `cortexlite keys create --save` kept for `cortexlite predict`: API name (or *) -> key.
    api_keys: dict[str, str] | None = Field(default=None, repr=False)

    @field_validator("docker_host")
    @classmethod
    def _docker_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("unix://", "tcp://", "ssh://", "npipe://")):
            raise ValueError(f"expected unix://, tcp://, ssh:// or npipe:// (got {value!r})")
        return value

    @field_validator("nomad_addr")
    @classmethod
    def _nomad_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// address such as http://nomad:4646 (got {value!r})")
        return value.rstrip("/") if value else value

    @field_validator("host_socket")
    @classmethod
    def _socket_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"expected an absolute path such as /var/run/docker.sock (got {value!r})")
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is not None and not _REGISTRY.match(value):
            raise ValueError(f"expected a registry as host[:port][/path], e.g. registry.local:5000 (got {value!r})")
        return value.rstrip("/") if value else value

    @field_validator("gateway_listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"expected an IP address such as 127.0.0.1 or 0.0.0.0 (got {value!r})") from None

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value is not None and not _STORAGE.match(value):
            raise ValueError(f"expected s3://bucket/prefix or oss://bucket/prefix (got {value!r})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Environment:
        if self.backend is not BackendKind.DOCKER and (self.docker_host or self.network or self.via_storage):
            raise ValueError(f"docker_host and network apply to the docker backend, not {self.backend.value}")
        if self.host_socket and not self.remote_docker:
            raise ValueError("host_socket applies to a remote Docker engine (tcp:// or ssh://)")
        if self.via_storage and not self.storage:
            raise ValueError("via_storage needs storage")
        if self.backend is not BackendKind.NOMAD:
            nomad = [name for name in _NOMAD_FIELDS if getattr(self, name) is not None]
            if nomad:
                raise ValueError(f"{', '.join(nomad)} apply to the nomad backend, not {self.backend.value}")
        if self.admin_port == self.gateway_port:
            raise ValueError(f"gateway_admin_port must differ from gateway_port ({self.gateway_port})")
        return self

    @property
    def admin_port(self) -> int:
        """Traefik's API, ping and Prometheus metrics, on 127.0.0.1."""
        if self.gateway_admin_port is not None:
            return self.gateway_admin_port
        return self.gateway_port + 1 if self.gateway_port < 65535 else self.gateway_port - 1

    @property
    def remote_docker(self) -> bool:
        """A Docker engine on another machine (tcp://, ssh://): bundles travel through storage."""
        return (
            self.backend is BackendKind.DOCKER
            and bool(self.docker_host)
            and not str(self.docker_host).startswith(("unix://", "npipe://"))
        )

    @property
    def ships_bundles(self) -> bool:
        """Whether projects reach replicas as bundles through storage (not as bind mounts of this machine's files)."""
        return self.remote_docker or bool(self.via_storage)

    @property
    def gateway_address(self) -> str:
        """The host name or address the gateway's URL uses."""
        if self.gateway_host:
            return self.gateway_host
        if self.remote_docker:
            return urlsplit(str(self.docker_host)).hostname or "127.0.0.1"
        if self.backend is BackendKind.NOMAD:
            # Traefik runs on the Nomad clients; with the agent's address as a default, `nomad agent -dev` works.
            address = self.nomad_addr or os.environ.get("NOMAD_ADDR", "")
            return urlsplit(address).hostname or "127.0.0.1"
        return "127.0.0.1"

    @property
    def gateway_bind(self) -> str:
        """What the gateway's web port binds: loopback unless users reach it from elsewhere."""
        if self.gateway_listen is not None:
            return self.gateway_listen
        return "127.0.0.1" if self.gateway_address in ("127.0.0.1", "localhost", "::1") else "0.0.0.0"

    @property
    def exposed_without_auth(self) -> bool:
        """The gateway listens beyond this machine and APIs need no key by default: worth a warning."""
        return not ipaddress.ip_address(self.gateway_bind).is_loopback and self.auth != "api_key"

    def api_key(self, api: str) -> str | None:
        """The key `predict` sends to `api`: one saved for it, else one saved for every API."""
        keys = self.api_keys or {}
        return keys.get(api) or keys.get("*")

    def storage_settings(self, environ: Mapping[str, str] | None = None) -> StorageSettings:
        """How this environment reaches its store: its `s3_*` fields, else CORTEXLITE_S3_*, else AWS_*."""
        from cortexlite_runtime.storage import StorageSettings

        defined = {
            "endpoint": self.s3_endpoint, "region": self.s3_region, "access_key": self.s3_access_key,
            "secret_key": self.s3_secret_key, "secure": None if self.s3_secure is None else str(self.s3_secure),
            "ca_bundle": self.s3_ca_bundle, "replica_endpoint": self.s3_replica_endpoint,
        }  # fmt: skip
        return StorageSettings.from_env(os.environ if environ is None else environ, defined)

    def public(self) -> dict[str, Any]:
        """The definition as shown to users: the secret key as a reference, never its value."""
        data = self.model_dump(mode="json", exclude_none=True)
        for secret in ("s3_secret_key", "nomad_token"):
            if secret in data:
                data[secret] = f"<secret:{secret}>"
        if "api_keys" in data:
            data["api_keys"] = {api: "<secret:api_key>" for api in data["api_keys"]}
        return data

    def describe(self) -> str:
        where = self.docker_host or self.nomad_addr or ("NOMAD_ADDR" if self.backend is BackendKind.NOMAD else "")
        where = where or "this machine"
        return f"{self.backend.value} on {where}, gateway {self.gateway_address}:{self.gateway_port}"


@dataclass(frozen=True)
class EnvironmentRequest:
    """The flags of `cortexlite env add`."""

    name: str
    backend: BackendKind | None = None
    docker_host: str | None = None
    nomad_addr: str | None = None
    storage: str | None = None
    gateway_port: int | None = None
    gateway_admin_port: int | None = None
    network: Network | None = None
    gateway_host: str | None = None
    host_socket: str | None = None
    auth: str | None = None
    gateway_listen: str | None = None
    s3: dict[str, Any] = field(default_factory=dict)  # s3_* fields, without the prefix
    nomad: dict[str, Any] = field(default_factory=dict)  # nomad_* fields without the prefix, registry, cpu_mhz_per_core


def build_environment(request: EnvironmentRequest) -> Environment:
    """Validate `env add`'s flags; the backend is inferred from --docker-host/--nomad-addr when not given."""
    if not _NAME.match(request.name):
        raise EnvConfigError(
            f"environment name {request.name!r}: expected lower-case letters, digits and '-', starting with a letter"
        )
    if request.docker_host and request.nomad_addr:
        raise EnvConfigError("--docker-host and --nomad-addr conflict: an environment has one backend")
    nomad = request.nomad_addr or any(value is not None for value in request.nomad.values())
    inferred = BackendKind.DOCKER if request.docker_host else BackendKind.NOMAD if nomad else None
    if request.backend is not None and inferred is not None and request.backend is not inferred:
        given = ["--" + ("nomad-token" if key == "token" else key.replace("_", "-"))
                 for key, value in request.nomad.items() if value is not None]  # fmt: skip
        flag = "--docker-host" if request.docker_host else "--nomad-addr" if request.nomad_addr else ", ".join(given)
        raise EnvConfigError(
            f"environment {request.name}: --backend {request.backend.value} conflicts with {flag} "
            f"(which mean {inferred.value})"
        )
    backend = request.backend or inferred or BackendKind.PROCESS
    values: dict[str, Any] = {
        "name": request.name,
        "backend": backend,
        "docker_host": request.docker_host,
        "nomad_addr": request.nomad_addr,
        "storage": request.storage,
        "gateway_admin_port": request.gateway_admin_port,
        "network": request.network or (Network.BRIDGE if backend is BackendKind.DOCKER else None),
        "gateway_host": request.gateway_host,
        "host_socket": request.host_socket,
        "auth": request.auth,
        "gateway_listen": request.gateway_listen,
        **{f"s3_{key}": value for key, value in request.s3.items() if value is not None},
        **{_nomad_field(key): value for key, value in request.nomad.items() if value is not None},
    }
    if request.gateway_port is not None:
        values["gateway_port"] = request.gateway_port
    try:
        environment = Environment.model_validate(values)
    except ValidationError as exc:
        raise EnvConfigError(_flag_errors(exc, request.name)) from exc
    if environment.remote_docker and not environment.storage:
        raise EnvConfigError(
            f"environment {request.name}: a remote Docker engine ({environment.docker_host}) receives projects "
            "through storage: add --storage s3://bucket/prefix (MinIO, OSS or any S3-compatible store)"
        )
    if environment.backend is BackendKind.NOMAD:
        _check_nomad(environment)
    return environment


def _nomad_field(key: str) -> str:
    return key if key in ("registry", "cpu_mhz_per_core") else f"nomad_{key}"


def _check_nomad(environment: Environment) -> None:
    if not environment.nomad_addr and not os.environ.get("NOMAD_ADDR"):
        raise EnvConfigError(
            f"environment {environment.name}: a nomad environment needs --nomad-addr (or NOMAD_ADDR), "
            "e.g. http://nomad.service:4646"
        )
    if not environment.storage:
        raise EnvConfigError(
            f"environment {environment.name}: Nomad clients receive projects through storage: add "
            "--storage s3://bucket/prefix (MinIO, OSS or any S3-compatible store the clients reach)"
        )


class _ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str | None = None
    environments: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ConfigFile:
    """`config.yaml`: read and written under a lock, replaced atomically."""

    def __init__(self, home: Path) -> None:
        self.path = home / "config.yaml"
        self._lock = Lock(home / ".config.lock")

    def environments(self) -> dict[str, Environment]:
        model = self._read()
        return {name: self._parse(name, raw) for name, raw in model.environments.items()}

    def current(self) -> str:
        return self._read().current or LOCAL

    def get(self, name: str) -> Environment | None:
        raw = self._read().environments.get(name)
        return self._parse(name, raw) if raw is not None else None

    def put(self, environment: Environment, *, replace: bool = False) -> None:
        with self._lock.hold():
            model = self._read()
            if environment.name in model.environments and not replace:
                raise EnvConfigError(f"environment {environment.name} already exists ({self.path}); remove it first")
            data = environment.model_dump(mode="json", exclude_none=True, exclude={"name"})
            model.environments[environment.name] = data
            self._write(model)

    def remove(self, name: str) -> None:
        with self._lock.hold():
            model = self._read()
            if name not in model.environments:
                raise EnvConfigError(f"no environment named {name} in {self.path}")
            del model.environments[name]
            if model.current == name:
                model.current = None
            self._write(model)

    def use(self, name: str) -> None:
        with self._lock.hold():
            model = self._read()
            if name != LOCAL and name not in model.environments:
                known = ", ".join(sorted({LOCAL, *model.environments}))
                raise EnvConfigError(f"no environment named {name} (known: {known})")
            model.current = name
            self._write(model)

    def _read(self) -> _ConfigModel:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _ConfigModel()
        except (OSError, UnicodeDecodeError) as exc:
            raise EnvConfigError(f"{self.path}: cannot read: {exc}") from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise EnvConfigError(f"{self.path}: invalid YAML: {exc}") from exc
        try:
            return _ConfigModel.model_validate(data)
        except ValidationError as exc:
            raise EnvConfigError(f"{self.path}: {_plain_errors(exc)}") from exc

    def _parse(self, name: str, raw: dict[str, Any]) -> Environment:
        try:
            return Environment.model_validate({**raw, "name": name})
        except ValidationError as exc:
            raise EnvConfigError(f"{self.path}: environments: {name}: {_plain_errors(exc)}") from exc

    def _write(self, model: _ConfigModel) -> None:
        data = model.model_dump(exclude_none=True)
        # It may hold an S3 secret key: readable by its owner only.
        atomic_write(self.path, yaml.safe_dump(data, sort_keys=False), mode=0o600)


def resolve_environment(
    config: ConfigFile, name: str | None, docker_reachable: Callable[[], str | None] = lambda: None
) -> tuple[Environment, str | None]:
    """The environment a command targets (`name`, else config.yaml's current one), and a notice.

    The built-in `local` resolves on first use and the choice is recorded: Docker when
    `docker_reachable()` names a reachable engine, else processes; the notice says so once.
    """
    chosen = name or config.current()
    found = config.get(chosen)
    if found is not None:
        return found, None
    if chosen != LOCAL:
        known = ", ".join(sorted({LOCAL, *config.environments()}))
        raise EnvConfigError(f"no environment named {chosen} (known: {known}); add it with `cortexlite env add`")
    engine = docker_reachable()
    if engine is not None:
        local = Environment(name=LOCAL, backend=BackendKind.DOCKER, network=Network.BRIDGE)
        why = f"the Docker backend (the engine at {engine} answers)"
    else:
        local = Environment(name=LOCAL, backend=BackendKind.PROCESS)
        why = "the process backend (no Docker engine answers)"
    try:
        config.put(local)
    except EnvConfigError:  # another command recorded it first
        return config.get(LOCAL) or local, None
    return local, f"environment local: using {why}; recorded in {config.path} (`cortexlite env add` changes it)"


# Fields whose `env add` flag has another name.
_FLAG_NAMES = {
    "nomad-namespace": "namespace", "nomad-region": "region", "nomad-datacenters": "datacenters",
    "nomad-ca-cert": "ca-cert",
}  # fmt: skip


def _plain_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        loc = ": ".join(str(part) for part in error["loc"])
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def _flag_errors(exc: ValidationError, name: str) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        flag = "-".join(str(part) for part in error["loc"]).replace("_", "-")
        field = "--" + _FLAG_NAMES.get(flag, flag) if error["loc"] else ""
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        parts.append(f"{field}: {message}" if field else message)
    return f"environment {name}: " + "; ".join(parts)
