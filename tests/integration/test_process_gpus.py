"""GPU pinning on the process environment, against a scripted NVML inventory: no GPUs here.

This machine has no GPUs, so `CORTEXLITE_FAKE_GPUS` scripts two fake ones; what is real is the
rest: the lock, the records, the replicas' environments and the CLI.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_project
from tests.integration.conftest import CORTEXLITE, LocalEnv

pytestmark = pytest.mark.slow

FAKE_UUIDS = ["GPU-fake0000-0000-0000-0000-000000000000", "GPU-fake1111-1111-1111-1111-111111111111"]
SCRIPTED_GPUS = json.dumps(
    [{"index": index, "uuid": uuid, "name": "Scripted H100 (fake)"} for index, uuid in enumerate(FAKE_UUIDS)]
)
PINNED_YAML = """\
- name: pinned
  compute: {gpu: 1}
  autoscaling: {min_replicas: 2, max_replicas: 2, init_replicas: 2}
"""


def _cli_with_fake_gpus(env: LocalEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """`cortexlite ARGS` on a machine whose NVML inventory is scripted (two fake GPUs)."""
    return subprocess.run(
        [str(CORTEXLITE), *args], env={**env.environ, "CORTEXLITE_FAKE_GPUS": SCRIPTED_GPUS},
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def _sees(port: int) -> str | None:
    """What the replica on `port` has in CUDA_VISIBLE_DEVICES (asked directly, not through the gateway)."""
    reply = httpx.post(f"http://127.0.0.1:{port}/predict", json={}, timeout=10)
    assert reply.status_code == 200, reply.text
    value = reply.json()["cuda_visible_devices"]
    return None if value is None else str(value)


def test_replicas_are_pinned_to_distinct_scripted_fake_gpus(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = make_project(tmp_path / "pinned", "cuda_visible", PINNED_YAML)
    plan = json.loads(_cli_with_fake_gpus(env, "deploy", str(project), "--dry-run", "-o", "json").stdout)
    assert plan[0]["plan"]["replica"]["gpus"].startswith("1 pinned at start (by UUID, in CUDA_VISIBLE_DEVICES)")

    up = _cli_with_fake_gpus(env, "up", str(project))
    assert up.returncode == 0, up.stdout + up.stderr
    records = env.replica_records("pinned")
    assert len(records) == 2
    pinned = {record["id"]: record["gpus"] for record in records}
    assert sorted(uuid for gpus in pinned.values() for uuid in gpus) == FAKE_UUIDS  # one each, none shared
    for record in records:
        assert _sees(record["port"]) == record["gpus"][0]

    listing = json.loads(_cli_with_fake_gpus(env, "gpus", "-o", "json").stdout)
    holders = {gpu["uuid"]: gpu["held_by"] for gpu in listing}
    assert holders == {gpus[0]: f"local/pinned/{replica}" for replica, gpus in pinned.items()}
    table = _cli_with_fake_gpus(env, "gpus").stdout
    assert table.splitlines()[0].split() == ["index", "uuid", "model", "memory", "utilisation", "held", "by"]
    for replica in pinned:
        assert f"local/pinned/{replica}" in table

    # No GPU is left for a third replica: the new API fails with the reason, the first one serves on.
    other = make_project(tmp_path / "other", "cuda_visible", "- name: other\n  compute: {gpu: 1}\n")
    refused = _cli_with_fake_gpus(env, "deploy", str(other))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "other needs 1 GPU(s); 0 of 2 free (GPU 0 held by local/pinned/" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not list(env.home.glob("envs/local/apis/other/replicas/*.json"))
    answer = httpx.post(env.url("/pinned"), json={}, timeout=10)
    assert answer.status_code == 200 and answer.json()["cuda_visible_devices"] in FAKE_UUIDS

    # A replica asking for no GPU sees none of this machine's.
    cpu = make_project(tmp_path / "cpu", "cuda_visible", "- name: cpu\n")
    assert _cli_with_fake_gpus(env, "deploy", str(cpu)).returncode == 0
    (record,) = env.replica_records("cpu")
    assert (record["gpus"], _sees(record["port"])) == ([], "")


def test_without_a_scripted_inventory_no_gpus_are_found(tmp_path: Path) -> None:
    if Path("/proc/driver/nvidia").exists():
        pytest.skip("this machine has an NVIDIA driver")
    environ = {**LocalEnv(tmp_path / "home", tmp_path / "cache", 0, 0).environ}
    environ.pop("CORTEXLITE_FAKE_GPUS", None)
    for args, expected in ((["gpus"], "no GPUs found"), (["gpus", "-o", "json"], "[]")):
        result = subprocess.run(
            [str(CORTEXLITE), *args], env=environ, capture_output=True, text=True, timeout=60, check=False
        )
        assert (result.returncode, result.stdout.strip()) == (0, expected), result.stderr


def test_an_update_when_every_scripted_fake_gpu_is_held(local_env: LocalEnv, tmp_path: Path) -> None:
    """Two scripted (fake) GPUs, both held: a surge update says why it cannot start; in place it works."""
    env = local_env
    project = make_project(tmp_path / "pinned", "cuda_visible", PINNED_YAML)
    assert _cli_with_fake_gpus(env, "up", str(project)).returncode == 0
    before = {record["id"] for record in env.replica_records("pinned")}

    (project / "predictor.py").write_text((project / "predictor.py").read_text() + "\n# v2\n")
    surge = _cli_with_fake_gpus(env, "deploy", str(project))
    assert surge.returncode == 1, surge.stdout
    assert "compute unavailable" in surge.stderr and "max_surge: 0" in surge.stderr
    assert {record["id"] for record in env.replica_records("pinned")} == before
    assert httpx.post(env.url("/pinned"), json={}, timeout=10).status_code == 200

    in_place = PINNED_YAML + "  update_strategy: {max_surge: 0, max_unavailable: 1}\n"
    (project / "cortexlite.yaml").write_text(in_place)
    done = _cli_with_fake_gpus(env, "deploy", str(project))
    assert done.returncode == 0, done.stdout + done.stderr
    records = env.replica_records("pinned")
    assert not {record["id"] for record in records} & before
    assert sorted(uuid for record in records for uuid in record["gpus"]) == FAKE_UUIDS
