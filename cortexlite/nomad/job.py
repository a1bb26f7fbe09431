"""An API as a Nomad job: a pure function from the release and the cluster's settings to Nomad's JSON.

The job `cortexlite-<api>` is a service job with one group (`api`) of one docker task
(`predictor`) running the runtime image:

- the project arrives as a bundle from storage (`CORTEX_PROJECT_URI`); the resolved spec is an
  inline template written to `local/cortexlite/api.json`;
- storage credentials are **references**: the task's template reads the job's Nomad Variable
  (`nomad/jobs/cortexlite-<api>`) into environment variables, so no secret is in the job;
- with `networking.auth: api_key`, another template renders the API's key ring (hashes, item
  `api_keys` of the same Variable) to `secrets/`, owned by the replica's user, without restarting on change;
- the container runs as an unprivileged user (uid 10001) with `no-new-privileges`: the image has its
  dependencies already, so nothing needs root at run time;
- a dynamic port (`http`) reaches the runtime's port 8888; a Nomad-provider service with an HTTP
  check on `/readyz` marks allocations healthy for deployments, and its Traefik tags route
  `/<endpoint>` with the prefix stripped and Traefik's own health check;
- updates never drop capacity below what the spec allows, even for one replica: `max_surge`
  becomes canaries (at least 1) promoted automatically once healthy, `max_unavailable` becomes
  `MaxParallel` (with `max_unavailable: 0` every replica gets a canary), and a failed update
  reverts by itself (`AutoRevert`);
- `ShutdownDelay` outlasts Traefik's refresh plus its health-check interval, so a replica leaves
  routing before it gets SIGTERM; `KillTimeout` covers the runtime's drain.

Every duration is an integer of nanoseconds, as Nomad's API decodes them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cortexlite.errors import SpecError
from cortexlite.release import Release
from cortexlite.rollout import budget

__all__ = [
    "CA_PATH",
    "GROUP",
    "KEYS_PATH",
    "SPEC_PATH",
    "TASK",
    "JobSettings",
    "NomadRelease",
    "job_auth",
    "job_id",
    "ns",
    "render_job",
    "service_tags",
    "variable_path",
]

GROUP = "api"
TASK = "predictor"
SERVING_PORT = 8888
PORT_LABEL = "http"
SPEC_PATH = "local/cortexlite/api.json"
CA_PATH = "local/cortexlite/s3-ca.pem"
SECRETS_PATH = "secrets/cortexlite-storage.env"
KEYS_PATH = "secrets/cortexlite-api-keys.json"
KEYS_ITEM = "api_keys"  # the item of the job's Variable holding the key ring (cortexlite.nomad.keys.RING_ITEM)
REPLICA_UID = 10001
DEFAULT_MEMORY_MB = 1024
# Traefik's Nomad provider polls every TRAEFIK_REFRESH_S; its health check runs every HEALTH_CHECK_INTERVAL_S.
TRAEFIK_REFRESH_S = 5
HEALTH_CHECK_INTERVAL_S = 2
SHUTDOWN_DELAY_S = TRAEFIK_REFRESH_S + HEALTH_CHECK_INTERVAL_S + 3
# Nomad clients cap kill_timeout at max_kill_timeout (30 s by default): the runtime drains within it.
KILL_TIMEOUT_S = 30
RUNTIME_GRACE_PERIOD_S = 25
RUNTIME_SHUTDOWN_DELAY_S = 1
# Literal text in templates: delimiters that never occur in it, so `{{` in a user's config stays as written.
_LITERAL_LEFT, _LITERAL_RIGHT = "[[cortexlite-literal:", ":cortexlite-literal]]"
_RETRY_ATTEMPTS = 5
_SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def ns(seconds: float) -> int:
    """Nomad's durations: integer nanoseconds."""
    return round(seconds * 1_000_000_000)


def job_id(api: str) -> str:
    return f"cortexlite-{api}"


def variable_path(api: str) -> str:
    """The Nomad Variable with the API's secrets; a job's tasks may read `nomad/jobs/<job id>` without a policy."""
    return f"nomad/jobs/{job_id(api)}"


@dataclass(frozen=True)
class JobSettings:
    """What the environment decides about every job it renders."""

    env: str
    datacenters: tuple[str, ...] = ("*",)
    namespace: str | None = None
    region: str | None = None
    cpu_mhz_per_core: int = 2000
    # Storage as replicas see it: plain variables (a private CA's at /CA_PATH), and the names of those held in
    # the job's Variable.
    storage_env: Mapping[str, str] = field(default_factory=dict)
    secret_names: tuple[str, ...] = ()
    ca_bundle: str | None = None  # PEM text of the store's CA, when it has a private one
    healthy_deadline_s: float = 300.0
    auth: str | None = None  # the environment's default networking.auth


def job_auth(release: Release, settings: JobSettings) -> str:
    """The API's networking.auth, else the environment's, else none."""
    return release.api.networking.auth or settings.auth or "none"


@dataclass(frozen=True)
class NomadRelease:
    """One API as it will run: the release, its image, its bundle and the group's count."""

    release: Release
    image: str
    project_uri: str
    count: int
    refresh: str | None = None  # set by `refresh`: a new value replaces every allocation


