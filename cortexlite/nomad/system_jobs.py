"""The environment's own jobs on Nomad: the Traefik gateway and the operator, rendered as data.

- `cortexlite-gateway`: a system job (one Traefik per client) with host networking, the web entry
  point on the environment's gateway port and ping plus Prometheus metrics on its admin port
  (Traefik's API stays off). The Nomad provider polls every 5 s, sees only services tagged
  `cortexlite` and `traefik.enable=true`, and reaches the local agent at the node's address.
- `cortexlite-operator`: one allocation running `cortexlite -e <env> operator`; its environment
  definition is written by a template into its CORTEXLITE_HOME, where it also keeps its scaler state
  (the task directory outlives a restart of the task).

With ACLs on, both tasks use their workload identity (`NOMAD_TOKEN` in their environment): attach a
policy to each job (nomad/README.md). `up` registers them when missing or different; `down` stops
them. The same renderings, with placeholder images, are the JSON files under nomad/.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from cortexlite.errors import NomadError
from cortexlite.gateway.config import GatewayLimits
from cortexlite.nomad.job import TRAEFIK_REFRESH_S, JobSettings, ns

__all__ = [
    "GATEWAY_JOB",
    "OPERATOR_JOB",
    "SystemJob",
    "render_gateway_job",
    "render_operator_job",
    "stop_system_jobs",
]

GATEWAY_JOB = "cortexlite-gateway"
OPERATOR_JOB = "cortexlite-operator"
NODE_AGENT = "http://${attr.unique.network.ip-address}:4646"
_LITERAL = ("[[cortexlite-literal:", ":cortexlite-literal]]")
# Keep restarting in place: a gateway or an operator has nowhere better to go than its node.
_RESTART = {"Attempts": 10, "Interval": ns(300), "Delay": ns(5), "Mode": "delay"}

Log = Callable[[str], None]


def render_gateway_job(settings: JobSettings, image: str, port: int, admin_port: int) -> dict[str, Any]:
    """Traefik on every client, routing cortexlite's Nomad services (pure)."""
    args = [
        f"--entrypoints.web.address=:{port}",
        *_limit_args(GatewayLimits()),
        f"--entrypoints.traefik.address=:{admin_port}",
        "--ping=true",
        "--ping.entrypoint=traefik",
        "--metrics.prometheus=true",
        "--metrics.prometheus.entrypoint=traefik",
        "--metrics.prometheus.addrouterslabels=true",
        "--metrics.prometheus.addserviceslabels=true",
        "--providers.nomad=true",
        f"--providers.nomad.refreshInterval={TRAEFIK_REFRESH_S}s",
        "--providers.nomad.exposedByDefault=false",
        "--providers.nomad.constraints=Tag(`cortexlite`)",
        "--log.format=json",
        "--accesslog=false",
    ]
    if settings.namespace:
        args.append(f"--providers.nomad.namespaces={settings.namespace}")
    task = {
        "Name": "traefik",
        "Driver": "docker",
        "Config": {"image": image, "network_mode": "host", "args": args},
        "Env": _agent_env(settings),
        "Identity": {"Env": True},
        "Resources": {"CPU": 500, "MemoryMB": 256},
        "KillTimeout": ns(10),
    }
    group = {
        "Name": "gateway",
        "Count": 1,
        "Networks": [
            {
                "Mode": "host",
                "ReservedPorts": [{"Label": "web", "Value": port}, {"Label": "admin", "Value": admin_port}],
            }
        ],
        "Services": [
            {
                "Name": "cortexlite-gateway",
                "Provider": "nomad",
                "PortLabel": "web",
                "Tags": ["cortexlite-gateway"],
                "Checks": [
                    {
                        "Name": "ping",
                        "Type": "http",
                        "Path": "/ping",
                        "PortLabel": "admin",
                        "Interval": ns(5),
                        "Timeout": ns(2),
                    }
                ],
            }
        ],
        "RestartPolicy": dict(_RESTART),
        "Tasks": [task],
    }
    return _job(GATEWAY_JOB, "system", "gateway", settings, group)


