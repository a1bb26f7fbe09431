"""Loading the user's predictor: `file.py` -> class -> instance, with arguments matched by name.

Cortex's contract: `__init__(self, config[, onnx_client][, model_path])` and
`predict(self[, payload][, query_params][, headers])`; every argument is optional and matched by
name. A signature we cannot satisfy is reported the way Cortex reported it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

from .errors import PredictorError, SignatureError
from .spec import PredictorSpec, PredictorType

__all__ = [
    "FreshSourceLoader",
    "LoadedPredictor",
    "describe_exception",
    "init_fingerprint",
    "load_predictor",
    "matched_arguments",
]

PREDICT_ARGUMENTS = ("payload", "query_params", "headers")
MODULE_NAME = "cortexlite_user_predictor"


@dataclass(frozen=True)
class LoadedPredictor:
    """An initialised predictor instance and the arguments its `predict` takes."""

    instance: Any
    predict: Callable[..., Any]
    predict_arguments: tuple[str, ...]
    kind: PredictorType
    onnx_client: Any = None
    # What `__init__` ran from (its code and inputs): a reload whose fingerprint is the same keeps
    # the instance's attributes (the loaded model) instead of running `__init__` again.
    init_fingerprint: tuple[Any, ...] = ()
    kept_state: bool = False

    def call(self, payload: Any, query_params: Any, headers: Any) -> Any:
        names = self.predict_arguments
        if names == ("payload",):
            return self.predict(payload=payload)
        given = {"payload": payload, "query_params": query_params, "headers": headers}
        return self.predict(**{name: given[name] for name in names})


def load_predictor(
    project_dir: Path,
    spec: PredictorSpec,
    model_path: Path | None,
    *,
    previous: LoadedPredictor | None = None,
    fresh: bool = False,
) -> LoadedPredictor:
    """Import the predictor file, find its class and construct it (runs the user's `__init__`).

    With `previous` (a hot reload), the new instance takes over the previous instance's attributes
    instead of running `__init__` when `__init__`'s code and inputs are unchanged. `fresh` compiles
    the project's modules from source, never from (possibly stale) bytecode.
    """
    cls = load_predictor_class(project_dir, spec, fresh=fresh)
    predict = getattr(cls, "predict", None)
    if predict is None or not callable(predict):
        raise PredictorError(f"{spec.path}: class {cls.__name__} has no predict method")
    predict_args = matched_arguments(predict, PREDICT_ARGUMENTS, "predict", skip_self=True)

    allowed = ("config", "onnx_client", "model_path") if spec.type is PredictorType.ONNX else ("config", "model_path")
    # The class's own constructor; object's (no user __init__) takes no arguments.
    constructor = next(vars(base)["__init__"] for base in cls.__mro__ if "__init__" in vars(base))
    init_args = (
        () if constructor is object.__init__ else matched_arguments(constructor, allowed, "__init__", skip_self=True)
    )
    fingerprint = init_fingerprint(constructor, spec, model_path)
    if previous is not None and previous.init_fingerprint == fingerprint:
        taken = _take_over(cls, previous.instance)
        if taken is not None:
            return LoadedPredictor(
                taken, taken.predict, predict_args, spec.type, previous.onnx_client, fingerprint, kept_state=True
            )
    onnx_client = None
    if spec.type is PredictorType.ONNX:
        from .onnx import ONNXClient

        if model_path is None:
            raise PredictorError("an onnx predictor needs predictor.model_path")
        onnx_client = ONNXClient(model_path)
    supplied = {"config": dict(spec.config), "onnx_client": onnx_client, "model_path": _text(model_path)}
    try:
        instance = cls(**{name: supplied[name] for name in init_args})
    except Exception as exc:
        raise PredictorError(f"{cls.__name__}.__init__ failed: {describe_exception(exc)}") from exc
    return LoadedPredictor(instance, instance.predict, predict_args, spec.type, onnx_client, fingerprint)


def init_fingerprint(constructor: Any, spec: PredictorSpec, model_path: Path | None) -> tuple[Any, ...]:
    """What `__init__` depends on that a reload can change: its own code, the config, the model path.

    Line numbers are left out, so moving `__init__` in its file (an edit above it) keeps the model.
    What `__init__` calls in other functions is not followed (documented).
    """
    code = getattr(constructor, "__code__", None)
    defaults = getattr(constructor, "__defaults__", None)
    return (
        _code_identity(code) if isinstance(code, CodeType) else repr(constructor),
        repr(defaults),
        repr(sorted(spec.config.items(), key=lambda item: str(item[0]))),
        str(model_path),
        spec.type.value,
    )


def _code_identity(code: CodeType) -> tuple[Any, ...]:
    consts = tuple(_code_identity(c) if isinstance(c, CodeType) else repr(c) for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)


def _take_over(cls: Any, old: Any) -> Any:
    """A new `cls` instance holding `old`'s attributes, without running `__init__`; None when impossible."""
    state = getattr(old, "__dict__", None)
    if state is None:  # __slots__: no general way to carry it over
        return None
    try:
        instance = cls.__new__(cls)
        instance.__dict__.update(state)
    except Exception:
        return None
    return instance


def load_predictor_class(project_dir: Path, spec: PredictorSpec, *, fresh: bool = False) -> type:
    file = (project_dir / spec.path).resolve()
    if not file.is_file():
        raise PredictorError(f"predictor file {spec.path} not found in {project_dir}")
    loader = FreshSourceLoader(MODULE_NAME, str(file)) if fresh else None
    module_spec = importlib.util.spec_from_file_location(MODULE_NAME, file, loader=loader)
    if module_spec is None or module_spec.loader is None:
        raise PredictorError(f"{spec.path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[MODULE_NAME] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(MODULE_NAME, None)
        raise PredictorError(f"importing {spec.path} failed: {describe_exception(exc)}") from exc
    name = spec.type.class_name
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        found = sorted(n for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == MODULE_NAME)
        hint = f" (classes found: {', '.join(found)})" if found else ""
        raise PredictorError(f"{spec.path}: class {name} not found{hint}")
    return cls


class FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles from source, never reading or writing bytecode.

    Python trusts a `.pyc` whose recorded source mtime (whole seconds) and size match, so an edit
    that keeps a file's size within the same second would otherwise run the old code.
    """

    def path_stats(self, path: str) -> dict[str, Any]:
        raise OSError("hot reload: bytecode caching is off for project modules")


def matched_arguments(
    function: Callable[..., Any], allowed: Iterable[str], label: str, *, skip_self: bool
) -> tuple[str, ...]:
    """The names from `allowed` that `function` takes, in `allowed`'s order.

    Raises `SignatureError` for a required argument we cannot supply or a positional-only one.
    """
    allowed = tuple(allowed)
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return ()
    if skip_self and parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return allowed
    found = tuple(p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL,))
    for p in parameters:
        unsupported = p.kind is p.POSITIONAL_ONLY or (p.name not in allowed and p.default is p.empty)
        if unsupported and p.kind is not p.VAR_POSITIONAL:
            raise SignatureError(
                f'invalid signature for function "{label}": expected arguments '
                f"({', '.join(allowed)}) but found ({', '.join(found)})"
            )
    return tuple(name for name in allowed if name in found)


def describe_exception(exc: BaseException) -> str:
    """`Type: message (file.py:line)`, the line being the deepest frame in user code when known."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if "cortexlite_runtime" not in f.filename and "importlib" not in f.filename]
    if user:
        frame = user[-1]
        where = f" ({Path(frame.filename).name}:{frame.lineno})"
    elif isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({Path(exc.filename).name}:{exc.lineno})"
    text = exc.msg if isinstance(exc, SyntaxError) and exc.filename else str(exc)  # its str() repeats the place
    return f"{type(exc).__name__}: {text}{where}"


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None
