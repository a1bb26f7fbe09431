"""GPU pinning decisions: allocation, CUDA_VISIBLE_DEVICES, the scripted inventory, who holds what."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from cortexlite.errors import ComputeUnavailable, ConfigError
from cortexlite.gpus import (
    Gpu,
    allocate,
    cuda_environment,
    cuda_visible_devices,
    describe_plan,
    inventory,
    process_holders,
)
from cortexlite.processes import identify

pytestmark = pytest.mark.timeout(10)

FOUR = [Gpu(index, f"GPU-{index}{index}{index}", "NVIDIA H100", 80 * 2**30, 0, 0.0) for index in (3, 1, 0, 2)]
UUID = {gpu.index: gpu.uuid for gpu in FOUR}


@pytest.mark.parametrize(
    ("held", "count", "expected"),
    [
        ({}, 0, []),
        ({}, 1, [0]),
        ({}, 4, [0, 1, 2, 3]),  # lowest index first, whatever the inventory's order
        ({UUID[0]: "local/a/1"}, 2, [1, 2]),
        ({UUID[1]: "local/a/1", UUID[2]: "local/b/2"}, 2, [0, 3]),
        ({UUID[0]: "x", UUID[1]: "x", UUID[2]: "x", UUID[3]: "x"}, 0, []),  # none asked, none needed
        ({"GPU-not-here": "local/a/1"}, 4, [0, 1, 2, 3]),  # a holder of another machine's GPU changes nothing
    ],
)
def test_allocate_takes_free_gpus_lowest_index_first(held: dict[str, str], count: int, expected: list[int]) -> None:
    assert [gpu.index for gpu in allocate(FOUR, held, count, "iris")] == expected


@pytest.mark.parametrize(
    ("gpus", "held", "count", "reason"),
    [
        ([], {}, 2, "iris needs 2 GPU(s) but this machine has none (NVML found no GPUs)"),
        (FOUR, {}, 5, "iris needs 5 GPU(s) but this machine has 4"),
        (
            FOUR,
            {UUID[0]: "local/other/ab12cd", UUID[2]: "dev/more/cd34ef"},
            3,
            "iris needs 3 GPU(s); 2 of 4 free (GPU 0 held by local/other/ab12cd, GPU 2 held by dev/more/cd34ef)",
        ),
        (
            FOUR[:2],
            dict.fromkeys((UUID[1], UUID[3]), "local/iris/000001"),
            1,
            "iris needs 1 GPU(s); 0 of 2 free (GPU 1 held by local/iris/000001, GPU 3 held by local/iris/000001)",
        ),
    ],
)
def test_allocate_explains_what_is_missing(gpus: list[Gpu], held: dict[str, str], count: int, reason: str) -> None:
    with pytest.raises(ComputeUnavailable) as raised:
        allocate(gpus, held, count, "iris")
    assert str(raised.value) == reason


def test_successive_allocations_are_disjoint() -> None:
    held: dict[str, str] = {}
    for replica in ("r1", "r2"):
        for gpu in allocate(FOUR, held, 2, "iris"):
            held[gpu.uuid] = f"local/iris/{replica}"
    assert sorted(held.values()) == ["local/iris/r1"] * 2 + ["local/iris/r2"] * 2
    with pytest.raises(ComputeUnavailable, match="0 of 4 free"):
        allocate(FOUR, held, 1, "iris")


@pytest.mark.parametrize(
    ("indexes", "expected"),
    [([], ""), ([2], "GPU-222"), ([3, 0], "GPU-333,GPU-000")],  # by UUID, in the order given
)
def test_cuda_visible_devices(indexes: list[int], expected: str) -> None:
    chosen = [next(gpu for gpu in FOUR if gpu.index == index) for index in indexes]
    assert cuda_visible_devices(chosen) == expected


@pytest.mark.parametrize(
    ("gpus", "pinned", "expected"),
    [
        ([], [], {}),  # no GPUs here: the user's CUDA_VISIBLE_DEVICES stays
        (FOUR, [], {"CUDA_VISIBLE_DEVICES": ""}),  # a CPU replica sees no GPU
        (FOUR, FOUR[2:3], {"CUDA_VISIBLE_DEVICES": "GPU-000"}),
    ],
)
def test_cuda_environment(gpus: list[Gpu], pinned: list[Gpu], expected: dict[str, str]) -> None:
    assert cuda_environment(gpus, pinned) == expected


@pytest.mark.parametrize(
    ("gpus", "held", "count", "words"),
    [
        ([], {}, 0, "none (no GPUs on this machine"),
        (FOUR, {}, 0, 'CUDA_VISIBLE_DEVICES="" hides the 4 GPU(s)'),
        (
            FOUR,
            {UUID[0]: "x"},
            2,
            "2 pinned at start (by UUID, in CUDA_VISIBLE_DEVICES) from 4 on this machine; 3 free",
        ),
        ([], {}, 1, "1 asked for, but this machine has none (NVML found no GPUs), so the start would fail"),
        (
            FOUR,
            dict.fromkeys(UUID.values(), "x"),
            1,
            "from 4 on this machine; only 0 free now, so the start would fail",
        ),
    ],
)
def test_describe_plan(gpus: list[Gpu], held: dict[str, str], count: int, words: str) -> None:
    assert words in describe_plan(gpus, held, count)


# --- the scripted inventory (CORTEXLITE_FAKE_GPUS) -------------------------------------------------

SCRIPT = [
    {"index": 1, "uuid": "GPU-fake-1", "name": "Fake H100", "memory_total_bytes": 2**30, "utilization": 0.5},
    {"index": 0, "uuid": "GPU-fake-0", "name": "Fake H100"},
]
EXPECTED = [Gpu(0, "GPU-fake-0", "Fake H100", 0, 0, 0.0), Gpu(1, "GPU-fake-1", "Fake H100", 2**30, 0, 0.5)]


def test_scripted_inventory_inline_and_from_a_file(tmp_path: Path) -> None:
    assert inventory(json.dumps(SCRIPT)) == EXPECTED
    script = tmp_path / "gpus.json"
    script.write_text(json.dumps(SCRIPT))
    assert inventory(f"@{script}") == EXPECTED
    assert inventory("[]") == []


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("[{", "CORTEXLITE_FAKE_GPUS: expected a JSON list of GPUs"),
        ('{"index": 0}', "Input should be a valid array"),
        ('[{"index": "0", "uuid": "GPU-a", "name": "n"}]', "entry 0: index: Input should be a valid integer"),
        ('[{"index": 0, "name": "n"}]', "entry 0: uuid: Field required"),
        ('[{"index": 0, "uuid": "GPU-a", "name": "n", "cores": 1}]', "entry 0: cores: Extra inputs are not permitted"),
        (
            '[{"index": 0, "uuid": "GPU-a", "name": "n"}, {"index": 0, "uuid": "GPU-b", "name": "n"}]',
            "two GPUs have the same index",
        ),
        (
            '[{"index": 0, "uuid": "GPU-a", "name": "n"}, {"index": 1, "uuid": "GPU-a", "name": "n"}]',
            "two GPUs have the same uuid",
        ),
        ("@/nonexistent/gpus.json", "CORTEXLITE_FAKE_GPUS file /nonexistent/gpus.json: cannot read it"),
    ],
)
def test_malformed_scripted_inventory_is_a_config_error(script: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        inventory(script)
    assert message in str(raised.value)


def test_without_a_script_nvml_finds_no_gpus_here() -> None:
    if Path("/proc/driver/nvidia").exists():
        pytest.skip("this machine has an NVIDIA driver")
    assert inventory(None) == []


# --- who holds what: process replica records --------------------------------------------------------


def _record(home: Path, where: str, **fields: Any) -> None:
    env, api, replica = where.split("/")
    path = home / "envs" / env / "apis" / api / "replicas" / f"{replica}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"id": replica, "api": api, "created_at": time.time() - 3600, **fields}))


def test_process_holders_are_live_replicas_and_fresh_reservations(tmp_path: Path) -> None:
    me = identify(os.getpid())
    assert me is not None
    home = tmp_path / "home"
    _record(home, "local/iris/aa0001", pid=me.pid, started=me.started, gpus=["GPU-a", "GPU-b"])
    _record(home, "dev/other/bb0002", pid=me.pid, started=me.started, gpus=["GPU-c"])
    _record(home, "local/iris/cc0003", pid=me.pid, started=me.started - 100, gpus=["GPU-d"])  # pid reused
    _record(home, "local/iris/dd0004", pid=2**22 + 7, started=me.started, gpus=["GPU-e"])  # gone
    _record(home, "local/iris/ee0005", pid=0, started=0.0, created_at=time.time() - 5, gpus=["GPU-f"])
    _record(home, "local/iris/ff0006", pid=0, started=0.0, created_at=time.time() - 61, gpus=["GPU-g"])  # stale
    _record(home, "local/cpu/aa0007", pid=me.pid, started=me.started, gpus=[])
    _record(home, "local/old/aa0008", pid=me.pid, started=me.started)  # written before records had GPUs
    (home / "envs" / "local" / "apis" / "iris" / "replicas" / "broken.json").write_text("{")
    assert process_holders(home) == {
        "GPU-a": "local/iris/aa0001",
        "GPU-b": "local/iris/aa0001",
        "GPU-c": "dev/other/bb0002",
        "GPU-f": "local/iris/ee0005",
    }


def test_no_records_hold_nothing(tmp_path: Path) -> None:
    assert process_holders(tmp_path / "no-home-yet") == {}
