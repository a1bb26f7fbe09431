"""`get`: what each API is doing, read back from the backend, the gateway and the records.

Status is one of Cortex's: `live` (every requested replica up to date and serving), `updating`
(an update runs), `error` (fewer serving replicas than requested, and no update running; the
reason says why). Traffic comes from the gateway's router metrics.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cortexlite.backends.base import Probe, Replica, ReplicaStatus
from cortexlite.errors import BusyError, GatewayError
from cortexlite.gateway import ApiTraffic, parse_traffic
from cortexlite.operator import last_event
from cortexlite.recovery import acquire
from cortexlite.state import ApiRecord
from cortexlite.updater import Report
from cortexlite.workspace import Workspace

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["ApiView", "ReplicaView", "get"]


@dataclass(frozen=True)
class ReplicaView:
    id: str
    status: str
    address: str
    version: str
    up_to_date: bool
    serving: bool
    created_at: float
    reason: str | None = None
    pid: int | None = None
    container: str | None = None
    condition: str | None = None


@dataclass(frozen=True)
class ApiView:
    name: str
    status: str
    endpoint: str
    url: str
    requested: int
    up_to_date: int
    last_update: float | None
    replicas: list[ReplicaView]
    requests: dict[str, int] = field(default_factory=dict)
    avg_latency_s: float | None = None
    reason: str | None = None
    last_scaling: dict[str, Any] | None = None  # the operator's last autoscaling event

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def get(ws: Workspace | Cluster, name: str | None, report: Report) -> list[ApiView]:
    """Every API of the environment (or just `name`), repairing interrupted updates on the way."""
    if not isinstance(ws, Workspace):
        from cortexlite.nomad.status import cluster_views

        return cluster_views(ws, name)
    if name is not None:
        ws.require_api(name)
    names = [name] if name is not None else ws.state.names()
    for api in names:
        _repair(ws, api, report)
    gateway_up = ws.gateway.running()
    traffic = _traffic(ws, names) if gateway_up else {}
    views = []
    for api in names:
        record = ws.state.api(api)
        if record is not None:
            view = _view(ws, record, traffic.get(api, ApiTraffic()))
            if not gateway_up and view.status == "live":
                reason = f"the gateway ({ws.gateway_url}) is not running; `cortexlite up` starts it"
                view = replace(view, status="error", reason=reason)
            views.append(view)
    return views


def _repair(ws: Workspace, api: str, report: Report) -> None:
    """Roll back an interrupted update; an update still running (or another command) is left alone."""
    marker = ws.state.marker(api)
    if marker is None or marker.owner.alive():
        return
    with contextlib.suppress(BusyError):
        acquire(ws, api, report).release()


def _traffic(ws: Workspace, names: list[str]) -> dict[str, ApiTraffic]:
    if ws.membership.client is None:
        return {}
    try:
        return parse_traffic(ws.membership.client.metrics(), names)
    except GatewayError:
        return {}


def _view(ws: Workspace, record: ApiRecord, traffic: ApiTraffic) -> ApiView:
    replicas = ws.backend.replicas(record.name)
    with ThreadPoolExecutor(max_workers=8) as pool:
        probes = list(pool.map(ws.backend.probe, replicas))
    routed = set(ws.membership.members(record.name))
    views = [_replica_view(replica, probe, record, routed) for replica, probe in zip(replicas, probes, strict=True)]
    marker = ws.state.marker(record.name)
    current = sum(1 for view in views if view.up_to_date and view.serving)
    status, reason = _status(record, views, current, marker is not None and marker.owner.alive())
    if status == "error" and len(views) < record.requested:
        shortfall = ws.backend.compute_shortfall(record.release(), record.requested - len(views))
        if shortfall is not None:
            status, reason = "compute unavailable", shortfall
    endpoint = record.endpoint
    return ApiView(
        name=record.name, status=status, endpoint=endpoint, url=f"{ws.gateway_url}{endpoint}",
        requested=record.requested, up_to_date=current, last_update=record.updated_at, replicas=views,
        requests={key: traffic.count(key) for key in ("2XX", "4XX", "5XX")},
        avg_latency_s=traffic.average_latency, reason=reason, last_scaling=_last_scaling(ws, record.name),
    )  # fmt: skip


def _last_scaling(ws: Workspace, name: str) -> dict[str, Any] | None:
    event = last_event(ws.state, name)
    return asdict(event) if event is not None else None


def _replica_view(replica: Replica, probe: Probe, record: ApiRecord, routed: set[str]) -> ReplicaView:
    pid, container = replica.detail.get("pid"), replica.detail.get("container")
    return ReplicaView(
        id=replica.id, status=probe.status.value, address=replica.address, version=replica.version,
        up_to_date=replica.version == record.version,
        serving=replica.address in routed and probe.status is ReplicaStatus.READY,
        created_at=replica.created_at, reason=probe.reason, pid=pid if isinstance(pid, int) else None,
        container=container if isinstance(container, str) else None, condition=probe.condition,
    )  # fmt: skip


def _status(record: ApiRecord, views: list[ReplicaView], current: int, updating: bool) -> tuple[str, str | None]:
    if updating:
        return "updating", None
    if current >= record.requested:
        return "live", None
    broken = [view for view in views if view.status in (ReplicaStatus.EXITED, ReplicaStatus.FAILED)]
    if broken:
        first = next((view for view in broken if view.condition), broken[0])
        status = f"error ({first.condition})" if first.condition else "error"
        return status, f"{len(broken)} of {record.requested} replica(s) down: {first.id} {first.reason}"
    return "error", f"{current} of {record.requested} replica(s) serving"
