"""The snapshot store's disk full: CORTEXLITE_HOME/snapshots on a small tmpfs.

The ENOSPC is real (the kernel's, from the tmpfs), two ways: no blocks left (a 3 MiB project on a
2 MiB disk fails in the middle of a copy) and no inodes left (the disk's last inodes taken, so even
the staging directory cannot be made). Either way the deploy fails with one clear message naming the
full disk and the directory, leaves nothing half-written, and the version deployed before keeps
serving throughout. With the cause gone, the next deploy succeeds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import RecordFigure, deploy_that_fails, expect_answer
from tests.integration.conftest import LocalEnv, make_api_project

pytestmark = [pytest.mark.slow]

DISK_SIZE = 2 * 2**20
DISK_INODES = 64


@pytest.fixture
def snapshot_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of 64 inodes where the snapshots of `local_env`'s home go (request it before `local_env`,
    so it is unmounted after the environment's replicas stopped)."""
    where = tmp_path / "home" / "snapshots"
    where.mkdir(parents=True)
    options = f"size={DISK_SIZE},nr_inodes={DISK_INODES},mode=0755"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {where} (this test needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, timeout=30, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30, check=False)


def _entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def _deploy_onto_a_full_disk(env: LocalEnv, project: Path, disk: Path, figures: RecordFigure) -> str:
    """`deploy` fails cleanly on `disk` while v1 (the only snapshot there) answers every request; its message."""
    before = _entries(disk)
    usage = shutil.disk_usage(disk).used, os.statvfs(disk).f_ffree
    error = deploy_that_fails(env, project, figures, interval=0.05, cause="ENOSPC").error
    assert f"in {disk}: the disk is full (No space left on device" in error and "cortexlite prune" in error, error
    # Nothing half-written: no staging directory, the blocks and inodes free again, no update recorded.
    assert _entries(disk) == before
    assert (shutil.disk_usage(disk).used, os.statvfs(disk).f_ffree) == usage
    assert not (env.api_dir("answer") / "rollout.json").exists()
    figures("bytes left behind on the full disk", shutil.disk_usage(disk).used - usage[0], "bytes")
    return error


def _deploy_v1(env: LocalEnv, tmp_path: Path, disk: Path) -> Path:
    project = make_api_project(tmp_path / "project")
    env.cli("up", str(project))
    expect_answer(env, {"answer": "v1"})
    assert len(_entries(disk)) == 1
    (project / "cortexlite.yaml").write_text("- name: answer\n  predictor:\n    config: {answer: v2}\n")
    (project / "notes.txt").write_text("v2 has a new file: a new snapshot\n")
    return project


def test_no_blocks_left_fails_the_copy_cleanly_and_the_old_version_serves(
    snapshot_disk: Path, local_env: LocalEnv, tmp_path: Path, figures: RecordFigure
) -> None:
    project = _deploy_v1(local_env, tmp_path, snapshot_disk)
    (project / "weights.bin").write_bytes(os.urandom(3 * 2**20))
    error = _deploy_onto_a_full_disk(local_env, project, snapshot_disk, figures)
    assert "the project needs 3.0 MiB, 2.0 MiB free there" in error, error

    # One of the remedies the message names: the large file kept out of the project.
    (project / ".cortexignore").write_text("weights.bin\n")
    started = time.monotonic()
    local_env.cli("deploy", str(project))
    figures("deploy after .cortexignore (fits)", time.monotonic() - started, "s")
    expect_answer(local_env, {"answer": "v2"})
    assert len(_entries(snapshot_disk)) == 2


def test_no_inodes_left_fails_before_any_copy_and_the_old_version_serves(
    snapshot_disk: Path, local_env: LocalEnv, tmp_path: Path, figures: RecordFigure
) -> None:
    project = _deploy_v1(local_env, tmp_path, snapshot_disk)
    fillers = snapshot_disk / "filler"
    fillers.mkdir()
    taken = 0
    while os.statvfs(snapshot_disk).f_ffree > 0:
        (fillers / str(taken)).touch()
        taken += 1
    with pytest.raises(OSError, match="No space left on device"):
        (fillers / "one-more").touch()
    error = _deploy_onto_a_full_disk(local_env, project, snapshot_disk, figures)
    assert "no inodes left for the project's 3 file(s), 0 free there" in error, error

    shutil.rmtree(fillers)
    started = time.monotonic()
    local_env.cli("deploy", str(project))
    figures("deploy with the inodes free again", time.monotonic() - started, "s")
    expect_answer(local_env, {"answer": "v2"})
    assert len(_entries(snapshot_disk)) == 2
