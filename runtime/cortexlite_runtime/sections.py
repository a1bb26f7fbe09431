"""The deployment sections of an API spec: compute, autoscaling, update strategy, networking.

The runtime reads only `autoscaling.max_replica_concurrency`; the control plane uses the rest.
Defaults are Cortex's. Cortex keys that cortexlite accepts but does not use are dropped with a
notice, collected in the validation context's `notices` list when one is given.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .units import parse_cpu, parse_duration, parse_memory

__all__ = ["AutoscalingSpec", "ComputeSpec", "NetworkingSpec", "UpdateStrategySpec", "add_notice"]

_PERCENT = re.compile(r"^(\d{1,3})%$")
_ENDPOINT = re.compile(r"^/[A-Za-z0-9._~/-]*$")


class _Strict(BaseModel):
    # No inf or nan: JSON cannot hold them, so they would not survive the resolved spec a replica reads.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def add_notice(info: ValidationInfo, message: str) -> None:
    notices = (info.context or {}).get("notices")
    if isinstance(notices, list):
        notices.append(message)


class ComputeSpec(_Strict):
    cpu: float | None = Field(default=None, gt=0, description="cores; None: no limit locally")
    gpu: int = Field(default=0, ge=0)
    mem: int | None = Field(default=None, gt=0, description="bytes; None: no limit locally")
    # Which GPUs qualify (with gpu > 0): at least this much memory (bytes), and a model name containing this text.
    gpu_mem: int | None = Field(default=None, gt=0, description="bytes; None: any")
    gpu_model: str | None = Field(default=None, min_length=1, max_length=100, description="None: any")

    @model_validator(mode="before")
    @classmethod
    def _no_inferentia(cls, data: object) -> object:
        if isinstance(data, dict) and "inf" in data:
            if data["inf"]:
                raise ValueError("inf: AWS Inferentia is not supported")
            data = {k: v for k, v in data.items() if k != "inf"}
        return data

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: object) -> object:
        return None if value is None else parse_cpu(value)

    @field_validator("mem", "gpu_mem", mode="before")
    @classmethod
    def _mem(cls, value: object) -> object:
        return None if value is None else parse_memory(value)

    @model_validator(mode="after")
    def _gpu_filters_need_gpus(self) -> ComputeSpec:
        if self.gpu == 0 and (self.gpu_mem is not None or self.gpu_model is not None):
            raise ValueError("gpu_mem and gpu_model choose among GPUs: set gpu to 1 or more")
        return self


class AutoscalingSpec(_Strict):
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=100, ge=1)
    init_replicas: int | None = Field(default=None, ge=1, description="None: min_replicas")
    target_replica_concurrency: float | None = Field(default=None, gt=0, description="None: processes x threads")
    max_replica_concurrency: int = Field(default=1024, ge=1)
    window: float = Field(default=60.0, gt=0, description="seconds")
    downscale_stabilization_period: float = Field(default=300.0, ge=0, description="seconds")
    upscale_stabilization_period: float = Field(default=60.0, ge=0, description="seconds")
    max_downscale_factor: float = Field(default=0.75, ge=0, lt=1)
    max_upscale_factor: float = Field(default=1.5, gt=1)
    downscale_tolerance: float = Field(default=0.05, ge=0)
    upscale_tolerance: float = Field(default=0.05, ge=0)

    @field_validator("window", "downscale_stabilization_period", "upscale_stabilization_period", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _consistent(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas: must be <= max_replicas (got {self.min_replicas} > {self.max_replicas})")
        init = self.init_replicas
        if init is not None and not self.min_replicas <= init <= self.max_replicas:
            raise ValueError(
                f"init_replicas: must be between min_replicas and max_replicas "
                f"(got {init}, not in {self.min_replicas}..{self.max_replicas})"
            )
        if round(self.window, 6) % 10:
            raise ValueError(f"window: must be a multiple of 10s (got {self.window:g}s)")
        return self

    @property
    def initial_replicas(self) -> int:
        return self.init_replicas if self.init_replicas is not None else self.min_replicas


class UpdateStrategySpec(_Strict):
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"

    @field_validator("max_surge", "max_unavailable", mode="before")
    @classmethod
    def _count_or_percent(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and (match := _PERCENT.match(value.strip())) and int(match.group(1)) <= 100:
            return f"{int(match.group(1))}%"
        raise ValueError(f"expected a number of replicas or a percentage such as 25% (got {value!r})")

    @model_validator(mode="after")
    def _can_progress(self) -> UpdateStrategySpec:
        if _is_zero(self.max_surge) and _is_zero(self.max_unavailable):
            raise ValueError("max_surge and max_unavailable must not both be 0 (an update could never start)")
        return self


class NetworkingSpec(_Strict):
    endpoint: str | None = Field(default=None, description="None: /<api name>")
    # api_key: requests need a key from `cortexlite keys create`; None: the environment's default (none).
    auth: Literal["none", "api_key"] | None = None
    # A prediction still running after this long is answered 504 (the predictor's thread runs on).
    timeout: float = Field(default=60.0, gt=0, le=86_400, description="seconds")

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)

    @model_validator(mode="before")
    @classmethod
    def _ignored_cortex_keys(cls, data: object, info: ValidationInfo) -> object:
        if not isinstance(data, dict):
            return data
        kept: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("local_port", "api_gateway"):
                add_notice(info, f"networking: {key} is ignored: cortexlite serves every API through its gateway")
            else:
                kept[key] = value
        return kept

    @field_validator("endpoint")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = value if value.startswith("/") else f"/{value}"
        if not _ENDPOINT.match(path) or "//" in path:
            raise ValueError(f"expected a URL path such as /iris (got {value!r})")
        return path.rstrip("/") or "/"


def _is_zero(value: int | str) -> bool:
    return value in (0, "0%")
