"""Traefik's configuration as data: pure functions of the environment and the API's replicas.

Static: one `web` entry point (the environment's gateway port) for the APIs and one `traefik`
entry point (the admin port) for Traefik's API, ping and Prometheus metrics, both on 127.0.0.1;
the file provider watches a directory with one file per API.

Per API: a router for `Path(/endpoint) || PathPrefix(/endpoint/)` that strips the prefix and
retries a request that never reached a replica, and one load-balanced service whose servers are
exactly the replicas cortexlite put in routing. Traefik's own health check on `/readyz` is a safety
net for a replica that dies between two decisions; membership is still cortexlite's.

Limits (`GatewayLimits`): the `web` entry point cuts a client that has not sent its whole request
within `read_timeout` (a slow client), closes idle keep-alive connections, and answers 431 to headers
over `max_header_bytes` (Traefik's own plain-text answers, like its 404 and 502). The write timeout is
off: a prediction may run as long as its API's `networking.timeout`. Each API has its own servers
transport, whose `responseHeaderTimeout` outlasts that timeout so that the replica's JSON 504 comes first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_PREDICTION_TIMEOUT_S",
    "HEALTH_CHECK_INTERVAL_S",
    "PROVIDER_THROTTLE",
    "RESPONSE_TIMEOUT_MARGIN_S",
    "GatewayLayout",
    "GatewayLimits",
    "api_routes",
    "prediction_timeout_of",
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
# The replica answers 504 at its API's networking.timeout; the gateway gives up on it this much later.
RESPONSE_TIMEOUT_MARGIN_S = 5.0
DEFAULT_PREDICTION_TIMEOUT_S = 60.0  # networking.timeout's default


@dataclass(frozen=True)
class GatewayLimits:
    """What the `web` entry point allows a client (Traefik 3's entryPoints.<name>.transport.respondingTimeouts
    and entryPoints.<name>.http.maxHeaderBytes)."""

    read_timeout: float = 60.0  # seconds to receive a whole request, body included; 0: none
    idle_timeout: float = 180.0  # seconds a keep-alive connection may wait for its next request
    max_header_bytes: int = 65_536  # the replica's own limit (CORTEXLITE_MAX_HEADER_BYTES) by default

    def entry_point(self) -> dict[str, Any]:
        timeouts = {
            "readTimeout": _duration(self.read_timeout),
            "writeTimeout": "0s",  # never cut an answer: the replica's networking.timeout bounds a prediction
            "idleTimeout": _duration(self.idle_timeout),
        }
        return {"transport": {"respondingTimeouts": timeouts}, "http": {"maxHeaderBytes": self.max_header_bytes}}


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
    layout: GatewayLayout, *, port: int, admin_port: int, host: str = "127.0.0.1", admin_host: str = "127.0.0.1",
    limits: GatewayLimits | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Traefik's static configuration; `host`s are what it binds (0.0.0.0 inside a bridge-networked container)."""
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            "web": {"address": f"{host}:{port}", **(limits or GatewayLimits()).entry_point()},
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


def api_routes(
    api: str, endpoint: str, servers: list[str], prediction_timeout: float = DEFAULT_PREDICTION_TIMEOUT_S
) -> dict[str, Any]:
    """The dynamic configuration of one API: its router, middlewares, servers (replica URLs) and their transport."""
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
            "serversTransport": name,
        }
    }
    waits = {"responseHeaderTimeout": _duration(prediction_timeout + RESPONSE_TIMEOUT_MARGIN_S)}
    return {
        "http": {
            "routers": {name: router},
            "middlewares": middlewares,
            "services": {name: service},
            "serversTransports": {name: {"forwardingTimeouts": waits}},
        }
    }


def prediction_timeout_of(config: dict[str, Any], api: str) -> float | None:
    """The prediction timeout a rendered (or read-back) API configuration was made for; None when unknown."""
    transport = config.get("http", {}).get("serversTransports", {}).get(router_name(api), {})
    raw = str(transport.get("forwardingTimeouts", {}).get("responseHeaderTimeout", ""))
    try:
        return float(raw.removesuffix("s")) - RESPONSE_TIMEOUT_MARGIN_S if raw.endswith("s") else None
    except ValueError:
        return None


def servers_of(config: dict[str, Any], api: str) -> list[str]:
    """The replica URLs in a rendered (or read-back) API configuration."""
    service = config.get("http", {}).get("services", {}).get(router_name(api), {})
    return [server["url"] for server in service.get("loadBalancer", {}).get("servers", []) or []]


def _duration(seconds: float) -> str:
    """A Go duration: Traefik reads a bare number as seconds too, but `1.5` only this way."""
    return f"{seconds:g}s" if seconds < 1e6 else f"{int(seconds)}s"
