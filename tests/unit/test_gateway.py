"""The gateway as data: Traefik's static and per-API configuration, and traffic from its metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cortexlite.gateway.config import (
    HEALTH_CHECK_INTERVAL_S,
    PROVIDER_THROTTLE,
    GatewayLayout,
    GatewayLimits,
    api_routes,
    prediction_timeout_of,
    router_name,
    servers_of,
    static_config,
)
from cortexlite.gateway.membership import FileRoutes, Membership
from cortexlite.gateway.metrics import ApiTraffic, parse_traffic

_REPLICAS = ["http://127.0.0.1:40001", "http://127.0.0.1:40003", "http://127.0.0.1:40002"]


def test_router_name() -> None:
    assert router_name("iris") == "cortexlite-iris"


def test_routes_for_a_path_endpoint() -> None:
    config = api_routes("iris", "/iris", _REPLICAS)
    http = config["http"]
    assert set(http) == {"routers", "middlewares", "services", "serversTransports"}
    assert http["routers"] == {
        "cortexlite-iris": {
            "entryPoints": ["web"],
            "rule": "Path(`/iris`) || PathPrefix(`/iris/`)",
            "priority": len("/iris") + 10,
            "middlewares": ["cortexlite-iris-strip", "cortexlite-iris-retry"],
            "service": "cortexlite-iris",
        }
    }
    assert http["middlewares"] == {
        "cortexlite-iris-strip": {"stripPrefix": {"prefixes": ["/iris"]}},
        "cortexlite-iris-retry": {
            "retry": {"attempts": 5, "initialInterval": "50ms", "retryNonIdempotentMethod": True}
        },
    }
    assert http["services"] == {
        "cortexlite-iris": {
            "loadBalancer": {
                "servers": [{"url": url} for url in _REPLICAS],
                "healthCheck": {"path": "/readyz", "interval": f"{HEALTH_CHECK_INTERVAL_S}s", "timeout": "1s"},
                "serversTransport": "cortexlite-iris",
            }
        }
    }
    # the API's networking.timeout (60s by default) plus a margin: the replica's own JSON 504 comes first
    assert http["serversTransports"] == {"cortexlite-iris": {"forwardingTimeouts": {"responseHeaderTimeout": "65s"}}}


def test_routes_for_the_root_endpoint() -> None:
    router = api_routes("home", "/", _REPLICAS[:1])["http"]["routers"]["cortexlite-home"]
    assert (router["rule"], router["priority"], router["middlewares"]) == (
        "PathPrefix(`/`)",
        1,
        ["cortexlite-home-retry"],
    )
    assert set(api_routes("home", "/", [])["http"]["middlewares"]) == {"cortexlite-home-retry"}


@pytest.mark.parametrize(
    ("shorter", "longer"),
    [("/", "/a"), ("/iris", "/iris/v2"), ("/a", "/ab"), ("/models", "/models/iris/classify")],
)
def test_longer_endpoints_win(shorter: str, longer: str) -> None:
    def priority(endpoint: str) -> int:
        return int(api_routes("x", endpoint, [])["http"]["routers"]["cortexlite-x"]["priority"])

    assert priority(longer) > priority(shorter)


def test_retry_settings_are_not_shared() -> None:
    first = api_routes("a", "/a", [])
    first["http"]["middlewares"]["cortexlite-a-retry"]["retry"]["attempts"] = 99
    assert api_routes("b", "/b", [])["http"]["middlewares"]["cortexlite-b-retry"]["retry"]["attempts"] == 5


@pytest.mark.parametrize("servers", [[], _REPLICAS[:1], _REPLICAS, list(reversed(_REPLICAS))])
def test_servers_round_trip(servers: list[str]) -> None:
    assert servers_of(api_routes("iris", "/iris", servers), "iris") == servers


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"http": {}},
        {"http": {"services": {"cortexlite-other": {"loadBalancer": {"servers": [{"url": "http://x"}]}}}}},
        {"http": {"services": {"cortexlite-iris": {}}}},
        {"http": {"services": {"cortexlite-iris": {"loadBalancer": {"servers": None}}}}},
    ],
)
def test_servers_of_partial_config(config: dict[str, object]) -> None:
    assert servers_of(config, "iris") == []


def test_static_config(tmp_path: Path) -> None:
    layout = GatewayLayout(tmp_path / "gw")
    config = static_config(layout, port=8888, admin_port=8889)
    assert config["entryPoints"] == {
        "web": {
            "address": "127.0.0.1:8888",
            "transport": {"respondingTimeouts": {"readTimeout": "60s", "writeTimeout": "0s", "idleTimeout": "180s"}},
            "http": {"maxHeaderBytes": 65536},
        },
        "traefik": {"address": "127.0.0.1:8889"},
    }
    assert config["providers"] == {
        "providersThrottleDuration": PROVIDER_THROTTLE,
        "file": {"directory": str(tmp_path / "gw" / "dynamic"), "watch": True},
    }
    assert config["metrics"]["prometheus"]["entryPoint"] == "traefik"
    assert config["metrics"]["prometheus"]["addRoutersLabels"] is True
    assert config["ping"] == {"entryPoint": "traefik"}
    assert config["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    assert config["api"]["dashboard"] is False
    assert config["accessLog"]["filePath"] == str(layout.access_log)


def test_static_config_admin_stays_local(tmp_path: Path) -> None:
    config = static_config(GatewayLayout(tmp_path), port=9000, admin_port=9001, host="0.0.0.0")
    assert config["entryPoints"]["web"]["address"] == "0.0.0.0:9000"
    assert config["entryPoints"]["traefik"] == {"address": "127.0.0.1:9001"}


def test_static_config_limits(tmp_path: Path) -> None:
    limits = GatewayLimits(read_timeout=2.5, idle_timeout=30, max_header_bytes=8192)
    web = static_config(GatewayLayout(tmp_path), port=9000, admin_port=9001, limits=limits)["entryPoints"]["web"]
    assert web["transport"]["respondingTimeouts"] == {"readTimeout": "2.5s", "writeTimeout": "0s", "idleTimeout": "30s"}
    assert web["http"] == {"maxHeaderBytes": 8192}


@pytest.mark.parametrize(("timeout", "expected"), [(1.0, "6s"), (60.0, "65s"), (0.5, "5.5s"), (86_400.0, "86405s")])
def test_the_gateway_outwaits_the_prediction_timeout(timeout: float, expected: str) -> None:
    config = api_routes("iris", "/iris", _REPLICAS, prediction_timeout=timeout)
    transport = config["http"]["serversTransports"]["cortexlite-iris"]
    assert transport == {"forwardingTimeouts": {"responseHeaderTimeout": expected}}
    assert config["http"]["services"]["cortexlite-iris"]["loadBalancer"]["serversTransport"] == "cortexlite-iris"
    assert prediction_timeout_of(config, "iris") == timeout
    assert prediction_timeout_of({}, "iris") is None


def test_membership_keeps_the_prediction_timeout_it_was_given(tmp_path: Path) -> None:
    membership = Membership(FileRoutes(GatewayLayout(tmp_path)), client=None)
    membership.set("iris", "/iris", _REPLICAS[:1], prediction_timeout=2.0)
    membership.set("iris", "/iris", _REPLICAS)  # a later change of servers alone (a retirement, a clean-up)
    written = yaml.safe_load(GatewayLayout(tmp_path).api_file("iris").read_text())
    assert prediction_timeout_of(written, "iris") == 2.0 and servers_of(written, "iris") == sorted(_REPLICAS)
    fresh = Membership(FileRoutes(GatewayLayout(tmp_path)), client=None)
    fresh.set("iris", "/iris", _REPLICAS[:1])
    assert prediction_timeout_of(yaml.safe_load(GatewayLayout(tmp_path).api_file("iris").read_text()), "iris") == 2.0
    membership.set("new", "/new", [])
    assert prediction_timeout_of(yaml.safe_load(GatewayLayout(tmp_path).api_file("new").read_text()), "new") == 60.0


def test_layout(tmp_path: Path) -> None:
    layout = GatewayLayout(tmp_path)
    assert layout.api_file("iris") == tmp_path / "dynamic" / "iris.yml"
    assert layout.staging_dir.parent == layout.dynamic_dir.parent
    assert layout.staging_dir != layout.dynamic_dir
    assert layout.static_file == tmp_path / "traefik.yml"


# parse_traffic

_METRICS = """\
# HELP traefik_config_reloads_total Config reloads
# TYPE traefik_config_reloads_total counter
traefik_config_reloads_total 7
# HELP traefik_router_requests_total How many HTTP requests are processed on a router, partitioned by service, status code, protocol, and method.
# TYPE traefik_router_requests_total counter
traefik_router_requests_total{code="200",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 120
traefik_router_requests_total{code="201",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 3
traefik_router_requests_total{code="200",method="GET",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 5
traefik_router_requests_total{code="404",method="GET",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 4
traefik_router_requests_total{code="503",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 2
traefik_router_requests_total{code="500",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 1
traefik_router_requests_total{code="200",method="POST",protocol="http",router="cortexlite-iris-v2@file",service="cortexlite-iris-v2@file"} 1000
traefik_router_requests_total{code="200",method="POST",protocol="http",router="cortexlite-wine@file",service="cortexlite-wine@file"} 9
traefik_router_requests_total{code="200",method="GET",protocol="http",router="dashboard@internal",service="api@internal"} 50
# HELP traefik_router_request_duration_seconds How long it took to process the request on a router, partitioned by service, status code, protocol, and method.
# TYPE traefik_router_request_duration_seconds histogram
traefik_router_request_duration_seconds_bucket{code="200",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file",le="0.1"} 100
traefik_router_request_duration_seconds_bucket{code="200",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file",le="+Inf"} 120
traefik_router_request_duration_seconds_sum{code="200",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 6.5
traefik_router_request_duration_seconds_count{code="200",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 120
traefik_router_request_duration_seconds_sum{code="503",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 1.5
traefik_router_request_duration_seconds_count{code="503",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 5
traefik_router_request_duration_seconds_sum{code="200",method="POST",protocol="http",router="cortexlite-wine@file",service="cortexlite-wine@file"} 0.9
traefik_router_request_duration_seconds_count{code="200",method="POST",protocol="http",router="cortexlite-wine@file",service="cortexlite-wine@file"} 9
# HELP traefik_service_requests_total How many HTTP requests processed on a service, partitioned by status code, protocol, and method.
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="200",method="POST",protocol="http",service="cortexlite-iris@file"} 777
traefik_service_requests_total{code="502",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 9
traefik_service_request_duration_seconds_sum{code="200",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 1000
traefik_service_request_duration_seconds_count{code="200",method="POST",protocol="http",router="cortexlite-iris@file",service="cortexlite-iris@file"} 1
traefik_service_retries_total{service="cortexlite-iris@file"} 12
"""  # noqa: E501 (Traefik writes one sample per line)


def test_traffic_by_status_class() -> None:
    traffic = parse_traffic(_METRICS, ["iris", "wine", "quiet"])
    assert set(traffic) == {"iris", "wine", "quiet"}
    iris = traffic["iris"]
    assert (iris.count("2XX"), iris.count("4XX"), iris.count("5XX"), iris.count("3XX")) == (128, 4, 3, 0)
    assert iris.total == 135
    assert iris.average_latency == pytest.approx(8.0 / 125)
    wine = traffic["wine"]
    assert (wine.count("2XX"), wine.total) == (9, 9)
    assert wine.average_latency == pytest.approx(0.1)


def test_api_without_samples() -> None:
    quiet = parse_traffic(_METRICS, ["quiet"])["quiet"]
    assert (quiet.count("2XX"), quiet.count("4XX"), quiet.count("5XX"), quiet.total) == (0, 0, 0, 0)
    assert quiet.average_latency is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# HELP traefik_router_requests_total x\n# TYPE traefik_router_requests_total counter\n",
        'traefik_service_requests_total{code="200",router="cortexlite-iris@file"} 5\n',
        'traefik_router_requests_total{code="200",router="cortexlite-iris@docker"} 5\n',
        'traefik_router_requests_total{code="200",router="cortexlite-iris@file"} many\n',
        "traefik_router_requests_total 5\n",
        "not prometheus at all {}\n",
    ],
)
def test_nothing_counted(text: str) -> None:
    assert parse_traffic(text, ["iris"]) == {"iris": ApiTraffic()}


def test_sample_with_timestamp() -> None:
    text = 'traefik_router_requests_total{code="200",router="cortexlite-iris@file"} 5 1700000000000\n'
    assert parse_traffic(text, ["iris"])["iris"].count("2XX") == 5


def test_no_apis() -> None:
    assert parse_traffic(_METRICS, []) == {}
