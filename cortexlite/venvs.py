"""Replica venvs for the process backend: the runtime plus the project's requirements, made once.

A venv is keyed by what it is made of: the interpreter, the runtime's files, the extras and the
bytes of `requirements.txt`. It lives under `CORTEXLITE_CACHE_DIR/venvs/<key>` and is reused by
every replica, deploy and project with the same key, so replicas start without pip.

How one is made, offline when it can be:
1. the runtime wheel (the same one `image build` puts in images), built once per runtime digest;
2. a venv without pip; the runtime wheel unpacked into it (a pure-Python wheel is a zip laid out
   for site-packages);
3. the runtime's dependencies hard-linked (or copied) from the distributions installed beside
   cortexlite, which satisfy them by construction; only what is missing there goes to pip;
4. `pip install -r requirements.txt` into the venv (pip sees what step 3 installed, so it
   resolves the user's pins together with the runtime's and fetches only the rest).
Replicas see nothing of cortexlite's own environment (no typer, rich, docker...).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import sysconfig
import tempfile
import zipfile
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement

from cortexlite.errors import ImageBuildError, VenvError
from cortexlite.files import Lock
from cortexlite.processes import run_streaming
from cortexlite.runtime_wheel import RuntimeSource, build_wheel, find_runtime_source, wheel_requirements

__all__ = ["ReplicaVenv", "VenvPlan", "linkable_closure", "plan_venv", "runtime_digest"]

LogSink = Callable[[str], None]
_RECIPE = "2"
_COMPLETE = ".complete"


@dataclass(frozen=True)
class VenvPlan:
    """What a venv is made of; `key` names it."""

    key: str
    runtime: RuntimeSource
    runtime_digest: str
    extras: tuple[str, ...]
    requirements: bytes | None


@dataclass(frozen=True)
class ReplicaVenv:
    path: Path
    key: str
    created: bool

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def runtime_digest(source: RuntimeSource) -> str:
    sha = hashlib.sha256()
    for name, digest in sorted(source.digests().items()):
        sha.update(f"{name}\0{digest}\n".encode())
    return sha.hexdigest()


def plan_venv(requirements: bytes | None, extras: Collection[str] = ()) -> VenvPlan:
    """The venv for a project whose requirements.txt holds `requirements` (None: no file)."""
    source = find_runtime_source()
    digest = runtime_digest(source)
    sha = hashlib.sha256()
    for part in (_RECIPE, _interpreter_tag(), digest, ",".join(sorted(extras))):
        sha.update(part.encode() + b"\0")
    sha.update(requirements if requirements is not None else b"\0no requirements\0")
    return VenvPlan(sha.hexdigest()[:16], source, digest, tuple(sorted(extras)), requirements)


def ensure_venv(plan: VenvPlan, cache_dir: Path, on_log: LogSink | None = None) -> ReplicaVenv:
    """The venv of `plan`, made now when the cache lacks it (one maker at a time per key)."""
    log = on_log or _ignore
    root = cache_dir / "venvs"
    venv = root / plan.key
    if (venv / _COMPLETE).is_file():
        return ReplicaVenv(venv, plan.key, created=False)
    with Lock(root / f"{plan.key}.lock").hold():
        if (venv / _COMPLETE).is_file():
            return ReplicaVenv(venv, plan.key, created=False)
        shutil.rmtree(venv, ignore_errors=True)
        try:
            _make(plan, venv, cache_dir, log)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
    return ReplicaVenv(venv, plan.key, created=True)


def linkable_closure(requirements: Iterable[str]) -> tuple[list[metadata.Distribution], list[str]]:
    """Installed distributions that satisfy `requirements` and their dependencies, and what is missing.

    Editable installs are never linked (they point at a source tree); they count as missing.
    """
    found: dict[str, metadata.Distribution] = {}
    missing: list[str] = []
    queue: deque[Requirement] = deque(_parse(line) for line in requirements)
    while queue:
        requirement = queue.popleft()
        if requirement.marker is not None and not _marker_applies(requirement):
            continue
        name = _canonical(requirement.name)
        if name in found:
            continue
        dist = _installed(requirement)
        if dist is None:
            missing.append(str(requirement))
            continue
        found[name] = dist
        for line in dist.requires or []:
            child = _parse(line)
            if child.marker is None or _marker_applies(child, requirement.extras):
                queue.append(child)
    return list(found.values()), missing


# --- making one -----------------------------------------------------------------------------------


def _make(plan: VenvPlan, venv: Path, cache_dir: Path, log: LogSink) -> None:
    wheel = _runtime_wheel(plan, cache_dir / "wheels", log)
    log(f"creating the replica venv {plan.key}")
    run_streaming([sys.executable, "-m", "venv", "--without-pip", str(venv)], "python -m venv", log, VenvError)
    site = _site_packages(venv)
    _unpack_wheel(wheel, site)
    try:
        dependencies = wheel_requirements(wheel, plan.extras)
    except ImageBuildError as exc:
        raise VenvError(str(exc)) from exc
    dists, missing = linkable_closure(dependencies)
    for dist in dists:
        _link_distribution(dist, site)
    log(f"linked {len(dists)} runtime dependencies from cortexlite's environment")
    pip_args = list(missing)
    requirements_file = None
    if plan.requirements is not None:
        requirements_file = venv / "requirements.txt"
        requirements_file.write_bytes(plan.requirements)
        pip_args += ["-r", str(requirements_file)]
    if pip_args:
        what = "pip install -r requirements.txt" if requirements_file else f"pip install {' '.join(missing)}"
        log(what)
        command = [
            sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
            "--no-input", "--disable-pip-version-check", *pip_args,
        ]  # fmt: skip
        run_streaming(command, what, log, VenvError)
    (venv / _COMPLETE).write_text(plan.key + "\n")


def _runtime_wheel(plan: VenvPlan, wheels: Path, log: LogSink) -> Path:
    target = wheels / plan.runtime_digest[:16]
    found = sorted(target.glob("cortexlite_runtime-*.whl")) if target.is_dir() else []
    if found:
        return found[0]
    log("building the cortexlite-runtime wheel")
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=wheels) as scratch:
        try:
            wheel = build_wheel(plan.runtime, Path(scratch) / "out", index_url=None, find_links=None, cert=None)
        except ImageBuildError as exc:
            raise VenvError(str(exc)) from exc
        target.mkdir(exist_ok=True)
        final = target / wheel.name
        os.replace(wheel, final)
    return final


def _unpack_wheel(wheel: Path, site: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        if any(".data/" in name for name in names):
            raise VenvError(f"{wheel.name} has a .data directory; it cannot be unpacked as a pure-Python wheel")
        for name in names:
            if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
                raise VenvError(f"{wheel.name}: unsafe path {name!r}")
        archive.extractall(site)
    dist_info = next(site.glob("cortexlite_runtime-*.dist-info"))
    (dist_info / "INSTALLER").write_text("cortexlite\n")


def _link_distribution(dist: metadata.Distribution, site: Path) -> None:
    for relative in dist.files or []:
        parts = PurePosixPath(str(relative)).parts
        if not parts or parts[0] == ".." or PurePosixPath(str(relative)).is_absolute():
            continue  # console scripts and other files outside site-packages
        # __pycache__ comes along where it exists: the bytecode of the same sources for the same interpreter.
        source = Path(str(dist.locate_file(relative)))
        if not source.is_file():
            continue
        target = site.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError:
            shutil.copy2(source, target)


def _installed(requirement: Requirement) -> metadata.Distribution | None:
    try:
        dist = metadata.distribution(requirement.name)
    except metadata.PackageNotFoundError:
        return None
    if _editable(dist) or not requirement.specifier.contains(dist.version, prereleases=True):
        return None
    return dist


def _editable(dist: metadata.Distribution) -> bool:
    direct = dist.read_text("direct_url.json") or ""
    return '"editable": true' in direct or '"editable":true' in direct


def _marker_applies(requirement: Requirement, extras: Collection[str] = ()) -> bool:
    assert requirement.marker is not None
    return any(requirement.marker.evaluate({"extra": extra}) for extra in (*extras, ""))


def _parse(line: str) -> Requirement:
    try:
        return Requirement(line)
    except InvalidRequirement as exc:
        raise VenvError(f"cannot read the requirement {line!r}: {exc}") from exc


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _interpreter_tag() -> str:
    return f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}-{Path(sys.base_prefix).resolve()}"


def _ignore(_line: str) -> None:
    return None
