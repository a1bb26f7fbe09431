"""Deploying to Nomad: `up`, `deploy` (with `--dry-run` and `--plan`), `refresh`, `delete`, `down`.

For each API: build (or reuse) its image and push it to the environment's registry, ship the
project bundle to storage, render the job, have Nomad validate it (its errors are shown before
anything is registered), store the API's secrets in its Nomad Variable, register the job, and
follow the deployment until it succeeds or fails. Nomad runs the rollout; with `AutoRevert` a
failed update goes back to the previous version by itself, and an API that failed to be created
is removed.

The replica count is Nomad's: an update keeps the count the operator set (`PreserveCounts`)
unless the new bounds exclude it, and then the count is clamped to them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from cortexlite.deployment import DeployOptions, DeployResult
from cortexlite.errors import BusyError, ComputeUnavailable, NomadInvalid, RolloutError
from cortexlite.keys import effective_auth
from cortexlite.nomad.cluster import Cluster, split_storage
from cortexlite.nomad.job import GROUP, SPEC_PATH, NomadRelease, job_id, render_job, variable_path
from cortexlite.nomad.keys import RING_ITEM, store_job_variable
from cortexlite.nomad.watch import describe_failures, watch_deployment
from cortexlite.project import Project, load_project
from cortexlite.release import Release, make_release
from cortexlite.rollout import clamp_replicas
from cortexlite.snapshot import take_snapshot
from cortexlite.updater import Report
from cortexlite_runtime.spec import ApiSpec

__all__ = ["delete", "deploy", "down", "refresh", "rendered_job", "running_release"]

Action = Literal["created", "updated", "up-to-date"]
DEFAULT_HEALTHY_DEADLINE_S = 300.0
# Beyond the job's progress deadline, the CLI stops waiting (Nomad has failed the deployment by then).
_WATCH_MARGIN_S = 60.0


@dataclass(frozen=True)
class _Target:
    api: ApiSpec
    current: dict[str, Any] | None  # the job that runs now
    count: int
    preserve: bool  # keep Nomad's count on update


def deploy(
    cluster: Cluster, path: Path, options: DeployOptions, report: Report, detail: Report | None = None
) -> list[DeployResult]:
    project = load_project(path)
    for notice in project.notices:
        report(f"notice: {notice}")
    if not (options.dry_run or options.plan):
        what, started = cluster.gateway.ensure(detail or _quiet)
        if started:
            report(f"gateway registered: {what}; it serves {cluster.gateway_url}")
    return [_deploy_api(cluster, project, api, options, report=report, detail=detail or _quiet) for api in project.apis]


def rendered_job(
    cluster: Cluster, project: Project, api: ApiSpec, options: DeployOptions, target: _Target | None = None
) -> dict[str, Any]:
    """The job a deploy of `api` would register, without building, pushing or uploading anything."""
    target = target or _target(cluster, api)
    snapshot = take_snapshot(project.directory, cluster.settings.home, files=list(project.files))
    image = cluster.images.planned(project)
    release = make_release(api, project.code_hash, image)
    nomad_release = NomadRelease(release, image, cluster.bundles.planned_uri(snapshot.path), target.count)
    return render_job(nomad_release, cluster.job_settings(_healthy_deadline(options)))


def _deploy_api(
    cluster: Cluster, project: Project, api: ApiSpec, options: DeployOptions, *, report: Report, detail: Report
) -> DeployResult:
    target = _target(cluster, api)
    if options.dry_run or options.plan:
        return _preview(cluster, api, target, rendered_job(cluster, project, api, options, target), options)
    image, built = cluster.images.prepare(project, detail)
    if built:
        report(f"{api.name}: built the image {image}")
    release = make_release(api, project.code_hash, image)
    if target.current is not None and _up_to_date(target.current, release, target.count, _auth(cluster, api)):
        return _result(cluster, api, "up-to-date", target.count)
    _check_idle(cluster, api.name, options.force)
    report(f"{'creating' if target.current is None else 'updating'} {api.name} on Nomad ({cluster.nomad.address})")
    snapshot = take_snapshot(project.directory, cluster.settings.home, files=list(project.files))
    shipped = cluster.bundles.ship(snapshot.path, report)
    job = render_job(
        NomadRelease(release, image, shipped.uri, target.count), cluster.job_settings(_healthy_deadline(options))
    )
    action: Action = "created" if target.current is None else "updated"
    _register(cluster, api.name, job, target.preserve, report, auth=_auth(cluster, api))
    if options.wait:
        _follow(cluster, api.name, target.current, options, report)
    return _result(cluster, api, action, target.count)


def refresh(cluster: Cluster, name: str, options: DeployOptions, report: Report) -> DeployResult:
    """Replace every allocation of `name` with a new one of the same release (re-fetching its bundle and models).

    The job is rendered again from what it runs (its spec, image, bundle and count) with a new
    `CORTEXLITE_REFRESH`, so Nomad rolls it like any update.
    """
    job = cluster.require_api(name)
    _check_idle(cluster, name, options.force)
    running = running_release(job)
    if running is None:
        raise RolloutError(
            f"{name}: the job {job_id(name)} was not made by this version of cortexlite; deploy it again"
        )
    refreshed = replace(running, refresh=f"{time.time():.3f}")
    report(f"refreshing {name}: Nomad replaces its allocations as in an update")
    api = running.release.api
    job = render_job(refreshed, cluster.job_settings(_healthy_deadline(options)))
    _register(cluster, name, job, True, report, auth=_auth(cluster, api))
    _follow(cluster, name, job, options, report)
    return _result(cluster, api, "updated", running.count)


def running_release(job: dict[str, Any]) -> NomadRelease | None:
    """What a cortexlite job runs, read back from it: its spec (the template), image, bundle and count."""
    meta = _meta(job)
    try:
        task = job["TaskGroups"][0]["Tasks"][0]
        spec = next(t for t in task.get("Templates") or [] if t.get("DestPath") == SPEC_PATH)
        api = ApiSpec.model_validate(json.loads(spec["EmbeddedTmpl"])["api"])
        image, uri = str(task["Config"]["image"]), str(task["Env"]["CORTEX_PROJECT_URI"])
    except (KeyError, IndexError, StopIteration, TypeError, ValueError):
        return None
    release = make_release(api, str(meta.get("cortexlite.project", "")), image)
    return NomadRelease(release, image, uri, _group_count(job))


def delete(cluster: Cluster, name: str, report: Report) -> None:
    """Stop and purge the API's job (Nomad takes its service out of routing, then drains it) and its Variable."""
    cluster.require_api(name)
    report(f"deleting {name}")
    cluster.client.deregister(job_id(name), purge=True)
    cluster.client.delete_variable(variable_path(name))


