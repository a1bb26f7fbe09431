"""The process backend: each replica is a detached `python -m cortexlite_runtime` on 127.0.0.1.

- Runtime: a cached venv with the runtime and the project's requirements (`cortexlite.venvs`);
  replicas start with `CORTEXLITE_DEPENDENCIES=preinstalled`, so none of them runs pip.
- Ports: from the cortexlite range (`CORTEXLITE_PORT_RANGE`), never a gateway's, chosen under a
  lock shared by every environment of this `CORTEXLITE_HOME` and checked free by binding.
- GPUs: a replica asking for `compute.gpu` is pinned to free GPUs by UUID (`CUDA_VISIBLE_DEVICES`),
  chosen under the same lock as ports (`cortexlite.gpus`); its record says which it holds.
- Records: `apis/<api>/replicas/<id>.json` with (pid, start time), verified before any signal.
- Logs: `apis/<api>/logs/<id>.log`, rotated at 10 MiB (three old files kept).
- `dependencies.sh` is not run: it would change this machine (the Docker backend runs it in images).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from cortexlite.backends.base import Backend, LogSink, Prepared, Probe, Replica, ReplicaStatus, probe_readiness
from cortexlite.bundles import ReplicaStorage
from cortexlite.errors import BackendError
from cortexlite.files import Lock, read_json, write_json
from cortexlite.gpus import Gpu, allocate, cuda_environment, describe_plan, holders, inventory, shortfall
from cortexlite.keys import KeyStore, effective_auth, rings_dir
from cortexlite.ports import RESERVATION_S, bindable, recorded_ports
from cortexlite.processes import ProcessRef, Spawned, spawn, terminate
from cortexlite.project import Project
from cortexlite.release import Release
from cortexlite.settings import Settings
from cortexlite.state import EnvState
from cortexlite.venvs import ensure_venv, plan_venv

__all__ = ["ProcessBackend", "replica_environment"]

_DROPPED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")


def replica_environment(
    base: Mapping[str, str], *, replica_id: str, port: int, snapshot: Path, spec_file: Path, cache_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:  # fmt: skip
    """This environment without CORTEX_*/CORTEXLITE_* or interpreter overrides, plus the runtime's settings."""
    env = {
        key: value
        for key, value in base.items()
        if not key.startswith(("CORTEX_", "CORTEXLITE_")) and key not in _DROPPED
    }
    return (
        env
        | {
            "CORTEX_SERVING_HOST": "127.0.0.1",
            "CORTEX_SERVING_PORT": str(port),
            "CORTEX_PROJECT_DIR": str(snapshot),
            "CORTEX_API_SPEC": str(spec_file),
            "CORTEX_CACHE_DIR": str(cache_dir / "runtime"),
            "CORTEXLITE_DEPENDENCIES": "preinstalled",
            "CORTEXLITE_LOG_FORMAT": "json",
            "CORTEXLITE_REPLICA_ID": replica_id,
        }
        | dict(extra or {})
    )


