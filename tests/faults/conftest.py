"""Fault injection: what each fault test shares, and the figures they report.

Every test records its figures (name, value, unit) with the `figures` fixture; at the end of the run
`pytest_terminal_summary` prints them as a "fault figures" table, and every record is also written to
`build/fault-figures.json` (rewritten after each record, so a run that dies keeps what it measured).

The integration fixtures (`local_env`, `docker_env`, `s3_server`, ...) are imported from
tests/integration/conftest.py; session-scoped ones then exist once per directory (a second SeaweedFS,
a second replica cache), which costs a few seconds and keeps the faults apart from the other tests.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import pytest

from cortexlite.files import atomic_write
from tests.integration.conftest import (  # noqa: F401 - fixtures, shared with tests/integration by import
    LocalEnv,
    docker_engine,
    docker_env,
    docker_image_options,
    local_env,
    replica_cache,
    s3_proxy,
    s3_server,
)

__all__ = [
    "FailedDeploy",
    "Figure",
    "Figures",
    "Poller",
    "RecordFigure",
    "answers",
    "ask",
    "deploy_that_fails",
    "expect_answer",
    "wait_until",
]

REPO = Path(__file__).resolve().parents[2]
FIGURES_FILE = REPO / "build" / "fault-figures.json"


@dataclass(frozen=True)
class Figure:
    test: str
    name: str
    value: float
    unit: str


@dataclass
class Figures:
    """Every figure of the session, in the order they were recorded."""

    path: Path
    rows: list[Figure] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def record(self, test: str, name: str, value: float, unit: str) -> None:
        self.rows.append(Figure(test, name, round(value, 3), unit))
        data = {"started": self.started, "figures": [asdict(row) for row in self.rows]}
        atomic_write(self.path, json.dumps(data, indent=2) + "\n")

    def table(self) -> list[str]:
        widths = [max(len(getattr(row, key)) for row in self.rows) for key in ("test", "name")]
        return [f"{row.test:<{widths[0]}}  {row.name:<{widths[1]}}  {row.value:>10g} {row.unit}" for row in self.rows]


FIGURES_KEY = pytest.StashKey[Figures]()
RecordFigure = Callable[[str, float, str], None]


@pytest.fixture(scope="session")
def fault_figures(pytestconfig: pytest.Config) -> Figures:
    return pytestconfig.stash.setdefault(FIGURES_KEY, Figures(FIGURES_FILE))


@pytest.fixture
def figures(fault_figures: Figures, request: pytest.FixtureRequest) -> RecordFigure:
    """`figures(name, value, unit)` records one figure of this test."""
    test = request.node.name

    def record(name: str, value: float, unit: str) -> None:
        fault_figures.record(test, name, value, unit)

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    collected = config.stash.get(FIGURES_KEY, None)
    if collected is None or not collected.rows:
        return
    terminalreporter.write_sep("=", "fault figures")
    for line in collected.table():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(also in {os.path.relpath(collected.path, REPO)})")


# --- helpers ----------------------------------------------------------------------------------------


def ask(env: LocalEnv, endpoint: str = "/answer", timeout: float = 10.0) -> tuple[int, str]:
    """One request through the gateway: (status, body), or (0, the error) when none came back."""
    try:
        reply = httpx.post(env.url(endpoint), json={}, timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        return 0, repr(exc)
    return reply.status_code, reply.text


def answers(env: LocalEnv, endpoint: str = "/answer", timeout: float = 2.0) -> object | None:
    """The JSON an API answers through the gateway, or None when the request fails."""
    status, body = ask(env, endpoint, timeout)
    return json.loads(body) if status == 200 else None


def expect_answer(env: LocalEnv, expected: object, endpoint: str = "/answer") -> None:
    """The API answers `expected` now (an AssertionError shows what came back instead)."""
    status, body = ask(env, endpoint)
    assert status == 200 and json.loads(body) == expected, (status, body)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Seconds until `condition()` held; an AssertionError naming `what` after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:g}s")


@dataclass
class Poller:
    """One client asking an API every `interval` seconds; each answer kept with its time (monotonic)."""

    url: str
    interval: float = 0.1
    results: list[tuple[float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Poller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def first_success_after(self, moment: float) -> float | None:
        return next((at for at, status, _ in self.results if status == 200 and at >= moment), None)

    def between(self, start: float, end: float) -> list[tuple[float, int, str]]:
        return [result for result in self.results if start <= result[0] <= end]

    def _run(self) -> None:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    reply = client.post(self.url, json={})
                    self.results.append((time.monotonic(), reply.status_code, reply.text[:200]))
                except httpx.HTTPError as exc:
                    self.results.append((time.monotonic(), 0, repr(exc)[:200]))
                self._stop.wait(self.interval)


@dataclass(frozen=True)
class FailedDeploy:
    error: str  # its one line, `error: ...`
    seconds: float  # deploy start -> gave up
    served: int  # requests v1 answered meanwhile


def deploy_that_fails(
    env: LocalEnv, project: Path, figures: RecordFigure, *, interval: float, cause: str
) -> FailedDeploy:
    """`deploy` of `project` fails in one clear line while v1 answers every request (polled every `interval`).

    Records the figures "deploy start -> gave up (`cause`)", the requests v1 served and the failed ones.
    """
    poller = Poller(env.url("/answer"), interval=interval).start()
    try:
        started = time.monotonic()
        failed = env.cli("deploy", str(project), check=False)
        gave_up = time.monotonic()
        time.sleep(0.5)
    finally:
        poller.stop()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr, failed.stderr
    error = failed.stderr.strip()
    assert error.startswith("error: ") and len(error.splitlines()) == 1, error
    print(f"the failed deploy said: {error}")
    during = poller.between(started, gave_up)
    bad = [result for result in poller.results if result[1] != 200 or json.loads(result[2]) != {"answer": "v1"}]
    assert during and not bad, bad[:5]
    (view,) = json.loads(env.cli("get", "-o", "json").stdout)
    assert (view["status"], view["requested"], view["up_to_date"]) == ("live", 1, 1), view
    figures(f"deploy start -> gave up ({cause})", gave_up - started, "s")
    figures("requests served by v1 during the failed deploy", len(during), "requests")
    figures("failed requests", len(bad), "requests")
    return FailedDeploy(error, gave_up - started, len(during))