def down(cluster: Cluster, report: Report) -> list[str]:
    names = list(cluster.api_jobs())
    for name in names:
        delete(cluster, name, report)
    from cortexlite.nomad.system_jobs import stop_system_jobs

    for line in stop_system_jobs(cluster):
        report(line)
    return names


# --- steps --------------------------------------------------------------------------------------


def _target(cluster: Cluster, api: ApiSpec) -> _Target:
    current = cluster.client.job(job_id(api.name))
    meta = _meta(current) if current is not None else {}
    if current is not None and meta.get("cortexlite.env") not in (None, cluster.environment.name):
        raise BusyError(
            f"{api.name}: the Nomad job {job_id(api.name)} belongs to environment {meta.get('cortexlite.env')}; "
            "delete it there first, or use another API name"
        )
    if current is not None and current.get("Stop"):
        current = None
    scaling = api.autoscaling
    if current is None:
        return _Target(
            api, None, clamp_replicas(scaling.initial_replicas, scaling.min_replicas, scaling.max_replicas), False
        )
    running = _group_count(current)
    count = clamp_replicas(running, scaling.min_replicas, scaling.max_replicas)
    return _Target(api, current, count, preserve=count == running)


def _up_to_date(job: dict[str, Any], release: Release, count: int, auth: str) -> bool:
    meta = _meta(job)
    return (
        meta.get("cortexlite.spec") == release.spec_hash
        and meta.get("cortexlite.auth", "none") == auth
        and meta.get("cortexlite.version") == release.version
        and _group_count(job) == count
        and job.get("Status") != "dead"
    )


def _check_idle(cluster: Cluster, name: str, force: bool) -> None:
    deployment, _ = cluster.client.deployment(job_id(name))
    if deployment is None or deployment.get("Status") not in ("running", "pending", "paused", "initializing"):
        return
    if force:
        return
    raise BusyError(
        f"{name} is being updated (Nomad deployment {str(deployment.get('ID'))[:8]}, {deployment.get('Status')}); "
        "wait for it to finish, or pass --force to replace it with this version"
    )


def _auth(cluster: Cluster, api: ApiSpec) -> str:
    return effective_auth(api, cluster.environment.auth)


