"""The cortexlite-runtime wheel that goes into the runtime image, made on the host.

Where it comes from:
- a source tree: `cortexlite_runtime` sits next to a `pyproject.toml` naming `cortexlite-runtime`
  (the repository's `runtime/`, which the development install points at): `pip wheel` on a copy;
- otherwise the installed distribution (a pure-Python wheel install): its files and metadata are
  packed back into a wheel, so `cortexlite image build` works from an installed cortexlite.
"""

from __future__ import annotations

import base64
import email.parser
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

import cortexlite_runtime
from cortexlite.errors import ImageBuildError

__all__ = [
    "DISTRIBUTION",
    "RuntimeSource",
    "build_wheel",
    "dependency_requirements",
    "file_digest",
    "find_runtime_source",
    "is_source_path",
    "wheel_requirements",
]

DISTRIBUTION = "cortexlite-runtime"
_SKIPPED_DIRS = frozenset({"build", "dist", "__pycache__"})
_PACKED_METADATA = frozenset({"METADATA", "entry_points.txt"})
_WHEEL_FILE = b"Wheel-Version: 1.0\nGenerator: cortexlite\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
# setuptools writes an extra's requirement as `req; extra == "x"` or `req; (marker) and extra == "x"`.
_EXTRA_MARKER = re.compile(r"^(?:(?P<rest>.*?)\s+and\s+)?extra\s*==\s*[\"'](?P<name>[^\"']+)[\"']$")
_TAIL_LINES = 20


@dataclass(frozen=True)
class RuntimeSource:
    """What the runtime wheel is made of: files under `root`, relative, in POSIX form."""

    root: Path
    files: tuple[str, ...]
    tree: bool  # True: a source tree for `pip wheel`; False: an installed distribution to repack

    def digests(self) -> dict[str, str]:
        return {name: file_digest(self.root / name) for name in self.files}


def is_source_path(relative: PurePosixPath) -> bool:
    """Whether a file of the runtime tree belongs to the wheel: no caches, build outputs or dot-files."""
    for part in relative.parts[:-1]:
        if part in _SKIPPED_DIRS or part.startswith(".") or part.endswith(".egg-info"):
            return False
    return not relative.name.startswith(".") and relative.suffix not in (".pyc", ".pyo")


def dependency_requirements(metadata_text: str, extras: Collection[str]) -> list[str]:
    """The `Requires-Dist` lines of a wheel's METADATA that apply with `extras`, as pip requirement lines."""
    requirements = []
    for entry in email.parser.HeaderParser().parsestr(metadata_text).get_all("Requires-Dist") or []:
        requirement, _, marker = (part.strip() for part in entry.partition(";"))
        if "extra" in marker:
            match = _EXTRA_MARKER.match(marker)
            if match is None:
                raise ImageBuildError(f"cannot interpret the environment marker of {entry!r}")
            if match["name"] not in extras:
                continue
            marker = (match["rest"] or "").strip()
        requirements.append(f"{requirement}; {marker}" if marker else requirement)
    return requirements


def wheel_requirements(wheel: Path, extras: Collection[str]) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise ImageBuildError(f"{wheel.name}: expected one .dist-info/METADATA, found {len(names)}")
        text = archive.read(names[0]).decode("utf-8")
    return dependency_requirements(text, extras)


