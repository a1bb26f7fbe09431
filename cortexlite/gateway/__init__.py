"""The gateway: Traefik, told by cortexlite which replicas serve each API (file provider)."""

from __future__ import annotations

from cortexlite.gateway.config import GatewayLayout, GatewayLimits, api_routes, router_name, static_config
from cortexlite.gateway.membership import FileRoutes, Membership, RouteStore
from cortexlite.gateway.metrics import ApiTraffic, parse_traffic

__all__ = [
    "ApiTraffic",
    "FileRoutes",
    "GatewayLayout",
    "GatewayLimits",
    "Membership",
    "RouteStore",
    "api_routes",
    "parse_traffic",
    "router_name",
    "static_config",
]
