"""What cortexlite records about an environment's APIs, under `CORTEXLITE_HOME/envs/<env>/apis/<api>/`.

    api.json        the release that serves (spec, hashes, snapshot, requested replicas)
    rollout.json    present only while an update runs: what it moves from and to, and who runs it
    deploy-failure.json  the last deploy that failed (when, why, its last log lines), until one succeeds
    lock            flock held by the command updating the API (released by the kernel if it dies)
    specs/<v>.json  the resolved spec each version's replicas read (CORTEX_API_SPEC)
    replicas/, logs/  the process backend's records and log files

A `rollout.json` whose owner is gone means an interrupted update: the next command rolls it back.
A `deploy-failure.json` alone is an API whose creation failed: `get` shows why, `delete` forgets it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from cortexlite.failures import FailureKind
from cortexlite.files import Lock, atomic_write, read_json, write_json
from cortexlite.processes import ProcessRef
from cortexlite.release import Release, spec_data
from cortexlite_runtime.spec import ApiSpec

__all__ = ["ApiRecord", "DeployFailure", "EnvState", "RolloutMarker"]

_FAILURE_FILE = "deploy-failure.json"


class ApiRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    spec: dict[str, Any]
    spec_hash: str
    project_hash: str
    runtime: str
    snapshot: str
    requested: int
    created_at: float
    updated_at: float
    dev: bool = False  # `cortexlite dev`: the snapshot is the live project directory, hot reload on

    @classmethod
    def of(cls, release: Release, snapshot: Path, requested: int, created_at: float | None = None) -> ApiRecord:
        now = time.time()
        return cls(
            name=release.name, version=release.version, spec=spec_data(release.api), spec_hash=release.spec_hash,
            project_hash=release.project_hash, runtime=release.runtime, snapshot=str(snapshot),
            requested=requested, created_at=created_at or now, updated_at=now, dev=release.dev,
        )  # fmt: skip

    def release(self) -> Release:
        api = ApiSpec.model_validate(self.spec)
        return Release(api, self.project_hash, self.runtime, self.version, self.spec_hash, self.dev)

    @property
    def endpoint(self) -> str:
        return self.release().api.endpoint


class RolloutMarker(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["create", "update", "refresh"]
    owner_pid: int
    owner_started: float
    started_at: float
    target: ApiRecord
    previous: ApiRecord | None = None

    @property
    def owner(self) -> ProcessRef:
        return ProcessRef(self.owner_pid, self.owner_started)


class DeployFailure(BaseModel):
    """The last failed deploy of an API: kept until a deploy of it succeeds (or it is deleted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float
    action: Literal["create", "update", "refresh"]
    kind: FailureKind | None  # None: a failure of no known class (the message says what)
    message: str  # one line
    endpoint: str
    log_source: str | None = None  # whose lines `log_tail` holds: "replica 3f2a1b", "pip install -r ..."
    log_tail: list[str] = []
    kept: bool = False  # the previous version kept serving


class EnvState:
    """The records of one environment's APIs, as files under `CORTEXLITE_HOME/envs/<env>/`."""

    def __init__(self, home: Path, env: str) -> None:
        self.root = home / "envs" / env
        self.env = env

    def api_dir(self, name: str) -> Path:
        return self.root / "apis" / name

    def names(self) -> list[str]:
        """APIs with a record, an update under way, or replicas (a lone lock file is not an API)."""
        apis = self.root / "apis"
        if not apis.is_dir():
            return []
        return sorted(
            path.name
            for path in apis.iterdir()
            if path.is_dir()
            and not path.name.startswith(".")
            and any((path / part).exists() for part in ("api.json", "rollout.json", "replicas", _FAILURE_FILE))
        )

    def api(self, name: str) -> ApiRecord | None:
        data = read_json(self.api_dir(name) / "api.json")
        try:
            return ApiRecord.model_validate(data) if data is not None else None
        except ValidationError:
            return None

    def save_api(self, record: ApiRecord) -> None:
        write_json(self.api_dir(record.name) / "api.json", record.model_dump(mode="json"))

    def forget_api(self, name: str) -> None:
        shutil.rmtree(self.api_dir(name), ignore_errors=True)

    def lock(self, name: str) -> Lock:
        return Lock(self.api_dir(name) / "lock")

    def marker(self, name: str) -> RolloutMarker | None:
        data = read_json(self.api_dir(name) / "rollout.json")
        try:
            return RolloutMarker.model_validate(data) if data is not None else None
        except ValidationError:
            return None

    def set_marker(self, marker: RolloutMarker) -> None:
        write_json(self.api_dir(marker.target.name) / "rollout.json", marker.model_dump(mode="json"))

    def clear_marker(self, name: str) -> None:
        (self.api_dir(name) / "rollout.json").unlink(missing_ok=True)

    def deploy_failure(self, name: str) -> DeployFailure | None:
        data = self.read_api_file(name, _FAILURE_FILE)
        try:
            return DeployFailure.model_validate(data) if data is not None else None
        except ValidationError:
            return None

    def record_failure(self, name: str, failure: DeployFailure) -> None:
        """Keep `failure` as the API's last failed deploy (here, and where a remote host's state lives)."""
        data = failure.model_dump(mode="json")
        write_json(self.api_dir(name) / _FAILURE_FILE, data)
        self.share(f"envs/{self.env}/apis/{name}/{_FAILURE_FILE}", json.dumps(data).encode())

    def clear_failure(self, name: str) -> None:
        if self.deploy_failure(name) is None:
            return
        (self.api_dir(name) / _FAILURE_FILE).unlink(missing_ok=True)
        self.share(f"envs/{self.env}/apis/{name}/{_FAILURE_FILE}", b"null\n")

    def read_api_file(self, name: str, filename: str) -> Any:
        """A JSON file the API's directory holds (the operator's `autoscaler.json`), or None."""
        return read_json(self.api_dir(name) / filename)

    def share(self, relative: str, data: bytes) -> None:
        """Hand a file to whoever else reads this state (the operator on a remote host); here, nothing to do."""

    def read_shared(self, relative: str) -> bytes | None:
        """A file under `CORTEXLITE_HOME` (relative to it) as every machine of this environment sees it."""
        try:
            return (self.root.parent.parent / relative).read_bytes()
        except FileNotFoundError:
            return None

    def write_shared(self, relative: str, data: bytes, mode: int = 0o644) -> None:
        """Write a file under `CORTEXLITE_HOME` here, and where the environment's replicas read it."""
        atomic_write(self.root.parent.parent / relative, data, mode=mode)
        self.share(relative, data)

    def discard(self) -> None:
        """Forget where the state lives once no API is left (`down`); here, nothing to do."""

    def spec_file(self, release: Release) -> Path:
        """The resolved spec of `release`, written once per version and spec."""
        path = self.api_dir(release.name) / "specs" / f"{release.version}-{release.spec_hash}.json"
        if not path.is_file():
            write_json(path, release.resolved_spec())
        return path
