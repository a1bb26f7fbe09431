"""The storage experiment: our S3 client against the bare minio SDK, on a local SeaweedFS.

A `weed server -s3` of the run's own (the test suite's `SeaweedServer`: 127.0.0.1 only, auth on,
data in the run's directory) and a
64 MiB file of random bytes in a snapshot directory; its bundle is zipped before anything is timed.
Uploads first, all their repeats, then downloads (a switch between the two slows the next
transfer, whoever makes it: an untimed one goes first); each repeat runs every contender once,
in an order rotated every repeat so that no contender always goes first:
- upload: `Minio.fput_object` of the file (the SDK with its own defaults) against `upload_bundle`
  of the bundle (a `stat`, then `fput_object` with the sha256 in the metadata), and against
  `BundleStore.ship` (a client of its own, the bucket check, then `upload_bundle`), each to a key
  no repeat used before, so every one really uploads;
- download: `Minio.fget_object` of the bundle against `Storage.download` (atomic, sha256 on the
  fly) and against `fetch_project` (a client of its own, download, sha256 check, extraction).
Throughput is the object's size over the call's wall time. A warm-up of each, untimed, comes first.
Everything is bounded: the server start, each transfer (timeouts), and the repeats (a time budget).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from loguru import logger
from minio import Minio  # noqa: TID251 - the baseline is the bare SDK, not our wrapper

from cortexlite.bundles import BundleStore
from cortexlite_runtime.bundle import Bundle, bundle_key, fetch_project, upload_bundle
from cortexlite_runtime.storage import Location, Storage, StorageSettings
from tests.integration.storage_server import FULL, SeaweedServer

from .control_report import cell_n, median_of, ratio_of, verdict
from .errors import BenchError

__all__ = [
    "DOWNLOADS",
    "TARGET_STORAGE_RATIO",
    "UPLOADS",
    "StorageResults",
    "run_storage",
    "storage_markdown",
    "storage_summary",
]

REPEATS = 5
PAYLOAD_MIB = 64
TARGET_STORAGE_RATIO = 0.9  # ours / raw MiB/s
RAW_UPLOAD, UPLOAD, SHIP = "minio fput_object", "upload_bundle", "BundleStore.ship"
RAW_DOWNLOAD, DOWNLOAD, FETCH = "minio fget_object", "Storage.download", "fetch_project"
PLAIN_DOWNLOAD = "Storage.download (no sha256)"
RAW_VERIFIED = "minio fget_object + sha256"
UPLOADS = (RAW_UPLOAD, UPLOAD, SHIP)
DOWNLOADS = (RAW_DOWNLOAD, RAW_VERIFIED, PLAIN_DOWNLOAD, DOWNLOAD, FETCH)
_BUCKET = "cortexlite-bench"
_REPEATS_BUDGET_S = 75.0  # the whole suite stays under 2 minutes

Progress = Callable[[str], None]
# A contender moves one object for the repeat's tag (part of a key no other repeat uses); its bytes.
Contenders = dict[str, Callable[[str], int]]


@dataclass
class StorageResults:
    server: str = ""
    payload_bytes: int = 0
    bundle_bytes: int = 0
    mib_per_s: dict[str, list[float]] = field(default_factory=dict)  # by contender, one per repeat
    stopped: str = ""  # why fewer repeats ran than asked for
    wall_s: float = 0.0


def run_storage(workdir: Path, *, progress: Progress, repeats: int = REPEATS) -> StorageResults:
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    results = StorageResults()
    (workdir / "seaweed").mkdir()
    server = SeaweedServer(workdir / "seaweed")
    logger.disable("cortexlite_runtime")  # fetch_project's progress lines, between the bench's own
    try:
        try:
            server.start()
            server.make_bucket(_BUCKET)
        except RuntimeError as exc:
            raise BenchError(f"storage: {exc}") from None
        results.server = server.version()
        progress(f"  {results.server} on {server.endpoint}")
        bench = _Transfers(workdir, server.settings(), results)
        try:
            bench.warm_up()
            for what, group in (("uploads", bench.uploads), ("downloads", bench.downloads)):
                _repeat(bench, what, group, repeats, progress)
        finally:
            bench.close()
    finally:
        server.stop()
        logger.enable("cortexlite_runtime")
        shutil.rmtree(workdir, ignore_errors=True)
        results.wall_s = time.monotonic() - started
    return results


def _repeat(bench: _Transfers, what: str, group: Contenders, repeats: int, progress: Progress) -> None:
    """`repeats` rounds of the group, as many as fit in half the budget."""
    bench.settle(group)
    started = time.monotonic()
    for index in range(repeats):
        spent = time.monotonic() - started
        if index and spent / index * (index + 1) > _REPEATS_BUDGET_S / 2:
            bench.results.stopped += f"{what} stopped after {index} repeat(s): the {_REPEATS_BUDGET_S / 2:g} s budget. "
            return
        bench.repeat(group, index)
        progress(
            f"  {what} {index + 1}: "
            + ", ".join(f"{name} {bench.results.mib_per_s[name][-1]:.0f}" for name in group)
            + " MiB/s"
        )


class _Transfers:
    """The contenders, each a function of the repeat's tag returning the bytes it moved."""

    def __init__(self, workdir: Path, settings: StorageSettings, results: StorageResults) -> None:
        self.workdir = workdir
        self.settings = settings
        self.results = results
        snapshot = workdir / "snapshot"
        snapshot.mkdir()
        self.payload = snapshot / "weights.bin"
        with self.payload.open("wb") as handle:
            for _ in range(PAYLOAD_MIB):
                handle.write(os.urandom(1 << 20))
        (snapshot / "predictor.py").write_text(
            "class PythonPredictor:\n    def predict(self, payload):\n        return 1\n"
        )
        self.snapshot = snapshot
        self.home = workdir / "home"
        self.bundle: Bundle = BundleStore(self.home, self._prefix("made"), settings).bundle(snapshot)
        results.payload_bytes, results.bundle_bytes = self.payload.stat().st_size, self.bundle.size
        host, _ = settings.address()
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=60.0), maxsize=10,
            retries=urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )  # fmt: skip  # the SDK's own pool, with timeouts short enough for a benchmark
        self.raw = Minio(host, access_key=FULL.access_key, secret_key=FULL.secret_key, secure=False, http_client=http)
        self.ours = Storage(settings)
        self.source = ""  # the bundle's key, uploaded by the warm-up
        self.uploads: Contenders = {RAW_UPLOAD: self._raw_up, UPLOAD: self._up, SHIP: self._ship}
        self.downloads: Contenders = {
            RAW_DOWNLOAD: self._raw_down, RAW_VERIFIED: self._raw_verified, PLAIN_DOWNLOAD: self._plain_down,
            DOWNLOAD: self._down, FETCH: self._fetch,
        }  # fmt: skip

    def close(self) -> None:
        self.ours.close()

    def warm_up(self) -> None:
        self.source = self._prefix("warm").child("ours", bundle_key("", self.bundle.sha256)).key
        for contender in (*self.uploads.values(), *self.downloads.values()):
            contender("warm")
            self._tidy()

    def settle(self, group: Contenders) -> None:
        """One untimed transfer: the first after a switch between uploading and downloading is slower."""
        next(iter(group.values()))("settle")
        self._tidy()

    def repeat(self, group: Contenders, index: int) -> None:
        """Each contender once, in an order rotated by `index`."""
        names = list(group)
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            moved = group[name](f"r{index}")
            seconds = time.perf_counter() - started
            self.results.mib_per_s.setdefault(name, []).append(moved / 2**20 / seconds)
            self._tidy()

    def _prefix(self, tag: str) -> Location:
        return Location("s3", _BUCKET, f"bench/{tag}")

    def _raw_up(self, tag: str) -> int:
        self.raw.fput_object(_BUCKET, f"bench/{tag}/raw/weights.bin", str(self.payload))
        return self.results.payload_bytes

    def _up(self, tag: str) -> int:
        location, uploaded = upload_bundle(self.ours, self._prefix(tag).child("ours"), self.bundle)
        _expect(uploaded, f"upload_bundle found {location.url} already there")
        return self.bundle.size

    def _ship(self, tag: str) -> int:
        shipped = BundleStore(self.home, self._prefix(tag).child("ship"), self.settings).ship(self.snapshot, _quiet)
        _expect(shipped.uploaded and shipped.sha256 == self.bundle.sha256, f"ship did not upload: {shipped}")
        return self.bundle.size

    def _raw_down(self, tag: str) -> int:
        target = self.workdir / "down" / "raw.zip"
        self.raw.fget_object(_BUCKET, self.source, str(target))
        _expect(target.stat().st_size == self.bundle.size, f"fget_object wrote {target.stat().st_size} bytes")
        return self.bundle.size

    def _down(self, tag: str) -> int:
        digest = self.ours.download(_BUCKET, self.source, self.workdir / "down" / "ours.zip")
        _expect(digest == self.bundle.sha256, f"Storage.download got sha256 {digest}")
        return self.bundle.size

    def _raw_verified(self, tag: str) -> int:
        """What any verified fetch costs with the SDK: its download, then a sha256 pass over the file."""
        target = self.workdir / "down" / "raw-verified.zip"
        self.raw.fget_object(_BUCKET, self.source, str(target))
        digest = hashlib.sha256()
        with target.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _expect(digest.hexdigest() == self.bundle.sha256, "fget_object + sha256: wrong digest")
        return self.bundle.size

    def _plain_down(self, tag: str) -> int:
        """The transfer alone, as models are fetched (keyed by their listing, not hashed)."""
        target = self.workdir / "down" / "plain.zip"
        self.ours.download(_BUCKET, self.source, target, digest=False)
        _expect(target.stat().st_size == self.bundle.size, f"Storage.download wrote {target.stat().st_size} bytes")
        return self.bundle.size

    def _fetch(self, tag: str) -> int:
        uri = Location("s3", _BUCKET, self.source).url
        project = self.workdir / "down" / "project"
        digest = fetch_project(uri, project, self.workdir / "down" / "cache", self.settings)
        size = (project / "weights.bin").stat().st_size
        _expect(digest == self.bundle.sha256 and size == self.results.payload_bytes, f"fetch_project: {digest}")
        return self.bundle.size

    def _tidy(self) -> None:
        """Untimed: remove what a download wrote, and flush dirty pages, so that the next one is not charged."""
        shutil.rmtree(self.workdir / "down", ignore_errors=True)
        os.sync()


