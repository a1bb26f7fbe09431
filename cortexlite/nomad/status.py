"""`get -e <nomad env>`: each API's status read from Nomad (job, latest deployment, allocations).

- `updating`: the deployment of the job's current version runs;
- `live`: at least the requested count of allocations of the current version run and are healthy;
- `compute unavailable`: Nomad cannot place some (a blocked evaluation: no node with the GPUs,
  CPU or memory asked for; the reasons are Nomad's);
- `error (<kind>)` / `error`: fewer healthy allocations than requested, with the reason (the last
  task events of a failed one), its class (`cortexlite.failures`: out of memory from the task
  events, a predictor or dependency failure from the runtime's log) and its last log lines.
The last failed deploy (a failed deployment, or a failed allocation of a version Nomad reverted
from) is shown beside what serves. Traffic comes from the gateway's Traefik metrics when its admin
port answers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx

from cortexlite.errors import NomadError
from cortexlite.failures import (
    LOG_LINES,
    FailureKind,
    classify_readiness,
    died_starting,
    redact,
    secret_values,
    status_of,
)
from cortexlite.gateway import ApiTraffic, parse_traffic
from cortexlite.nomad.cluster import Cluster
from cortexlite.nomad.job import GROUP, PORT_LABEL, job_id
from cortexlite.nomad.watch import last_log_lines, placement_failure, task_events
from cortexlite.state import DeployFailure
from cortexlite.status import ApiView, ReplicaView

__all__ = ["alloc_address", "cluster_views", "replica_state"]

_RUNNING_DEPLOYMENT = ("running", "pending", "paused", "initializing", "blocked", "unblocking")


def cluster_views(cluster: Cluster, name: str | None) -> list[ApiView]:
    if name is not None:
        cluster.require_api(name)
        names = [name]
    else:
        names = list(cluster.api_jobs())
    traffic = _traffic(cluster, names)
    with ThreadPoolExecutor(max_workers=4) as pool:
        views = list(pool.map(lambda api: _view(cluster, api, traffic.get(api, ApiTraffic())), names))
    return [view for view in views if view is not None]


def _view(cluster: Cluster, name: str, traffic: ApiTraffic) -> ApiView | None:
    client = cluster.client
    job = cluster.api_job(name)
    if job is None:
        return None
    version = int(job.get("Version") or 0)
    requested = _count(job)
    deployment, _ = client.deployment(job_id(name))
    allocations, _ = client.allocations(job_id(name))
    live = [alloc for alloc in allocations if alloc.get("DesiredStatus") == "run"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        replicas = list(pool.map(lambda alloc: _replica(cluster, alloc, version), live))
    current = sum(1 for replica in replicas if replica.up_to_date and replica.serving)
    status, reason, failing = _status(
        cluster, name, version, deployment, allocations, requested=requested, current=current
    )
    read: dict[str, list[str]] = {}  # allocation ID -> its last log lines, read once
    lines = _alloc_lines(cluster, failing, read) if failing is not None else []
    if failing is not None and status == "error":
        status = status_of(_alloc_kind(failing, lines))
    meta = job.get("Meta") or {}
    endpoint = str(meta.get("cortexlite.endpoint") or f"/{name}")
    failure = _failed_deploy(cluster, job, deployment, allocations, endpoint=endpoint, read=read)
    secrets = secret_values(cluster.environment)
    return ApiView(
        name=name, status=status, endpoint=endpoint, url=f"{cluster.gateway_url}{endpoint}", requested=requested,
        up_to_date=current, last_update=_seconds(job.get("SubmitTime")), replicas=replicas,
        requests={key: traffic.count(key) for key in ("2XX", "4XX", "5XX")}, avg_latency_s=traffic.average_latency,
        reason=redact(reason, secrets) if reason else None, last_scaling=_last_scaling(cluster, name),
        log_source=f"allocation {str(failing.get('ID'))[:8]}" if failing is not None and lines else None,
        log_tail=lines, last_deploy_failure=failure.model_dump(mode="json") if failure is not None else None,
    )  # fmt: skip


def _status(
    cluster: Cluster, name: str, version: int, deployment: dict[str, Any] | None, allocations: list[dict[str, Any]],
    *, requested: int, current: int,
) -> tuple[str, str | None, dict[str, Any] | None]:  # fmt: skip
    """(status, reason, the failed allocation the reason is about)."""
    blocked = placement_failure(cluster.client, job_id(name)) if current < requested else None
    if blocked is not None:
        return "compute unavailable", blocked, None
    if (
        deployment is not None
        and int(deployment.get("JobVersion", -1)) == version
        and deployment.get("Status") in _RUNNING_DEPLOYMENT
    ):
        return "updating", deployment.get("StatusDescription") or None, None
    if current >= requested:
        return "live", None, None
    broken = sorted(
        (alloc for alloc in allocations if replica_state(alloc)[0] in ("failed", "exited")),
        key=lambda alloc: int(alloc.get("ModifyIndex") or 0),
        reverse=True,
    )
    for alloc in broken:
        events = task_events(alloc)
        last = events[-1] if events else str(alloc.get("ClientDescription") or "failed")
        reason = f"{current} of {requested} replica(s) serving; allocation {str(alloc.get('ID'))[:8]}: {last}"
        return "error", reason, alloc
    return "error", f"{current} of {requested} replica(s) serving", None


def _alloc_kind(alloc: dict[str, Any], lines: list[str]) -> FailureKind | None:
    """Out of memory from the task events; a predictor or dependency failure from the runtime's own log."""
    if any("out of memory" in event.lower() or "oom" in event.lower() for event in task_events(alloc)):
        return FailureKind.OUT_OF_MEMORY
    for line in reversed(lines):
        if "not ready: " in line:
            return classify_readiness(line.split("not ready: ", 1)[1])
    return FailureKind.PREDICTOR_INIT if died_starting(lines) else None


