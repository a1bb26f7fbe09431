"""Which replicas serve each API: the dynamic files are the record, Traefik's API the confirmation.

A change is written atomically (a rename from a staging directory) and then confirmed by asking
Traefik what it routes to, so "this replica is out of routing" is a fact before it gets SIGTERM,
never a guess after a sleep.
"""

from __future__ import annotations

import contextlib
import time

import yaml

from cortexlite.errors import GatewayError
from cortexlite.files import atomic_write
from cortexlite.gateway.client import TraefikClient
from cortexlite.gateway.config import GatewayLayout, api_routes, servers_of

__all__ = ["CONFIRM_TIMEOUT_S", "Membership"]

CONFIRM_TIMEOUT_S = 15.0


class Membership:
    def __init__(self, layout: GatewayLayout, client: TraefikClient | None) -> None:
        self.layout = layout
        self.client = client

    def apis(self) -> list[str]:
        if not self.layout.dynamic_dir.is_dir():
            return []
        return sorted(path.stem for path in self.layout.dynamic_dir.glob("*.yml"))

    def members(self, api: str) -> list[str]:
        """The replica URLs routed for `api` (empty when it has no routing file)."""
        try:
            data = yaml.safe_load(self.layout.api_file(api).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return []
        return sorted(servers_of(data, api)) if isinstance(data, dict) else []

    def set(self, api: str, endpoint: str, servers: list[str], timeout: float = CONFIRM_TIMEOUT_S) -> None:
        """Route `api` to exactly `servers` and wait until Traefik does."""
        text = yaml.safe_dump(api_routes(api, endpoint, sorted(servers)), sort_keys=True)
        path = self.layout.api_file(api)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write(path, text, staging_dir=self.layout.staging_dir)
        self._confirm(api, sorted(servers), timeout)

    def remove(self, api: str, timeout: float = CONFIRM_TIMEOUT_S) -> None:
        """Stop routing `api` at all (its endpoint then answers 404)."""
        with contextlib.suppress(FileNotFoundError):
            self.layout.api_file(api).unlink()
        self._confirm(api, None, timeout)

    def _confirm(self, api: str, expected: list[str] | None, timeout: float) -> None:
        if self.client is None:
            return
        deadline = time.monotonic() + timeout
        seen: list[str] | None = None
        while True:
            try:
                seen = self.client.servers(api)
            except GatewayError:
                seen = ["(no answer)"]
            if seen == expected:
                return
            if time.monotonic() >= deadline:
                raise GatewayError(
                    f"the gateway did not apply the routing of {api} within {timeout:g}s "
                    f"(expected {expected}, it routes to {seen}); see {self.layout.log}"
                )
            time.sleep(0.02)
