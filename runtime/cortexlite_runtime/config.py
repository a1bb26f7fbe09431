"""The runtime's configuration, read from the environment in exactly one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .units import parse_duration

__all__ = ["DEFAULT_MAX_CONCURRENCY", "RuntimeConfig"]

DEFAULT_MAX_CONCURRENCY = 1024
DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RuntimeConfig:
    """Settings of one replica. `None` means "not set here; the spec or a default decides"."""

    host: str = "0.0.0.0"
    port: int = 8888
    processes: int | None = None
    threads: int | None = None
    max_replica_concurrency: int | None = None
    max_worker_concurrency: int | None = None
    so_max_conn: int = 2048
    cache_dir: Path | None = None
    project_dir: Path = Path("/mnt/project")
    project_uri: str | None = None
    api_spec: Path | None = None
    api_name: str | None = None
    model_dir: Path | None = None
    shutdown_delay: float = 2.0
    grace_period: float = 30.0
    cortex_version: str | None = None
    reload: bool = False
    reload_init: str = "auto"
    reload_poll: bool = False
    dependencies_preinstalled: bool = False
    replica_id: str | None = None
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    log_format: str = "auto"
    log_level: str = "INFO"
    inline_predict_limit: float = 0.005
    auth: str | None = None  # none | api_key; None: the spec's networking.auth
    api_keys_file: Path | None = None
    timeout: float | None = None  # None: the spec's networking.timeout
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES  # a request's header lines, together; more: 431

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeConfig:
        env = _Env(os.environ if environ is None else environ)
        return cls(
            host=env.text("CORTEX_SERVING_HOST") or "0.0.0.0",
            port=env.integer("CORTEX_SERVING_PORT", minimum=1, maximum=65535) or 8888,
            processes=env.integer("CORTEX_PROCESSES_PER_REPLICA", "CORTEX_WORKERS_PER_REPLICA"),
            threads=env.integer("CORTEX_THREADS_PER_PROCESS", "CORTEX_THREADS_PER_WORKER"),
            max_replica_concurrency=env.integer("CORTEX_MAX_REPLICA_CONCURRENCY"),
            max_worker_concurrency=env.integer("CORTEX_MAX_WORKER_CONCURRENCY"),
            so_max_conn=env.integer("CORTEX_SO_MAX_CONN") or 2048,
            cache_dir=env.path("CORTEX_CACHE_DIR"),
            project_dir=env.path("CORTEX_PROJECT_DIR") or Path("/mnt/project"),
            project_uri=env.text("CORTEX_PROJECT_URI"),
            api_spec=env.path("CORTEX_API_SPEC"),
            api_name=env.text("CORTEXLITE_API_NAME"),
            model_dir=env.path("CORTEX_MODEL_DIR"),
            shutdown_delay=env.seconds("CORTEX_SHUTDOWN_DELAY", 2.0),
            grace_period=env.seconds("CORTEX_GRACE_PERIOD", 30.0),
            cortex_version=env.text("CORTEX_VERSION"),
            reload=env.flag("CORTEXLITE_RELOAD"),
            reload_init=env.choice("CORTEXLITE_RELOAD_INIT", ("auto", "always")) or "auto",
            reload_poll=env.flag("CORTEXLITE_RELOAD_POLL"),
            dependencies_preinstalled=env.choice("CORTEXLITE_DEPENDENCIES", ("install", "preinstalled"))
            == "preinstalled",
            replica_id=env.text("CORTEXLITE_REPLICA_ID"),
            max_payload_bytes=env.integer("CORTEX_MAX_PAYLOAD_BYTES") or DEFAULT_MAX_PAYLOAD_BYTES,
            log_format=env.choice("CORTEXLITE_LOG_FORMAT", ("auto", "json", "pretty")) or "auto",
            log_level=(env.text("CORTEXLITE_LOG_LEVEL") or "INFO").upper(),
            inline_predict_limit=env.seconds("CORTEXLITE_INLINE_PREDICT_LIMIT", 0.005),
            auth=env.choice("CORTEXLITE_AUTH", ("none", "api_key")),
            api_keys_file=env.path("CORTEXLITE_API_KEYS"),
            timeout=env.seconds("CORTEXLITE_TIMEOUT", 0) or None,
            max_header_bytes=env.integer("CORTEXLITE_MAX_HEADER_BYTES", minimum=1024) or DEFAULT_MAX_HEADER_BYTES,
        )

    def resolve_concurrency_cap(self, processes: int, spec_cap: int | None) -> int:
        """Per-replica cap on active + queued requests, across all processes.

        `CORTEX_MAX_REPLICA_CONCURRENCY`, else the spec's `max_replica_concurrency`, else Cortex
        0.15's `CORTEX_MAX_WORKER_CONCURRENCY` x processes, else 1024.
        """
        if self.max_replica_concurrency is not None:
            return self.max_replica_concurrency
        if spec_cap is not None:
            return spec_cap
        if self.max_worker_concurrency is not None:
            return self.max_worker_concurrency * processes
        return DEFAULT_MAX_CONCURRENCY


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, *names: str) -> str | None:
        for name in names:
            value = self._environ.get(name, "").strip()
            if value:
                return value
        return None

    def _named(self, *names: str) -> tuple[str, str] | None:
        for name in names:
            value = self._environ.get(name, "").strip()
            if value:
                return name, value
        return None

    def integer(self, *names: str, minimum: int = 1, maximum: int | None = None) -> int | None:
        found = self._named(*names)
        if found is None:
            return None
        name, raw = found
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer (got {raw!r})") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{name}: must be {bound} (got {value})")
        return value

    def seconds(self, name: str, default: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    def path(self, name: str) -> Path | None:
        raw = self.text(name)
        return Path(raw) if raw else None

    def flag(self, name: str) -> bool:
        raw = (self.text(name) or "").lower()
        if raw in ("", "0", "false", "no", "off"):
            return False
        if raw in ("1", "true", "yes", "on"):
            return True
        raise ConfigError(f"{name}: expected 1/0, true/false (got {raw!r})")

    def choice(self, name: str, options: tuple[str, ...]) -> str | None:
        raw = self.text(name)
        if raw is not None and raw.lower() not in options:
            raise ConfigError(f"{name}: expected one of {', '.join(options)} (got {raw!r})")
        return raw.lower() if raw else None