def _alloc_lines(cluster: Cluster, alloc: dict[str, Any], read: dict[str, list[str]]) -> list[str]:
    alloc_id = str(alloc.get("ID"))
    if alloc_id not in read:
        secrets = secret_values(cluster.environment)
        read[alloc_id] = [redact(line, secrets) for line in last_log_lines(cluster.client, alloc_id)][-LOG_LINES:]
    return read[alloc_id]


def _failed_deploy(
    cluster: Cluster, job: dict[str, Any], deployment: dict[str, Any] | None, allocations: list[dict[str, Any]],
    *, endpoint: str, read: dict[str, list[str]],
) -> DeployFailure | None:  # fmt: skip
    """The job's last deploy, when it failed: its deployment failed, or Nomad reverted from a failed allocation's
    version and nothing newer was placed since."""
    failed = sorted((a for a in allocations if _unhealthy(a)), key=lambda a: int(a.get("CreateIndex") or 0))
    if deployment is not None and deployment.get("Status") == "failed":
        ours = [a for a in failed if a.get("DeploymentID") == deployment.get("ID")]
        alloc = ours[-1] if ours else None
    else:
        deployment = None
        reverted = [a for a in failed if int(a.get("JobVersion", -1)) != int(job.get("Version") or 0)]
        alloc = reverted[-1] if reverted else None
        placed = [int(a.get("CreateIndex") or 0) for a in allocations if not _unhealthy(a)]
        if alloc is None or any(index > int(alloc.get("CreateIndex") or 0) for index in placed):
            return None
    version = int((deployment or alloc or {}).get("JobVersion", 0))
    lines = _alloc_lines(cluster, alloc, read) if alloc is not None else []
    parts = [f"job version {version}"]
    if deployment is not None:
        parts.append(f"deployment {str(deployment.get('ID'))[:8]}: {deployment.get('StatusDescription') or 'failed'}")
    if alloc is not None:
        events = task_events(alloc)
        parts.append(f"allocation {str(alloc.get('ID'))[:8]}: {events[-1] if events else alloc.get('ClientStatus')}")
    return DeployFailure(
        at=_seconds((deployment or alloc or {}).get("ModifyTime")) or 0.0, action="update" if version else "create",
        kind=_alloc_kind(alloc, lines) if alloc is not None else None,
        message=redact("; ".join(parts), secret_values(cluster.environment)), endpoint=endpoint,
        log_source=f"allocation {str(alloc.get('ID'))[:8]}" if alloc is not None and lines else None,
        log_tail=lines, kept=int(job.get("Version") or 0) != version,
    )  # fmt: skip


