"""Traefik's configuration as data: pure functions of the environment and the API's replicas.

Static: one `web` entry point (the environment's gateway port) for the APIs and one `traefik`
entry point (the admin port) for Traefik's API, ping and Prometheus metrics, both on 127.0.0.1;
the file provider watches a directory with one file per API.

Per API: a router for `Path(/endpoint) || PathPrefix(/endpoint/)` that strips the prefix and
retries a request that never reached a replica, and one load-balanced service whose servers are
exactly the replicas cortexlite put in routing. Traefik's own health check on `/readyz` is a safety
net for a replica that dies between two decisions; membership is still cortexlite's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "HEALTH_CHECK_INTERVAL_S",
    "PROVIDER_THROTTLE",
    "GatewayLayout",
    "api_routes",
    "router_name",
    "servers_of",
    "static_config",
]

# Traefik waits this long after a file event before applying it (default 2s): membership changes are single
# atomic renames, so there is nothing to coalesce.
PROVIDER_THROTTLE = "10ms"
HEALTH_CHECK_INTERVAL_S = 2
# POST included: retries happen only when no replica answered (a refused or dropped connection), and
# predictions are expected to be free of side effects. Traefik 3.7 retries only idempotent methods otherwise.
# Five attempts: each goes to the next replica in the rotation, which under concurrent load may be the
# dead one again (Traefik's passive health check would avoid that, but it also ejects replicas whose
# predictor answers 500).
_RETRY = {"attempts": 5, "initialInterval": "50ms", "retryNonIdempotentMethod": True}


@dataclass(frozen=True)
class GatewayLayout:
    """Where one environment's gateway keeps its files."""

    root: Path

    @property
    def static_file(self) -> Path:
        return self.root / "traefik.yml"

    @property
    def dynamic_dir(self) -> Path:
        return self.root / "dynamic"

    @property
    def staging_dir(self) -> Path:
        """Beside the watched directory, so a half-written file is never seen there."""
        return self.root / ".staging"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    @property
    def log(self) -> Path:
        return self.root / "traefik.log"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def api_file(self, api: str) -> Path:
        return self.dynamic_dir / f"{api}.yml"


def router_name(api: str) -> str:
    """The router and service name; Traefik reports it as `<name>@file` in its API and metrics."""
    return f"cortexlite-{api}"


def static_config(
    layout: GatewayLayout, *, port: int, admin_port: int, host: str = "127.0.0.1", admin_host: str = "127.0.0.1"
) -> dict[str, Any]:
    """Traefik's static configuration; `host`s are what it binds (0.0.0.0 inside a bridge-networked container)."""
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            "web": {"address": f"{host}:{port}"},
            "traefik": {"address": f"{admin_host}:{admin_port}"},
        },
        "api": {"insecure": True, "dashboard": False},
        "ping": {"entryPoint": "traefik"},
        "metrics": {"prometheus": {"entryPoint": "traefik", "addRoutersLabels": True, "addServicesLabels": True}},
        "providers": {
            "providersThrottleDuration": PROVIDER_THROTTLE,
            "file": {"directory": str(layout.dynamic_dir), "watch": True},
        },
        "accessLog": {"filePath": str(layout.access_log), "format": "json"},
        "log": {"level": "INFO", "format": "json", "noColor": True},
    }


def api_routes(api: str, endpoint: str, servers: list[str]) -> dict[str, Any]:
    """The dynamic configuration of one API: its router, middlewares and servers (replica URLs)."""
    name = router_name(api)
    middlewares: dict[str, Any] = {f"{name}-retry": {"retry": dict(_RETRY)}}
    if endpoint == "/":
        rule, priority = "PathPrefix(`/`)", 1
    else:
        rule, priority = f"Path(`{endpoint}`) || PathPrefix(`{endpoint}/`)", len(endpoint) + 10
        middlewares[f"{name}-strip"] = {"stripPrefix": {"prefixes": [endpoint]}}
    router = {
        "entryPoints": ["web"],
        "rule": rule,
        "priority": priority,
        "middlewares": sorted(middlewares, key=lambda m: not m.endswith("-strip")),
        "service": name,
    }
    service = {
        "loadBalancer": {
            "servers": [{"url": url} for url in servers],
            "healthCheck": {"path": "/readyz", "interval": f"{HEALTH_CHECK_INTERVAL_S}s", "timeout": "1s"},
        }
    }
    return {"http": {"routers": {name: router}, "middlewares": middlewares, "services": {name: service}}}


def servers_of(config: dict[str, Any], api: str) -> list[str]:
    """The replica URLs in a rendered (or read-back) API configuration."""
    service = config.get("http", {}).get("services", {}).get(router_name(api), {})
    return [server["url"] for server in service.get("loadBalancer", {}).get("servers", []) or []]
