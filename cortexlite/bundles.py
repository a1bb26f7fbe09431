"""Shipping snapshots through an environment's storage, for engines on other machines.

A snapshot becomes a reproducible zip (`cortexlite_runtime.bundle.make_bundle`) kept in
`CORTEXLITE_HOME/bundles/<project hash>.zip`, and is stored once at
`<storage prefix>/bundles/<sha256>.zip`: a deploy of content the store already holds uploads
nothing. Replicas fetch it through `CORTEX_PROJECT_URI`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from cortexlite.environments import Environment
from cortexlite.errors import EnvConfigError, SnapshotError
from cortexlite.files import atomic_write, read_json
from cortexlite.snapshot import project_files
from cortexlite_runtime.bundle import Bundle, bundle_key, make_bundle, upload_bundle
from cortexlite_runtime.errors import StorageError, StorageNotFound, StorageUnreachable
from cortexlite_runtime.storage import Location, Progress, Storage, StorageSettings

__all__ = [
    "BundleStore",
    "ReplicaStorage",
    "Shipped",
    "check_storage",
    "replica_storage",
    "transfer_progress",
]

Log = Callable[[str], None]
_SNAPSHOT_MARKER = ".cortexlite-snapshot"
PROGRESS_MIN_BYTES = 2**20
CHECK_BUDGET_S = 5.0
SECRET_VARIABLES = frozenset({"CORTEXLITE_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"})


@dataclass(frozen=True)
class Shipped:
    uri: str
    sha256: str
    size: int
    uploaded: bool
    seconds: float


def storage_location(environment: Environment) -> Location:
    if not environment.storage:
        raise EnvConfigError(
            f"environment {environment.name} has no storage, which its engine ({environment.docker_host}) needs for "
            f"the project bundles: `cortexlite env remove {environment.name}`, then `cortexlite env add "
            f"{environment.name} ... --storage s3://bucket/prefix`"
        )
    return Location.parse(environment.storage, f"environment {environment.name}: storage")


def check_storage(environment: Environment, *, create: bool) -> list[str]:
    """Reach the environment's store and its bucket (created with `create`); lines for the user."""
    location = storage_location(environment)
    settings = environment.storage_settings()
    # A quick check: `env add` should not hang for a deploy's whole retry budget.
    storage = Storage(replace(settings, retry_budget=min(settings.retry_budget, CHECK_BUDGET_S)), location.scheme)
    try:
        try:
            exists = storage.bucket_exists(location.bucket)
        except StorageUnreachable as exc:
            if create:
                raise
            return [f"warning: {exc}; the environment is added anyway, and deploys need the store to answer"]
        if exists:
            return [f"storage: {storage.endpoint} answers; bucket {location.bucket} exists"]
        if not create:
            raise StorageNotFound(
                f"the bucket {location.bucket} does not exist at {storage.endpoint}: add --create-bucket to "
                "create it, or create it with your store's console"
            )
        storage.make_bucket(location.bucket)
        return [f"storage: created the bucket {location.bucket} at {storage.endpoint}"]
    finally:
        storage.close()


