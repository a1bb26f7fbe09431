"""The API spec: pydantic models for `cortexlite.yaml`/`cortex.yaml` and the resolved-spec JSON.

These models are the single definition of an API. The runtime reads the parts it serves with
(predictor, batching, concurrency); the control plane extends the checks for the rest. Cortex's
spellings are mapped here so that Cortex projects run unchanged:

- 0.15 `autoscaling.workers_per_replica` / `threads_per_worker` -> `predictor.processes_per_replica` /
  `predictor.threads_per_process`
- 0.15 `predictor.model` and 0.22-0.25 `predictor.models.path` -> `predictor.model_path`
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .sections import AutoscalingSpec, ComputeSpec, NetworkingSpec, UpdateStrategySpec, add_notice
from .units import parse_duration

__all__ = [
    "RESOLVED_SPEC_VERSION",
    "ApiSpec",
    "AutoscalingSpec",
    "BatchingSpec",
    "PredictorSpec",
    "PredictorType",
    "ResolvedSpec",
]

RESOLVED_SPEC_VERSION: Literal[1] = 1
MAX_NAME_LENGTH = 42
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class PredictorType(StrEnum):
    PYTHON = "python"
    ONNX = "onnx"

    @property
    def class_name(self) -> str:
        return "ONNXPredictor" if self is PredictorType.ONNX else "PythonPredictor"


class _Strict(BaseModel):
    # No inf or nan: JSON cannot hold them, so they would not survive the resolved spec a replica reads.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class BatchingSpec(_Strict):
    max_batch_size: int = Field(ge=1)
    batch_interval: float = Field(gt=0, description="seconds")

    @field_validator("batch_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


class PredictorSpec(_Strict):
    type: PredictorType = PredictorType.PYTHON
    path: str = "predictor.py"
    model_path: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    python_path: str | None = None
    processes_per_replica: int = Field(default=1, ge=1)
    threads_per_process: int = Field(default=1, ge=1)
    server_side_batching: BatchingSpec | None = None
    image: str = ""

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: object) -> object:
        if value in ("tensorflow", "tensorflow-serving"):
            raise ValueError("tensorflow predictors are not supported yet (use python or onnx)")
        return value

    @field_validator("config")
    @classmethod
    def _finite_config(cls, value: dict[str, Any]) -> dict[str, Any]:
        _refuse_non_finite(value, "")
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else _scalar_text(v) for k, v in value.items()}
        return value

    @field_validator("env")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(key for key in value if key.startswith(("CORTEX_", "CORTEXLITE_")))
        if reserved:
            raise ValueError(f"{', '.join(reserved)}: CORTEX_* and CORTEXLITE_* keys are reserved for cortexlite")
        return value

    @field_validator("path")
    @classmethod
    def _python_file(cls, value: str) -> str:
        if not value.endswith(".py"):
            raise ValueError(f"must be a .py file (got {value!r})")
        return value


class ApiSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1)
    kind: Literal["RealtimeAPI"] = "RealtimeAPI"
    predictor: PredictorSpec = Field(default_factory=PredictorSpec)
    compute: ComputeSpec = Field(default_factory=ComputeSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    update_strategy: UpdateStrategySpec = Field(default_factory=UpdateStrategySpec)
    networking: NetworkingSpec = Field(default_factory=NetworkingSpec)
    # Cortex's prediction tracking: accepted; prediction metrics come later.
    tracker: dict[str, Any] | None = None
    monitoring: dict[str, Any] | None = None

    @field_validator("tracker", "monitoring")
    @classmethod
    def _finite_extras(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        _refuse_non_finite(value, "")
        return value

    @field_validator("name")
    @classmethod
    def _dns_1035(cls, value: str) -> str:
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters (got {len(value)})")
        if not _DNS_1035.match(value):
            raise ValueError(
                f"must be lower-case letters, digits and '-', start with a letter and not end with '-' (got {value!r})"
            )
        return value

    @field_validator("kind", mode="before")
    @classmethod
    def _supported_kind(cls, value: object) -> object:
        if value in ("BatchAPI", "TrafficSplitter", "TaskAPI", "AsyncAPI"):
            raise ValueError(f"{value} is not supported yet (only RealtimeAPI)")
        if value == "SyncAPI":  # Cortex 0.18-0.19 name of the realtime kind
            return "RealtimeAPI"
        return value

    @model_validator(mode="before")
    @classmethod
    def _cortex_spellings(cls, data: object, info: ValidationInfo) -> object:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "endpoint" in data:  # Cortex 0.15: a top-level endpoint
            add_notice(info, "endpoint: Cortex 0.15's spelling of networking.endpoint")
            networking = data.get("networking")
            networking = dict(networking) if isinstance(networking, dict) else {}
            networking.setdefault("endpoint", data.pop("endpoint"))
            data["networking"] = networking
        for key in ("tracker", "monitoring"):
            if data.get(key) is not None:
                add_notice(info, f"{key} is ignored: Cortex's prediction tracking (the API's metrics are in /metrics)")
        predictor = data.get("predictor")
        if predictor is None and isinstance(data.get("autoscaling"), dict):
            predictor = {}
        if not isinstance(predictor, dict):
            return data
        predictor = _map_model_keys(dict(predictor), info)
        autoscaling = data.get("autoscaling")
        if isinstance(autoscaling, dict):
            autoscaling = dict(autoscaling)
            for old, new in (
                ("workers_per_replica", "processes_per_replica"),
                ("threads_per_worker", "threads_per_process"),
            ):
                if old in autoscaling:
                    add_notice(info, f"autoscaling: {old}: Cortex 0.15's spelling of predictor.{new}")
                    predictor.setdefault(new, autoscaling.pop(old))
            data["autoscaling"] = autoscaling
        data["predictor"] = predictor
        return data

    @model_validator(mode="after")
    def _onnx_needs_a_model(self) -> ApiSpec:
        if self.predictor.type is PredictorType.ONNX and self.predictor.model_path is None:
            raise ValueError("predictor: model_path: is required for an onnx predictor")
        return self

    @property
    def endpoint(self) -> str:
        return self.networking.endpoint or f"/{self.name}"

    @property
    def target_replica_concurrency(self) -> float:
        configured = self.autoscaling.target_replica_concurrency
        return configured if configured is not None else float(self.concurrency_per_replica)

    @property
    def concurrency_per_replica(self) -> int:
        return self.predictor.processes_per_replica * self.predictor.threads_per_process


class ResolvedSpec(BaseModel):
    """What the control plane hands a replica through `CORTEX_API_SPEC`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: Literal[1] = RESOLVED_SPEC_VERSION
    api: ApiSpec
    spec_hash: str | None = None
    project_hash: str | None = None


def _map_model_keys(predictor: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    model = predictor.pop("model", None)
    models = predictor.pop("models", None)
    if model is not None:
        add_notice(info, "predictor: model: Cortex 0.15's spelling of predictor.model_path")
        predictor.setdefault("model_path", model)
    if isinstance(models, dict) and set(models) == {"path"}:
        add_notice(info, "predictor: models: path: Cortex 0.22's spelling of predictor.model_path")
        predictor.setdefault("model_path", models["path"])
    elif models is not None:
        raise ValueError("predictor: models: only `models: {path: ...}` is supported (one model per API)")
    return predictor


def _refuse_non_finite(value: object, where: str) -> None:
    """A free-form mapping reaches the replica as JSON, which has no inf or nan: refuse them where they are written."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'value'}: {value} is not a number JSON can hold (use a string, or null)")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _refuse_non_finite(item, f"{where}.{key}" if where else str(key))


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise ValueError(f"env values must be strings or numbers (got {type(value).__name__})")
