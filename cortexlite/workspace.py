"""One environment, opened: its definition, state, backend and gateway, ready for a command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from cortexlite.backends.base import Backend
from cortexlite.environments import BackendKind, ConfigFile, Environment, resolve_environment
from cortexlite.errors import DockerError, EnvConfigError, NotFoundError
from cortexlite.gateway import FileRoutes, GatewayLayout, GatewayLimits, Membership, RouteStore
from cortexlite.gateway.base import Gateway, OperatorRunner
from cortexlite.gateway.client import TraefikClient
from cortexlite.gateway.process import GatewayProcess
from cortexlite.operator_process import OperatorProcess
from cortexlite.settings import IMAGE_OPTIONS_FILE, Settings
from cortexlite.state import EnvState

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["IMAGE_OPTIONS_FILE", "Workspace", "open_target"]


@dataclass(frozen=True)
class Stack:
    """What one backend kind runs an environment with."""

    backend: Backend
    gateway: Gateway
    routes: RouteStore
    operator: OperatorRunner
    client: TraefikClient | None = None  # how to read the gateway's API (default: its port on 127.0.0.1)
    state: EnvState | None = None  # where the records are (default: this machine's CORTEXLITE_HOME)


StackFactory = Callable[[Settings, Environment, EnvState, list[int]], Stack]


def _process_stack(settings: Settings, environment: Environment, state: EnvState, reserved: list[int]) -> Stack:
    from cortexlite.backends.process import ProcessBackend
    from cortexlite.bundles import replica_storage

    layout = GatewayLayout(state.root / "gateway")
    limits = GatewayLimits(read_timeout=settings.gateway_read_timeout)
    gateway = GatewayProcess(
        layout,
        environment.gateway_port,
        environment.admin_port,
        settings.traefik,
        limits,
        bind=environment.gateway_bind,
    )
    operator = OperatorProcess(state.root / "operator", environment.name, settings.home, settings.cache_dir)
    backend = ProcessBackend(settings, state, reserved, replica_storage(environment), auth=environment.auth)
    return Stack(backend, gateway, FileRoutes(layout), operator)


def _docker_stack(settings: Settings, environment: Environment, state: EnvState, reserved: list[int]) -> Stack:
    # Imported here: the Docker SDK loads only for Docker environments.
    from cortexlite.backends.container import DockerBackend
    from cortexlite.backends.docker import DockerEngine
    from cortexlite.gateway.container import ContainerRoutes, GatewayContainer
    from cortexlite.gpus import inventory
    from cortexlite.image import load_options
    from cortexlite.operator_container import OperatorContainer

    engine = DockerEngine.from_env(environment.docker_host)
    options = load_options(settings.home / IMAGE_OPTIONS_FILE).with_engine(environment.docker_host)
    labels = dict(settings.labels)
    remote = None
    if environment.remote_docker:
        from cortexlite.image import build_runtime_image
        from cortexlite.remote_state import RemoteEnvState

        # The records live on the engine's host, where the operator runs (`remote_state`).
        state = remote = RemoteEnvState(
            settings.home, environment.name, engine, labels=labels,
            image=lambda: build_runtime_image(options, None, engine).tag,
        )  # fmt: skip
    backend = DockerBackend(
        settings, state, reserved, environment=environment, engine=engine, options=options, labels=labels
    )
    gateway = GatewayContainer(
        engine, environment, options=options, cache_dir=settings.cache_dir, labels=labels, traefik=settings.traefik,
        limits=GatewayLimits(read_timeout=settings.gateway_read_timeout),
    )  # fmt: skip

    def host_gpus() -> bool:
        # Real GPUs only: the operator's container asks the NVIDIA runtime for NVML when its host has some.
        return bool(backend.gpu_inventory(lambda _line: None)[0]) if remote else bool(inventory(None))

    operator = OperatorContainer(engine, environment, settings, options, gpus=host_gpus, remote=remote)
    return Stack(backend, gateway, ContainerRoutes(engine, gateway.name), operator, gateway.client(), state)


def _docker_reachable() -> str | None:
    """The address of the engine DOCKER_HOST (or the default socket) names, when it answers a ping."""
    from cortexlite.backends.docker import DockerEngine

    try:
        with DockerEngine.from_env() as engine:
            engine.ping()
            return engine.address
    except DockerError:
        return None


_STACKS: dict[BackendKind, StackFactory] = {BackendKind.PROCESS: _process_stack, BackendKind.DOCKER: _docker_stack}


@dataclass
class Workspace:
    settings: Settings
    environment: Environment
    state: EnvState
    backend: Backend
    gateway: Gateway
    membership: Membership
    operator: OperatorRunner
    notices: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings, env: str | None = None) -> Workspace:
        config = ConfigFile(settings.home)
        environment, notice = resolve_environment(config, env or settings.env, _docker_reachable)
        if environment.backend not in _STACKS:
            raise EnvConfigError(
                f"environment {environment.name} is a {environment.backend.value} environment: this command works "
                "on process and docker environments"
            )
        return cls.of(settings, config, environment, notice)

    @classmethod
    def of(cls, settings: Settings, config: ConfigFile, environment: Environment, notice: str | None) -> Workspace:
        state = EnvState(settings.home, environment.name)
        reserved = [port for other in config.environments().values() for port in (other.gateway_port, other.admin_port)]
        stack = _STACKS[environment.backend](settings, environment, state, reserved)
        state = stack.state or state
        membership = Membership(stack.routes, stack.client or TraefikClient(environment.admin_port))
        notices = [notice] if notice else []
        return cls(settings, environment, state, stack.backend, stack.gateway, membership, stack.operator, notices)

    def require_api(self, name: str) -> None:
        """Raise `NotFoundError` unless the environment has an API called `name`."""
        if name not in self.state.names():
            raise self.unknown_api(name)

    def unknown_api(self, name: str) -> NotFoundError:
        return NotFoundError(f"no API named {name} in environment {self.environment.name}")

    @property
    def gateway_url(self) -> str:
        return f"http://{self.environment.gateway_address}:{self.environment.gateway_port}"

    def close(self) -> None:
        self.backend.close()
        if self.membership.client is not None:
            self.membership.client.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def open_target(settings: Settings, env: str | None = None) -> Workspace | Cluster:
    """The environment a command targets, opened: a `Workspace` for processes and Docker, a `Cluster` for Nomad."""
    config = ConfigFile(settings.home)
    environment, notice = resolve_environment(config, env or settings.env, _docker_reachable)
    if environment.backend is BackendKind.NOMAD:
        from cortexlite.nomad.cluster import Cluster

        return Cluster.open(settings, environment, [notice] if notice else [])
    return Workspace.of(settings, config, environment, notice)
