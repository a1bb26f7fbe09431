"""Following a job's deployment with blocking queries, until it succeeds, fails or runs out of time.

Nomad runs the rollout (canaries, health checks, promotion, auto-revert); cortexlite reports its
progress and, when it fails, why: the failed allocations' task events and last log lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cortexlite.errors import NomadError
from cortexlite.logtail import render
from cortexlite.nomad.client import NomadClient
from cortexlite.nomad.job import TASK

__all__ = ["DeploymentOutcome", "describe_failures", "placement_failure", "watch_deployment"]

Report = Callable[[str], None]
_WAIT_S = 5.0
# A job version without a deployment (only in-place changes): its allocations decide once this has passed.
_NO_DEPLOYMENT_GRACE_S = 8.0
# Allocations Nomad cannot place (a blocked evaluation) end the wait once this has passed.
_BLOCKED_GRACE_S = 3.0
_LOG_TAIL_BYTES = 4096
_LOG_LINES = 12
_EVENTS = 6
_FAILED_SHOWN = 2


@dataclass(frozen=True)
class DeploymentOutcome:
    # successful | failed | cancelled | timeout | blocked (cannot be placed) | none (no deployment: allocations
    # are healthy)
    status: str
    description: str
    deployment_id: str | None
    job_version: int


def watch_deployment(
    client: NomadClient, job_id: str, version: int, report: Report, *, timeout: float, desired: int
) -> DeploymentOutcome:
    """Wait for the deployment of `job_id` at `version` to end; report each change of its progress."""
    started = time.monotonic()
    deadline = started + timeout
    index, last = 0, ""
    while time.monotonic() < deadline:
        wait = min(_WAIT_S, max(0.1, deadline - time.monotonic()))
        deployment, index = client.deployment(job_id, index, wait)
        if deployment is not None and int(deployment.get("JobVersion", -1)) == version:
            line = _progress(deployment)
            if line != last:
                report(f"{job_id}: {line}")
                last = line
            status = str(deployment.get("Status", ""))
            if status in ("successful", "failed", "cancelled"):
                return DeploymentOutcome(
                    status, str(deployment.get("StatusDescription", "")), str(deployment.get("ID")), version
                )
            if time.monotonic() - started > _BLOCKED_GRACE_S and _unplaced(deployment):
                blocked = placement_failure(client, job_id)
                if blocked is not None:
                    return DeploymentOutcome("blocked", blocked, str(deployment.get("ID")), version)
        elif time.monotonic() - started > _NO_DEPLOYMENT_GRACE_S and _healthy(client, job_id, version, desired):
            return DeploymentOutcome("none", "allocations are running", None, version)
    return DeploymentOutcome("timeout", f"still running after {timeout:.0f}s", None, version)


def _unplaced(deployment: dict[str, Any]) -> bool:
    groups = (deployment.get("TaskGroups") or {}).values()
    return any(int(group.get("PlacedAllocs") or 0) < int(group.get("DesiredTotal") or 0) for group in groups)


def placement_failure(client: NomadClient, job_id: str) -> str | None:
    """Why Nomad cannot place some of the job's allocations (its blocked evaluation), or None."""
    try:
        evaluations = client.evaluations(job_id)
    except NomadError:
        return None
    for evaluation in sorted(evaluations, key=lambda item: int(item.get("ModifyIndex") or 0), reverse=True):
        if evaluation.get("Status") != "blocked":
            continue
        reasons = []
        for failure in (evaluation.get("FailedTGAllocs") or {}).values():
            for key in ("ConstraintFiltered", "DimensionExhausted", "QuotaExhausted"):
                reasons += [f"{reason} ({count} node(s))" for reason, count in (failure.get(key) or {}).items()]
        queued = sum(int(count) for count in (evaluation.get("QueuedAllocations") or {}).values())
        what = f"{queued} replica(s) cannot be placed" if queued else "replicas cannot be placed"
        return f"{what}: {', '.join(reasons) or 'no node has the resources they ask for'}"
    return None