class ProcessBackend(Backend):
    kind = "process"

    def __init__(
        self, settings: Settings, state: EnvState, reserved_ports: Sequence[int] = (),
        storage: ReplicaStorage | None = None, auth: str | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.auth = auth  # the environment's default networking.auth
        self.storage_env = dict(storage.env) if storage else {}
        self.storage_shown = dict(storage.shown) if storage else {}
        self.state = state
        self._reserved = set(reserved_ports)
        self._spawned: dict[str, Spawned] = {}
        self._http = httpx.Client(timeout=1.0, trust_env=False)
        self._gpus: list[Gpu] | None = None  # sampled once: starting NVML is slow

    def close(self) -> None:
        self._http.close()

    def _auth_environment(self, release: Release) -> dict[str, str]:
        """networking.auth for the replica; with api_key, the API's ring is written first."""
        mode = effective_auth(release.api, self.auth)
        if mode == "none":
            return {"CORTEXLITE_AUTH": mode}
        KeyStore.of(self.state).publish(release.name)
        ring = rings_dir(self.settings.home, self.state.env) / f"{release.name}.json"
        return {"CORTEXLITE_AUTH": mode, "CORTEXLITE_API_KEYS": str(ring)}

    # --- runtime --------------------------------------------------------------------------------

    def runtime_for(self, project: Project, api: str) -> str:
        return plan_venv(project.read("requirements.txt"), _extras(project, api)).key

    def prepare(self, project: Project, api: str, log: LogSink) -> Prepared:
        plan = plan_venv(project.read("requirements.txt"), _extras(project, api))
        venv = ensure_venv(plan, self.settings.cache_dir, log)
        return Prepared(venv.key, venv.created, {"venv": str(venv.path)})

    # --- replicas -------------------------------------------------------------------------------

    def start(self, release: Release, snapshot: Path, spec_file: Path) -> Replica:
        python = self._venv(release.runtime) / "bin" / "python"
        if not python.is_file():
            raise BackendError(f"the replica venv {release.runtime} is missing in {self.settings.cache_dir}/venvs")
        replica_id = self._new_id(release.name)
        log_path = self._log_path(release.name, replica_id)
        with Lock(self.settings.home / ".ports.lock").hold():
            port = self._free_port()
            pinned = self._pin(release)
            record: dict[str, Any] = {
                "id": replica_id, "api": release.name, "version": release.version, "port": port,
                "created_at": time.time(), "log": str(log_path), "pid": 0, "started": 0.0,
                "gpus": [gpu.uuid for gpu in pinned],
            }  # fmt: skip
            self._write(record)
            env = replica_environment(
                os.environ, replica_id=replica_id, port=port, snapshot=snapshot, spec_file=spec_file,
                cache_dir=self.settings.cache_dir, extra=self.storage_env,
            ) | cuda_environment(self._inventory(), pinned) | _reload_environment(release)  # fmt: skip
            env |= self._auth_environment(release)
            try:
                spawned = spawn([str(python), "-m", "cortexlite_runtime"], env=env, cwd=snapshot, log_path=log_path)
            except OSError as exc:
                self._record_path(release.name, replica_id).unlink(missing_ok=True)
                raise BackendError(f"cannot start a replica of {release.name}: {exc}") from exc
            record.update(pid=spawned.ref.pid, started=spawned.ref.started)
            self._write(record)
        self._spawned[replica_id] = spawned
        return _replica(record)

    def replicas(self, api: str) -> list[Replica]:
        directory = self.state.api_dir(api) / "replicas"
        if not directory.is_dir():
            return []
        found = []
        for path in sorted(directory.glob("*.json")):
            data = read_json(path)
            if isinstance(data, dict) and data.get("pid"):
                found.append(_replica(data))
            elif isinstance(data, dict) and time.time() - float(data.get("created_at", 0)) > RESERVATION_S:
                path.unlink(missing_ok=True)  # a port reserved by a start that never happened (a crash)
        return sorted(found, key=lambda replica: replica.created_at)

    def probe(self, replica: Replica) -> Probe:
        ref = _ref(replica)
        if not ref.alive():
            spawned = self._spawned.get(replica.id)
            code = spawned.exit_code() if spawned is not None else ref.reap()
            how = f"exited with code {code}" if code is not None else "is no longer running"
            return Probe(ReplicaStatus.EXITED, f"the process (pid {ref.pid}) {how}")
        return probe_readiness(self._http, replica.address)

    def stop(self, replicas: Sequence[Replica], timeout: float) -> None:
        terminate([_ref(replica) for replica in replicas], timeout)
        for replica in replicas:
            spawned = self._spawned.pop(replica.id, None)
            if spawned is not None:
                spawned.exit_code()
            self._record_path(replica.api, replica.id).unlink(missing_ok=True)

    def log_file(self, replica: Replica) -> Path | None:
        return self._log_path(replica.api, replica.id)

    def describe_start(self, release: Release, snapshot: Path, spec_file: Path) -> dict[str, Any]:
        python = self._venv(release.runtime) / "bin" / "python"
        env = replica_environment(
            {}, replica_id="<replica id>", port=0, snapshot=snapshot, spec_file=spec_file,
            cache_dir=self.settings.cache_dir, extra=self.storage_shown,
        )  # fmt: skip
        env["CORTEX_SERVING_PORT"] = f"<a free port in {self.settings.port_range[0]}-{self.settings.port_range[1]}>"
        gpus, wanted = self._inventory(), release.api.compute.gpu
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = f"<the UUIDs of {wanted} free GPU(s)>" if wanted else ""
        return {
            "command": [str(python), "-m", "cortexlite_runtime"],
            "cwd": str(snapshot),
            "env": env,
            "gpus": describe_plan(gpus, holders(self.settings), wanted),
            "venv": str(self._venv(release.runtime)),
            "venv_ready": (self._venv(release.runtime) / ".complete").is_file(),
        }

    # --- helpers --------------------------------------------------------------------------------

    def _venv(self, key: str) -> Path:
        return self.settings.cache_dir / "venvs" / key

    def _record_path(self, api: str, replica_id: str) -> Path:
        return self.state.api_dir(api) / "replicas" / f"{replica_id}.json"

    def _log_path(self, api: str, replica_id: str) -> Path:
        return self.state.api_dir(api) / "logs" / f"{replica_id}.log"

    def _write(self, record: dict[str, Any]) -> None:
        write_json(self._record_path(record["api"], record["id"]), record)

    def _new_id(self, api: str) -> str:
        while True:
            candidate = secrets.token_hex(3)
            if not self._record_path(api, candidate).exists():
                return candidate

    def compute_shortfall(self, release: Release, missing: int) -> str | None:
        if release.api.compute.gpu <= 0:
            return None
        return shortfall(
            self._inventory(), holders(self.settings), release.api.compute.gpu, missing, release.name,
            compute=release.api.compute,
        )  # fmt: skip

    def _inventory(self) -> list[Gpu]:
        if self._gpus is None:
            self._gpus = inventory(self.settings.fake_gpus)
        return self._gpus

    def _pin(self, release: Release) -> list[Gpu]:
        """The GPUs a new replica of `release` gets; the caller holds the ports lock, which guards them too."""
        wanted = release.api.compute.gpu
        held = holders(self.settings) if wanted else {}
        return allocate(self._inventory(), held, wanted, release.name, compute=release.api.compute)

    def _free_port(self) -> int:
        first, last = self.settings.port_range
        taken = self._reserved | recorded_ports(self.settings.home)
        for port in range(first, last + 1):
            if port not in taken and bindable(port):
                return port
        raise BackendError(
            f"no free port for a replica in {first}-{last} (CORTEXLITE_PORT_RANGE); {len(taken)} are taken by replicas"
        )


def _reload_environment(release: Release) -> dict[str, str]:
    return {"CORTEXLITE_RELOAD": "1"} if release.dev else {}


def _extras(project: Project, api: str) -> tuple[str, ...]:
    return ("onnx",) if project.api(api).predictor.type.value == "onnx" else ()


def _replica(record: Mapping[str, Any]) -> Replica:
    return Replica(
        id=str(record["id"]), api=str(record["api"]), version=str(record["version"]),
        address=f"http://127.0.0.1:{record['port']}", created_at=float(record["created_at"]),
        detail={
            "pid": int(record["pid"]), "started": float(record["started"]), "port": int(record["port"]),
            "gpus": [str(uuid) for uuid in record.get("gpus") or []],
        },
    )  # fmt: skip


def _ref(replica: Replica) -> ProcessRef:
    return ProcessRef(int(replica.detail["pid"]), float(replica.detail["started"]))
