"""The Docker backend: each replica is a container of the runtime (or dependency) image.

- Images: the runtime image (content-hash tag, built when missing), and when the project has
  `requirements.txt` or `dependencies.sh` a dependency image FROM it, once per (runtime image,
  dependency files); replicas start with `CORTEXLITE_DEPENDENCIES=preinstalled`.
- Containers carry the labels `cortexlite.env`, `.api`, `.replica`, `.version`, `.spec`, `.created`
  (and `.port`, `.gpus` when they hold them): the engine is the record, so another terminal sees
  the same replicas. The snapshot is bind-mounted read-only at `/mnt/project`, the resolved spec at
  `/mnt/spec/api.json`; CPU and memory are limited only when the spec sets them.
- Networks: `host` puts each replica on its own 127.0.0.1 port from the cortexlite range; `bridge`
  puts them on the environment's network, where the gateway reaches them by name.
- GPUs: `compute.gpu: N` asks for N specific device IDs (NVML UUIDs) that no other replica holds.

Every call here blocks (the Docker SDK); the control plane never calls them from an event loop.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import httpx

from cortexlite import gpus
from cortexlite.backends.base import (
    Backend,
    LogSink,
    Prepared,
    Probe,
    Replica,
    ReplicaStatus,
    probe_readiness,
    readiness_answer,
)
from cortexlite.backends.docker import DockerEngine
from cortexlite.bundles import BundleStore, replica_storage
from cortexlite.dependency_image import (
    DEPENDENCY_FILES,
    DependencyImage,
    dependency_image,
    dockerfile_digest,
    ensure_dependency_image,
)
from cortexlite.environments import Environment, Network
from cortexlite.errors import BackendError, DockerError
from cortexlite.files import Lock
from cortexlite.image import ImageOptions, build_runtime_image, planned_runtime_tag
from cortexlite.keys import KeyStore, effective_auth, ring_relative, rings_dir
from cortexlite.logtail import LogLine, render
from cortexlite.ports import bindable, recorded_ports
from cortexlite.project import Project
from cortexlite.release import Release
from cortexlite.settings import Settings
from cortexlite.state import EnvState
from cortexlite_runtime.gpu import Gpu

__all__ = [
    "DockerBackend",
    "ReplicaPlan",
    "gpu_holders",
    "gpu_probe_config",
    "replica_container_config",
    "unused_images",
]

PROJECT_DIR = "/mnt/project"
SPEC_PATH = "/mnt/spec/api.json"
CACHE_DIR = "/var/cache/cortexlite"
SERVING_PORT = 8888  # inside a bridge-networked container
CA_PATH = "/etc/cortexlite/s3-ca.pem"
KEYS_DIR = "/run/cortexlite/keys"  # the environment's API key rings (hashes), read-only
STATE_DIR = "/run/cortexlite/state"  # a remote host's state volume, read-only: its rings are there
# Replicas run unprivileged unless they may install packages at run time (`cortexlite dev`).
REPLICA_USER = "10001:10001"
# The runtime's default shutdown delay (2 s) + grace period (30 s) + 5 s.
STOP_TIMEOUT_S = 37
_UNBUILT = "cortexlite/runtime:(to be built)"
_NVIDIA_HINT = (
    "Docker cannot give containers GPUs here: install the NVIDIA Container Toolkit (nvidia-container-toolkit) "
    "on the Docker host, run `nvidia-ctk runtime configure --runtime=docker` and restart dockerd"
)


@dataclass(frozen=True)
class ReplicaPlan:
    """One replica container, as data: `replica_container_config` renders it for the Engine API."""

    env: str
    replica_id: str
    release: Release
    image: str
    snapshot: Path
    spec_file: Path
    network: Network
    port: int | None  # host networking: the replica's 127.0.0.1 port
    gpus: tuple[str, ...]  # NVML UUIDs
    labels: Mapping[str, str]
    created_at: float
    # A remote engine: the project comes from storage (CORTEX_PROJECT_URI) and the spec is copied
    # into the container, since nothing on this machine can be bind-mounted there.
    project_uri: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # networking.auth resolved (none | api_key); with api_key, where the rings are: a directory of this
    # machine (bind-mounted) or, for a remote engine, None (the host's state volume is mounted).
    auth: str = "none"
    keys_dir: Path | None = None

    @property
    def name(self) -> str:
        return f"cortexlite-{self.env}-{self.release.name}-{self.replica_id}"


def replica_container_config(plan: ReplicaPlan) -> dict[str, Any]:
    """The body of `POST /containers/create` for one replica (pure)."""
    release, compute = plan.release, plan.release.api.compute
    host_mode = plan.network is Network.HOST
    port = plan.port if host_mode and plan.port is not None else SERVING_PORT
    labels = dict(plan.labels) | {
        "cortexlite.env": plan.env, "cortexlite.role": "replica", "cortexlite.api": release.name,
        "cortexlite.replica": plan.replica_id, "cortexlite.version": release.version,
        "cortexlite.spec": release.spec_hash, "cortexlite.created": f"{plan.created_at:.6f}",
    }  # fmt: skip
    if host_mode:
        labels["cortexlite.port"] = str(port)
    if plan.gpus:
        labels["cortexlite.gpus"] = ",".join(plan.gpus)
    env = {
        "CORTEX_SERVING_HOST": "127.0.0.1" if host_mode else "0.0.0.0",
        "CORTEX_SERVING_PORT": str(port),
        "CORTEX_PROJECT_DIR": PROJECT_DIR,
        "CORTEX_API_SPEC": SPEC_PATH,
        "CORTEX_CACHE_DIR": CACHE_DIR,
        "CORTEXLITE_DEPENDENCIES": "preinstalled",
        "CORTEXLITE_LOG_FORMAT": "json",
        "CORTEXLITE_REPLICA_ID": plan.replica_id,
    } | dict(plan.extra_env)
    if plan.project_uri:
        env["CORTEX_PROJECT_URI"] = plan.project_uri
    if release.dev:
        env["CORTEXLITE_RELOAD"] = "1"  # the snapshot is the live project directory (`cortexlite dev`)
    else:
        env["HOME"] = "/tmp"  # the unprivileged user has no home directory
    binds = [] if plan.project_uri else [f"{plan.snapshot}:{PROJECT_DIR}:ro", f"{plan.spec_file}:{SPEC_PATH}:ro"]
    mounts: list[dict[str, Any]] = [{"Type": "volume", "Source": f"cortexlite-{plan.env}-cache", "Target": CACHE_DIR}]
    env["CORTEXLITE_AUTH"] = plan.auth
    if plan.auth == "api_key":
        if plan.keys_dir is not None:
            binds.append(f"{plan.keys_dir}:{KEYS_DIR}:ro")
            env["CORTEXLITE_API_KEYS"] = f"{KEYS_DIR}/{release.name}.json"
        else:
            volume = {"Type": "volume", "Source": f"cortexlite-{plan.env}-state", "Target": STATE_DIR, "ReadOnly": True}
            mounts.append(volume)
            env["CORTEXLITE_API_KEYS"] = f"{STATE_DIR}/home/{ring_relative(plan.env, release.name)}"
    host: dict[str, Any] = {
        "Binds": binds,
        "Mounts": mounts,
        # setuid binaries cannot raise a replica's privileges; a project needing more runs its own image.
        "SecurityOpt": ["no-new-privileges"],
        "RestartPolicy": {"Name": "unless-stopped"},
        "NetworkMode": "host" if host_mode else f"cortexlite-{plan.env}",
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
    if compute.cpu is not None:
        host["NanoCpus"] = int(compute.cpu * 1e9)
    if compute.mem is not None:
        host["Memory"] = compute.mem
        host["MemorySwap"] = compute.mem  # no swap: over the limit is an OOM kill, reported as such
    if plan.gpus:
        host["DeviceRequests"] = [{"Driver": "nvidia", "DeviceIDs": list(plan.gpus), "Capabilities": [["gpu"]]}]
    config: dict[str, Any] = {
        "Image": plan.image,
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Labels": labels,
        "WorkingDir": PROJECT_DIR,
        "StopSignal": "SIGTERM",
        "User": "0:0" if release.dev else REPLICA_USER,
        "StopTimeout": STOP_TIMEOUT_S,
        "HostConfig": host,
    }
    if not host_mode:
        config["ExposedPorts"] = {f"{SERVING_PORT}/tcp": {}}
        config["NetworkingConfig"] = {"EndpointsConfig": {f"cortexlite-{plan.env}": {"Aliases": [plan.name]}}}
    return config


def gpu_probe_config(image: str, env: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """A container that prints its host's GPUs as JSON and exits (pure)."""
    return {
        "Image": image,
        "Cmd": ["python", "-m", "cortexlite_runtime.gpu"],
        "Labels": dict(labels) | {"cortexlite.env": env, "cortexlite.role": "gpus"},
        "HostConfig": {
            "NetworkMode": "none",
            "DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["utility"]]}],
        },
    }