def _limit_args(limits: GatewayLimits) -> list[str]:
    """The web entry point's limits as flags, the same as the file-provider gateways' (gateway/config.py).

    No per-API servers transport here (the Nomad provider's tags cannot define one): Traefik's default waits
    for a replica's answer without a limit, so the replica's own 504 still comes first.
    """
    web = limits.entry_point()
    timeouts = web["transport"]["respondingTimeouts"]
    args = [f"--entrypoints.web.transport.respondingTimeouts.{name}={value}" for name, value in timeouts.items()]
    return [*args, f"--entrypoints.web.http.maxHeaderBytes={web['http']['maxHeaderBytes']}"]


def render_operator_job(settings: JobSettings, image: str, decision_interval: float) -> dict[str, Any]:
    """One operator allocation for the environment: autoscaling through Nomad's scale API (pure)."""
    config = {"current": settings.env, "environments": {settings.env: {"backend": "nomad"}}}
    task = {
        "Name": "operator",
        "Driver": "docker",
        "Config": {"image": image, "network_mode": "host", "args": ["-e", settings.env, "operator"]},
        "Env": _agent_env(settings)
        | {
            "CORTEXLITE_HOME": "/local/cortexlite",
            "CORTEXLITE_OPERATOR_INTERVAL": f"{decision_interval:g}",
            "HOME": "/tmp",
        },
        "Templates": [
            {
                "EmbeddedTmpl": yaml.safe_dump(config, sort_keys=False),
                "DestPath": "local/cortexlite/config.yaml",
                "ChangeMode": "restart",
                "LeftDelim": _LITERAL[0],
                "RightDelim": _LITERAL[1],
                "Perms": "0644",
            }
        ],
        "Identity": {"Env": True},
        "Resources": {"CPU": 300, "MemoryMB": 256},
        "KillTimeout": ns(15),
    }
    group = {
        "Name": "operator",
        "Count": 1,
        "RestartPolicy": dict(_RESTART),
        "Tasks": [task],
    }
    return _job(OPERATOR_JOB, "service", "operator", settings, group)


def _agent_env(settings: JobSettings) -> dict[str, str]:
    env = {"NOMAD_ADDR": NODE_AGENT}
    if settings.namespace:
        env["NOMAD_NAMESPACE"] = settings.namespace
    if settings.region:
        env["NOMAD_REGION"] = settings.region
    return env


def _job(name: str, kind: str, role: str, settings: JobSettings, group: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = {
        "ID": name,
        "Name": name,
        "Type": kind,
        "Datacenters": list(settings.datacenters),
        "Meta": {"cortexlite.role": role, "cortexlite.env": settings.env},
        "TaskGroups": [group],
    }
    if settings.namespace:
        job["Namespace"] = settings.namespace
    if settings.region:
        job["Region"] = settings.region
    job["Meta"]["cortexlite.spec"] = _digest(job)
    return job


def _digest(job: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class SystemJob:
    """One of the environment's own jobs: registered when missing or different, stopped on `down`."""

    client: Any  # NomadClient
    env: str
    name: str
    render: Callable[[Log], dict[str, Any]]  # builds and pushes the image it needs, then renders

    def running(self) -> bool:
        job = self._ours()
        return job is not None and job.get("Status") == "running"

    def ensure(self, log: Log | None = None) -> tuple[str, bool]:
        say = log or (lambda _line: None)
        job = self.render(say)
        current = self._ours()
        if current is not None and (current.get("Meta") or {}).get("cortexlite.spec") == job["Meta"]["cortexlite.spec"]:
            return f"Nomad job {self.name}", False
        errors = self.client.validate(job)
        if errors:
            raise NomadError(f"Nomad refused the job {self.name}: {'; '.join(errors)}")
        self.client.register(job, preserve_counts=False)
        return f"Nomad job {self.name} (`nomad job status {self.name}`)", True

    def stop(self) -> bool:
        if self._ours() is None:
            return False
        self.client.deregister(self.name, purge=True)
        return True

    def _ours(self) -> dict[str, Any] | None:
        job = self.client.job(self.name)
        if job is None or job.get("Stop"):
            return None
        meta = job.get("Meta") or {}
        return job if meta.get("cortexlite.env") == self.env else None


def stop_system_jobs(cluster: Any) -> list[str]:
    """Stop the environment's gateway and operator jobs (those cortexlite registered): lines for the user."""
    lines = []
    if cluster.operator.stop():
        lines.append(f"operator stopped (Nomad job {OPERATOR_JOB})")
    if cluster.gateway.stop():
        lines.append(f"gateway stopped (Nomad job {GATEWAY_JOB})")
    return lines
