"""`get`: what each API is doing, read back from the backend, the gateway and the records.

Status is one of Cortex's: `live` (every requested replica up to date and serving), `updating`
(an update runs), `error` (fewer serving replicas than requested, and no update running; the
reason says why), `compute unavailable`. An error of a known class names it: `error (predictor
init error)`, `error (dependency install error)`, `error (image build error)`, `error (out of
memory)`. A failing API shows the last lines of its failing replica's log, or of the failed build.

The last failed deploy of an API (`deploy-failure.json`) is shown beside what still serves, and
is the status when nothing serves (an API whose creation failed). Log lines are the replicas' (or
the build's) own output; the environment's secrets are masked in them.
Traffic comes from the gateway's router metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cortexlite.backends.base import Backend, Probe, Replica, ReplicaStatus
from cortexlite.errors import BusyError, CortexliteError, GatewayError
from cortexlite.failures import (
    LOG_LINES,
    FailureKind,
    classify_readiness,
    died_starting,
    kind_of,
    log_text,
    one_line,
    redact,
    secret_values,
    status_of,
)
from cortexlite.gateway import ApiTraffic, parse_traffic
from cortexlite.operator import last_event
from cortexlite.recovery import acquire
from cortexlite.state import ApiRecord, DeployFailure
from cortexlite.updater import Report
from cortexlite.workspace import Workspace

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["ApiView", "ReplicaView", "get"]

# Raw lines read from a failing replica: enough to see whether it died while starting.
_SCAN_LINES = 50


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
    log_source: str | None = None  # whose lines `log_tail` holds: "replica 3f2a1b", "pip install -r ..."
    log_tail: list[str] = field(default_factory=list)
    last_deploy_failure: dict[str, Any] | None = None  # a `DeployFailure`, until a deploy succeeds

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def get(ws: Workspace | Cluster, name: str | None, report: Report) -> list[ApiView]:
    """Every API of the environment (or just `name`), repairing interrupted updates on the way."""
    if not isinstance(ws, Workspace):
        from cortexlite.nomad.status import cluster_views

        return cluster_views(ws, name)
    if name is not None and ws.state.deploy_failure(name) is None:
        ws.require_api(name)
    names = [name] if name is not None else ws.state.names()
    for api in names:
        _repair(ws, api, report)
    gateway_up = ws.gateway.running()
    traffic = _traffic(ws, names) if gateway_up else {}
    secrets = secret_values(ws.environment)
    views = []
    for api in names:
        record, failure = ws.state.api(api), ws.state.deploy_failure(api)
        if record is not None:
            view = _view(ws, record, traffic.get(api, ApiTraffic()), failure)
            if not gateway_up and view.status == "live":
                reason = f"the gateway ({ws.gateway_url}) is not running; `cortexlite up` starts it"
                view = replace(view, status="error", reason=reason)
        elif failure is not None:
            marker = ws.state.marker(api)
            view = _failure_view(api, failure, ws.gateway_url, marker is not None and marker.owner.alive())
        else:
            continue  # being created
        views.append(_masked(view, secrets))
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


def _view(ws: Workspace, record: ApiRecord, traffic: ApiTraffic, failure: DeployFailure | None) -> ApiView:
    replicas = ws.backend.replicas(record.name)
    with ThreadPoolExecutor(max_workers=8) as pool:
        probes = list(pool.map(ws.backend.probe, replicas))
    routed = set(ws.membership.members(record.name))
    views = [_replica_view(replica, probe, record, routed) for replica, probe in zip(replicas, probes, strict=True)]
    marker = ws.state.marker(record.name)
    updating = marker is not None and marker.owner.alive()
    current = sum(1 for view in views if view.up_to_date and view.serving)
    failing = _failing(views) if not updating and current < record.requested else None
    lines: list[str] = []
    if failing is not None:
        replica = next(replica for replica in replicas if replica.id == failing.id)
        lines = log_text(_tail(ws.backend, replica))
    status, reason = _status(record, views, current, updating, lines)
    log_source = f"replica {failing.id}" if failing is not None else None
    if status == "error" and len(views) < record.requested:
        shortfall = ws.backend.compute_shortfall(record.release(), record.requested - len(views))
        if shortfall is not None:
            status, reason = "compute unavailable", shortfall
    if failure is not None and failing is None and current == 0 and not updating:
        # Nothing serves and no replica says why: the failed deploy does.
        status, reason = status_of(failure.kind), failure.message
        log_source, lines = failure.log_source, list(failure.log_tail)
    endpoint = record.endpoint
    return ApiView(
        name=record.name, status=status, endpoint=endpoint, url=f"{ws.gateway_url}{endpoint}",
        requested=record.requested, up_to_date=current, last_update=record.updated_at, replicas=views,
        requests={key: traffic.count(key) for key in ("2XX", "4XX", "5XX")},
        avg_latency_s=traffic.average_latency, reason=reason, last_scaling=_last_scaling(ws, record.name),
        log_source=log_source if lines else None, log_tail=lines[-LOG_LINES:],
        last_deploy_failure=failure.model_dump(mode="json") if failure is not None else None,
    )  # fmt: skip


def _failure_view(name: str, failure: DeployFailure, gateway_url: str, updating: bool) -> ApiView:
    """An API whose creation failed: nothing serves; the failed deploy is its status."""
    return ApiView(
        name=name, status="updating" if updating else status_of(failure.kind), endpoint=failure.endpoint,
        url=f"{gateway_url}{failure.endpoint}", requested=0, up_to_date=0, last_update=failure.at, replicas=[],
        reason=None if updating else failure.message, log_source=failure.log_source if failure.log_tail else None,
        log_tail=list(failure.log_tail[-LOG_LINES:]), last_deploy_failure=failure.model_dump(mode="json"),
    )  # fmt: skip


def _tail(backend: Backend, replica: Replica) -> list[str]:
    try:
        return backend.log_tail(replica, _SCAN_LINES)
    except CortexliteError:
        return []


def _last_scaling(ws: Workspace, name: str) -> dict[str, Any] | None:
    event = last_event(ws.state, name)
    return asdict(event) if event is not None else None


def _replica_view(replica: Replica, probe: Probe, record: ApiRecord, routed: set[str]) -> ReplicaView:
    pid, container = replica.detail.get("pid"), replica.detail.get("container")
    condition = probe.condition
    if condition is None and probe.status is ReplicaStatus.FAILED:
        condition = classify_readiness(probe.reason or "").value
    return ReplicaView(
        id=replica.id, status=probe.status.value, address=replica.address, version=replica.version,
        up_to_date=replica.version == record.version,
        serving=replica.address in routed and probe.status is ReplicaStatus.READY,
        created_at=replica.created_at, reason=probe.reason, pid=pid if isinstance(pid, int) else None,
        container=container if isinstance(container, str) else None, condition=condition,
    )  # fmt: skip


def _broken(views: list[ReplicaView]) -> list[ReplicaView]:
    return [view for view in views if view.status in (ReplicaStatus.EXITED, ReplicaStatus.FAILED)]


def _failing(views: list[ReplicaView]) -> ReplicaView | None:
    """The replica whose failure the API's status names: one with a known cause first."""
    broken = _broken(views)
    return next((view for view in broken if view.condition), broken[0] if broken else None)