def render_job(target: NomadRelease, settings: JobSettings) -> dict[str, Any]:
    """The job (the `Job` of a register request) for `target` in `settings`' cluster (pure)."""
    api = target.release.api
    job: dict[str, Any] = {
        "ID": job_id(api.name),
        "Name": job_id(api.name),
        "Type": "service",
        "Datacenters": list(settings.datacenters),
        "Meta": _meta(target, settings),
        "TaskGroups": [_group(target, settings)],
    }
    if settings.namespace:
        job["Namespace"] = settings.namespace
    if settings.region:
        job["Region"] = settings.region
    return job


def _meta(target: NomadRelease, settings: JobSettings) -> dict[str, str]:
    release = target.release
    return {
        "cortexlite.role": "api",
        "cortexlite.env": settings.env,
        "cortexlite.api": release.name,
        "cortexlite.endpoint": release.api.endpoint,
        "cortexlite.spec": release.spec_hash,
        "cortexlite.version": release.version,
        "cortexlite.project": release.project_hash,
        "cortexlite.auth": job_auth(release, settings),
    }


def _group(target: NomadRelease, settings: JobSettings) -> dict[str, Any]:
    api = target.release.api
    scaling = api.autoscaling
    return {
        "Name": GROUP,
        "Count": target.count,
        "Scaling": {"Min": scaling.min_replicas, "Max": scaling.max_replicas, "Enabled": True},
        "Update": update_strategy(target, settings),
        "RestartPolicy": {"Attempts": 3, "Interval": ns(300), "Delay": ns(10), "Mode": "fail"},
        "Networks": [{"DynamicPorts": [{"Label": PORT_LABEL, "To": SERVING_PORT}]}],
        "Services": [_service(api.name, api.endpoint)],
        "ShutdownDelay": ns(SHUTDOWN_DELAY_S),
        "Tasks": [_task(target, settings)],
    }


def update_strategy(target: NomadRelease, settings: JobSettings) -> dict[str, Any]:
    """Kubernetes-style surge and unavailability as Nomad canaries and parallelism."""
    api, count = target.release.api, max(1, target.count)
    allowed = budget(api.update_strategy, count)
    canaries = count if allowed.unavailable == 0 else min(count, max(1, allowed.surge))
    healthy = max(10.0, settings.healthy_deadline_s)
    return {
        "MaxParallel": max(1, allowed.unavailable),
        "Canary": canaries,
        "AutoPromote": True,
        "AutoRevert": True,
        "HealthCheck": "checks",
        "MinHealthyTime": ns(5),
        "HealthyDeadline": ns(healthy),
        "ProgressDeadline": ns(healthy + 300),
    }


def service_name(api: str) -> str:
    name = job_id(api)
    if not _SERVICE_NAME.match(name):
        raise SpecError(f"{api}: {name!r} is not a valid Nomad service name (RFC 1123 label, at most 63 characters)")
    return name


def service_tags(api: str, endpoint: str) -> list[str]:
    """Traefik's routing for the API, as the tags its Nomad provider reads (same rules as the file provider)."""
    name = job_id(api)
    router, service = f"traefik.http.routers.{name}", f"traefik.http.services.{name}.loadbalancer"
    retry = f"traefik.http.middlewares.{name}-retry.retry"
    tags = [
        "traefik.enable=true",
        f"{router}.entrypoints=web",
        f"{router}.service={name}",
        f"{retry}.attempts={_RETRY_ATTEMPTS}",
        f"{retry}.initialinterval=50ms",
        f"{service}.healthcheck.path=/readyz",
        f"{service}.healthcheck.interval={HEALTH_CHECK_INTERVAL_S}s",
        f"{service}.healthcheck.timeout=1s",
    ]
    if endpoint == "/":
        tags += [f"{router}.rule=PathPrefix(`/`)", f"{router}.priority=1", f"{router}.middlewares={name}-retry"]
    else:
        tags += [
            f"{router}.rule=Path(`{endpoint}`) || PathPrefix(`{endpoint}/`)",
            f"{router}.priority={len(endpoint) + 10}",
            f"{router}.middlewares={name}-strip,{name}-retry",
            f"traefik.http.middlewares.{name}-strip.stripprefix.prefixes={endpoint}",
        ]
    return sorted(tags)


def _service(api: str, endpoint: str) -> dict[str, Any]:
    return {
        "Name": service_name(api),
        "Provider": "nomad",
        "PortLabel": PORT_LABEL,
        "Tags": ["cortexlite", *service_tags(api, endpoint)],
        "Checks": [
            {
                "Name": "readyz",
                "Type": "http",
                "Path": "/readyz",
                "Interval": ns(HEALTH_CHECK_INTERVAL_S),
                "Timeout": ns(1),
            }
        ],
    }