def gpu_holders(engine: DockerEngine) -> dict[str, str]:
    """NVML UUID -> `env/api/replica` for every cortexlite container on the engine holding GPUs."""
    held = {}
    for summary in engine.containers({"cortexlite.gpus": None}):
        labels = summary.get("Labels") or {}
        holder = f"{labels.get('cortexlite.env')}/{labels.get('cortexlite.api')}/{labels.get('cortexlite.replica')}"
        for uuid in str(labels.get("cortexlite.gpus", "")).split(","):
            if uuid:
                held[uuid] = holder
    return held


def unused_images(engine: DockerEngine, keep: set[str], cutoff: float) -> list[tuple[str, int]]:
    """cortexlite's images that no container uses, no record names, and made before `cutoff`: (tag, bytes).

    The newest runtime, gateway and operator images always stay: the next deploy would rebuild them.
    """
    containers = engine.containers({})
    used = {str(summary.get(key)) for summary in containers for key in ("ImageID", "Image")}
    found = engine.images({"cortexlite.image": None})
    newest: dict[str, float] = {}
    for image in found:
        kind = (image.get("Labels") or {}).get("cortexlite.image", "")
        newest[kind] = max(newest.get(kind, 0.0), float(image.get("Created") or 0))
    unused = []
    for image in found:
        kind = (image.get("Labels") or {}).get("cortexlite.image", "")
        created = float(image.get("Created") or 0)
        tags = [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]
        if kind in ("runtime", "gateway", "operator") and created >= newest[kind]:
            continue
        if created >= cutoff or image.get("Id") in used or set(tags) & (keep | used):
            continue
        unused += [(tag, int(image.get("Size") or 0)) for tag in tags]
    return unused


