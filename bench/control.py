"""Control-plane experiments: cold start, a no-change redeploy, and the gateway's hop.

All through the real CLI and a real Traefik, on a CORTEXLITE_HOME of the run's own, each with a
baseline measured in the same run:
- cold start: `cortexlite deploy` of iris -> first 200 through the gateway (replica venv cached,
  gateway running), against the bare runtime started by hand -> first 200 straight to it;
- no-change redeploy: `cortexlite deploy` when everything is up to date, against `cortexlite version`
  (what any CLI command costs to start);
- gateway hop: wrk through the gateway vs straight to the replica, interleaved, at 1 connection (the
  hop's own latency) and at 64 (throughput; there p50 is mostly queueing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BenchError
from .load import PAYLOAD, LoadResult, run_wrk
from .servers import PROJECTS, free_port

__all__ = ["API", "CLI", "CliEnv", "ControlResults", "cold_start", "first_200", "iris_project", "run_control", "timed"]

CLI = Path(sys.executable).parent / "cortexlite"
API = "iris"
_TIMEOUT_S = 120.0

Progress = Callable[[str], None]


@dataclass
class ControlResults:
    first_deploy_s: float = 0.0
    cold_start_s: list[float] = field(default_factory=list)
    bare_start_s: list[float] = field(default_factory=list)
    redeploy_s: list[float] = field(default_factory=list)
    cli_start_s: list[float] = field(default_factory=list)
    gateway: dict[int, list[LoadResult]] = field(default_factory=dict)
    direct: dict[int, list[LoadResult]] = field(default_factory=dict)


def run_control(
    workdir: Path, script: Path, *, rounds: int, seconds: int, connections: int, progress: Progress
) -> ControlResults:
    results = ControlResults()
    env = CliEnv(workdir)
    project = iris_project(workdir / "iris")
    try:
        env.cli("env", "add", "local", "--gateway-port", str(env.port), "--gateway-admin-port", str(env.admin_port))
        started = time.monotonic()
        env.cli("deploy", str(project))
        results.first_deploy_s = time.monotonic() - started
        progress(f"  first deploy (makes the replica venv): {results.first_deploy_s:.1f} s")
        for index in range(rounds):
            env.cli("delete", API)
            results.cold_start_s.append(cold_start(env, project))
            results.bare_start_s.append(_bare_start(env, project, workdir))
            progress(
                f"  round {index + 1}: deploy -> first 200 {results.cold_start_s[-1]:.2f} s, "
                f"bare runtime -> first 200 {results.bare_start_s[-1]:.2f} s"
            )
        for _ in range(rounds):
            results.redeploy_s.append(timed(lambda: env.cli("deploy", str(project), expect="is up to date")))
            results.cli_start_s.append(timed(lambda: env.cli("version")))
        progress(
            f"  no-change redeploy {sorted(results.redeploy_s)} s; cortexlite version {sorted(results.cli_start_s)} s"
        )
        direct_url = _replica_url(env)
        gateway_url = f"http://127.0.0.1:{env.port}/{API}"
        run_wrk(gateway_url, script, 8, 1)
        run_wrk(direct_url, script, 8, 1)
        for index in range(rounds):
            for count in sorted({1, connections}):
                for name, url, sink in (
                    ("direct", direct_url, results.direct),
                    ("gateway", gateway_url, results.gateway),
                ):
                    r = run_wrk(url, script, count, seconds)
                    sink.setdefault(count, []).append(r)
                    progress(
                        f"  round {index + 1}: {name:<8} c={count:<3} {r.requests_per_second:9.1f} req/s  "
                        f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms"
                    )
    finally:
        env.cli("down", check=False)
    return results


class CliEnv:
    """The CLI on a CORTEXLITE_HOME of the run's own, targeting environment `name`, on two free ports."""

    def __init__(self, workdir: Path, name: str = "local", extra: Mapping[str, str] | None = None) -> None:
        self.home = workdir / "home"
        self.name = name
        self.port, self.admin_port = free_port(), free_port()
        self.environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CORTEX_", "CORTEXLITE_"))},
            "CORTEXLITE_HOME": str(self.home),
            "CORTEXLITE_CACHE_DIR": str(workdir / "cache"),
            "CORTEXLITE_ENV": name,
            "NO_COLOR": "1",
            **(extra or {}),
        }

    def cli(self, *args: str, check: bool = True, expect: str | None = None, timeout: float = 600) -> str:
        try:
            done = subprocess.run(
                [str(CLI), *args], env=self.environ, capture_output=True, text=True, timeout=timeout, check=False,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise BenchError(f"cortexlite {' '.join(args)} was still running after {timeout:g}s (killed)") from None
        if check and done.returncode != 0:
            raise BenchError(f"cortexlite {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        if expect is not None and expect not in done.stdout:
            raise BenchError(f"cortexlite {' '.join(args)}: expected {expect!r}, got:\n{done.stdout}")
        return done.stdout

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(CLI), *args], env=self.environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


def iris_project(target: Path) -> Path:
    shutil.copytree(PROJECTS / "iris", target)
    (target / "cortexlite.yaml").write_text(f"- name: {API}\n")
    (target / "requirements.txt").write_text("scikit-learn>=1.3\n")
    return target


def cold_start(env: CliEnv, project: Path) -> float:
    """From `cortexlite deploy` (a new process) to the first 200 through the gateway."""
    url = f"http://127.0.0.1:{env.port}/{API}"
    started = time.monotonic()
    deploying = env.popen("deploy", str(project))
    try:
        first = first_200(url, started)
    finally:
        try:
            code = deploying.wait(_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            deploying.kill()
            deploying.wait(30)
            raise BenchError(f"cortexlite deploy was still running after {_TIMEOUT_S:g}s (killed)") from None
    if code != 0:
        raise BenchError(f"cortexlite deploy exited {code} during the cold-start round")
    return first


def _bare_start(env: CliEnv, project: Path, workdir: Path) -> float:
    """The baseline: the same runtime, in the same venv, started by hand and asked directly."""
    venv = next((workdir / "cache" / "venvs").glob("*/bin/python"))
    port = free_port()
    environ = {
        **env.environ,
        "CORTEX_PROJECT_DIR": str(project),
        "CORTEX_SERVING_HOST": "127.0.0.1",
        "CORTEX_SERVING_PORT": str(port),
        "CORTEXLITE_DEPENDENCIES": "preinstalled",
        "CORTEX_SHUTDOWN_DELAY": "0",
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [str(venv), "-m", "cortexlite_runtime"], env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        return first_200(f"http://127.0.0.1:{port}/", started)
    finally:
        process.terminate()
        process.wait(30)


def first_200(url: str, started: float) -> float:
    deadline = started + _TIMEOUT_S
    request_body = PAYLOAD.encode()
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            url, data=request_body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.01)
    raise BenchError(f"no 200 from {url} within {_TIMEOUT_S:g}s")


def _replica_url(env: CliEnv) -> str:
    records = list(env.home.glob(f"envs/{env.name}/apis/{API}/replicas/*.json"))
    if len(records) != 1:
        raise BenchError(f"expected one replica of {API}, found {len(records)}")
    return f"http://127.0.0.1:{json.loads(records[0].read_text())['port']}/"


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started