class BundleStore:
    """One environment's bundles: zipped once per snapshot, uploaded once per content."""

    def __init__(self, home: Path, location: Location, settings: StorageSettings) -> None:
        self.home = home
        self.location = location
        self.settings = settings
        self._shipped: dict[str, Shipped] = {}

    @classmethod
    def for_environment(cls, home: Path, environment: Environment) -> BundleStore:
        return cls(home, storage_location(environment), environment.storage_settings())

    def note(self, snapshot: Path) -> Path:
        """Where the sha256 and size of the snapshot's bundle are remembered."""
        return self.home / "bundles" / f"{snapshot.name}.json"

    def bundle(self, snapshot: Path) -> Bundle:
        """The snapshot's zip, made the first time and then reused (its sha256 remembered beside it)."""
        target, note = self.home / "bundles" / f"{snapshot.name}.zip", self.note(snapshot)
        known = read_json(note)
        if isinstance(known, dict) and target.is_file() and target.stat().st_size == known.get("size"):
            return Bundle(target, str(known["sha256"]), int(known["size"]))
        files = [path for path in project_files(snapshot) if str(path) != _SNAPSHOT_MARKER]
        made = make_bundle(snapshot, files, target)
        atomic_write(note, json.dumps({"sha256": made.sha256, "size": made.size}))
        return made

    def planned_uri(self, snapshot: Path) -> str:
        """Where `ship` would put the snapshot's bundle, without reaching the store (`--dry-run`, `--plan`)."""
        return self.location.child(bundle_key("", self.bundle(snapshot).sha256)).url

    def ship(self, snapshot: Path, log: Log) -> Shipped:
        """Make sure the store holds the snapshot's bundle; where it is."""
        if snapshot.name in self._shipped:
            return self._shipped[snapshot.name]
        if not snapshot.is_dir():
            return self._stored(snapshot)
        started = time.monotonic()
        bundle = self.bundle(snapshot)
        storage = Storage(self.settings, self.location.scheme)
        try:
            storage.require_bucket(self.location.bucket)
            location, uploaded = upload_bundle(
                storage, self.location, bundle, transfer_progress(log, f"uploading bundle {bundle.sha256[:12]}")
            )
        except StorageError as exc:
            # The store's own message says what failed where; this says what it was for.
            raise type(exc)(f"the project's bundle could not be stored in {self.location.url}: {exc}") from exc
        finally:
            storage.close()
        shipped = Shipped(location.url, bundle.sha256, bundle.size, uploaded, time.monotonic() - started)
        if uploaded:
            rate = bundle.size / 2**20 / max(shipped.seconds, 1e-6)
            log(f"bundle {bundle.sha256[:12]} ({_size(bundle.size)}) uploaded to {location.url} at {rate:.1f} MiB/s")
        else:
            log(f"bundle {bundle.sha256[:12]} is already in {self.location.url}: nothing uploaded")
        self._shipped[snapshot.name] = shipped
        return shipped

    def _stored(self, snapshot: Path) -> Shipped:
        """A snapshot that is not on this machine (the operator on a remote host): its bundle, which its note
        names, must already be in the store."""
        known = read_json(self.note(snapshot))
        if not isinstance(known, dict) or not isinstance(known.get("sha256"), str):
            raise SnapshotError(
                f"the snapshot {snapshot.name[:12]} is not on this machine and no bundle of it is known here; "
                "deploy the project again"
            )
        location = self.location.child(bundle_key("", str(known["sha256"])))
        storage = Storage(self.settings, self.location.scheme)
        try:
            present = storage.stat(location.bucket, location.key)
        finally:
            storage.close()
        if present is None:
            raise SnapshotError(f"the bundle {location.url} of snapshot {snapshot.name[:12]} is not in the store")
        shipped = Shipped(location.url, str(known["sha256"]), int(known.get("size") or 0), False, 0.0)
        self._shipped[snapshot.name] = shipped
        return shipped


@dataclass(frozen=True)
class ReplicaStorage:
    """The storage variables replicas get, and the same with secrets shown as references (`--dry-run`)."""

    env: Mapping[str, str]
    shown: Mapping[str, str]
    ca_bundle: Path | None


def replica_storage(environment: Environment, ca_path: str | None = None) -> ReplicaStorage:
    """The environment's storage settings as the standard variables (AWS_*, CORTEXLITE_S3_*), when it has any.

    Only storage cortexlite was told about counts (the environment's `storage`/`s3_*`, or a
    CORTEXLITE_S3_* variable): AWS keys that merely sit in the user's shell are not handed to containers.
    """
    settings = environment.storage_settings()
    told = environment.storage or any(
        getattr(environment, name) is not None for name in Environment.model_fields if name.startswith("s3_")
    )
    if not (told or any(name.startswith("CORTEXLITE_S3_") and value for name, value in os.environ.items())):
        return ReplicaStorage({}, {}, None)
    scheme = environment.storage.split("://")[0] if environment.storage else "s3"
    env = settings.replica_environment(scheme)
    if settings.ca_bundle is not None:
        # Containers get a copy of the file at `ca_path`; processes read it where it is.
        where = ca_path or str(settings.ca_bundle)
        env |= {"CORTEXLITE_S3_CA_BUNDLE": where, "AWS_CA_BUNDLE": where}
    shown = {key: f"<secret:{key}>" if key in SECRET_VARIABLES else value for key, value in env.items()}
    return ReplicaStorage(env, shown, settings.ca_bundle)


def transfer_progress(log: Log, what: str, stream: object = None) -> Progress:
    """A progress report for transfers above 1 MiB: a bar on a terminal, else a line per quarter."""
    out = stream if stream is not None else sys.stderr
    tty = bool(getattr(out, "isatty", lambda: False)())
    marks: set[int] = set()
    bar: dict[str, object] = {}

    def report(done: int, total: int) -> None:
        if total < PROGRESS_MIN_BYTES:
            return
        if tty:
            from rich.progress import BarColumn, DownloadColumn, TransferSpeedColumn
            from rich.progress import Progress as Bar

            if "bar" not in bar:
                made = Bar(f"[bold]{what}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True)
                made.start()
                bar["bar"], bar["task"] = made, made.add_task(what, total=total)
            shown = bar["bar"]
            assert isinstance(shown, Bar)
            shown.update(bar["task"], completed=done)  # type: ignore[arg-type]
            if done >= total:
                shown.stop()
            return
        quarter = min(4, done * 4 // total)
        if quarter not in marks:
            marks.add(quarter)
            log(f"{what}: {_size(done)} of {_size(total)}")

    return report


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 1024:.0f} KiB"
