"""The servers under test: subprocesses on free 127.0.0.1 ports, waited for, and stopped by PID.

Each server runs in its own session so that stopping it also reaches any process it started;
nothing is ever killed by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import BenchError

__all__ = [
    "PROJECTS",
    "Server",
    "ServerSpec",
    "ceiling_spec",
    "free_port",
    "running",
    "runtime_spec",
    "start",
    "stop",
    "wait_ready",
]

REPO = Path(__file__).resolve().parent.parent
PROJECTS = Path(__file__).resolve().parent / "projects"
_VENV_BIN = Path(sys.prefix) / "bin"
_READY_TIMEOUT = 90.0
_STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    port: int


@dataclass(frozen=True)
class Server:
    spec: ServerSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.spec.port}/"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ceiling_spec(name: str, project: Path) -> ServerSpec:
    port = free_port()
    env = {"PORT": str(port), "PREDICTOR": str(project / "predictor.py")}
    return ServerSpec(name, (sys.executable, "-m", "bench.ceiling"), env, port)


def runtime_spec(
    name: str, project: Path, processes: int = 1, threads: int = 1, extra_env: Mapping[str, str] | None = None
) -> ServerSpec:
    port = free_port()
    env = {
        "CORTEX_PROJECT_DIR": str(project),
        "CORTEX_SERVING_HOST": "127.0.0.1",
        "CORTEX_SERVING_PORT": str(port),
        "CORTEX_PROCESSES_PER_REPLICA": str(processes),
        "CORTEX_THREADS_PER_PROCESS": str(threads),
        "CORTEXLITE_LOG_FORMAT": "json",
        # Stop at once when the benchmark is done with it; draining is not what is measured.
        "CORTEX_SHUTDOWN_DELAY": "0",
        "CORTEX_GRACE_PERIOD": "1",
        **(extra_env or {}),
    }
    return ServerSpec(name, (str(_VENV_BIN / "cortexlite-serve"),), env, port)


def start(spec: ServerSpec, log_dir: Path) -> Server:
    log_path = log_dir / f"{spec.name.replace(' ', '-')}-{spec.port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            spec.argv,
            cwd=REPO,
            env={**_base_env(), **spec.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(spec, process, log_path)


def wait_ready(server: Server, timeout: float = _READY_TIMEOUT) -> None:
    """Poll `GET /readyz` until it answers 200; raise if the server exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise BenchError(f"{server.spec.name} exited with code {code} before it was ready:\n{log_tail(server)}")
        if _ready(server.url + "readyz"):
            return
        time.sleep(0.1)
    raise BenchError(f"{server.spec.name} was not ready after {timeout:.0f} s:\n{log_tail(server)}")


def stop(server: Server, timeout: float = _STOP_TIMEOUT) -> None:
    """SIGTERM the server's PID, SIGKILL it after `timeout`, then SIGKILL whatever is left of its session."""
    process = server.process
    if process.poll() is None:
        _signal(process.pid, signal.SIGTERM, group=False)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal(process.pid, signal.SIGKILL, group=False)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass  # unkillable (stuck in the kernel): nothing more to do, and the other servers must still stop
    _signal(process.pid, signal.SIGKILL, group=True)


@contextmanager
def running(specs: Sequence[ServerSpec], log_dir: Path) -> Iterator[list[Server]]:
    """Start every server, wait until all are ready, and stop them all on the way out, whatever happens."""
    servers: list[Server] = []
    try:
        for spec in specs:
            servers.append(start(spec, log_dir))
        for server in servers:
            wait_ready(server)
        yield servers
    finally:
        for server in reversed(servers):
            stop(server)


def log_tail(server: Server, lines: int = 20) -> str:
    try:
        text = server.log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)  # the session we created for this server: its process group id is its PID
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _base_env() -> dict[str, str]:
    # Nothing from the caller's shell may configure the servers: only the spec's variables do.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORTEX_", "CORTEXLITE_"))}
    env.pop("PORT", None)
    env.pop("PREDICTOR", None)
    return env