class DockerBackend(Backend):
    kind = "docker"

    def __init__(
        self, settings: Settings, state: EnvState, reserved_ports: Sequence[int], *, environment: Environment,
        engine: DockerEngine, options: ImageOptions, labels: Mapping[str, str],
    ) -> None:  # fmt: skip
        self.settings = settings
        self.state = state
        self.environment = environment
        self.engine = engine
        self.options = options
        self.labels = dict(labels)
        self.network = environment.network or Network.BRIDGE
        self._reserved = set(reserved_ports)
        self._http = httpx.Client(timeout=1.0, trust_env=False)
        self._inventory: list[Gpu] | None = None
        self._shared_ready = False
        self.remote = environment.remote_docker
        ships = environment.ships_bundles
        self.bundles = BundleStore.for_environment(settings.home, environment) if ships else None
        self._storage = replica_storage(environment, CA_PATH)

    def close(self) -> None:
        self._http.close()
        self.engine.close()

    # --- images ---------------------------------------------------------------------------------

    def runtime_for(self, project: Project, api: str) -> str:
        runtime = planned_runtime_tag(self.engine, self.options)
        if runtime is None:
            return _UNBUILT
        return self._image_for(project, runtime)

    def prepare(self, project: Project, api: str, log: LogSink) -> Prepared:
        runtime = build_runtime_image(self.options, log, self.engine)
        image = self._dependency_image(project, runtime.tag)
        if image is None:
            return Prepared(runtime.tag, runtime.built, {"image": runtime.tag})
        built = ensure_dependency_image(self.engine, image, self.options, log)
        return Prepared(image.tag, runtime.built or built, {"image": image.tag, "runtime_image": runtime.tag})

    def _image_for(self, project: Project, runtime: str) -> str:
        image = self._dependency_image(project, runtime)
        return image.tag if image is not None else runtime

    def _dependency_image(self, project: Project, runtime: str) -> DependencyImage | None:
        files = {name: project.read(name) for name in DEPENDENCY_FILES}
        return dependency_image(runtime, files, self.options, dockerfile_digest())

    # --- replicas -------------------------------------------------------------------------------

    def ship(self, snapshot: Path, log: LogSink) -> None:
        if self.bundles is not None:
            self.bundles.ship(snapshot, log)
            # The operator on the host finds the bundle of a snapshot it never saw by this note.
            self.state.share(f"bundles/{snapshot.name}.json", self.bundles.note(snapshot).read_bytes())

    def start(self, release: Release, snapshot: Path, spec_file: Path) -> Replica:
        if self.engine.image_id(release.runtime) is None:
            raise BackendError(f"the image {release.runtime} is not on the Docker engine at {self.engine.address}")
        project_uri = self.bundles.ship(snapshot, _quiet).uri if self.bundles is not None else None
        self._ensure_shared()
        with Lock(self.settings.home / ".ports.lock").hold():
            port = self._free_port() if self.network is Network.HOST else None
            plan = ReplicaPlan(
                env=self.environment.name, replica_id=secrets.token_hex(3), release=release, image=release.runtime,
                snapshot=snapshot, spec_file=spec_file, network=self.network, port=port,
                gpus=tuple(gpu.uuid for gpu in self._gpus(release)), labels=self.labels, created_at=time.time(),
                project_uri=project_uri, extra_env=self._storage.env, **self._auth(release),
            )  # fmt: skip
            self.engine.create_container(plan.name, replica_container_config(plan))
        try:
            self._copy_in(plan)
            self.engine.start_container(plan.name)
        except DockerError as exc:
            self.engine.remove_container(plan.name)
            raise BackendError(_start_failure(release.name, plan, exc)) from exc
        found = self.engine.containers({"cortexlite.env": plan.env, "cortexlite.replica": plan.replica_id})
        if not found:
            raise BackendError(f"the container {plan.name} vanished right after it started")
        return self._replica(found[0])

    def replicas(self, api: str) -> list[Replica]:
        found = self.engine.containers(
            {"cortexlite.env": self.environment.name, "cortexlite.role": "replica", "cortexlite.api": api}
        )
        return sorted((self._replica(summary) for summary in found), key=lambda replica: replica.created_at)

    def probe(self, replica: Replica) -> Probe:
        found = self.engine.inspect_container(str(replica.detail["container"]))
        if found is None:
            return Probe(ReplicaStatus.EXITED, "the container is gone")
        state = found.get("State", {})
        status = state.get("Status")
        if status == "running" and not state.get("Restarting"):
            if self.remote:
                probe = readiness_answer(*self.fetch(replica, "/readyz"))
            else:
                probe = probe_readiness(self._http, self._probe_address(replica, found))
        else:
            probe = Probe(ReplicaStatus.EXITED, f"the container exited with code {state.get('ExitCode')}")
        if state.get("OOMKilled"):
            # Docker keeps the flag after it restarts the container: a replica that is ready again has recovered.
            limit = found.get("HostConfig", {}).get("Memory") or 0
            where = f" at its memory limit ({limit / 2**20:.0f} MiB)" if limit else ""
            if probe.status is ReplicaStatus.READY:
                return Probe(ReplicaStatus.READY, f"restarted after running out of memory{where}")
            reason = f"out of memory: the kernel killed it{where}; raise compute.mem"
            return Probe(ReplicaStatus.FAILED, reason, condition="out of memory")
        if state.get("Restarting"):
            restarts = found.get("RestartCount", 0)
            return Probe(ReplicaStatus.EXITED, f"{probe.reason}; Docker is restarting it (restart {restarts})")
        if status not in ("running", "exited", "dead"):
            return Probe(ReplicaStatus.STARTING, f"the container is {status}")
        return probe

    def stop(self, replicas: Sequence[Replica], timeout: float) -> None:
        def stop_one(replica: Replica) -> None:
            name = str(replica.detail["container"])
            self.engine.stop_container(name, timeout)
            self.engine.remove_container(name)

        if not replicas:
            return
        with ThreadPoolExecutor(max_workers=min(8, len(replicas))) as pool:
            list(pool.map(stop_one, replicas))

    def log_file(self, replica: Replica) -> Path | None:
        return None

    def control_address(self, replica: Replica) -> str:
        if replica.detail.get("port"):
            return replica.address
        found = self.engine.inspect_container(str(replica.detail["container"]))
        return self._probe_address(replica, found) if found is not None else replica.address

    def log_tail(self, replica: Replica, count: int) -> list[str]:
        return self.engine.log_tail(str(replica.detail["container"]), count)

    def follow_logs(self, replicas: Callable[[], list[Replica]], stop: Callable[[], bool]) -> Iterator[LogLine]:
        return _follow(self.engine, replicas, stop)

    def compute_shortfall(self, release: Release, missing: int) -> str | None:
        if release.api.compute.gpu <= 0:
            return None
        return gpus.shortfall(
            self._gpu_inventory(),
            self._held(),
            release.api.compute.gpu,
            missing,
            release.name,
            compute=release.api.compute,
        )

    def describe_start(self, release: Release, snapshot: Path, spec_file: Path) -> dict[str, Any]:
        plan = ReplicaPlan(
            env=self.environment.name, replica_id="<replica id>", release=release, image=release.runtime,
            snapshot=snapshot, spec_file=spec_file, network=self.network,
            port=self.settings.port_range[0] if self.network is Network.HOST else None,
            gpus=tuple(f"<GPU {n}: a free NVML UUID>" for n in range(release.api.compute.gpu)),
            labels=self.labels, created_at=0.0,
            project_uri="<the snapshot's bundle in storage>" if self.bundles else None, extra_env=self._storage.shown,
        )  # fmt: skip
        config = replica_container_config(plan)
        if self.network is Network.HOST:
            config["Labels"]["cortexlite.port"] = f"<a free port in {self.settings.port_range}>"
        return {"name": plan.name, "engine": self.engine.address, "container": config}

    # --- helpers --------------------------------------------------------------------------------

    def _auth(self, release: Release) -> dict[str, Any]:
        """The plan's auth fields; with api_key, the API's ring is written first (so its replicas find it)."""
        mode = effective_auth(release.api, self.environment.auth)
        if mode == "none":
            return {"auth": mode}
        KeyStore.of(self.state).publish(release.name)
        # Through storage, replicas run beside the operator on the engine's host, whose state volume holds the rings.
        keys_dir = None if self.environment.ships_bundles else rings_dir(self.settings.home, self.environment.name)
        return {"auth": mode, "keys_dir": keys_dir}

    def _copy_in(self, plan: ReplicaPlan) -> None:
        """What a bind mount cannot bring: the resolved spec (remote engines) and the store's CA bundle."""
        files: dict[str, bytes] = {}
        if plan.project_uri:
            files[SPEC_PATH.lstrip("/")] = plan.spec_file.read_bytes()
        if self._storage.ca_bundle is not None:
            files[CA_PATH.lstrip("/")] = self._storage.ca_bundle.read_bytes()
        if files:
            self.engine.put_files(plan.name, "/", files)

    def fetch(self, replica: Replica, path: str) -> tuple[int, str]:
        if not self.remote:
            return super().fetch(replica, path)
        # A remote host's replicas are not reachable from here: read them from inside the container.
        port = replica.detail.get("port") or SERVING_PORT
        code, body = self.engine.get_inside(str(replica.detail["container"]), f"http://127.0.0.1:{port}{path}", 1.0)
        return (code, body.decode("utf-8", "replace")) if code else (0, "")

    def _replica(self, summary: Mapping[str, Any]) -> Replica:
        labels = summary.get("Labels") or {}
        name = str((summary.get("Names") or ["/?"])[0]).lstrip("/")
        port = labels.get("cortexlite.port")
        address = f"http://127.0.0.1:{port}" if port else f"http://{name}:{SERVING_PORT}"
        return Replica(
            id=str(labels.get("cortexlite.replica")), api=str(labels.get("cortexlite.api")),
            version=str(labels.get("cortexlite.version")), address=address,
            created_at=float(labels.get("cortexlite.created") or summary.get("Created") or 0),
            detail={"container": name, "id": str(summary.get("Id", ""))[:12], "port": int(port) if port else None,
                    "gpus": [uuid for uuid in str(labels.get("cortexlite.gpus", "")).split(",") if uuid]},
        )  # fmt: skip

    def _probe_address(self, replica: Replica, found: Mapping[str, Any]) -> str:
        if replica.detail.get("port"):
            return replica.address
        # Bridge: the container's address on the environment's network (this machine's engine).
        networks = found.get("NetworkSettings", {}).get("Networks", {}) or {}
        ip = (networks.get(f"cortexlite-{self.environment.name}") or {}).get("IPAddress")
        return f"http://{ip}:{SERVING_PORT}" if ip else replica.address

    def _ensure_shared(self) -> None:
        """The environment's cache volume (and bridge network), made with cortexlite's labels."""
        if self._shared_ready:
            return
        labels = self.labels | {"cortexlite.env": self.environment.name}
        self.engine.ensure_volume(f"cortexlite-{self.environment.name}-cache", labels)
        if self.network is Network.BRIDGE:
            self.engine.ensure_network(f"cortexlite-{self.environment.name}", labels)
        self._shared_ready = True

    def _gpus(self, release: Release) -> list[Gpu]:
        count = release.api.compute.gpu
        if count <= 0:
            return []
        return gpus.allocate(self._gpu_inventory(), self._held(), count, release.name, compute=release.api.compute)

    def _gpu_inventory(self) -> list[Gpu]:
        if self._inventory is None:
            self._inventory = self.gpu_inventory(_quiet)[0]
        return self._inventory

    def gpu_inventory(self, log: LogSink) -> tuple[list[Gpu], str | None]:
        """The engine's host's GPUs (and a note when there are none for a reason): NVML here, or for a remote
        engine NVML in a short-lived runtime container there."""
        if not self.remote:
            return gpus.inventory(self.settings.fake_gpus), None

        def read() -> str:
            image = build_runtime_image(self.options, log, self.engine).tag
            name = f"cortexlite-{self.environment.name}-gpus-{secrets.token_hex(3)}"
            code, output = self.engine.run_once(name, gpu_probe_config(image, self.environment.name, self.labels), 60)
            if code != 0:
                raise DockerError(f"reading the GPUs in {image} exited {code}: {output.strip()[-500:]}")
            return output

        return gpus.remote_inventory(read, self.settings.fake_gpus)

    def _held(self) -> dict[str, str]:
        return gpus.holders(self.settings) | gpu_holders(self.engine)

    def _free_port(self) -> int:
        first, last = self.settings.port_range
        taken = self._reserved | recorded_ports(self.settings.home) | self._labelled_ports()
        for port in range(first, last + 1):
            if port not in taken and bindable(port):
                return port
        raise BackendError(
            f"no free port for a replica in {first}-{last} (CORTEXLITE_PORT_RANGE); {len(taken)} are taken by replicas"
        )

    def _labelled_ports(self) -> set[int]:
        ports = set()
        for summary in self.engine.containers({"cortexlite.port": None}):
            value = (summary.get("Labels") or {}).get("cortexlite.port", "")
            if str(value).isdigit():
                ports.add(int(value))
        return ports


