"""Traefik's HTTP API on the admin port: what it has loaded, its ping and its metrics."""

from __future__ import annotations

from typing import Any

import httpx

from cortexlite.errors import GatewayError
from cortexlite.gateway.config import router_name

__all__ = ["TraefikClient"]


class TraefikClient:
    """`transport` replaces the network (a remote gateway's API is read from inside its container)."""

    def __init__(self, admin_port: int, timeout: float = 2.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = f"http://127.0.0.1:{admin_port}"
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False, transport=transport)

    def close(self) -> None:
        self._http.close()

    def ping(self) -> bool:
        try:
            return self._http.get("/ping").status_code == 200
        except httpx.HTTPError:
            return False

    def version(self) -> str | None:
        try:
            answer = self._http.get("/api/version")
            return str(answer.json().get("Version")) if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def servers(self, api: str) -> list[str] | None:
        """The servers Traefik routes `api` to now; None when it has no such service."""
        service = self._object(f"/api/http/services/{router_name(api)}@file", f"the service of {api}")
        if service is None:
            return None
        return sorted(server["url"] for server in service.get("loadBalancer", {}).get("servers", []) or [])

    def rule(self, api: str) -> str | None:
        """The rule of the router Traefik runs for `api`; None when it has no such router."""
        router = self._object(f"/api/http/routers/{router_name(api)}@file", f"the router of {api}")
        rule = router.get("rule") if router is not None else None
        return str(rule) if rule is not None else None

    def _object(self, path: str, what: str) -> dict[str, Any] | None:
        """One object of Traefik's API; None when it has no such object."""
        try:
            answer = self._http.get(path)
        except httpx.HTTPError as exc:
            raise GatewayError(f"the gateway's API at {self.base_url} did not answer: {exc}") from exc
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise GatewayError(f"the gateway's API answered {answer.status_code} for {what}")
        found = answer.json()
        return found if isinstance(found, dict) else None

    def metrics(self) -> str:
        try:
            answer = self._http.get("/metrics")
        except httpx.HTTPError as exc:
            raise GatewayError(f"the gateway's metrics at {self.base_url} did not answer: {exc}") from exc
        return answer.text if answer.status_code == 200 else ""