def _status(
    record: ApiRecord, views: list[ReplicaView], current: int, updating: bool, lines: Sequence[str]
) -> tuple[str, str | None]:
    """(status, reason) from the replicas; `lines`: the failing replica's last log lines."""
    if updating:
        return "updating", None
    if current >= record.requested:
        return "live", None
    first = _failing(views)
    if first is None:
        return "error", f"{current} of {record.requested} replica(s) serving"
    kind = kind_of(first.condition)
    if kind is None and first.status == ReplicaStatus.EXITED and died_starting(lines):
        kind = FailureKind.PREDICTOR_INIT
    status = f"error ({first.condition})" if first.condition and kind is None else status_of(kind)
    down = len(_broken(views))
    return status, f"{down} of {record.requested} replica(s) down: {first.id} {one_line(first.reason or first.status)}"


def _masked(view: ApiView, secrets: Sequence[str]) -> ApiView:
    failure = view.last_deploy_failure
    if failure is not None:
        failure = failure | {
            "message": redact(str(failure["message"]), secrets),
            "log_tail": [redact(str(line), secrets) for line in failure.get("log_tail") or []],
        }
    return replace(
        view, reason=redact(view.reason, secrets) if view.reason else view.reason,
        log_tail=[redact(line, secrets) for line in view.log_tail], last_deploy_failure=failure,
        replicas=[replace(r, reason=redact(r.reason, secrets) if r.reason else r.reason) for r in view.replicas],
    )  # fmt: skip
