"""A gateway made by compose/docker-compose.yml is kept by `GatewayContainer.ensure`, whatever its fingerprint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest

from cortexlite.backends.docker import DockerEngine
from cortexlite.environments import BackendKind, Environment, Network
from cortexlite.gateway.container import MANAGED_BY, GatewayContainer, GatewayPlan
from cortexlite.image import ImageOptions


class FakeEngine:
    """The few `DockerEngine` calls `ensure` makes on an existing gateway; anything else is a failure."""

    def __init__(self, container: dict[str, Any]) -> None:
        self.container = container
        self.calls: list[str] = []

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        return self.container if ref == self.container["Name"] else None

    def start_container(self, ref: str) -> None:
        self.calls.append(f"start {ref}")
        self.container["State"]["Running"] = True

    def remove_container(self, ref: str) -> None:
        self.calls.append(f"remove {ref}")


class _Ping(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ping" else 404)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def admin_port() -> Iterator[int]:
    """A Traefik-like admin port whose /ping answers 200, as a started gateway's does."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ping)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(5)


def _gateway(admin_port: int, labels: dict[str, str], *, running: bool) -> tuple[GatewayContainer, FakeEngine]:
    environment = Environment(
        name="gpu1", backend=BackendKind.DOCKER, network=Network.BRIDGE, gateway_port=8888,
        gateway_admin_port=admin_port,
    )  # fmt: skip
    stale = "cortexlite/gateway:0123456789ab|bridge|8888|8889"  # another image than this cortexlite's
    found = {"cortexlite.env": "gpu1", "cortexlite.role": "gateway", "cortexlite.gateway": stale} | labels
    container = {"Name": "cortexlite-gpu1-gateway", "Config": {"Labels": found}, "State": {"Running": running}}
    engine = FakeEngine(container)
    gateway = GatewayContainer(
        cast(DockerEngine, engine), environment, options=ImageOptions(), cache_dir=Path("/nonexistent"), labels={}
    )
    return gateway, engine


def _current_plan(gateway: GatewayContainer, _log: object) -> GatewayPlan:
    """What `plan` gives when this cortexlite's gateway image differs from the running one."""
    return GatewayPlan(
        env="gpu1", image="cortexlite/gateway:fedcba987654", network=Network.BRIDGE, port=8888,
        admin_port=gateway.environment.admin_port, labels={},
    )  # fmt: skip


def test_a_running_compose_gateway_is_kept_without_planning(admin_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway, engine = _gateway(admin_port, {MANAGED_BY: "compose"}, running=True)

    def no_plan(_self: GatewayContainer, _log: object) -> GatewayPlan:
        raise AssertionError("a compose gateway needs no plan (and no gateway image build)")

    monkeypatch.setattr(GatewayContainer, "plan", no_plan)
    assert gateway.ensure(print) == ("Traefik container cortexlite-gpu1-gateway", False)
    assert engine.calls == []


def test_a_stopped_compose_gateway_is_started_and_awaited(admin_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway, engine = _gateway(admin_port, {MANAGED_BY: "compose"}, running=False)
    monkeypatch.setattr(GatewayContainer, "plan", _current_plan)
    assert gateway.ensure(print) == ("Traefik container cortexlite-gpu1-gateway", True)
    assert engine.calls == ["start cortexlite-gpu1-gateway"]


@pytest.mark.parametrize("labels", [{}, {MANAGED_BY: "someone-else"}])
def test_any_other_gateway_of_another_fingerprint_is_replaced(
    admin_port: int, monkeypatch: pytest.MonkeyPatch, labels: dict[str, str]
) -> None:
    gateway, engine = _gateway(admin_port, labels, running=True)
    created: list[GatewayPlan] = []
    monkeypatch.setattr(GatewayContainer, "plan", _current_plan)
    monkeypatch.setattr(GatewayContainer, "_create", lambda _self, plan: created.append(plan))
    lines: list[str] = []
    _, started = gateway.ensure(lines.append)
    assert started and engine.calls == ["remove cortexlite-gpu1-gateway"]
    assert [plan.image for plan in created] == ["cortexlite/gateway:fedcba987654"]
    assert lines == ["replacing the gateway container cortexlite-gpu1-gateway (its image or ports changed)"]