def _unhealthy(alloc: dict[str, Any]) -> bool:
    if alloc.get("ClientStatus") in ("failed", "lost"):
        return True
    if (alloc.get("DeploymentStatus") or {}).get("Healthy") is False:
        return True
    return any(state.get("Failed") for state in (alloc.get("TaskStates") or {}).values())


def replica_state(alloc: dict[str, Any]) -> tuple[str, str | None]:
    """A replica's status as `get` shows it, from its allocation: (status, reason)."""
    client_status = alloc.get("ClientStatus")
    healthy = (alloc.get("DeploymentStatus") or {}).get("Healthy")
    events = task_events(alloc)
    if client_status == "running":
        if healthy is False:
            return "failed", events[-1] if events else "unhealthy"
        return ("ready", None) if healthy or _task_running(alloc) else ("starting", "not healthy yet")
    if client_status == "pending":
        return "starting", events[-1] if events else "pending"
    if client_status in ("failed", "lost"):
        return "failed", events[-1] if events else str(client_status)
    return "exited", str(client_status)


def _task_running(alloc: dict[str, Any]) -> bool:
    states = alloc.get("TaskStates") or {}
    return bool(states) and all(state.get("State") == "running" for state in states.values())


def _replica(cluster: Cluster, alloc: dict[str, Any], version: int) -> ReplicaView:
    status, reason = replica_state(alloc)
    address = alloc_address(cluster, str(alloc.get("ID")))
    condition = "out of memory" if reason and "out of memory" in reason else None
    return ReplicaView(
        id=str(alloc.get("ID", ""))[:8], status=status, address=address or "-",
        version=str(alloc.get("JobVersion")), up_to_date=int(alloc.get("JobVersion", -1)) == version,
        serving=status == "ready", created_at=_seconds(alloc.get("CreateTime")) or 0.0, reason=reason,
        container=str(alloc.get("NodeName") or "") or None, condition=condition,
    )  # fmt: skip


def alloc_address(cluster: Cluster, alloc_id: str) -> str | None:
    """`http://host:port` of the allocation's `http` port (the allocation list has no ports)."""
    try:
        alloc = cluster.client.allocation(alloc_id)
    except NomadError:
        return None
    shared = (alloc.get("AllocatedResources") or {}).get("Shared") or {}
    for port in shared.get("Ports") or []:
        if port.get("Label") == PORT_LABEL:
            return f"http://{port.get('HostIP')}:{port.get('Value')}"
    return None


def _last_scaling(cluster: Cluster, name: str) -> dict[str, Any] | None:
    try:
        status = cluster.client.scale_status(job_id(name))
    except NomadError:
        return None
    events = ((status.get("TaskGroups") or {}).get(GROUP) or {}).get("Events") or []
    for event in sorted(events, key=lambda item: int(item.get("Time") or 0), reverse=True):
        meta = event.get("Meta") or {}
        if "cortexlite.before" not in meta:
            continue
        inputs = {key.removeprefix("cortexlite.input."): float(value) for key, value in meta.items()
                  if key.startswith("cortexlite.input.")}  # fmt: skip
        return {
            "at": int(event.get("Time") or 0) / 1e9,
            "before": int(meta["cortexlite.before"]),
            "after": int(meta.get("cortexlite.after", event.get("Count") or 0)),
            "inputs": inputs,
        }
    return None


def _traffic(cluster: Cluster, names: list[str]) -> dict[str, ApiTraffic]:
    environment = cluster.environment
    url = f"http://{environment.gateway_address}:{environment.admin_port}/metrics"
    try:
        answer = httpx.get(url, timeout=1.0, trust_env=False)
    except httpx.HTTPError:
        return {}
    return parse_traffic(answer.text, names, provider="nomad") if answer.status_code == 200 else {}


def _count(job: dict[str, Any]) -> int:
    groups = job.get("TaskGroups") or []
    return int(groups[0].get("Count") or 0) if groups else 0


def _seconds(nanoseconds: object) -> float | None:
    if isinstance(nanoseconds, int) and nanoseconds > 0:
        return nanoseconds / 1e9
    if isinstance(nanoseconds, str):
        try:
            return datetime.fromisoformat(nanoseconds.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None
