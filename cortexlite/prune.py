"""`prune`: remove what no API of any environment uses any more.

Snapshots, replica venvs and runtime wheels, resolved specs of replaced versions, the logs of
replicas that are gone, and (when a Docker engine answers) cortexlite's images that no container
or record uses. Anything younger than `min_age` stays, so that a deploy running right
now (whose snapshot is not recorded yet) never loses it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cortexlite.errors import DockerError
from cortexlite.settings import Settings
from cortexlite.state import ApiRecord, EnvState

__all__ = ["Pruned", "prune"]

DEFAULT_MIN_AGE_S = 600.0


@dataclass(frozen=True)
class Pruned:
    what: str
    path: Path | str  # a file or directory, or an image tag
    bytes: int


def prune(settings: Settings, *, min_age: float = DEFAULT_MIN_AGE_S, dry_run: bool = False) -> list[Pruned]:
    records = _records(settings.home)
    snapshots = {Path(record.snapshot).name for record in records}
    runtimes = {record.runtime for record in records}
    found: list[Pruned] = []
    cutoff = time.time() - min_age
    for path in _children(settings.home / "snapshots"):
        if path.name not in snapshots and _older(path, cutoff):
            found.append(Pruned("snapshot", path, _size(path)))
    for path in _children(settings.cache_dir / "venvs"):
        key = path.name.removesuffix(".lock")
        if key not in runtimes and _older(path, cutoff):
            found.append(Pruned("venv", path, _size(path)))
    for path in _children(settings.cache_dir / "wheels"):
        if _older(path, cutoff):
            found.append(Pruned("runtime wheel", path, _size(path)))
    found += _stale_api_files(settings.home, records, cutoff)
    if not dry_run:
        for item in found:
            if isinstance(item.path, Path):
                _remove(item.path)
    return found + _images(runtimes, cutoff, dry_run)


def _images(runtimes: set[str], cutoff: float, dry_run: bool) -> list[Pruned]:
    """Images of this machine's Docker engine (DOCKER_HOST) that nothing uses; none when no engine answers."""
    from cortexlite.backends.container import unused_images
    from cortexlite.backends.docker import DockerEngine

    try:
        with DockerEngine.from_env() as engine:
            engine.ping()
            found = [Pruned("image", tag, size) for tag, size in unused_images(engine, runtimes, cutoff)]
            if not dry_run:
                for item in found:
                    engine.remove_image(str(item.path))
            return found
    except DockerError:
        return []


def _records(home: Path) -> list[ApiRecord]:
    records: list[ApiRecord] = []
    for env_dir in _children(home / "envs"):
        state = EnvState(home, env_dir.name)
        for name in state.names():
            record = state.api(name)
            if record is not None:
                records.append(record)
            marker = state.marker(name)
            if marker is not None:
                records += [marker.target] + ([marker.previous] if marker.previous is not None else [])
    return records


def _stale_api_files(home: Path, records: list[ApiRecord], cutoff: float) -> list[Pruned]:
    versions = {f"{record.version}-{record.spec_hash}" for record in records}
    found = []
    for api_dir in home.glob("envs/*/apis/*"):
        replicas = {path.stem for path in (api_dir / "replicas").glob("*.json")}
        for spec in (api_dir / "specs").glob("*.json"):
            if spec.stem not in versions and _older(spec, cutoff):
                found.append(Pruned("resolved spec", spec, spec.stat().st_size))
        for log in (api_dir / "logs").glob("*.log*"):
            replica = log.name.split(".log")[0]
            if replica != "rollout" and replica not in replicas and _older(log, cutoff):
                found.append(Pruned("replica log", log, log.stat().st_size))
    return found


def _children(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.iterdir() if not path.name.startswith("."))


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


def _remove(path: Path) -> None:
    if path.is_dir():
        for directory, _, _ in os.walk(path):
            os.chmod(directory, 0o755)  # snapshots are read-only
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
