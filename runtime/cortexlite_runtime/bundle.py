"""Project bundles: a project's files as one content-addressed zip in storage.

The control plane zips a snapshot deterministically (sorted names, fixed times, only the
executable bit kept), so the same files always give the same bytes and the same sha256, and
stores it once at `<prefix>/bundles/<sha256>.zip` with the sha256 also in the object's metadata
(a multipart upload's ETag is not an MD5 of anything useful). A replica started with
`CORTEX_PROJECT_URI` downloads it, checks the sha256 against its name, and extracts it into
`CORTEX_PROJECT_DIR`, refusing absolute paths, `..`, links and devices before writing anything.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from loguru import logger

from .errors import BundleError
from .storage import SHA256_META, Location, Progress, Storage, StorageSettings

__all__ = [
    "BUNDLE_MARKER",
    "Bundle",
    "bundle_key",
    "extract_bundle",
    "fetch_project",
    "make_bundle",
    "safe_members",
    "upload_bundle",
]

BUNDLE_MARKER = ".cortexlite-bundle"
MAX_EXTRACTED_BYTES = 8 * 2**30
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_NAME = re.compile(r"^([0-9a-f]{64})\.zip$")


@dataclass(frozen=True)
class Bundle:
    path: Path
    sha256: str
    size: int


def bundle_key(prefix: str, sha256: str) -> str:
    return "/".join(part for part in (prefix.strip("/"), "bundles", f"{sha256}.zip") if part)


def make_bundle(root: Path, files: Iterable[PurePosixPath], target: Path) -> Bundle:
    """Zip `files` (relative to `root`) into `target`, byte-for-byte reproducibly."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for relative in sorted(files, key=str):
                source = root / relative
                info = zipfile.ZipInfo(str(relative), date_time=_ZIP_TIME)
                executable = os.access(source, os.X_OK)
                info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
                info.compress_type = _compression(source)
                info.file_size = source.stat().st_size  # past 2 GiB, zipfile needs it to write zip64
                with source.open("rb") as reader, archive.open(info, "w") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
        digest = _sha256(Path(temporary))
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return Bundle(target, digest, target.stat().st_size)


def safe_members(archive: zipfile.ZipFile, where: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every member with its relative path; `BundleError` for anything that could escape the target."""
    members, total = [], 0
    for info in archive.infolist():
        name = info.filename
        mode = info.external_attr >> 16
        if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise BundleError(f"{where}: refusing the absolute or Windows path {name!r}")
        path = PurePosixPath(name)
        if any(part == ".." for part in path.parts):
            raise BundleError(f"{where}: refusing {name!r}, which points outside the project ('..')")
        # Permission bits without a file type (zipfile's own writestr) mean a plain file.
        if stat.S_IFMT(mode) and (stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))):
            raise BundleError(f"{where}: refusing {name!r}, which is a link or a device, not a file")
        total += info.file_size
        if total > MAX_EXTRACTED_BYTES:
            raise BundleError(f"{where}: more than {MAX_EXTRACTED_BYTES // 2**30} GiB once extracted")
        if not info.is_dir():
            members.append((info, path))
    return members


def extract_bundle(bundle: Path, target: Path, sha256: str) -> None:
    """Extract into `target` (created, or empty), then write the marker naming the bundle."""
    where = f"bundle {bundle.name}"
    try:
        archive = zipfile.ZipFile(bundle)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{where} is not a zip file: {exc}") from exc
    with archive:
        members = safe_members(archive, where)
        target.mkdir(parents=True, exist_ok=True)
        root = target.resolve()
        for info, relative in members:
            destination = (root / relative).resolve()
            if root != destination and root not in destination.parents:
                raise BundleError(f"{where}: refusing {info.filename!r}, which resolves outside the project")
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as reader, destination.open("wb") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            destination.chmod(0o755 if mode & 0o111 else 0o644)
    (target / BUNDLE_MARKER).write_text(sha256 + "\n")


def fetch_project(uri: str, project_dir: Path, cache_dir: Path | None, settings: StorageSettings | None = None) -> str:
    """Download the bundle `uri` names, verify it, and extract it into `project_dir`; return its sha256.

    A project dir that already holds this bundle (a restarted container) is kept as it is.
    """
    location = Location.parse(uri, "CORTEX_PROJECT_URI")
    found = _NAME.match(PurePosixPath(location.key).name)
    if not found:
        raise BundleError(f"CORTEX_PROJECT_URI={uri}: expected .../bundles/<sha256>.zip")
    expected = found.group(1)
    marker = project_dir / BUNDLE_MARKER
    if marker.is_file() and marker.read_text().strip() == expected:
        logger.info("project bundle {} is already extracted in {}", expected[:12], project_dir)
        return expected
    if project_dir.is_dir() and any(project_dir.iterdir()):
        raise BundleError(
            f"CORTEX_PROJECT_DIR={project_dir} is not empty: mount nothing there when CORTEX_PROJECT_URI is set"
        )
    storage = Storage.for_location(location, settings)
    try:
        with tempfile.TemporaryDirectory(prefix="cortexlite-bundle-", dir=_scratch(cache_dir)) as scratch:
            local = Path(scratch) / f"{expected}.zip"
            digest = storage.download(location.bucket, location.key, local, progress=_log_progress(location.url))
            if digest != expected:
                raise BundleError(
                    f"bundle {location.url} is corrupt or was tampered with: its sha256 is {digest}, "
                    f"its name says {expected}; deploy again to upload it anew"
                )
            extract_bundle(local, project_dir, expected)
    finally:
        storage.close()
    logger.info("project bundle {} extracted into {}", expected[:12], project_dir)
    return expected


def upload_bundle(
    storage: Storage, prefix: Location, bundle: Bundle, progress: Progress | None = None
) -> tuple[Location, bool]:
    """Store `bundle` under `prefix` unless an object with its sha256 is there; (its location, uploaded?)."""
    location = prefix.child(bundle_key("", bundle.sha256))
    present = storage.stat(location.bucket, location.key)
    if present is not None and present.sha256 == bundle.sha256 and present.size == bundle.size:
        return location, False
    storage.upload(location.bucket, location.key, bundle.path, metadata={SHA256_META: bundle.sha256}, progress=progress)
    return location, True


def _compression(path: Path) -> int:
    """Deflate unless the file's first 64 KiB barely compress (weights, archives): stored, at disk speed.

    Decided by content alone, so the same files still give the same bundle.
    """
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    if len(head) < 4096:
        return zipfile.ZIP_DEFLATED
    return zipfile.ZIP_DEFLATED if len(zlib.compress(head, 1)) < 0.9 * len(head) else zipfile.ZIP_STORED


def _scratch(cache_dir: Path | None) -> str | None:
    if cache_dir is None:
        return None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return str(cache_dir) if os.access(cache_dir, os.W_OK) else None


def _log_progress(what: str) -> Progress:
    marks: set[int] = set()

    def report(done: int, total: int) -> None:
        if total < 2**20:
            return
        quarter = done * 4 // total
        if quarter not in marks:
            marks.add(quarter)
            logger.info("downloading {}: {} of {} MiB", what, done >> 20, total >> 20)

    return report


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
