"""The operator as a detached process: one per environment, started by `up`, stopped by `down`.

It runs `python -m cortexlite -e ENV operator` in its own session; its identity (pid, start time)
is recorded in `envs/<env>/operator/state.json` and verified before any signal, and its output goes
to `operator/operator.log` (rotated), where its autoscaling and healing events are.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cortexlite.files import Lock, read_json, write_json
from cortexlite.processes import ProcessRef, spawn, terminate

__all__ = ["OperatorProcess", "OperatorRecord"]

_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class OperatorRecord:
    pid: int
    started: float

    @property
    def process(self) -> ProcessRef:
        return ProcessRef(self.pid, self.started)


class OperatorProcess:
    def __init__(self, root: Path, env: str, home: Path, cache_dir: Path) -> None:
        self.root = root
        self.env = env
        self.home = home
        self.cache_dir = cache_dir
        self._lock = Lock(root / ".lock")

    @property
    def log(self) -> Path:
        return self.root / "operator.log"

    def record(self) -> OperatorRecord | None:
        data = read_json(self.root / "state.json")
        if not isinstance(data, dict):
            return None
        try:
            record = OperatorRecord(int(data["pid"]), float(data["started"]))
        except (KeyError, TypeError, ValueError):
            return None
        return record if record.process.alive() else None

    def running(self) -> bool:
        return self.record() is not None

    def ensure(self, log: Callable[[str], None] | None = None) -> tuple[str, bool]:
        """The running operator, started when absent; (what runs, True when started now)."""
        with self._lock.hold():
            record = self.record()
            if record is not None:
                return f"pid {record.pid}", False
            command = [sys.executable, "-m", "cortexlite", "-e", self.env, "operator"]
            env = dict(os.environ, CORTEXLITE_HOME=str(self.home), CORTEXLITE_CACHE_DIR=str(self.cache_dir))
            spawned = spawn(command, env=env, cwd=self.home, log_path=self.log)
            record = OperatorRecord(spawned.ref.pid, spawned.ref.started)
            write_json(self.root / "state.json", asdict(record))
            deadline = time.monotonic() + _START_TIMEOUT_S
            while time.monotonic() < deadline and spawned.exit_code() is None and not _started(self.log):
                time.sleep(0.05)
            return f"pid {record.pid}; its events: {self.log}", True

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the operator (it finishes the scale or heal it is in); False when none was running."""
        with self._lock.hold():
            record = self.record()
            with contextlib.suppress(FileNotFoundError):
                (self.root / "state.json").unlink()
            if record is None:
                return False
            terminate([record.process], timeout)
            return True


def _started(log: Path) -> bool:
    try:
        return "operator of environment" in log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
