"""RuntimeConfig.from_env: DESIGN.md's variables, Cortex 0.15's aliases, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortexlite_runtime.config import RuntimeConfig
from cortexlite_runtime.errors import ConfigError


def test_defaults() -> None:
    config = RuntimeConfig.from_env({})
    assert (config.host, config.port, config.project_dir) == ("0.0.0.0", 8888, Path("/mnt/project"))
    assert (config.shutdown_delay, config.grace_period, config.max_payload_bytes) == (2.0, 30.0, 32 * 1024 * 1024)
    assert config.processes is None and config.threads is None


def test_cortex_015_names() -> None:
    config = RuntimeConfig.from_env(
        {
            "CORTEX_SERVING_PORT": "5000",
            "CORTEX_WORKERS_PER_REPLICA": "8",
            "CORTEX_MAX_WORKER_CONCURRENCY": "8",
            "CORTEX_THREADS_PER_WORKER": "2",
            "CORTEX_SO_MAX_CONN": "2048",
            "CORTEX_CACHE_DIR": "/mnt/spec",
            "CORTEX_VERSION": "0.15.1",
        }
    )
    assert (config.port, config.processes, config.threads, config.so_max_conn) == (5000, 8, 2, 2048)
    assert config.cache_dir == Path("/mnt/spec") and config.cortex_version == "0.15.1"
    assert config.resolve_concurrency_cap(8, None) == 64


def test_new_names_win_over_aliases() -> None:
    config = RuntimeConfig.from_env({"CORTEX_PROCESSES_PER_REPLICA": "3", "CORTEX_WORKERS_PER_REPLICA": "8"})
    assert config.processes == 3


def test_concurrency_cap_precedence() -> None:
    assert RuntimeConfig.from_env({}).resolve_concurrency_cap(4, None) == 1024
    assert RuntimeConfig.from_env({}).resolve_concurrency_cap(4, 10) == 10
    env = {"CORTEX_MAX_REPLICA_CONCURRENCY": "7", "CORTEX_MAX_WORKER_CONCURRENCY": "8"}
    assert RuntimeConfig.from_env(env).resolve_concurrency_cap(4, 10) == 7


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CORTEX_SERVING_PORT": "http"}, "CORTEX_SERVING_PORT: expected an integer (got 'http')"),
        ({"CORTEX_SERVING_PORT": "70000"}, "CORTEX_SERVING_PORT: must be between 1 and 65535 (got 70000)"),
        ({"CORTEX_WORKERS_PER_REPLICA": "0"}, "CORTEX_WORKERS_PER_REPLICA: must be >= 1 (got 0)"),
        ({"CORTEX_SHUTDOWN_DELAY": "later"}, "CORTEX_SHUTDOWN_DELAY: expected a duration"),
        ({"CORTEXLITE_RELOAD": "maybe"}, "CORTEXLITE_RELOAD: expected 1/0, true/false (got 'maybe')"),
        ({"CORTEXLITE_LOG_FORMAT": "xml"}, "CORTEXLITE_LOG_FORMAT: expected one of auto, json, pretty"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RuntimeConfig.from_env(env)
    assert message in str(caught.value)


def test_durations() -> None:
    config = RuntimeConfig.from_env({"CORTEX_SHUTDOWN_DELAY": "500ms", "CORTEX_GRACE_PERIOD": "1m"})
    assert (config.shutdown_delay, config.grace_period) == (0.5, 60.0)
