"""A Nomad environment, opened: its client, images, storage and the settings every job is rendered with.

Nothing about a Nomad environment's APIs is kept on this machine: the jobs are the record (their
`Meta` says which environment, API, spec and version they run; their count is the replica count),
so any machine with the environment's definition sees the same truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from cortexlite.bundles import BundleStore, replica_storage
from cortexlite.environments import Environment
from cortexlite.errors import NotFoundError
from cortexlite.nomad.client import NomadClient
from cortexlite.nomad.images import ClusterImages
from cortexlite.nomad.job import CA_PATH, JobSettings, job_id
from cortexlite.nomad.settings import DEFAULT_CPU_MHZ_PER_CORE, NomadSettings
from cortexlite.nomad.system_jobs import (
    GATEWAY_JOB,
    OPERATOR_JOB,
    SystemJob,
    render_gateway_job,
    render_operator_job,
)
from cortexlite.settings import Settings

__all__ = ["SECRET_NAMES", "Cluster", "StorageSplit", "split_storage"]

# What goes into the job's Nomad Variable instead of the job.
SECRET_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CORTEXLITE_S3_ACCESS_KEY", "CORTEXLITE_S3_SECRET_KEY")
JOB_PREFIX = "cortexlite-"


@dataclass(frozen=True)
class StorageSplit:
    plain: dict[str, str]
    secret: dict[str, str]
    ca_bundle: str | None


def split_storage(environment: Environment) -> StorageSplit:
    """The storage variables replicas get, split into the job's `Env` and its Variable's items."""
    storage = replica_storage(environment, f"/{CA_PATH}")
    plain = {key: value for key, value in storage.env.items() if key not in SECRET_NAMES}
    secret = {key: value for key, value in storage.env.items() if key in SECRET_NAMES}
    ca_bundle = storage.ca_bundle.read_text(encoding="utf-8") if storage.ca_bundle is not None else None
    return StorageSplit(plain, secret, ca_bundle)


@dataclass
class Cluster:
    settings: Settings
    environment: Environment
    nomad: NomadSettings
    client: NomadClient
    images: ClusterImages
    notices: list[str] = field(default_factory=list)
    _bundles: BundleStore | None = None

    @classmethod
    def open(cls, settings: Settings, environment: Environment, notices: list[str] | None = None) -> Cluster:
        nomad = NomadSettings.from_environment(environment)
        client = NomadClient(nomad)
        return cls(settings, environment, nomad, client, ClusterImages(settings, environment.registry), notices or [])

    @property
    def gateway_url(self) -> str:
        return f"http://{self.environment.gateway_address}:{self.environment.gateway_port}"

    @property
    def bundles(self) -> BundleStore:
        if self._bundles is None:
            self._bundles = BundleStore.for_environment(self.settings.home, self.environment)
        return self._bundles

    @property
    def gateway(self) -> SystemJob:
        environment = self.environment

        def render(log: Callable[[str], None]) -> dict[str, Any]:
            from cortexlite.gateway.container import ensure_gateway_image

            tag = ensure_gateway_image(
                self.images.engine, self.images.options, self.settings.cache_dir, self.settings.traefik, log
            )
            image = self.images.publish(tag, log)
            return render_gateway_job(self.job_settings(), image, environment.gateway_port, environment.admin_port)

        return SystemJob(self.client, environment.name, GATEWAY_JOB, render)

    @property
    def operator(self) -> SystemJob:
        def render(log: Callable[[str], None]) -> dict[str, Any]:
            from cortexlite.operator_container import ensure_operator_image

            image = self.images.publish(ensure_operator_image(self.images.engine, self.images.options, log), log)
            return render_operator_job(self.job_settings(), image, self.settings.operator_interval)

        return SystemJob(self.client, self.environment.name, OPERATOR_JOB, render)

    def job_settings(self, healthy_deadline_s: float = 300.0) -> JobSettings:
        storage = split_storage(self.environment)
        return JobSettings(
            env=self.environment.name,
            datacenters=self.environment.nomad_datacenters or ("*",),
            namespace=self.nomad.namespace,
            region=self.nomad.region,
            cpu_mhz_per_core=self.environment.cpu_mhz_per_core or DEFAULT_CPU_MHZ_PER_CORE,
            storage_env=storage.plain,
            secret_names=tuple(sorted(storage.secret)),
            ca_bundle=storage.ca_bundle,
            healthy_deadline_s=healthy_deadline_s,
            auth=self.environment.auth,
        )

    def api_jobs(self) -> dict[str, dict[str, Any]]:
        """API name -> job stub, for this environment's APIs that are not stopped."""
        found = {}
        for stub in self.client.jobs(JOB_PREFIX):
            if "Meta" not in stub:  # an agent older than `?meta=true` (Nomad 1.6): read the job itself
                stub["Meta"] = (self.client.job(str(stub.get("ID"))) or {}).get("Meta")
            meta = stub.get("Meta") or {}
            if meta.get("cortexlite.role") != "api" or meta.get("cortexlite.env") != self.environment.name:
                continue
            if stub.get("Stop"):
                continue
            found[str(meta.get("cortexlite.api"))] = stub
        return dict(sorted(found.items()))

    def api_job(self, name: str) -> dict[str, Any] | None:
        """The API's job when it belongs to this environment and is not stopped."""
        job = self.client.job(job_id(name))
        meta = (job or {}).get("Meta") or {}
        if job is None or job.get("Stop") or meta.get("cortexlite.env") != self.environment.name:
            return None
        return job

    def require_api(self, name: str) -> dict[str, Any]:
        job = self.api_job(name)
        if job is None:
            raise NotFoundError(f"no API named {name} in environment {self.environment.name}")
        return job

    def close(self) -> None:
        self.client.close()
        self.images.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
