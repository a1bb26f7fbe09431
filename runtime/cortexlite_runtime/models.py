"""Models in storage: `predictor.model_path: s3://...` fetched through a node-local cache.

The objects under the path are listed; when its immediate subdirectories are integers they are
versions and only the highest is fetched. The cache entry is named by a hash of what was listed
(keys, sizes, ETags), so replicas on one host share one download, a model retrained at the same
path gets a new entry (`cortexlite refresh` picks it up), and an unchanged one is never fetched
again. Entries are filled under a file lock, in a staging directory renamed into place whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from loguru import logger

from .dependencies import UNWRITABLE_HINT
from .errors import StorageError, StorageNotFound
from .storage import Location, ObjectInfo, Storage, StorageSettings

__all__ = ["FetchedModel", "ModelSelection", "fetch_model", "select_model"]

_COMPLETE = ".cortexlite-model"


@dataclass(frozen=True)
class ModelSelection:
    """What to fetch: the objects (relative names) of the chosen version, and the content key."""

    prefix: str  # the key prefix the relative names hang from
    objects: tuple[tuple[str, ObjectInfo], ...]
    version: int | None
    single_file: bool

    @property
    def digest(self) -> str:
        listed = [[name, info.size, info.etag] for name, info in self.objects]
        return hashlib.sha256(json.dumps(listed, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class FetchedModel:
    path: Path  # what the predictor gets as model_path
    downloaded_bytes: int
    cached: bool
    version: int | None


def select_model(location: Location, listed: list[ObjectInfo]) -> ModelSelection:
    """Pick the objects to fetch from a recursive listing of `location` (pure)."""
    key = location.key
    exact = [info for info in listed if info.key == key]
    if exact and key:
        return ModelSelection(str(PurePosixPath(key).parent), ((PurePosixPath(key).name, exact[0]),), None, True)
    prefix = f"{key}/" if key else ""
    inside = [(info.key[len(prefix) :], info) for info in listed if info.key.startswith(prefix)]
    inside = [(name, info) for name, info in inside if name and not name.endswith("/")]
    if not inside:
        raise StorageNotFound(f"no model at {location.url}: nothing is stored under it")
    tops = {PurePosixPath(name).parts[0] for name, _ in inside if len(PurePosixPath(name).parts) > 1}
    versions = sorted(int(top) for top in tops if top.isdigit())
    if versions:
        chosen = versions[-1]
        base = f"{chosen}/"
        picked = tuple((name[len(base) :], info) for name, info in inside if name.startswith(base))
        return ModelSelection(f"{prefix}{chosen}", picked, chosen, False)
    return ModelSelection(key, tuple(inside), None, False)


def fetch_model(
    url: str, cache_dir: Path | None, model_dir: Path | None, settings: StorageSettings | None = None
) -> FetchedModel:
    """Fetch the model at `url` (cached under `cache_dir/models` when there is one); its local path.

    With `model_dir` (CORTEX_MODEL_DIR) the model is also reachable there: a link to the cache
    entry, or, without a cache, the download itself.
    """
    location = Location.parse(url, "predictor.model_path")
    storage = Storage.for_location(location, settings)
    try:
        listed = storage.list(location.bucket, location.key)
        selection = select_model(location, listed)
        cache = _cache_root(cache_dir)
        root = cache or model_dir or Path(tempfile.mkdtemp(prefix="cortexlite-model-"))
        entry = root / "models" / selection.digest
        with _locked(entry.parent / f".{entry.name}.lock"):
            if (entry / _COMPLETE).is_file():
                downloaded, cached = 0, True
            else:
                downloaded, cached = _download(storage, location, selection, entry), False
    finally:
        storage.close()
    version = f" version {selection.version}" if selection.version is not None else ""
    if cached:
        logger.info("model {}{}: in the cache ({}), nothing downloaded", url, version, entry)
    else:
        logger.info("model {}{}: downloaded {} MiB into {}", url, version, f"{downloaded / 2**20:.1f}", entry)
    path = entry / selection.objects[0][0] if selection.single_file else entry
    if model_dir is not None and cache is not None:
        path = _link(model_dir, path)
    return FetchedModel(path, downloaded, cached, selection.version)


def _download(storage: Storage, location: Location, selection: ModelSelection, entry: Path) -> int:
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    total = 0
    started = time.monotonic()
    try:
        for name, info in selection.objects:
            relative = PurePosixPath(name)
            if any(part in ("..", "") for part in relative.parts) or relative.is_absolute():
                raise StorageError(f"model {location.url}: refusing the object name {info.key!r}")
            storage.download(location.bucket, info.key, staging / relative, digest=False)
            total += info.size
        (staging / _COMPLETE).write_text(json.dumps({"url": location.url, "bytes": total}) + "\n")
        if entry.exists():
            shutil.rmtree(entry)  # an entry without its marker: an interrupted fill
        staging.rename(entry)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.debug("model download took {:.2f}s", time.monotonic() - started)
    return total


def _cache_root(cache_dir: Path | None) -> Path | None:
    if cache_dir is None:
        return None
    root = cache_dir / ".cortexlite-cache"
    try:
        (root / "models").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.warning("model cache {} is not writable ({}); fetching without a cache{}", root, exc, UNWRITABLE_HINT)
        return None
    if not os.access(root / "models", os.W_OK):
        logger.warning("model cache {} is not writable; fetching without a cache{}", root, UNWRITABLE_HINT)
        return None
    return root


def _link(model_dir: Path, target: Path) -> Path:
    """Make `model_dir` point at `target` (replacing an older link); the path the predictor gets."""
    if model_dir.is_symlink() or not model_dir.exists():
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        temporary = model_dir.with_name(f".{model_dir.name}.{os.getpid()}")
        if temporary.is_symlink():
            temporary.unlink()
        temporary.symlink_to(target)
        os.replace(temporary, model_dir)
        return model_dir
    logger.warning("CORTEX_MODEL_DIR={} exists and is not a link: the model is used from {}", model_dir, target)
    return target


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
