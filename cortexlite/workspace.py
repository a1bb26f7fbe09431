"""One environment, opened: its definition, state, backend and gateway, ready for a command."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import TracebackType

from cortexlite.backends.base import Backend
from cortexlite.environments import BackendKind, ConfigFile, Environment, resolve_environment
from cortexlite.errors import EnvConfigError, NotFoundError
from cortexlite.gateway import GatewayLayout, Membership
from cortexlite.gateway.client import TraefikClient
from cortexlite.gateway.process import GatewayProcess
from cortexlite.settings import Settings
from cortexlite.state import EnvState

__all__ = ["Workspace"]

# Backends by name, imported only when used (the Docker SDK loads only for Docker environments).
_BACKENDS = {BackendKind.PROCESS: "cortexlite.backends.process:ProcessBackend"}


@dataclass
class Workspace:
    settings: Settings
    environment: Environment
    state: EnvState
    backend: Backend
    gateway: GatewayProcess
    membership: Membership
    notices: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings, env: str | None = None) -> Workspace:
        config = ConfigFile(settings.home)
        environment, notice = resolve_environment(config, env or settings.env)
        if environment.backend not in _BACKENDS:
            raise EnvConfigError(
                f"environment {environment.name} uses the {environment.backend.value} backend, which this version of "
                "cortexlite does not have yet (only process environments can deploy); "
                f"use another environment with -e, or `cortexlite env use local`"
            )
        state = EnvState(settings.home, environment.name)
        reserved = [port for other in config.environments().values() for port in (other.gateway_port, other.admin_port)]
        module, _, name = _BACKENDS[environment.backend].partition(":")
        backend = getattr(importlib.import_module(module), name)(settings, state, reserved)
        layout = GatewayLayout(state.root / "gateway")
        gateway = GatewayProcess(layout, environment.gateway_port, environment.admin_port, settings.traefik)
        membership = Membership(layout, TraefikClient(environment.admin_port))
        return cls(settings, environment, state, backend, gateway, membership, [notice] if notice else [])

    def require_api(self, name: str) -> None:
        """Raise `NotFoundError` unless the environment has an API called `name`."""
        if name not in self.state.names():
            raise self.unknown_api(name)

    def unknown_api(self, name: str) -> NotFoundError:
        return NotFoundError(f"no API named {name} in environment {self.environment.name}")

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.environment.gateway_port}"

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