def _register(cluster: Cluster, name: str, job: dict[str, Any], preserve: bool, report: Report, *, auth: str) -> None:
    errors = cluster.client.validate(job)
    if errors:
        listed = "\n".join(f"  {line}" for error in errors for line in error.strip().splitlines())
        raise NomadInvalid(f"{name}: Nomad refused the job {job['ID']}; nothing was registered:\n{listed}")
    # Before the job: its templates read the variable, and Nomad holds a task until the variable exists.
    store_job_variable(cluster, name, split_storage(cluster.environment).secret, ring=auth == "api_key")
    registration = cluster.client.register(job, preserve_counts=preserve)
    if registration.warnings:
        report(f"warning: Nomad: {registration.warnings.strip()}")


def _follow(
    cluster: Cluster, name: str, previous: dict[str, Any] | None, options: DeployOptions, report: Report
) -> None:
    current = cluster.client.job(job_id(name))
    if current is None:
        raise RolloutError(f"{name}: the job {job_id(name)} vanished right after it was registered")
    version = int(current.get("Version") or 0)
    timeout = _healthy_deadline(options) + 300 + _WATCH_MARGIN_S
    outcome = watch_deployment(
        cluster.client, job_id(name), version, report, timeout=timeout, desired=_group_count(current)
    )
    if outcome.status in ("successful", "none"):
        return
    if outcome.status == "cancelled":  # superseded (a newer deploy from elsewhere, or the job was stopped)
        raise RolloutError(
            f"{name}: the deployment of job version {version} was cancelled: {outcome.description}; "
            f"`cortexlite get {name}` shows what serves now"
        )
    lines = describe_failures(cluster.client, job_id(name), version)
    detail = "\n".join(f"  {line}" for line in lines)
    if outcome.status == "timeout":
        raise RolloutError(
            f"{name}: the deployment of job version {version} is {outcome.description}; Nomad goes on with it "
            f"(`cortexlite get {name}` follows it)\n{detail}"
        )
    if previous is None or previous.get("Stop"):
        cluster.client.deregister(job_id(name), purge=True)
        cluster.client.delete_variable(variable_path(name))
        kept = f"{name} was not created (its job was removed)"
    else:
        if outcome.status == "blocked" and outcome.deployment_id:
            cluster.client.fail_deployment(outcome.deployment_id)  # AutoRevert: back to the version that serves
        kept = f"Nomad reverts to job version {previous.get('Version')}, which keeps serving"
    if outcome.status == "blocked":
        raise ComputeUnavailable(f"{name}: compute unavailable: {outcome.description}; {kept}")
    raise RolloutError(f"{name}: the update failed: {outcome.description}; {kept}.\n{detail}")


def _preview(
    cluster: Cluster, api: ApiSpec, target: _Target, job: dict[str, Any], options: DeployOptions
) -> DeployResult:
    action: Action = "created" if target.current is None else "updated"
    items = {key: f"<secret:{key}>" for key in split_storage(cluster.environment).secret}
    if _auth(cluster, api) == "api_key":
        items[RING_ITEM] = "<the API's key ring: ids and SHA-256 hashes (cortexlite keys)>"
    plan: dict[str, Any] = {
        "backend": "nomad",
        "address": cluster.nomad.address,
        "preserve_counts": target.preserve,
        "variable": {"path": variable_path(api.name), "items": items},
        "job": {"Job": job},
    }
    if options.plan:
        from cortexlite.nomad.plan import summarize_plan

        errors = cluster.client.validate(job)
        answer = cluster.client.plan(job) if not errors else {}
        plan["plan"] = summarize_plan(answer, errors, GROUP)
    return _result(cluster, api, action, target.count, plan)


def _healthy_deadline(options: DeployOptions) -> float:
    return options.ready_timeout if options.ready_timeout is not None else DEFAULT_HEALTHY_DEADLINE_S


def _group_count(job: dict[str, Any]) -> int:
    groups = job.get("TaskGroups") or []
    return int(groups[0].get("Count") or 0) if groups else 0


def _meta(job: dict[str, Any] | None) -> dict[str, str]:
    return dict((job or {}).get("Meta") or {})


def _result(
    cluster: Cluster, api: ApiSpec, action: Action, count: int, plan: dict[str, Any] | None = None
) -> DeployResult:
    return DeployResult(api.name, action, api.endpoint, f"{cluster.gateway_url}{api.endpoint}", count, plan)


def _quiet(_message: str) -> None:
    return None