def _progress(deployment: dict[str, Any]) -> str:
    parts = []
    for name, group in sorted((deployment.get("TaskGroups") or {}).items()):
        canaries = int(group.get("DesiredCanaries") or 0)
        placed_canaries = len(group.get("PlacedCanaries") or [])
        healthy, total = int(group.get("HealthyAllocs") or 0), int(group.get("DesiredTotal") or 0)
        text = f"{name} {healthy}/{total} healthy"
        if canaries:
            text += f", canaries {placed_canaries}/{canaries}" + (" promoted" if group.get("Promoted") else "")
        if group.get("UnhealthyAllocs"):
            text += f", {group['UnhealthyAllocs']} unhealthy"
        parts.append(text)
    status = deployment.get("Status", "?")
    description = deployment.get("StatusDescription") or ""
    return f"deployment {str(deployment.get('ID', ''))[:8]} {status} ({'; '.join(parts)}){_tail(description)}"


def _tail(description: str) -> str:
    return f": {description}" if description and description not in ("Deployment is running",) else ""


def _healthy(client: NomadClient, job_id: str, version: int, desired: int) -> bool:
    allocations, _ = client.allocations(job_id)
    running = [
        alloc
        for alloc in allocations
        if int(alloc.get("JobVersion", -1)) == version
        and alloc.get("ClientStatus") == "running"
        and alloc.get("DesiredStatus") == "run"
        and (alloc.get("DeploymentStatus") or {}).get("Healthy") is not False
    ]
    return len(running) >= desired


def describe_failures(client: NomadClient, job_id: str, version: int) -> list[str]:
    """Lines on the allocations of `version` that failed: their task events, then their last log lines."""
    try:
        allocations, _ = client.allocations(job_id)
    except NomadError as exc:
        return [f"(the allocations could not be read: {exc})"]
    failed = [alloc for alloc in allocations if int(alloc.get("JobVersion", -1)) == version and _failed(alloc)]
    failed.sort(key=lambda alloc: int(alloc.get("ModifyIndex") or 0), reverse=True)
    lines: list[str] = []
    for alloc in failed[:_FAILED_SHOWN]:
        alloc_id = str(alloc.get("ID", ""))
        lines.append(f"allocation {alloc_id[:8]} ({alloc.get('Name', '')}, {alloc.get('ClientStatus')}):")
        lines += [f"  event: {event}" for event in task_events(alloc)[-_EVENTS:]]
        lines += [f"  log: {line}" for line in last_log_lines(client, alloc_id)]
    if not failed:
        lines.append("(no failed allocation of this version was found; `cortexlite logs` shows the replicas' logs)")
    return lines


def _failed(alloc: dict[str, Any]) -> bool:
    if alloc.get("ClientStatus") in ("failed", "lost"):
        return True
    if (alloc.get("DeploymentStatus") or {}).get("Healthy") is False:
        return True
    return any(state.get("Failed") for state in (alloc.get("TaskStates") or {}).values())


def task_events(alloc: dict[str, Any]) -> list[str]:
    """The predictor task's events as `Type: message` lines, oldest first."""
    state = (alloc.get("TaskStates") or {}).get(TASK) or {}
    found = []
    for event in state.get("Events") or []:
        message = event.get("DisplayMessage") or event.get("Message") or ""
        details = event.get("Details") or {}
        if details.get("oom_killed") == "true":
            message = f"{message} (out of memory)".strip()
        found.append(f"{event.get('Type', '?')}: {message}".rstrip(": "))
    return found


def last_log_lines(client: NomadClient, alloc_id: str) -> list[str]:
    lines: list[str] = []
    for kind in ("stderr", "stdout"):
        try:
            data = b"".join(chunk.data for chunk in client.logs(alloc_id, TASK, kind, tail_bytes=_LOG_TAIL_BYTES))
        except NomadError:
            continue
        text = data.decode("utf-8", "replace")
        lines += [render(line)[0] for line in text.splitlines() if line.strip()][-_LOG_LINES:]
    return lines[-_LOG_LINES:]
