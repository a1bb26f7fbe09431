"""What a predictor process needs to build its handler, as picklable data, and the build itself."""

from __future__ import annotations

import gc
import importlib
import importlib.abc
import importlib.machinery
import site
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import PredictorError
from .handler import Handler
from .predictor import MODULE_NAME, FreshSourceLoader, LoadedPredictor, load_predictor
from .spec import PredictorSpec

__all__ = ["LoadPlan", "build_handler", "describe_handler", "purge_project_modules", "reload_predictor"]


@dataclass(frozen=True)
class LoadPlan:
    project_dir: Path
    predictor: PredictorSpec
    model_path: Path | None
    site_dirs: tuple[Path, ...] = ()
    log_format: str = "auto"
    log_level: str = "INFO"
    log_context: dict[str, str] = field(default_factory=dict)
    reload: bool = False  # hot reload: project modules compiled from source, re-importable
    reload_init: str = "auto"  # "always": a reload always runs __init__ again


def build_handler(plan: LoadPlan) -> Handler:
    """Put the project and its dependencies on sys.path, import the predictor and run `__init__`."""
    _extend_sys_path(plan)
    if plan.reload:
        _install_fresh_finder(plan.project_dir)
    predictor = load_predictor(plan.project_dir, plan.predictor, plan.model_path, fresh=plan.reload)
    # What exists now (the model, the libraries) lives as long as the process: keep it out of
    # the collector's full scans, which otherwise stall serving for tens of milliseconds.
    gc.collect()
    gc.freeze()
    return Handler(predictor, batched=plan.predictor.server_side_batching is not None)


def reload_predictor(plan: LoadPlan, previous: LoadedPredictor, *, rerun_init: bool) -> LoadedPredictor:
    """The predictor imported again from the project's current files (every project module anew).

    Raises `PredictorError` when the new code fails to import or initialise; the caller keeps
    serving `previous` then. Without `rerun_init`, and when `__init__` and its inputs are
    unchanged, the new instance takes over `previous`'s attributes.
    """
    _extend_sys_path(plan)
    purge_project_modules(_project_roots(plan))
    importlib.invalidate_caches()
    keep = None if rerun_init or plan.reload_init == "always" else previous
    predictor = load_predictor(plan.project_dir, plan.predictor, plan.model_path, previous=keep, fresh=True)
    gc.collect()
    return predictor


def purge_project_modules(roots: Sequence[Path]) -> list[str]:
    """Drop every module loaded from under `roots` from `sys.modules`; return their names."""
    resolved = [root.resolve() for root in roots]
    dropped = [name for name, module in list(sys.modules.items()) if _loaded_from(module, resolved)]
    for name in dropped:
        sys.modules.pop(name, None)
    sys.modules.pop(MODULE_NAME, None)
    return dropped


def _loaded_from(module: ModuleType | None, roots: list[Path]) -> bool:
    if module is None:
        return False
    locations = [getattr(module, "__file__", None), *list(getattr(module, "__path__", None) or [])]
    for location in locations:
        if not isinstance(location, str):
            continue
        path = Path(location).resolve()
        if "site-packages" in path.parts or ".cortexlite-cache" in path.parts:
            continue
        if any(path.is_relative_to(root) for root in roots):
            return True
    return False


def _project_roots(plan: LoadPlan) -> list[Path]:
    roots = [plan.project_dir]
    if plan.predictor.python_path:
        roots.append(plan.project_dir / plan.predictor.python_path)
    return roots


class _FreshFinder(importlib.abc.MetaPathFinder):
    """Finds modules like the path finder, but loads the project's own from source (no bytecode)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.origin is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return spec
        origin = Path(spec.origin).resolve()
        if origin.is_relative_to(self.root) and "site-packages" not in origin.parts:
            spec.loader = FreshSourceLoader(fullname, spec.origin)
        return spec


def _install_fresh_finder(root: Path) -> None:
    if any(isinstance(finder, _FreshFinder) for finder in sys.meta_path):
        return
    position = next(
        (i for i, finder in enumerate(sys.meta_path) if finder is importlib.machinery.PathFinder), len(sys.meta_path)
    )
    sys.meta_path.insert(position, _FreshFinder(root))


def describe_handler(handler: Handler) -> dict[str, Any]:
    """What `GET /` shows about the loaded predictor (picklable)."""
    info: dict[str, Any] = {"predict_arguments": list(handler.predictor.predict_arguments)}
    client = handler.predictor.onnx_client
    if client is not None:
        info["model_signature"] = client.input_signature
    return info


# The sys.path entries each site directory added (with its .pth files), so a reload with new
# requirements can take the old ones out.
_site_entries: dict[Path, list[str]] = {}


def _extend_sys_path(plan: LoadPlan) -> None:
    paths = [str(plan.project_dir)]
    if plan.predictor.python_path:
        python_path = (plan.project_dir / plan.predictor.python_path).resolve()
        if not python_path.is_relative_to(plan.project_dir.resolve()):
            raise PredictorError(f"predictor.python_path {plan.predictor.python_path!r} leaves the project")
        paths.insert(0, str(python_path))
    for directory in [d for d in _site_entries if d not in plan.site_dirs]:
        for entry in _site_entries.pop(directory):
            if entry in sys.path:
                sys.path.remove(entry)
    for directory in plan.site_dirs:
        if directory in _site_entries:
            continue
        before = list(sys.path)
        site.addsitedir(str(directory))  # honours .pth files of installed packages
        added = [p for p in sys.path if p not in before]
        sys.path[:] = added + before
        _site_entries[directory] = added
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
