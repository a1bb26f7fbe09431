"""Project snapshots on the real file system: what is left out, content hashes, immutability."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cortexlite.errors import SnapshotError
from cortexlite.snapshot import Snapshot, project_files, take_snapshot


def _project(root: Path) -> Path:
    files = {
        "predictor.py": "class PythonPredictor: ...\n",
        "cortexlite.yaml": "- name: iris\n",
        ".env": "A=1\n",
        "src/helper.py": "X = 1\n",
        "src/__pycache__/helper.cpython-311.pyc": "bytecode",
        ".git/config": "[core]\n",
        "data/big.bin": "0" * 100,
        "notes/draft.txt": "draft",
        "keep/draft.txt": "kept",
        "logs/run.log": "log",
        ".cortexignore": "# comments and blank lines are skipped\n\n*.bin\nnotes/draft.txt\nlogs/\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_left_out(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    assert [str(p) for p in project_files(project)] == [
        ".cortexignore",
        ".env",
        "cortexlite.yaml",
        "keep/draft.txt",
        "predictor.py",
        "src/helper.py",
    ]


def test_hash_follows_content_not_times(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    home = tmp_path / "home"
    first = take_snapshot(project, home)
    os.utime(project / "predictor.py", (1, 1))
    (project / "data" / "big.bin").write_text("ignored files do not count")
    again = take_snapshot(project, home)
    assert again.hash == first.hash and again.reused and not first.reused
    (project / "predictor.py").write_text("class PythonPredictor: pass\n")
    changed = take_snapshot(project, home)
    assert changed.hash != first.hash and not changed.reused
    (project / "src" / "helper.py").chmod(0o755)
    assert take_snapshot(project, home).hash != changed.hash, "the executable bit is content"


def test_snapshot_is_immutable_and_complete(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    snapshot = take_snapshot(project, tmp_path / "home")
    expected_bytes = sum((project / f).stat().st_size for f in project_files(project))
    assert (snapshot.files, snapshot.bytes) == (6, expected_bytes)
    assert snapshot.path == tmp_path / "home" / "snapshots" / snapshot.hash
    assert (snapshot.path / "src" / "helper.py").read_text() == "X = 1\n"
    assert not (snapshot.path / "src" / "__pycache__").exists()
    assert not (snapshot.path / "data" / "big.bin").exists()
    (project / "src" / "helper.py").write_text("X = 2\n")
    assert (snapshot.path / "src" / "helper.py").read_text() == "X = 1\n", "later edits never reach a snapshot"
    mode = (snapshot.path / "src" / "helper.py").stat().st_mode
    assert not mode & 0o222 and not (snapshot.path / "src").stat().st_mode & 0o222


def test_large_projects_warn(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    assert take_snapshot(project, tmp_path / "home").warnings == ()
    (warning,) = take_snapshot(project, tmp_path / "home", max_files=3).warnings
    assert warning.startswith("the project has 6 files") and ".cortexignore" in warning
    assert take_snapshot(project, tmp_path / "home", max_bytes=10).warnings


def test_missing_project(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="does not exist"):
        take_snapshot(tmp_path / "nope", tmp_path / "home")


def test_deploys_storing_the_same_content_at_once_all_get_it(tmp_path: Path) -> None:
    """The first rename wins; the others find a complete snapshot there (a rename onto a non-empty
    directory fails with ENOTEMPTY, not EEXIST)."""
    project = _project(tmp_path / "p")
    (project / "model.dat").write_bytes(os.urandom(4 * 2**20))
    start = threading.Barrier(6)

    def store() -> Snapshot:
        start.wait()
        return take_snapshot(project, tmp_path / "home")

    with ThreadPoolExecutor(max_workers=6) as pool:
        snapshots = list(pool.map(lambda _: store(), range(6)))
    assert len({snapshot.hash for snapshot in snapshots}) == 1
    assert os.listdir(tmp_path / "home" / "snapshots") == [snapshots[0].hash], "no staging directory is left"
