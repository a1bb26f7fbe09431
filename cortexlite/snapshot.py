"""Project snapshots: the files beside the yaml, content-addressed and stored read-only.

A snapshot is what replicas run, so later edits in the project never reach a running replica.
Left out: hidden directories, `__pycache__`, and what `.cortexignore` names (one glob per line,
`#` comments; a pattern with a `/` matches the path from the project root, one without matches
any file or directory name; a trailing `/` matches directories only). Hidden *files* stay:
`.env` is part of the project.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cortexlite.errors import SnapshotError

__all__ = ["MAX_BYTES", "MAX_FILES", "Snapshot", "project_files", "project_hash", "take_snapshot"]

MAX_FILES = 1000
MAX_BYTES = 10 * 2**20
_COMPLETE = ".cortexlite-snapshot"


@dataclass(frozen=True)
class Snapshot:
    hash: str
    path: Path
    files: int
    bytes: int
    reused: bool
    warnings: tuple[str, ...] = ()


def project_files(project_dir: Path) -> list[PurePosixPath]:
    """The project's files (relative, sorted), without what snapshots leave out."""
    if not project_dir.is_dir():
        raise SnapshotError(f"project directory {project_dir} does not exist")
    patterns = _ignore_patterns(project_dir / ".cortexignore")
    return sorted(_walk(project_dir, PurePosixPath(), patterns))


def project_hash(project_dir: Path, files: list[PurePosixPath]) -> str:
    """sha256 over every file's path, executable bit and content (not its times)."""
    digest = hashlib.sha256()
    for relative in files:
        path = project_dir / relative
        digest.update(f"{relative}\0{int(os.access(path, os.X_OK))}\0".encode())
        digest.update(_file_digest(path))
    return digest.hexdigest()


def take_snapshot(
    project_dir: Path,
    home: Path,
    *,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
    files: list[PurePosixPath] | None = None,
) -> Snapshot:
    """Store the project under `home/snapshots/<hash>` (reused when it is already there).

    `files` is the project's file list when the caller already has it (`project_files`).
    """
    files = project_files(project_dir) if files is None else files
    size = sum((project_dir / f).stat().st_size for f in files)
    warnings = _warnings(len(files), size, max_files, max_bytes)
    digest = project_hash(project_dir, files)
    target = home / "snapshots" / digest
    if (target / _COMPLETE).is_file():
        return Snapshot(digest, target, len(files), size, reused=True, warnings=warnings)
    try:
        _store(project_dir, files, target)
    except OSError as exc:
        raise SnapshotError(_store_failed(project_dir, target.parent, len(files), size, exc)) from exc
    return Snapshot(digest, target, len(files), size, reused=False, warnings=warnings)


def _store(project_dir: Path, files: list[PurePosixPath], target: Path) -> None:
    """Copy the files into a staging directory beside `target`, then rename it: whole, or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:12]}.", dir=target.parent))
    try:
        for relative in files:
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project_dir / relative, destination)
        (staging / _COMPLETE).write_text(target.name + "\n")
        _make_read_only(staging)
        try:
            staging.rename(target)
        except OSError as exc:
            # Another deploy stored the same content first (a non-empty target is ENOTEMPTY, not EEXIST).
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not (target / _COMPLETE).is_file():
                raise
    finally:
        if staging.exists():
            _make_writable(staging)
            shutil.rmtree(staging, ignore_errors=True)


def _store_failed(project_dir: Path, where: Path, files: int, size: int, exc: OSError) -> str:
    prefix = f"cannot store the snapshot of {project_dir} in {where}"
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return f"{prefix}: {exc}"
    return (
        f"{prefix}: the disk is full ({exc.strerror}{_shortage(where, files, size)}); nothing was stored. "
        "Free space on that disk, remove unused snapshots with `cortexlite prune`, or keep large files out of the "
        "project (models in storage, or listed in .cortexignore)"
    )


def _shortage(where: Path, files: int, size: int) -> str:
    """What the disk lacks for the project: inodes (one per file and directory) or bytes."""
    try:
        disk = os.statvfs(where)
    except OSError:
        return ""
    if disk.f_files and disk.f_favail <= files:
        return f"; no inodes left for the project's {files} file(s), {disk.f_favail} free there"
    return f"; the project needs {_mib(size)}, {_mib(disk.f_bavail * disk.f_frsize)} free there"


def _mib(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"


def _walk(root: Path, relative: PurePosixPath, patterns: list[str]) -> Iterator[PurePosixPath]:
    with os.scandir(root / relative) as entries:
        for entry in entries:
            path = relative / entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir and (entry.name.startswith(".") or entry.name == "__pycache__"):
                continue
            if _ignored(path, is_dir, patterns):
                continue
            if is_dir:
                yield from _walk(root, path, patterns)
            elif entry.is_file():
                yield path


def _ignore_patterns(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(path: PurePosixPath, is_dir: bool, patterns: list[str]) -> bool:
    for raw in patterns:
        pattern = raw.rstrip("/")
        if raw.endswith("/") and not is_dir:
            continue
        subject = str(path) if "/" in pattern else path.name
        if fnmatch.fnmatchcase(subject, pattern.lstrip("/")):
            return True
    return False


def _warnings(files: int, size: int, max_files: int, max_bytes: int) -> tuple[str, ...]:
    if files <= max_files and size <= max_bytes:
        return ()
    return (
        f"the project has {files} files ({size / 2**20:.1f} MiB); every deploy copies them: "
        "keep models in storage or list large files in .cortexignore",
    )


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _make_read_only(root: Path) -> None:
    for directory, _, names in os.walk(root, topdown=False):
        for name in names:
            path = Path(directory, name)
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        Path(directory).chmod(0o555)


def _make_writable(root: Path) -> None:
    for directory, _, _ in os.walk(root):
        Path(directory).chmod(0o755)
