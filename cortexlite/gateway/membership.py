"""Which replicas serve each API: the dynamic files are the record, Traefik's API the confirmation.

A change is written atomically (a rename from a staging directory) and then confirmed by asking
Traefik what it routes to, so "this replica is out of routing" is a fact before it gets SIGTERM,
never a guess after a sleep. Where the files live is a `RouteStore`: a local directory for a
Traefik process, a volume of the gateway container (written through the Docker API) for Docker.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Protocol

import yaml

from cortexlite.errors import GatewayError
from cortexlite.files import atomic_write
from cortexlite.gateway.client import TraefikClient
from cortexlite.gateway.config import (
    DEFAULT_PREDICTION_TIMEOUT_S,
    GatewayLayout,
    api_routes,
    prediction_timeout_of,
    router_name,
    servers_of,
)

__all__ = ["CONFIRM_TIMEOUT_S", "FileRoutes", "Membership", "RouteStore"]

CONFIRM_TIMEOUT_S = 15.0


class RouteStore(Protocol):
    """The watched directory of the file provider: one `<api>.yml` per API, replaced atomically."""

    where: str  # for messages: where the files and the gateway's log are

    def read(self, api: str) -> str | None: ...

    def write(self, api: str, text: str) -> None: ...

    def delete(self, api: str) -> None: ...

    def names(self) -> list[str]: ...


class FileRoutes:
    """The directory a Traefik process on this machine watches."""

    def __init__(self, layout: GatewayLayout) -> None:
        self.layout = layout
        self.where = f"{layout.dynamic_dir}; the gateway's log is {layout.log}"

    def read(self, api: str) -> str | None:
        try:
            return self.layout.api_file(api).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def write(self, api: str, text: str) -> None:
        atomic_write(self.layout.api_file(api), text, staging_dir=self.layout.staging_dir)

    def delete(self, api: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.layout.api_file(api).unlink()

    def names(self) -> list[str]:
        if not self.layout.dynamic_dir.is_dir():
            return []
        return sorted(path.stem for path in self.layout.dynamic_dir.glob("*.yml"))


class Membership:
    """Routing of one environment. A command that holds an API's lock is its only writer, so what
    this object wrote (or read once) is what the store holds: reads after the first come from memory.
    """

    def __init__(self, store: RouteStore, client: TraefikClient | None) -> None:
        self.store = store
        self.client = client
        self._texts: dict[str, str | None] = {}

    def apis(self) -> list[str]:
        return self.store.names()

    def has(self, api: str) -> bool:
        """Whether `api` has a routing file (possibly with no servers)."""
        return self._text(api) is not None

    def members(self, api: str) -> list[str]:
        """The replica URLs routed for `api` (empty when it has no routing file)."""
        return sorted(servers_of(self._routes(api), api))

    def set(
        self, api: str, endpoint: str, servers: list[str], timeout: float = CONFIRM_TIMEOUT_S, *,
        prediction_timeout: float | None = None,
    ) -> None:  # fmt: skip
        """Route `api` to exactly `servers` and wait until Traefik does.

        `prediction_timeout`: the API's `networking.timeout`, which the gateway outwaits; None keeps the one
        `api` is routed with (the default for a new API).
        """
        if prediction_timeout is None:
            prediction_timeout = prediction_timeout_of(self._routes(api), api) or DEFAULT_PREDICTION_TIMEOUT_S
        routes = api_routes(api, endpoint, sorted(servers), prediction_timeout)
        text = yaml.safe_dump(routes, sort_keys=True)
        if self._text(api) != text:
            self.store.write(api, text)
            self._texts[api] = text
        self._confirm(api, (sorted(servers), routes["http"]["routers"][router_name(api)]["rule"]), timeout)

    def remove(self, api: str, timeout: float = CONFIRM_TIMEOUT_S) -> None:
        """Stop routing `api` at all (its endpoint then answers 404)."""
        self.store.delete(api)
        self._texts[api] = None
        self._confirm(api, (None, None), timeout)

    def clear(self) -> None:
        """Forget every routing file, unconfirmed (the gateway is about to stop)."""
        for api in self.store.names():
            self.store.delete(api)
            self._texts[api] = None

    def _routes(self, api: str) -> dict[str, Any]:
        text = self._text(api)
        try:
            data = yaml.safe_load(text) if text is not None else None
        except yaml.YAMLError:
            return {}
        return data if isinstance(data, dict) else {}

    def _text(self, api: str) -> str | None:
        if api not in self._texts:
            self._texts[api] = self.store.read(api)
        return self._texts[api]

    def _confirm(self, api: str, expected: tuple[list[str] | None, str | None], timeout: float) -> None:
        """Wait until Traefik routes `api` to exactly these servers with this rule (None, None: not at all)."""
        if self.client is None:
            return
        deadline = time.monotonic() + timeout
        seen: tuple[list[str] | None, str | None] = (None, None)
        while True:
            try:
                seen = (self.client.servers(api), self.client.rule(api))
            except GatewayError:
                seen = (["(no answer)"], None)
            if seen == expected:
                return
            if time.monotonic() >= deadline:
                raise GatewayError(
                    f"the gateway did not apply the routing of {api} within {timeout:g}s "
                    f"(expected {expected}, it routes to {seen}); see {self.store.where}"
                )
            time.sleep(0.02)