def file_digest(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise ImageBuildError(f"cannot read {path}: {exc.strerror or exc}") from exc


def find_runtime_source() -> RuntimeSource:
    """The runtime's source tree when there is one next to the package, else its installed distribution."""
    package_dir = Path(cortexlite_runtime.__file__).resolve().parent
    tree = package_dir.parent
    if not _is_runtime_tree(tree):
        return _installed_source(package_dir)
    files = sorted(
        path.relative_to(tree).as_posix()
        for path in tree.rglob("*")
        if path.is_file() and not path.is_symlink() and is_source_path(PurePosixPath(path.relative_to(tree)))
    )
    return RuntimeSource(tree, tuple(files), tree=True)


def build_wheel(
    source: RuntimeSource, out: Path, *, index_url: str | None, find_links: Path | None, cert: Path | None
) -> Path:
    """Make the runtime wheel in `out` (created); the pip options are used only for a source tree's build."""
    out.mkdir(parents=True)
    if not source.tree:
        return _pack_installed(source, out)
    tree = _copy_tree(source, out.parent / "runtime-src")
    _run(_pip_wheel_command(tree, out, index_url, find_links, cert), "pip wheel cortexlite-runtime")
    wheels = sorted(out.glob("cortexlite_runtime-*.whl"))
    if len(wheels) != 1:
        raise ImageBuildError(f"pip wheel left {len(wheels)} cortexlite-runtime wheels in {out}, expected 1")
    return wheels[0]


def _is_runtime_tree(directory: Path) -> bool:
    try:
        project = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return isinstance(project, dict) and project.get("name") == DISTRIBUTION


def _installed_source(package_dir: Path) -> RuntimeSource:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise ImageBuildError(
            f"cortexlite_runtime is imported from {package_dir}, which is neither a source tree (no pyproject.toml "
            f"next to it) nor an installed {DISTRIBUTION} distribution; install it with `pip install runtime/`"
        ) from exc
    root = Path(str(dist.locate_file(""))).resolve()
    files = sorted(
        str(path)
        for path in dist.files or []
        if (path.parts[0] == package_dir.name and is_source_path(PurePosixPath(str(path))))
        or (path.parent.name.endswith(".dist-info") and path.name in _PACKED_METADATA)
    )
    if not any(name.endswith(".dist-info/METADATA") for name in files):
        raise ImageBuildError(f"the installed {DISTRIBUTION} in {root} lists no METADATA; reinstall it")
    return RuntimeSource(root, tuple(files), tree=False)


def _pack_installed(source: RuntimeSource, out: Path) -> Path:
    """A py3-none-any wheel of the installed (pure-Python) runtime: package files, METADATA, entry points."""
    dist_info = next(PurePosixPath(name).parent for name in source.files if name.endswith(".dist-info/METADATA"))
    version = dist_info.name.removesuffix(".dist-info").rpartition("-")[2]
    entries = {name: (source.root / name).read_bytes() for name in source.files}
    entries[f"{dist_info}/WHEEL"] = _WHEEL_FILE
    records = [_record_line(name, data) for name, data in entries.items()] + [f"{dist_info}/RECORD,,"]
    wheel = out / f"cortexlite_runtime-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _copy_tree(source: RuntimeSource, target: Path) -> Path:
    # `pip wheel` writes build/ and *.egg-info next to the sources: never into the user's tree.
    for name in source.files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source.root / name, target / name)
    return target


def _pip_wheel_command(
    tree: Path, out: Path, index_url: str | None, find_links: Path | None, cert: Path | None
) -> list[str]:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-input", "--disable-pip-version-check"]
    # On a network without an index, a build backend already installed here avoids fetching one.
    if _has_build_backend():
        command.append("--no-build-isolation")
    if index_url:
        command += ["--index-url", index_url]
    if find_links is not None:
        command += ["--find-links", str(find_links)]
    if cert is not None:
        command += ["--cert", str(cert)]
    return [*command, "--wheel-dir", str(out), str(tree)]


def _has_build_backend(minimum_setuptools: int = 77) -> bool:
    """Whether this interpreter has the runtime's build backend (setuptools >= 77 reads PEP 639 licences)."""
    try:
        major = metadata.version("setuptools").split(".", 1)[0]
    except metadata.PackageNotFoundError:
        return False
    return major.isdigit() and int(major) >= minimum_setuptools


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", check=False,
    )  # fmt: skip
    if result.returncode != 0:
        lines = result.stdout.strip().splitlines()[-_TAIL_LINES:]
        tail = "\n".join(f"  {line}" for line in lines) or "  (no output)"
        raise ImageBuildError(f"{what} failed (exit code {result.returncode}); last lines:\n{tail}")
