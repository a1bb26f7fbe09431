"""The Docker engine restarted while an API runs (host networking).

The engine is the one scripts/dockerd-start.sh started (its pid in the script's pid file): it gets
SIGTERM, stops its containers (live-restore is off) and exits; the script starts it again. The
gateway, operator and replica containers carry `unless-stopped`, so the engine starts them again;
the API answers through the gateway again and `get` shows it live. While the engine is down, `get`
fails with one clear line. Whatever happens, the engine runs again when the test ends.

The engine may be shared with another session's tests: the restart waits (30 s at most) until only
this test's containers run, and is skipped when others' keep running, rather than break them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.faults.conftest import Poller, RecordFigure, answers, expect_answer, wait_until
from tests.integration.conftest import DockerEnv, docker, make_api_project

# Above the default 120 s: a slow stop (a minute at most) must still leave the teardown time to start the engine.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
START_SCRIPT = REPO / "scripts" / "dockerd-start.sh"


@dataclass(frozen=True)
class Dockerd:
    """The engine scripts/dockerd-start.sh started, known by the pid file it gave dockerd."""

    pid_file: Path

    def process(self) -> psutil.Process | None:
        try:
            process = psutil.Process(int(self.pid_file.read_text().strip()))
            return process if process.name() == "dockerd" and process.status() != psutil.STATUS_ZOMBIE else None
        except (OSError, ValueError, psutil.Error):
            return None

    def answers(self) -> bool:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, then wait until it exited (it stops its containers first)."""
        process = self.process()
        assert process is not None, f"no dockerd runs with the pid in {self.pid_file}"
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: not _running(process), timeout, f"dockerd (pid {process.pid}) exiting on SIGTERM", 0.2)

    def start(self) -> float:
        """The way the test setup starts it (a no-op when one answers), once a stopping one has exited; the
        moment `docker info` first answered (polled more often than the script does)."""
        wait_until(lambda: self.process() is None or self.answers(), 60, "the previous dockerd exiting", 0.5)
        script = subprocess.Popen(
            ["bash", str(START_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_until(lambda: self.answers() or script.poll() is not None, 90, "docker info answering", 0.1)
            answered = time.monotonic()
            _, errors = script.communicate(timeout=90)
        finally:
            if script.poll() is None:
                script.kill()
                script.wait(10)
        assert script.returncode == 0, f"{START_SCRIPT} failed:\n{errors}"
        return answered


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def dockerd(docker_env: DockerEnv) -> Iterator[Dockerd]:
    """The engine, running again at the end whatever happened (set up after, so torn down before, `docker_env`)."""
    engine = Dockerd(Path(os.environ.get("CORTEXLITE_DOCKERD_DIR", "/var/run/cortexlite-dockerd")) / "dockerd.pid")
    if engine.process() is None:
        pytest.skip(f"the Docker engine was not started by {START_SCRIPT.name} (no dockerd pid in {engine.pid_file})")
    try:
        yield engine
    finally:
        if not engine.answers():
            engine.start()


def _others(env: DockerEnv) -> list[str]:
    """Running containers that are not this test's: another session's, on the same engine."""
    listed = docker("ps", "--format", '{{.Names}}\t{{.Label "cortexlite.test.run"}}').stdout.splitlines()
    return [name for name, run in (line.split("\t", 1) for line in listed if line) if run != env.run_id]


def _quiet_engine(env: DockerEnv, timeout: float = 30) -> None:
    """Wait until only this test's containers run; skip when the engine stays busy with others'."""
    deadline = time.monotonic() + timeout
    while others := _others(env):
        if time.monotonic() > deadline:
            pytest.skip(f"the engine runs containers of another session ({', '.join(others[:5])}): not restarting it")
        time.sleep(1)


def _live(env: DockerEnv) -> bool:
    done = env.cli("get", "answer", "-o", "json", check=False, timeout=60)
    if done.returncode != 0:
        return False
    (view,) = json.loads(done.stdout)
    return bool(view["status"] == "live" and view["up_to_date"] == 1)


def test_an_engine_restart_brings_the_api_back(
    docker_env: DockerEnv, dockerd: Dockerd, tmp_path: Path, figures: RecordFigure
) -> None:
    env = docker_env
    project = make_api_project(tmp_path / "project")
    env.cli("up", str(project))
    expect_answer(env, {"answer": "v1"})
    before = {c["Config"]["Labels"]["cortexlite.role"]: c["Id"] for c in env.containers()}
    assert {"gateway", "operator", "replica"} <= before.keys(), before

    _quiet_engine(env)
    poller = Poller(env.url("/answer"), interval=0.1).start()
    try:
        wait_until(lambda: poller.first_success_after(0) is not None, 10, "the poller's first answer")
        stopping = time.monotonic()
        dockerd.stop()
        stopped = time.monotonic()
        assert answers(env) is None, "the API still answers with the engine stopped"
        down = env.cli("get", "-o", "json", check=False, timeout=60)
        assert down.returncode == 1 and "Traceback" not in down.stderr, down.stderr
        assert len(down.stderr.strip().splitlines()) == 1 and down.stderr.startswith("error: "), down.stderr
        back = dockerd.start()
        # `get` from the moment the engine answers; the poller marks the first answer meanwhile.
        live = back + wait_until(lambda: _live(env), 60, "`get` showing the API live after the restart", 0.5)
        wait_until(lambda: poller.first_success_after(stopped) is not None, 30, "an answer after the restart")
    finally:
        poller.stop()
    first = poller.first_success_after(stopped)
    assert first is not None
    expect_answer(env, {"answer": "v1"})
    after = {c["Config"]["Labels"]["cortexlite.role"]: c for c in env.containers()}
    assert all(after[role]["State"]["Running"] for role in ("gateway", "operator", "replica")), after.keys()
    # The same containers, started again by their restart policy (not replaced).
    assert {role: after[role]["Id"] for role in before} == before
    first_failure = min(at for at, status, _ in poller.results if status != 200)
    last_before = max(at for at, status, _ in poller.results if status == 200 and at < first_failure)
    print(f"engine `get` while down said: {down.stderr.strip()}")
    figures("engine stop (SIGTERM -> dockerd exited)", stopped - stopping, "s")
    figures("engine start (dockerd-start.sh -> docker info answers)", back - stopped, "s")
    figures("engine back (docker info answers) -> first successful prediction", first - back, "s")
    figures("engine back (docker info answers) -> `get` shows live", live - back, "s")
    figures("client-side outage (last answer before -> first answer after)", first - last_before, "s")