def _task(target: NomadRelease, settings: JobSettings) -> dict[str, Any]:
    release = target.release
    task: dict[str, Any] = {
        "Name": TASK,
        "Driver": "docker",
        "User": f"{REPLICA_UID}:{REPLICA_UID}",
        "Config": {"image": target.image, "ports": [PORT_LABEL], "security_opt": ["no-new-privileges"]},
        "Env": _env(target, settings),
        "Templates": _templates(release, settings),
        "Resources": _resources(release, settings),
        "KillTimeout": ns(KILL_TIMEOUT_S),
        "KillSignal": "SIGTERM",
        "Meta": {"cortexlite.version": release.version},
    }
    return task


def _env(target: NomadRelease, settings: JobSettings) -> dict[str, str]:
    env = {
        "CORTEX_SERVING_HOST": "0.0.0.0",
        "CORTEX_SERVING_PORT": str(SERVING_PORT),
        "CORTEX_PROJECT_DIR": "/mnt/project",
        "CORTEX_PROJECT_URI": target.project_uri,
        "CORTEX_API_SPEC": f"/{SPEC_PATH}",
        "CORTEX_CACHE_DIR": "/alloc/data",
        "CORTEX_SHUTDOWN_DELAY": str(RUNTIME_SHUTDOWN_DELAY_S),
        "CORTEX_GRACE_PERIOD": str(RUNTIME_GRACE_PERIOD_S),
        "CORTEXLITE_DEPENDENCIES": "preinstalled",
        "CORTEXLITE_LOG_FORMAT": "json",
        "CORTEXLITE_REPLICA_ID": "${NOMAD_SHORT_ALLOC_ID}",
        "CORTEXLITE_AUTH": job_auth(target.release, settings),
        "HOME": "/tmp",
    } | dict(settings.storage_env)
    if env["CORTEXLITE_AUTH"] == "api_key":
        env["CORTEXLITE_API_KEYS"] = "${NOMAD_SECRETS_DIR}/" + KEYS_PATH.removeprefix("secrets/")
    if target.refresh is not None:
        env["CORTEXLITE_REFRESH"] = target.refresh
    return env


def _templates(release: Release, settings: JobSettings) -> list[dict[str, Any]]:
    spec = json.dumps(release.resolved_spec(), sort_keys=True, indent=1)
    templates = [_literal(spec, SPEC_PATH, release.name)]
    if settings.ca_bundle is not None:
        templates.append(_literal(settings.ca_bundle, CA_PATH, release.name))
    if settings.secret_names:
        # Quoted as JSON: go-envparse reads JSON escapes, while a bare `#` would cut an unquoted value short.
        lines = "".join(f"{name}={{{{ .{name}.Value | toJSON }}}}\n" for name in settings.secret_names)
        templates.append(
            {
                "EmbeddedTmpl": f'{{{{ with nomadVar "{variable_path(release.name)}" }}}}\n{lines}{{{{ end }}}}\n',
                "DestPath": SECRETS_PATH,
                "Envvars": True,
                "ChangeMode": "restart",
                "Perms": "0600",
            }
        )
    if job_auth(release, settings) == "api_key":
        # The ring as it is: hashes only. Rewritten by Nomad when `cortexlite keys` changes it; the runtime follows.
        templates.append(
            {
                "EmbeddedTmpl": f'{{{{ with nomadVar "{variable_path(release.name)}" }}}}'
                f"{{{{ .{KEYS_ITEM}.Value }}}}{{{{ end }}}}\n",
                "DestPath": KEYS_PATH,
                "ChangeMode": "noop",
                "Perms": "0600",
                "Uid": REPLICA_UID,
                "Gid": REPLICA_UID,
            }
        )
    return templates


def _literal(text: str, destination: str, api: str) -> dict[str, Any]:
    if _LITERAL_LEFT in text or _LITERAL_RIGHT in text:
        raise SpecError(f"{api}: the spec contains cortexlite's template delimiter {_LITERAL_LEFT!r}")
    return {
        "EmbeddedTmpl": text,
        "DestPath": destination,
        "ChangeMode": "noop",
        "LeftDelim": _LITERAL_LEFT,
        "RightDelim": _LITERAL_RIGHT,
        "Perms": "0644",
    }


def _resources(release: Release, settings: JobSettings) -> dict[str, Any]:
    compute = release.api.compute
    cores = compute.cpu if compute.cpu is not None else 1.0
    memory = math.ceil(compute.mem / 2**20) if compute.mem is not None else DEFAULT_MEMORY_MB
    resources: dict[str, Any] = {"CPU": max(1, round(cores * settings.cpu_mhz_per_core)), "MemoryMB": memory}
    if compute.gpu > 0:
        device: dict[str, Any] = {"Name": "nvidia/gpu", "Count": compute.gpu}
        constraints = []
        if compute.gpu_mem is not None:
            mib = math.ceil(compute.gpu_mem / 2**20)
            constraints.append({"LTarget": "${device.attr.memory}", "RTarget": f"{mib} MiB", "Operand": ">="})
        if compute.gpu_model is not None:
            model = re.escape(compute.gpu_model)
            constraints.append({"LTarget": "${device.model}", "RTarget": f"(?i){model}", "Operand": "regexp"})
        if constraints:
            device["Constraints"] = constraints
        resources["Devices"] = [device]
    return resources
