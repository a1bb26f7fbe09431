"""GPU inventory: the real NVML path degrades to no GPUs here; visibility and gauges are pure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cortexlite_runtime.gpu import Gpu, GpuMonitor, gpu_gauges, visible_gpus

GPUS = [
    Gpu(0, "GPU-aaaa-1111", "NVIDIA H100", 80 * 2**30, 2**30, 0.5),
    Gpu(1, "GPU-bbbb-2222", "NVIDIA H100", 80 * 2**30, 0, 0.0),
]


def test_no_nvidia_driver_means_no_gpus_not_an_error() -> None:
    """This machine has pynvml installed but no NVIDIA driver: the real library path must degrade."""
    if Path("/proc/driver/nvidia").exists():
        pytest.skip("this machine has an NVIDIA driver")
    # pynvml comes with the dev extras, so the library path runs, not the ImportError one.
    assert importlib.util.find_spec("pynvml") is not None
    monitor = GpuMonitor()
    assert (monitor.available, monitor.sample()) == (False, [])
    monitor.close()


@pytest.mark.parametrize(
    ("value", "indexes"),
    [
        (None, [0, 1]),
        ("", []),
        ("1", [1]),
        ("1,0", [1, 0]),
        ("GPU-bbbb", [1]),
        ("0,7,1", [0]),  # CUDA stops at the first entry naming no GPU
        ("-1", []),
    ],
)
def test_visible_gpus(value: str | None, indexes: list[int]) -> None:
    assert [g.index for g in visible_gpus(GPUS, value)] == indexes


def test_gauges() -> None:
    assert gpu_gauges([]) == []
    text = "\n".join(gpu_gauges(GPUS[:1]))
    assert 'cortexlite_gpu_utilization_ratio{gpu="0",uuid="GPU-aaaa-1111"} 0.5' in text
    assert f'cortexlite_gpu_memory_used_bytes{{gpu="0",uuid="GPU-aaaa-1111"}} {2**30}' in text
