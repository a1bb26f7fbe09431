"""The gateway killed: Traefik of a process environment gets SIGKILL while an API serves.

What brings it back: the operator (`up` starts one), whose loop checks the gateway every second and
restarts it from its recorded configuration. Without an operator nothing restarts it on its own: `get`
reports it down and names the remedy, and the next `up` starts it again.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from cortexlite.processes import ProcessRef
from tests.faults.conftest import Poller, RecordFigure, answers, expect_answer, wait_until
from tests.integration.conftest import LocalEnv, make_api_project

pytestmark = [pytest.mark.slow]


def _gateway(env: LocalEnv) -> ProcessRef:
    state = json.loads((env.home / "envs" / "local" / "gateway" / "state.json").read_text())
    return ProcessRef(int(state["pid"]), float(state["started"]))


def _operator(env: LocalEnv) -> ProcessRef:
    state = json.loads((env.home / "envs" / "local" / "operator" / "state.json").read_text())
    return ProcessRef(int(state["pid"]), float(state["started"]))


def _kill(ref: ProcessRef) -> tuple[float, float]:
    """SIGKILL `ref` (checked by identity) and wait until it is gone; (the moment it was signalled, the
    moment it was seen gone). An answer completed after the second can only come from a successor: one the
    killed process wrote just before dying may reach its client after the first."""
    killed = time.monotonic()
    assert ref.signal(signal.SIGKILL), f"process {ref.pid} was not running"
    wait_until(lambda: not ref.alive(), 10, f"process {ref.pid} gone after SIGKILL", interval=0.01)
    return killed, time.monotonic()


def test_a_killed_gateway_is_restarted_by_the_operator_or_the_next_up(
    local_env: LocalEnv, tmp_path: Path, figures: RecordFigure
) -> None:
    env = local_env
    project = make_api_project(tmp_path / "project")
    up = env.cli("up", str(project))
    assert "operator started" in up.stdout + up.stderr, up.stdout
    expect_answer(env, {"answer": "v1"})

    # 1. The operator runs: it notices within its one-second tick and starts Traefik again.
    first = _gateway(env)
    poller = Poller(env.url("/answer"), interval=0.05).start()
    try:
        wait_until(lambda: poller.first_success_after(0) is not None, 10, "the poller's first answer")
        killed, gone = _kill(first)
        wait_until(lambda: poller.first_success_after(gone) is not None, 30, "an answer after the gateway's kill")
        back = poller.first_success_after(gone)
    finally:
        poller.stop()
    assert back is not None
    # Traefik serves a moment before the operator's readiness check sees it and records it (state.json, log).
    wait_until(lambda: _gateway(env).pid != first.pid, 10, "the restarted gateway recorded")
    second = _gateway(env)
    assert second.alive()
    log_file = env.home / "envs" / "local" / "operator" / "operator.log"
    wait_until(lambda: "healing: the gateway is back" in log_file.read_text(), 10, "the operator's healing logged")
    assert "healing: the gateway is not running; starting it" in log_file.read_text()
    failed = [result for result in poller.results if result[1] != 200 and result[0] >= killed]
    figures("operator restart: SIGKILL -> first prediction", back - killed, "s")
    figures("operator restart: failed requests (one client every 50 ms)", len(failed), "requests")

    # 2. No operator (it died too): nothing restarts the gateway; `get` says so, and `up` brings it back.
    operator = _operator(env)
    _kill(operator)
    _kill(second)
    time.sleep(3)  # three ticks an operator would have had
    assert answers(env) is None, "nothing restarted the gateway"
    (view,) = json.loads(env.cli("get", "-o", "json").stdout)
    assert view["status"] == "error" and "is not running; `cortexlite up` starts it" in view["reason"], view
    assert not _gateway(env).alive()
    started = time.monotonic()
    again = env.cli("up", str(project))
    up_s = time.monotonic() - started
    assert "gateway started" in again.stdout and "operator started" in again.stdout + again.stderr, again.stdout
    serving = wait_until(lambda: answers(env) == {"answer": "v1"}, 10, "an answer after `up`")
    (view,) = json.loads(env.cli("get", "-o", "json").stdout)
    assert view["status"] == "live", view
    figures("no operator: `up` duration (restarts gateway and operator)", up_s, "s")
    figures("no operator: `up` start -> first prediction", up_s + serving, "s")
    assert os.path.isfile(env.home / "envs" / "local" / "operator" / "state.json") and _operator(env).alive()