# --- figures -------------------------------------------------------------------------------------


def storage_summary(storage: StorageResults) -> dict[str, Any]:
    medians = {name: median_of(samples) for name, samples in storage.mib_per_s.items()}
    ratios = {
        name: ratio_of(medians.get(name), medians.get(raw))
        for raw, ours in ((RAW_UPLOAD, UPLOADS[1:]), (RAW_DOWNLOAD, DOWNLOADS[1:]))
        for name in ours
        if name != RAW_VERIFIED  # a second baseline: what verifying costs the SDK
    }
    return {
        "server": storage.server,
        "payload_mib": storage.payload_bytes / 2**20,
        "bundle_mib": storage.bundle_bytes / 2**20,
        "repeats": min((len(samples) for samples in storage.mib_per_s.values()), default=0),
        "median_mib_per_s": medians,
        "ratio_to_raw": ratios,
        "target_ratio": TARGET_STORAGE_RATIO,
        "stopped": storage.stopped or None,
        "wall_s": storage.wall_s,
        "samples_mib_per_s": storage.mib_per_s,
    }


def storage_markdown(summary: dict[str, Any]) -> list[str]:
    s = summary
    lines = [
        f"## Storage: our S3 client vs the bare minio SDK, {s['server']} on 127.0.0.1",
        "",
        "| transfer | MiB/s | ratio to the SDK | target |",
        "|:--|---:|---:|:--|",
    ]
    for group in (UPLOADS, DOWNLOADS):
        for name in group:
            ratio = s["ratio_to_raw"].get(name)
            mark = verdict(ratio, TARGET_STORAGE_RATIO, "x", at_least=True) if name in s["ratio_to_raw"] else ""
            cells = [_label(name), cell_n(s["median_mib_per_s"].get(name), 1), cell_n(ratio) if mark else "", mark]
            lines.append("| " + " | ".join(cells) + " |")
    every = "; ".join(
        f"{name}: " + ", ".join(f"{value:.0f}" for value in samples) for name, samples in s["samples_mib_per_s"].items()
    )
    lines += [
        "",
        f"A {s['payload_mib']:.0f} MiB file of random bytes; its bundle is {s['bundle_mib']:.2f} MiB. Medians of "
        f"{s['repeats']} repeat(s) after an untimed warm-up, all uploads before all downloads, the order rotated "
        "every repeat; `fetch_project` "
        "includes extracting the bundle. Every repeat in MiB/s: " + (every or "none") + ".",
        f"The suite took {s['wall_s']:.1f} s in all (the server start included)"
        + (f"; {s['stopped'].strip()}" if s["stopped"] else "."),
    ]
    return lines


_LABELS = {
    RAW_UPLOAD: "upload: `Minio.fput_object` (the SDK)",
    UPLOAD: "upload: `upload_bundle` (stat + fput_object + sha256 metadata)",
    SHIP: "upload: `BundleStore.ship` (its own client, bucket check, upload_bundle)",
    RAW_DOWNLOAD: "download: `Minio.fget_object` (the SDK)",
    RAW_VERIFIED: "download: `Minio.fget_object`, then a sha256 pass (the SDK, verified)",
    PLAIN_DOWNLOAD: "download: `Storage.download` without sha256 (how models are fetched)",
    DOWNLOAD: "download: `Storage.download` (atomic, sha256 on the fly: how bundles are fetched)",
    FETCH: "download: `fetch_project` (download, sha256 check, extract)",
}


def _label(name: str) -> str:
    return _LABELS.get(name, name)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(f"storage: {message}")


def _quiet(line: str) -> None:
    """BundleStore.ship's log: the figures are reported here, not its lines."""
