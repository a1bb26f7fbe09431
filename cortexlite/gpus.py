"""GPUs for replicas: this machine's inventory, who holds which, and which ones a new replica gets.

A replica asking for `compute.gpu: N` is pinned to N GPUs that no other replica holds, chosen
lowest index first under the lock the process backend takes for ports, and it sees only them
through `CUDA_VISIBLE_DEVICES`. The variable names GPUs by UUID: CUDA's default device order
(fastest first) can differ from NVML's index order, UUIDs cannot.

A replica asking for none gets `CUDA_VISIBLE_DEVICES=""` when this machine has GPUs (as Cortex
kept GPUs from CPU APIs, so a CPU replica never takes memory on a GPU another replica holds); on a
machine without GPUs the variable is left as the user's environment has it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from cortexlite.errors import ComputeUnavailable, ConfigError
from cortexlite.files import read_json
from cortexlite.ports import RESERVATION_S
from cortexlite.processes import ProcessRef
from cortexlite.settings import Settings
from cortexlite_runtime.gpu import Gpu, GpuMonitor
from cortexlite_runtime.sections import ComputeSpec

__all__ = [
    "Gpu",
    "allocate",
    "cuda_environment",
    "cuda_visible_devices",
    "describe_plan",
    "holders",
    "inventory",
    "process_holders",
    "qualifies",
    "remote_inventory",
    "requirement",
    "shortfall",
]


class _ScriptedGpu(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    index: int
    uuid: str
    name: str
    memory_total_bytes: int = 0
    memory_used_bytes: int = 0
    utilization: float = 0.0


_SCRIPT = TypeAdapter(list[_ScriptedGpu])


def remote_inventory(read: Callable[[], str], fake: str | None) -> tuple[list[Gpu], str | None]:
    """Another host's GPUs from `read()` (the JSON `python -m cortexlite_runtime.gpu` prints there).

    `read` raises `DockerError` when the host cannot give a container GPUs; that is "no GPUs", with
    the engine's reason as the note. `fake` wins, as for `inventory`.
    """
    from cortexlite.errors import DockerError

    if fake:
        return inventory(fake), None
    try:
        text = read()
    except DockerError as exc:
        return [], f"the engine gives containers no GPUs: {exc}"
    try:
        found = _SCRIPT.validate_json(text.strip().splitlines()[-1] if text.strip() else "[]")
    except (ValidationError, IndexError) as exc:
        return [], f"the GPU inventory could not be read: {exc}"
    return [Gpu(**gpu.model_dump()) for gpu in found], None


def inventory(fake: str | None) -> list[Gpu]:
    """This machine's GPUs by index, from NVML (none when NVML is absent or finds none).

    `fake` (`CORTEXLITE_FAKE_GPUS`, see `Settings`) replaces NVML with a scripted NVML inventory: a
    test aid for machines without GPUs (like the ones cortexlite's tests run on), never a way to
    run on GPUs that are not there. It is a JSON list of objects with Gpu's fields (`index`,
    `uuid`, `name`; `memory_total_bytes`, `memory_used_bytes` and `utilization` default to 0), or
    `@PATH` of a file holding one. A malformed one raises `ConfigError`.
    """
    if fake is not None:
        return _scripted(fake)
    monitor = GpuMonitor()
    try:
        return monitor.sample()
    finally:
        monitor.close()


def allocate(
    inventory: Sequence[Gpu], held: Mapping[str, str], count: int, who: str, *, compute: ComputeSpec | None = None
) -> list[Gpu]:
    """`count` GPUs of `inventory` that are not in `held` (uuid -> holder), lowest index first; with `compute`,
    only GPUs with its `gpu_mem` and `gpu_model` qualify.

    Raises `ComputeUnavailable`, saying what `who` asked for and what holds the rest, when too few are free.
    """
    if count == 0:
        return []
    every = sorted(inventory, key=lambda gpu: gpu.index)
    by_index = [gpu for gpu in every if compute is None or qualifies(gpu, compute)]
    free = [gpu for gpu in by_index if gpu.uuid not in held]
    if len(free) >= count:
        return free[:count]
    if not inventory:
        raise ComputeUnavailable(f"{who} needs {count} GPU(s) but this machine has none (NVML found no GPUs)")
    kind = f" {requirement(compute)}" if compute is not None and requirement(compute) else ""
    if len(by_index) < len(every) and len(by_index) < count:
        raise ComputeUnavailable(f"{who} needs {count} GPU(s){kind}; {len(by_index)} of {len(every)} qualify")
    taken = [f"GPU {gpu.index} held by {held[gpu.uuid]}" for gpu in by_index if gpu.uuid in held]
    if not taken:
        raise ComputeUnavailable(f"{who} needs {count} GPU(s){kind} but this machine has {len(by_index)}")
    raise ComputeUnavailable(
        f"{who} needs {count} GPU(s){kind}; {len(free)} of {len(by_index)} free ({', '.join(taken)})"
    )


def qualifies(gpu: Gpu, compute: ComputeSpec) -> bool:
    """Whether `gpu` has the memory and the model `compute` asks for (the model as case-insensitive text)."""
    if compute.gpu_mem is not None and gpu.memory_total_bytes < compute.gpu_mem:
        return False
    return compute.gpu_model is None or compute.gpu_model.lower() in gpu.name.lower()


def requirement(compute: ComputeSpec) -> str:
    """`compute`'s GPU filters in words ("" when there are none)."""
    parts = []
    if compute.gpu_mem is not None:
        parts.append(f"with at least {compute.gpu_mem / 2**30:g} GiB")
    if compute.gpu_model is not None:
        parts.append(f"of model {compute.gpu_model!r}")
    return " ".join(parts)


