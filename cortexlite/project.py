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
    hash: str

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
    return Project(directory, spec_file, tuple(apis), tuple(notices), tuple(files), project_hash(directory, files))


def _check_paths(api: ApiSpec, directory: Path, files: set[PurePosixPath], source: str) -> None:
    where = f"{source}: {api.name}: predictor"
    predictor = api.predictor
    relative = _inside(directory, predictor.path, f"{where}: path")
    if not (directory / relative).is_file():
        raise SpecError(f"{where}: path: {predictor.path} does not exist in {directory}")
    if relative not in files:
        raise SpecError(f"{where}: path: {predictor.path} is left out of the project (.cortexignore or a hidden dir)")
    if predictor.python_path is not None:
        python_path = _inside(directory, predictor.python_path, f"{where}: python_path")
        if not (directory / python_path).is_dir():
            raise SpecError(f"{where}: python_path: {predictor.python_path} is not a directory in {directory}")
    model = predictor.model_path
    if model is not None and "://" not in model:
        model_path = _inside(directory, model, f"{where}: model_path")
        if not (directory / model_path).exists():
            raise SpecError(f"{where}: model_path: {model} does not exist in {directory}")
        if not any(file == model_path or model_path in file.parents for file in files):
            raise SpecError(f"{where}: model_path: {model} is left out of the project (.cortexignore or a hidden dir)")


def _inside(directory: Path, value: str, where: str) -> PurePosixPath:
    root = directory.resolve()
    resolved = (root / value).resolve()
    if resolved != root and root not in resolved.parents:
        raise SpecError(f"{where}: {value} must stay inside the project directory {directory}")
    return PurePosixPath(resolved.relative_to(root).as_posix())