def _quiet(_message: str) -> None:
    return None


def _start_failure(api: str, plan: ReplicaPlan, exc: DockerError) -> str:
    text = str(exc)
    if plan.gpus and ("could not select device driver" in text or "nvidia" in text.lower()):
        return f"cannot start a replica of {api} with {len(plan.gpus)} GPU(s): {_NVIDIA_HINT}; the engine said: {text}"
    return f"cannot start a replica of {api}: {text}"


def _follow(engine: DockerEngine, replicas: Callable[[], list[Replica]], stop: Callable[[], bool]) -> Iterator[LogLine]:
    """One reader thread per container (the engine streams each log), merged into one queue."""
    lines: Queue[LogLine] = Queue()
    readers: dict[str, threading.Thread] = {}
    since = time.time()
    next_scan = 0.0
    while not stop():
        if time.monotonic() >= next_scan:
            for replica in replicas():
                container = str(replica.detail["container"])
                if container in readers and readers[container].is_alive():
                    continue
                # New, or its stream ended (Docker restarted the container): read on from now.
                start = since if container not in readers else time.time()
                reader = threading.Thread(
                    target=_read_into, args=(engine, container, replica.id, start, lines), daemon=True
                )
                reader.start()
                readers[container] = reader
            next_scan = time.monotonic() + 1.0
        try:
            yield lines.get(timeout=0.2)
        except Empty:
            continue


def _read_into(engine: DockerEngine, container: str, source: str, since: float, lines: Queue[LogLine]) -> None:
    try:
        for raw in engine.follow_log(container, since):
            text, moment = render(raw)
            lines.put(LogLine(source, text, moment))
    except DockerError:
        return
