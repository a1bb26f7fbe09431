"""The records of a remote Docker environment, kept on its host so that its operator can run there.

The API records, update markers, locks and the operator's scaling state live in the Docker volume
`cortexlite-<env>-state`, laid out as a `CORTEXLITE_HOME` (`home/envs/<env>/apis/<api>/...`). The
operator container on the host mounts it and works on plain files; this machine reaches the same
files through the small container `cortexlite-<env>-state` (the runtime image, idle), by the Docker
API: reads with `get_archive`, writes as a copy then a rename, locks as a `flock` held by an exec'd
process for as long as this side keeps its connection (the kernel of the host releases it when the
connection or this process dies). So the two writers exclude each other with one lock, and any
machine with the environment's definition sees the same truth.

Resolved specs and rollout logs stay in this machine's `CORTEXLITE_HOME` (they are derived, or local).
"""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cortexlite.backends.docker import DockerEngine, HeldLock
from cortexlite.errors import DockerError
from cortexlite.files import Lock
from cortexlite.state import ApiRecord, EnvState, RolloutMarker

__all__ = ["STATE_HOME", "STATE_MOUNT", "RemoteEnvState", "RemoteLock", "state_container_config"]

STATE_MOUNT = "/state"
STATE_HOME = f"{STATE_MOUNT}/home"  # the operator's CORTEXLITE_HOME on the host


def state_container_config(env: str, image: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The idle container through which this machine reads and writes the state volume (pure)."""
    return {
        "Image": image,
        "Entrypoint": ["sleep", "infinity"],
        "Labels": dict(labels) | {"cortexlite.env": env, "cortexlite.role": "state"},
        "HostConfig": {
            "Mounts": [{"Type": "volume", "Source": f"cortexlite-{env}-state", "Target": STATE_MOUNT}],
            "NetworkMode": "none",
            "RestartPolicy": {"Name": "unless-stopped"},
        },
    }


class RemoteLock(Lock):
    """The API's lock on the host, through the state container (`files.Lock`'s interface)."""

    def __init__(self, state: RemoteEnvState, path: str) -> None:
        super().__init__(Path(path))
        self._state = state
        self._path = path
        self._held: HeldLock | None = None
        self._made = False

    def acquire(self, blocking: bool = True) -> bool:
        container = self._state.ensure()
        if not self._made:
            self._state.mkdir(self._path.rpartition("/")[0])
            self._made = True
        self._held = self._state.engine.flock(container, self._path, blocking=blocking)
        return self._held is not None

    def release(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None

    @property
    def held(self) -> bool:
        return self._held is not None


class RemoteEnvState(EnvState):
    def __init__(
        self, home: Path, env: str, engine: DockerEngine, *, image: Callable[[], str], labels: Mapping[str, str]
    ) -> None:
        super().__init__(home, env)
        self.engine = engine
        self.container = f"cortexlite-{env}-state"
        self.volume = f"cortexlite-{env}-state"
        self.remote_root = f"{STATE_HOME}/envs/{env}"
        self._image = image
        self._labels = dict(labels)
        self._ready = False

    # --- the container ----------------------------------------------------------------------------

    def exists(self) -> bool:
        if self._ready:
            return True
        found = self.engine.inspect_container(self.container)
        if found is not None and not found.get("State", {}).get("Running"):
            self.engine.start_container(self.container)
        self._ready = found is not None
        return self._ready

    def ensure(self) -> str:
        """The state container, made (with its volume) the first time anything is written."""
        if not self.exists():
            labels = self._labels | {"cortexlite.env": self.env}
            self.engine.ensure_volume(self.volume, labels)
            self.engine.create_container(self.container, state_container_config(self.env, self._image(), self._labels))
            self.engine.start_container(self.container)
            self._ready = True
        return self.container

    # --- EnvState, on the host --------------------------------------------------------------------

    def names(self) -> list[str]:
        if not self.exists():
            return []
        # As EnvState.names: a record, an update under way, or a failed deploy not cleared ("null").
        script = (
            'cd "$1" 2>/dev/null || exit 0; for d in *; do [ -d "$d" ] || continue; '
            'if [ -e "$d/api.json" ] || [ -e "$d/rollout.json" ] || grep -qsv "^null$" "$d/deploy-failure.json"; '
            'then echo "$d"; fi; done; exit 0'
        )
        code, output = self.engine.exec(self.container, ["sh", "-c", script, "sh", f"{self.remote_root}/apis"])
        if code != 0:
            raise DockerError(f"listing the APIs in {self.container} failed ({code}): {output.strip()[-300:]}")
        return sorted(line for line in output.split() if line and not line.startswith("."))

    def api(self, name: str) -> ApiRecord | None:
        data = self._read(name, "api.json")
        try:
            return ApiRecord.model_validate(data) if data is not None else None
        except ValidationError:
            return None

    def save_api(self, record: ApiRecord) -> None:
        self._write(f"{self._dir(record.name)}/api.json", record.model_dump(mode="json"))

    def forget_api(self, name: str) -> None:
        if self.exists():
            self._exec(["rm", "-rf", self._dir(name)])

    def lock(self, name: str) -> RemoteLock:
        return RemoteLock(self, f"{self._dir(name)}/lock")

    def marker(self, name: str) -> RolloutMarker | None:
        data = self._read(name, "rollout.json")
        try:
            return RolloutMarker.model_validate(data) if data is not None else None
        except ValidationError:
            return None

    def set_marker(self, marker: RolloutMarker) -> None:
        self._write(f"{self._dir(marker.target.name)}/rollout.json", marker.model_dump(mode="json"))

    def clear_marker(self, name: str) -> None:
        if self.exists():
            self._exec(["rm", "-f", f"{self._dir(name)}/rollout.json"])

    def read_api_file(self, name: str, filename: str) -> Any:
        return self._read(name, filename)

    def share(self, relative: str, data: bytes) -> None:
        self.put(f"{STATE_HOME}/{relative}", data)

    def read_shared(self, relative: str) -> bytes | None:
        """The host's copy: the one every machine with this environment's definition reads and writes."""
        if not self.exists():
            return None
        return self.engine.read_file(self.container, f"{STATE_HOME}/{relative}")

    def discard(self) -> None:
        """No API left: the state container and its volume go (`down`)."""
        if self.exists() and not self.names():
            self.engine.remove_container(self.container)
            self.engine.remove_volume(self.volume)
            self._ready = False

    # --- plumbing ---------------------------------------------------------------------------------

    def put(self, path: str, data: bytes) -> None:
        """Write `path` on the host: a copy beside it, then a rename (a reader never sees half of it)."""
        container = self.ensure()
        directory, _, filename = path.rpartition("/")
        staged = f".{filename}.{secrets.token_hex(4)}"
        self.mkdir(directory)
        self.engine.put_files(container, directory, {staged: data})
        self._exec(["mv", "-f", f"{directory}/{staged}", path])

    def mkdir(self, directory: str) -> None:
        self._exec(["mkdir", "-p", directory])

    def _dir(self, name: str) -> str:
        return f"{self.remote_root}/apis/{name}"

    def _read(self, name: str, filename: str) -> Any:
        if not self.exists():
            return None
        raw = self.engine.read_file(self.container, f"{self._dir(name)}/{filename}")
        try:
            return json.loads(raw) if raw is not None else None
        except ValueError:
            return None

    def _write(self, path: str, data: Any) -> None:
        self.put(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def _exec(self, command: list[str]) -> None:
        code, output = self.engine.exec(self.container, command)
        if code != 0:
            raise DockerError(f"{shlex.join(command)} in {self.container} failed ({code}): {output.strip()[-300:]}")
