"""The GPU inventory, from NVML: the only module that imports `pynvml` (the `gpu` extra).

Everything degrades to "no GPUs": pynvml not installed, no NVIDIA driver, NVML failing. Nothing
here raises for a missing GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

__all__ = ["Gpu", "GpuMonitor", "gpu_gauges", "visible_gpus"]


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    memory_used_bytes: int
    utilization: float  # 0..1, over NVML's last sample period


class GpuMonitor:
    """NVML, initialised once; `sample()` is `[]` for good when NVML cannot start."""

    def __init__(self) -> None:
        self._nvml: Any = None
        try:
            import pynvml
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            logger.debug("no GPUs: {}", exc)
            return
        self._nvml = pynvml

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def sample(self) -> list[Gpu]:
        nvml = self._nvml
        if nvml is None:
            return []
        try:
            return [_read(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
        except nvml.NVMLError as exc:
            logger.warning("reading the GPUs failed: {}", exc)
            return []

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None


def visible_gpus(gpus: Sequence[Gpu], cuda_visible_devices: str | None) -> list[Gpu]:
    """The GPUs a process sees under CUDA_VISIBLE_DEVICES (indexes or UUIDs; unset means all).

    As CUDA does, the list stops at the first entry that names no GPU.
    """
    if cuda_visible_devices is None:
        return list(gpus)
    chosen: list[Gpu] = []
    for entry in (part.strip() for part in cuda_visible_devices.split(",")):
        match = next((g for g in gpus if entry == str(g.index) or (entry and g.uuid.startswith(entry))), None)
        if match is None:
            break
        chosen.append(match)
    return chosen


def gpu_gauges(gpus: Sequence[Gpu]) -> list[str]:
    """Prometheus lines for the replica's GPUs; none when there are none."""
    if not gpus:
        return []
    lines = [
        "# HELP cortexlite_gpu_utilization_ratio GPU utilisation over NVML's last sample period.",
        "# TYPE cortexlite_gpu_utilization_ratio gauge",
        *(f"cortexlite_gpu_utilization_ratio{{{_labels(g)}}} {g.utilization}" for g in gpus),
        "# HELP cortexlite_gpu_memory_used_bytes GPU memory in use.",
        "# TYPE cortexlite_gpu_memory_used_bytes gauge",
        *(f"cortexlite_gpu_memory_used_bytes{{{_labels(g)}}} {g.memory_used_bytes}" for g in gpus),
        "# HELP cortexlite_gpu_memory_total_bytes GPU memory in all.",
        "# TYPE cortexlite_gpu_memory_total_bytes gauge",
        *(f"cortexlite_gpu_memory_total_bytes{{{_labels(g)}}} {g.memory_total_bytes}" for g in gpus),
    ]
    return lines


def _labels(gpu: Gpu) -> str:
    return f'gpu="{gpu.index}",uuid="{gpu.uuid}"'


def _read(nvml: Any, index: int) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
    return Gpu(
        index=index,
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        memory_total_bytes=int(memory.total),
        memory_used_bytes=int(memory.used),
        utilization=float(utilization.gpu) / 100.0,
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def main() -> None:
    """`python -m cortexlite_runtime.gpu`: this machine's GPUs as JSON (how a remote host's inventory is read)."""
    import json
    from dataclasses import asdict

    monitor = GpuMonitor()
    try:
        print(json.dumps([asdict(gpu) for gpu in monitor.sample()]))
    finally:
        monitor.close()


if __name__ == "__main__":
    main()
