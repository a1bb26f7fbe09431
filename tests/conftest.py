"""Shared test setup: a bounded hypothesis profile and a real runtime subprocess per test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
PREDICTORS = Path(__file__).resolve().parent / "predictors"

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Runtime:
    """A `python -m cortexlite_runtime` subprocess serving one project on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    project: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 20) -> None:
        self._wait(lambda r: r.status_code == 200, "/healthz", timeout)

    def wait_ready(self, timeout: float = 30) -> httpx.Response:
        def ready(answer: httpx.Response) -> bool:
            if answer.status_code != 200 and answer.json().get("status") == "failed":
                raise AssertionError(f"runtime failed to start: {answer.text}\n{self.logs()}")
            return answer.status_code == 200

        return self._wait(ready, "/readyz", timeout)

    def wait_phase(self, phase: str, timeout: float = 30) -> httpx.Response:
        return self._wait(lambda r: r.json().get("status") == phase, "/readyz", timeout)

    def _wait(self, done: Callable[[httpx.Response], bool], path: str, timeout: float) -> httpx.Response:
        deadline = time.monotonic() + timeout
        last: httpx.Response | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"runtime exited with {self.process.returncode}:\n{self.logs()}")
            try:
                last = self.client.get(path, timeout=2)
                if done(last):
                    return last
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        body = last.text if last is not None else "no answer"
        raise AssertionError(f"{path} not as expected after {timeout}s: {body}\n{self.logs()}")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.client.close()
        return int(self.process.returncode)


def make_project(directory: Path, predictor: str, yaml: str | None = None, files: dict[str, str] | None = None) -> Path:
    """A project dir with `tests/predictors/<predictor>.py` as predictor.py, an optional yaml and extra files."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(PREDICTORS / f"{predictor}.py", directory / "predictor.py")
    if yaml is not None:
        (directory / "cortexlite.yaml").write_text(yaml)
    for name, text in (files or {}).items():
        (directory / name).write_text(text)
    return directory


StartRuntime = Callable[..., Runtime]


def launch_runtime(
    project: Path, workdir: Path, env: dict[str, str] | None = None, wait: str | None = "ready"
) -> Runtime:
    """Start `python -m cortexlite_runtime` for `project` (log and cache under `workdir`); the caller stops it."""
    port = free_port()
    log_path = workdir / f"runtime-{port}.log"
    full_env = {
        **os.environ,
        "CORTEX_PROJECT_DIR": str(project),
        "CORTEX_SERVING_HOST": "127.0.0.1",
        "CORTEX_SERVING_PORT": str(port),
        "CORTEX_CACHE_DIR": str(workdir / "cache"),
        "CORTEX_SHUTDOWN_DELAY": "0.2",
        "CORTEX_GRACE_PERIOD": "10",
        "CORTEXLITE_LOG_FORMAT": "json",
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cortexlite_runtime"], env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    runtime = Runtime(process, port, log_path, project)
    try:
        if wait == "ready":
            runtime.wait_ready()
        elif wait == "healthy":
            runtime.wait_healthy()
    except BaseException:
        runtime.stop(timeout=15)
        raise
    return runtime


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[StartRuntime]:
    """Start runtimes for this test; every one is stopped (by PID) at teardown."""
    started: list[Runtime] = []

    def start(project: Path, env: dict[str, str] | None = None, wait: str | None = "ready") -> Runtime:
        runtime = launch_runtime(project, tmp_path, env, wait)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.stop(timeout=15)
