"""A project on disk: its spec file, its APIs (with the control plane's checks) and its files.

The runtime's spec models check each field; here the checks that need the project itself:
the predictor file exists and is part of the snapshot, `python_path` and a local `model_path`
stay inside the project and exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cortexlite.errors import SpecError
from cortexlite.snapshot import project_files, project_hash
from cortexlite_runtime.spec import ApiSpec
from cortexlite_runtime.specfile import SPEC_FILENAMES, find_spec_file, load_api_specs

__all__ = ["Project", "load_project"]


@dataclass(frozen=True)
class Project:
    directory: Path
    spec_file: Path
    apis: tuple[ApiSpec, ...]
    notices: tuple[str, ...]
    files: tuple[PurePosixPath, ...]
    hash: str  # every file: names the snapshot
    code_hash: str  # every file but the spec file: what replicas run (they read the resolved spec instead)

    def api(self, name: str) -> ApiSpec:
        for api in self.apis:
            if api.name == name:
                return api
        raise SpecError(f"{self.spec_file.name}: no API named {name!r}")

    def read(self, relative: str) -> bytes | None:
        """A project file's bytes, when the snapshot includes it."""
        return (self.directory / relative).read_bytes() if PurePosixPath(relative) in self.files else None


def load_project(path: Path) -> Project:
    """The project at `path`: a directory with cortexlite.yaml (or cortex.yaml), or the yaml itself."""
    path = path.expanduser().absolute()
    if path.is_file():
        directory, spec_file = path.parent, path
    elif path.is_dir():
        directory = path
        found = find_spec_file(path)
        if found is None:
            raise SpecError(f"{path}: no {' or '.join(SPEC_FILENAMES[::2])} in this directory")
        spec_file = found
    else:
        raise SpecError(f"{path}: no such file or directory")
    notices: list[str] = []
    apis = load_api_specs(spec_file, notices)
    if not apis:
        raise SpecError(f"{spec_file.name}: no APIs defined (expected a list of APIs)")
    files = project_files(directory)
    for api in apis:
        _check_paths(api, directory, set(files), spec_file.name)
    code = [file for file in files if file != PurePosixPath(spec_file.name)]
    return Project(
        directory, spec_file, tuple(apis), tuple(notices), tuple(files),
        project_hash(directory, files), project_hash(directory, code),
    )  # fmt: skip


def _check_paths(api: ApiSpec, directory: Path, files: set[PurePosixPath], source: str) -> None:
    where = f"{source}: {api.name}: predictor"
    predictor = api.predictor
    relative = _existing(directory, predictor.path, f"{where}: path", "file")
    if relative not in files:
        raise SpecError(
            f"{where}: path: {_shown(predictor.path)} is left out of the project (.cortexignore or a hidden dir)"
        )
    if predictor.python_path is not None:
        _existing(directory, predictor.python_path, f"{where}: python_path", "directory")
    model = predictor.model_path
    if model is not None and "://" in model and not model.startswith(("s3://", "oss://")):
        raise SpecError(
            f"{where}: model_path: expected s3://bucket/path, oss://bucket/path or a project path (got {_shown(model)})"
        )
    if model is not None and "://" not in model:
        model_path = _existing(directory, model, f"{where}: model_path", "any")
        if not any(file == model_path or model_path in file.parents for file in files):
            raise SpecError(
                f"{where}: model_path: {_shown(model)} is left out of the project (.cortexignore or a hidden dir)"
            )


def _existing(directory: Path, value: str, where: str, kind: str) -> PurePosixPath:
    """`value` relative to the project, after checking it stays inside and exists (as a `kind`)."""
    relative = _inside(directory, value, where)
    path = directory / relative
    try:
        found = path.is_file() if kind == "file" else path.is_dir() if kind == "directory" else path.exists()
    except OSError as exc:  # a name too long for the file system
        raise SpecError(f"{where}: {value[:80]!r} is not a usable path ({exc.strerror})") from exc
    if not found:
        what = "does not exist in" if kind != "directory" else "is not a directory in"
        raise SpecError(f"{where}: {_shown(value)} {what} {directory}")
    return relative


def _inside(directory: Path, value: str, where: str) -> PurePosixPath:
    root = directory.resolve()
    try:
        resolved = (root / value).resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop
        raise SpecError(f"{where}: {value[:80]!r} is not a usable path ({exc})") from exc
    if resolved != root and root not in resolved.parents:
        raise SpecError(f"{where}: {_shown(value)} must stay inside the project directory {directory}")
    return PurePosixPath(resolved.relative_to(root).as_posix())


def _shown(value: str) -> str:
    """A path from the spec as a message shows it: quoted when it holds a newline or another unprintable character."""
    return value if value.isprintable() else repr(value)
