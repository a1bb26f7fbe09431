"""What a predictor process needs to build its handler, as picklable data, and the build itself."""

from __future__ import annotations

import gc
import site
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PredictorError
from .handler import Handler
from .predictor import load_predictor
from .spec import PredictorSpec

__all__ = ["LoadPlan", "build_handler", "describe_handler"]


@dataclass(frozen=True)
class LoadPlan:
    project_dir: Path
    predictor: PredictorSpec
    model_path: Path | None
    site_dirs: tuple[Path, ...] = ()
    log_format: str = "auto"
    log_level: str = "INFO"
    log_context: dict[str, str] = field(default_factory=dict)


def build_handler(plan: LoadPlan) -> Handler:
    """Put the project and its dependencies on sys.path, import the predictor and run `__init__`."""
    _extend_sys_path(plan)
    predictor = load_predictor(plan.project_dir, plan.predictor, plan.model_path)
    # What exists now (the model, the libraries) lives as long as the process: keep it out of
    # the collector's full scans, which otherwise stall serving for tens of milliseconds.
    gc.collect()
    gc.freeze()
    return Handler(predictor, batched=plan.predictor.server_side_batching is not None)


def describe_handler(handler: Handler) -> dict[str, Any]:
    """What `GET /` shows about the loaded predictor (picklable)."""
    info: dict[str, Any] = {"predict_arguments": list(handler.predictor.predict_arguments)}
    client = handler.predictor.onnx_client
    if client is not None:
        info["model_signature"] = client.input_signature
    return info


def _extend_sys_path(plan: LoadPlan) -> None:
    paths = [str(plan.project_dir)]
    if plan.predictor.python_path:
        python_path = (plan.project_dir / plan.predictor.python_path).resolve()
        if not python_path.is_relative_to(plan.project_dir.resolve()):
            raise PredictorError(f"predictor.python_path {plan.predictor.python_path!r} leaves the project")
        paths.insert(0, str(python_path))
    for directory in plan.site_dirs:
        before = list(sys.path)
        site.addsitedir(str(directory))  # honours .pth files of installed packages
        added = [p for p in sys.path if p not in before]
        sys.path[:] = added + before
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