def shortfall(
    inventory: Sequence[Gpu], held: Mapping[str, str], per_replica: int, missing: int, who: str,
    *, compute: ComputeSpec | None = None,
) -> str | None:  # fmt: skip
    """Why `missing` more replicas of `per_replica` GPUs each could not start now; None when they could."""
    if per_replica * missing <= 0:
        return None
    try:
        allocate(inventory, held, per_replica * missing, who, compute=compute)
    except ComputeUnavailable as exc:
        return str(exc)
    return None


def cuda_visible_devices(gpus: Sequence[Gpu]) -> str:
    """`CUDA_VISIBLE_DEVICES` for a process that sees exactly `gpus`, in this order ("" hides them all)."""
    return ",".join(gpu.uuid for gpu in gpus)


def cuda_environment(inventory: Sequence[Gpu], pinned: Sequence[Gpu]) -> dict[str, str]:
    """What a replica pinned to `pinned` adds to its environment: nothing on a machine without GPUs."""
    return {"CUDA_VISIBLE_DEVICES": cuda_visible_devices(pinned)} if inventory else {}


def describe_plan(inventory: Sequence[Gpu], held: Mapping[str, str], count: int) -> str:
    """What a start would do with GPUs, in words (`deploy --dry-run`)."""
    free = sum(gpu.uuid not in held for gpu in inventory)
    if count == 0:
        if not inventory:
            return "none (no GPUs on this machine; CUDA_VISIBLE_DEVICES is left as it is)"
        return f'none (CUDA_VISIBLE_DEVICES="" hides the {len(inventory)} GPU(s) of this machine)'
    if not inventory:
        return f"{count} asked for, but this machine has none (NVML found no GPUs), so the start would fail"
    plan = f"{count} pinned at start (by UUID, in CUDA_VISIBLE_DEVICES) from {len(inventory)} on this machine"
    if free < count:
        return f"{plan}; only {free} free now, so the start would fail"
    return f"{plan}; {free} free now"


def process_holders(home: Path) -> dict[str, str]:
    """uuid -> "env/api/replica" for the GPUs that process replicas of `home` hold (live or starting)."""
    held: dict[str, str] = {}
    for path in sorted(home.glob("envs/*/apis/*/replicas/*.json")):
        record = read_json(path)
        if not isinstance(record, dict) or not _holds(record):
            continue
        _, env, _, api, _, _ = path.relative_to(home).parts
        for uuid in record.get("gpus") or []:
            if isinstance(uuid, str):
                held[uuid] = f"{env}/{api}/{path.stem}"
    return held


def holders(settings: Settings) -> dict[str, str]:
    """uuid -> holder for every GPU a replica of `settings.home` holds."""
    return process_holders(settings.home)


def _holds(record: Mapping[str, object]) -> bool:
    pid, started, created = record.get("pid"), record.get("started"), record.get("created_at")
    if pid == 0:
        return isinstance(created, int | float) and time.time() - created <= RESERVATION_S
    return isinstance(pid, int) and isinstance(started, int | float) and ProcessRef(pid, float(started)).alive()


def _scripted(fake: str) -> list[Gpu]:
    where = "CORTEXLITE_FAKE_GPUS"
    text = fake
    if fake.startswith("@"):
        where = f"CORTEXLITE_FAKE_GPUS file {fake[1:]}"
        try:
            text = Path(fake[1:]).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}") from exc
    try:
        scripted = _SCRIPT.validate_json(text)
    except ValidationError as exc:
        raise ConfigError(
            f"{where}: expected a JSON list of GPUs like "
            f'[{{"index": 0, "uuid": "GPU-...", "name": "..."}}]: {_plain_errors(exc)}'
        ) from exc
    gpus = sorted((Gpu(**gpu.model_dump()) for gpu in scripted), key=lambda gpu: gpu.index)
    for field in ("index", "uuid"):
        values = [getattr(gpu, field) for gpu in gpus]
        if len(set(values)) != len(values):
            raise ConfigError(f"{where}: two GPUs have the same {field} ({values})")
    return gpus


def _plain_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        loc = ": ".join(f"entry {part}" if isinstance(part, int) else str(part) for part in error["loc"])
        parts.append(f"{loc}: {error['msg']}" if loc else error["msg"])
    return "; ".join(parts)
