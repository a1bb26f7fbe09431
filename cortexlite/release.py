"""A release: one API's spec, project content and runtime, and the hashes that say what changed.

`version` covers only what a replica runs (the predictor section, compute, the concurrency cap,
the project's files but the spec file, and the runtime), so a change to autoscaling bounds, the update strategy or
the endpoint updates the API without replacing its replicas; `spec_hash` covers the whole spec.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cortexlite_runtime.spec import RESOLVED_SPEC_VERSION, ApiSpec

__all__ = ["Release", "make_release", "replica_fingerprint", "spec_data"]


@dataclass(frozen=True)
class Release:
    api: ApiSpec
    project_hash: str
    runtime: str  # the backend's runtime identity (the process backend: the venv key)
    version: str
    spec_hash: str
    # `cortexlite dev`: replicas run the live project directory with hot reload on.
    dev: bool = False

    @property
    def name(self) -> str:
        return self.api.name

    def resolved_spec(self) -> dict[str, Any]:
        """The JSON a replica reads through `CORTEX_API_SPEC`."""
        return {
            "version": RESOLVED_SPEC_VERSION,
            "api": spec_data(self.api),
            "spec_hash": self.spec_hash,
            "project_hash": self.project_hash,
        }


def spec_data(api: ApiSpec) -> dict[str, Any]:
    """The spec as the user wrote it, Cortex spellings mapped: re-validating it gives the same API.

    Unset fields stay unset, which the runtime relies on (an unset concurrency cap lets Cortex
    0.15's CORTEX_MAX_WORKER_CONCURRENCY apply).
    """
    return api.model_dump(mode="json", exclude_unset=True)


def replica_fingerprint(api: ApiSpec) -> dict[str, Any]:
    full = api.model_dump(mode="json")
    fingerprint = {
        "name": full["name"],
        "predictor": full["predictor"],
        "compute": full["compute"],
        "max_replica_concurrency": full["autoscaling"]["max_replica_concurrency"],
        "cap_set": "max_replica_concurrency" in api.autoscaling.model_fields_set,
    }
    # Replicas enforce auth and the timeout; only when set, so versions made before these existed stay.
    served = {key: full["networking"][key] for key in ("auth", "timeout") if key in api.networking.model_fields_set}
    if served:
        fingerprint["networking"] = served
    return fingerprint


def make_release(api: ApiSpec, project_hash: str, runtime: str, *, dev: bool = False) -> Release:
    replica: dict[str, Any] = {"replica": replica_fingerprint(api), "project": project_hash, "runtime": runtime}
    version = _digest(replica | ({"dev": True} if dev else {}))
    spec_hash = _digest({"full": api.model_dump(mode="json"), "written": spec_data(api)})
    return Release(api, project_hash, runtime, version, spec_hash, dev)


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
