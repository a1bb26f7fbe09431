"""Deploying: `up`, `deploy` and `refresh`, transactional and blocking by default.

For each API of the project: roll back an interrupted update, compare what runs with what the
project asks for, and when they differ take a snapshot, prepare the runtime (venv), record the
update (`rollout.json`) and roll. New replicas that never become ready are removed, the previous
version keeps serving (its count restored), and `RolloutError` carries their last log lines.

A deploy that fails (building, installing, placing or starting) is recorded as the API's last
failed deploy (`deploy-failure.json`: when, its class, a one-line message, the last log lines),
which `get` shows until a deploy of the API succeeds.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from cortexlite.backends.base import ReplicaStatus
from cortexlite.errors import ComputeUnavailable, CortexliteError, EnvConfigError, RolloutError
from cortexlite.failures import (
    LOG_LINES,
    FailureKind,
    classify_error,
    classify_rollout,
    describe_error,
    log_text,
    one_line,
    redact,
    secret_values,
)
from cortexlite.files import Lock
from cortexlite.processes import identify, spawn
from cortexlite.project import Project, load_project
from cortexlite.recovery import acquire, restore, updater_for
from cortexlite.release import Release, make_release
from cortexlite.rollout import clamp_replicas
from cortexlite.snapshot import Snapshot, take_snapshot
from cortexlite.state import ApiRecord, DeployFailure, RolloutMarker
from cortexlite.updater import ReplicaFailure, Report, Updater
from cortexlite.workspace import Workspace
from cortexlite_runtime.spec import ApiSpec

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["DeployOptions", "DeployResult", "deploy", "ensure_gateway", "new_marker", "refresh", "run_marker"]

Action = Literal["created", "updated", "up-to-date"]


@dataclass(frozen=True)
class DeployOptions:
    force: bool = False
    wait: bool = True
    dry_run: bool = False
    ready_timeout: float | None = None
    plan: bool = False  # Nomad: show the scheduler's plan, register nothing


@dataclass(frozen=True)
class DeployResult:
    name: str
    action: Action
    endpoint: str
    url: str
    replicas: int
    plan: dict[str, Any] | None = field(default=None, compare=False)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "action": self.action, "endpoint": self.endpoint, "url": self.url}
        return data | ({"plan": self.plan} if self.plan is not None else {})


def deploy(
    ws: Workspace | Cluster, path: Path, options: DeployOptions, report: Report, detail: Report | None = None
) -> list[DeployResult]:
    """Deploy every API of the project at `path`; `detail` gets transient progress (pip's output)."""
    if not isinstance(ws, Workspace):
        from cortexlite.nomad import rollout

        return rollout.deploy(ws, path, options, report, detail)
    if options.plan:
        raise EnvConfigError(
            f"--plan shows Nomad's scheduling plan; environment {ws.environment.name} is a "
            f"{ws.environment.backend.value} environment: use --dry-run to see what would run"
        )
    project = load_project(path)
    for notice in project.notices:
        report(f"notice: {notice}")
    if not options.dry_run:
        ensure_gateway(ws, report)
    snapshots: list[Snapshot] = []
    return [
        _deploy_api(ws, project, api=api, options=options, report=report, detail=detail or _quiet, snapshots=snapshots)
        for api in project.apis
    ]


def refresh(ws: Workspace | Cluster, name: str, options: DeployOptions, report: Report) -> DeployResult:
    """Replace every replica of `name` with a new one of the same release, rolling like a deploy."""
    if not isinstance(ws, Workspace):
        from cortexlite.nomad import rollout

        return rollout.refresh(ws, name, options, report)
    ws.require_api(name)
    ensure_gateway(ws, report)
    lock = acquire(ws, name, report, force=options.force)
    try:
        record = ws.state.api(name)
        if record is None:  # it was being created, and that was rolled back just now
            raise ws.unknown_api(name)
        marker = new_marker("refresh", record, record)
        ws.state.set_marker(marker)
        replace = [replica.id for replica in ws.backend.replicas(name)]
        report(f"refreshing {name}: replacing {len(replace)} replica(s)")
        run_marker(ws, marker, report, options.ready_timeout, replace)
    finally:
        lock.release()
    return _result(ws, record.release().api, "updated", record.requested)


def run_marker(
    ws: Workspace, marker: RolloutMarker, report: Report, ready_timeout: float | None, replace: list[str] | None = None
) -> None:
    """Carry out the update `marker` records (the caller holds the lock); on failure restore, record and raise."""
    target = marker.target
    updater = updater_for(ws, report, ready_timeout)
    try:
        updater.roll(target.release(), Path(target.snapshot), target.requested, replace or ())
    except ReplicaFailure as failure:
        replica = f"replica {failure.replica.id}"
        kind, lines = classify_rollout(failure.reason), log_text(failure.log_lines)
        why = _Why(kind, f"{replica}: {one_line(failure.reason)}", replica, lines)
        _roll_back(ws, updater, marker, report, why, reason=failure.reason)
        raise RolloutError(_failure_message(marker, failure)) from None
    except ComputeUnavailable as exc:
        why = _Why(FailureKind.COMPUTE_UNAVAILABLE, one_line(str(exc)))
        _roll_back(ws, updater, marker, report, why, reason=str(exc))
        kept = "the previous version keeps serving" if marker.previous is not None else f"{target.name} was not created"
        raise RolloutError(f"{target.name}: compute unavailable: {exc}; {kept}") from exc
    except CortexliteError as exc:
        # No free port, a gateway that stopped answering...: back to the previous release when that
        # works; when it does not either, the record stays and the next command rolls back.
        _roll_back(ws, updater, marker, report, _Why(classify_error(exc), describe_error(exc)[0]), reason=str(exc))
        raise RolloutError(f"{target.name}: the update failed and was rolled back: {exc}") from exc
    ws.state.save_api(target)
    ws.state.clear_marker(target.name)
    ws.state.clear_failure(target.name)


class _Why(NamedTuple):
    """A failed deploy, as recorded: its class, one line, and whose last lines (if any) it keeps."""

    kind: FailureKind | None
    message: str
    source: str | None = None
    lines: Sequence[str] = ()


def _roll_back(
    ws: Workspace, updater: Updater, marker: RolloutMarker, report: Report, why: _Why, *, reason: str
) -> None:
    """Back to what served before `marker`'s update; the failure is recorded even when that fails too."""
    name = marker.target.name
    report(f"{name}: {reason}; rolling back")
    try:
        restore(ws, updater, marker)
        ws.state.clear_marker(name)
    finally:
        # After the restore: rolling back a creation forgets the API's directory.
        _record(ws, marker.target.release().api, marker.action, why, kept=marker.previous is not None)


def _record(
    ws: Workspace, api: ApiSpec, action: Literal["create", "update", "refresh"], why: _Why, *, kept: bool
) -> None:
    secrets = secret_values(ws.environment)
    failure = DeployFailure(
        at=time.time(), action=action, kind=why.kind, message=redact(why.message, secrets), endpoint=api.endpoint,
        log_source=why.source, log_tail=[redact(line, secrets) for line in why.lines[-LOG_LINES:]], kept=kept,
    )  # fmt: skip
    ws.state.record_failure(api.name, failure)


def _deploy_api(
    ws: Workspace,
    project: Project,
    *,
    api: ApiSpec,
    options: DeployOptions,
    report: Report,
    detail: Report,
    snapshots: list[Snapshot],
) -> DeployResult:
    name = api.name
    if options.dry_run:
        return _dry_run(ws, project, api)
    lock = acquire(ws, name, report, force=options.force)
    try:
        record, release, count, action = _compare(ws, project, api)
        if action == "up-to-date":
            ws.state.clear_failure(name)
            return _result(ws, api, action, count)
        report(f"{'creating' if record is None else 'updating'} {name}")
        _process_notices(ws, project, api, report)
        if record is not None and record.version == release.version:
            # Same code and runtime (the spec's bounds, strategy or endpoint changed): the replicas keep
            # running from the snapshot they have.
            snapshot_path = Path(record.snapshot)
        else:
            snapshot_path = _snapshot(ws, project, report, snapshots).path
            release = _prepare(ws, project, api, report, detail, kept=record is not None)
            ws.backend.ship(snapshot_path, report)
        target = ApiRecord.of(release, snapshot_path, count, created_at=record.created_at if record else None)
        marker = new_marker("create" if record is None else "update", target, record)
        if not options.wait:
            _hand_over(ws, marker, lock, options.ready_timeout)
            return _result(ws, api, action, count)
        ws.state.set_marker(marker)
        run_marker(ws, marker, report, options.ready_timeout)
        return _result(ws, api, action, count)
    finally:
        lock.release()


def _prepare(ws: Workspace, project: Project, api: ApiSpec, report: Report, detail: Report, *, kept: bool) -> Release:
    """The release with its runtime made (a venv, an image); a failure is recorded with the build's last lines."""
    started = time.monotonic()
    output = _Output(detail)
    try:
        prepared = ws.backend.prepare(project, api.name, output)
    except CortexliteError as exc:
        files = [file for file in ("dependencies.sh", "requirements.txt") if project.read(file) is not None]
        why = _Why(classify_error(exc), *describe_error(exc, files), output.tail())
        _record(ws, api, "update" if kept else "create", why, kept=kept)
        raise
    if prepared.created:
        report(f"{api.name}: made the replica runtime {prepared.runtime} in {time.monotonic() - started:.1f}s")
    return make_release(api, project.code_hash, prepared.runtime)


# The classic builder's own lines: its steps and intermediate containers, not what the steps printed.
_BOOKKEEPING = re.compile(r"\s*(--->|Removing intermediate container|Step \d+/\d+ : )")


class _Output:
    """What a build or an install prints: passed on, its last lines kept (less the builder's bookkeeping)."""

    def __init__(self, forward: Report) -> None:
        self._forward = forward
        self._lines: deque[str] = deque(maxlen=LOG_LINES)

    def __call__(self, line: str) -> None:
        self._forward(line)
        text = line.rstrip()
        if text.strip() and not _BOOKKEEPING.match(text):
            self._lines.append(text)

    def tail(self) -> list[str]:
        return list(self._lines)


def _compare(ws: Workspace, project: Project, api: ApiSpec) -> tuple[ApiRecord | None, Release, int, Action]:
    """What serves now, the release the project asks for, the replica count, and what deploying would do."""
    record = ws.state.api(api.name)
    release = make_release(api, project.code_hash, ws.backend.runtime_for(project, api.name))
    count = _replica_count(api, record)
    if record is None:
        return record, release, count, "created"
    return record, release, count, "up-to-date" if _up_to_date(ws, record, release, count) else "updated"


def _up_to_date(ws: Workspace, record: ApiRecord, release: Release, count: int) -> bool:
    if (record.version, record.spec_hash, record.requested) != (release.version, release.spec_hash, count):
        return False
    replicas = ws.backend.replicas(release.name)
    routed = set(ws.membership.members(release.name))
    if len(replicas) != count or any(replica.version != release.version for replica in replicas):
        return False
    return all(
        replica.address in routed and ws.backend.probe(replica).status is ReplicaStatus.READY for replica in replicas
    )


def _replica_count(api: ApiSpec, record: ApiRecord | None) -> int:
    """The current count (the operator's, later) kept across updates, clamped to the new bounds."""
    scaling = api.autoscaling
    current = record.requested if record is not None else scaling.initial_replicas
    return clamp_replicas(current, scaling.min_replicas, scaling.max_replicas)


def _snapshot(ws: Workspace, project: Project, report: Report, taken: list[Snapshot]) -> Snapshot:
    if taken:
        return taken[0]
    snapshot = take_snapshot(project.directory, ws.settings.home, files=list(project.files))
    for warning in snapshot.warnings:
        report(f"warning: {warning}")
    size = f"{snapshot.files} files, {snapshot.bytes / 1024:.0f} KiB"
    report(f"snapshot {snapshot.hash[:12]} ({size}{', reused' if snapshot.reused else ''})")
    taken.append(snapshot)
    return snapshot


def _process_notices(ws: Workspace, project: Project, api: ApiSpec, report: Report) -> None:
    if ws.backend.kind != "process":
        return
    if api.compute.cpu is not None or api.compute.mem is not None:
        report(f"notice: {api.name}: compute: cpu and mem are not enforced for processes (they are in containers)")
    if project.read("dependencies.sh") is not None:
        report(f"notice: {api.name}: dependencies.sh is not run for processes (it would change this machine)")


def ensure_gateway(ws: Workspace, report: Report) -> None:
    what, started = ws.gateway.ensure(report)
    if started:
        report(f"gateway started on {ws.gateway_url} ({what})")


def _hand_over(ws: Workspace, marker: RolloutMarker, lock: Lock, ready_timeout: float | None) -> None:
    """`--no-wait`: a detached worker runs the update; it owns the marker before this lock is released."""
    command = [sys.executable, "-m", "cortexlite.worker", ws.environment.name, marker.target.name]
    if ready_timeout is not None:
        command.append(str(ready_timeout))
    log = ws.state.api_dir(marker.target.name) / "logs" / "rollout.log"
    env = dict(os.environ, CORTEXLITE_HOME=str(ws.settings.home), CORTEXLITE_CACHE_DIR=str(ws.settings.cache_dir))
    worker = spawn(command, env=env, cwd=ws.settings.home, log_path=log)
    ws.state.set_marker(marker.model_copy(update={"owner_pid": worker.ref.pid, "owner_started": worker.ref.started}))


def new_marker(
    action: Literal["create", "update", "refresh"], target: ApiRecord, previous: ApiRecord | None
) -> RolloutMarker:
    me = identify(os.getpid())
    assert me is not None
    return RolloutMarker(
        action=action, owner_pid=me.pid, owner_started=me.started, started_at=time.time(),
        target=target, previous=previous,
    )  # fmt: skip


def _dry_run(ws: Workspace, project: Project, api: ApiSpec) -> DeployResult:
    _, release, count, action = _compare(ws, project, api)
    snapshot = ws.settings.home / "snapshots" / project.hash
    spec_file = ws.state.api_dir(api.name) / "specs" / f"{release.version}-{release.spec_hash}.json"
    plan = {
        "backend": ws.backend.kind,
        "version": release.version,
        "replicas": count,
        "snapshot": str(snapshot),
        "resolved_spec": release.resolved_spec(),
        "replica": ws.backend.describe_start(release, snapshot, spec_file),
    }
    return _result(ws, api, action, count, plan)


def _result(
    ws: Workspace, api: ApiSpec, action: Action, count: int, plan: dict[str, Any] | None = None
) -> DeployResult:
    return DeployResult(api.name, action, api.endpoint, f"{ws.gateway_url}{api.endpoint}", count, plan)


def _failure_message(marker: RolloutMarker, failure: ReplicaFailure) -> str:
    name = marker.target.name
    kept = (
        f"the previous version keeps serving ({marker.previous.requested} replica(s))"
        if marker.previous is not None
        else f"{name} was not created"
    )
    lines = "\n".join(f"  {line}" for line in failure.log_lines) or "  (no output)"
    return (
        f"{name}: the update failed: replica {failure.replica.id} {failure.reason}; its replicas were removed and "
        f"{kept}.\nlast {len(failure.log_lines)} log lines of replica {failure.replica.id}:\n{lines}"
    )


def _quiet(_message: str) -> None:
    return None
