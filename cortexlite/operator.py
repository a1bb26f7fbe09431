"""The operator: autoscaling and self-healing for one environment, in a loop.

Every second it reads each replica's `cortexlite_in_flight_requests` (summed per API, kept for the
autoscaling window), replaces replicas that exited or vanished, and restarts the gateway if it is
down; every decision interval (10 s) it asks `autoscaling.decide` for each API's count and scales
through the same rollout machinery as `deploy` (new replicas join routing only when ready; removed
ones leave routing, then drain).

Single writer: it works on an API only while it holds the API's lock, and never while an update's
marker exists; a CLI command waits for the lock (a scale or a heal ends when its replicas are
ready). Its decision state (stabilization windows, the last event) is persisted per API, so a
restarted operator keeps its windows; everything else is read back from the backend.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cortexlite.autoscaling import Decision, Sample, ScalerState, decide, policy_for
from cortexlite.backends.base import Replica, ReplicaStatus
from cortexlite.errors import ConfigError, CortexliteError
from cortexlite.files import atomic_write, read_json
from cortexlite.state import ApiRecord, EnvState
from cortexlite.updater import Updater
from cortexlite.workspace import Workspace

__all__ = [
    "DECISION_INTERVAL_S",
    "Operator",
    "ScalingEvent",
    "Watch",
    "check_engine",
    "event_line",
    "last_event",
    "load_scaler_state",
    "parse_in_flight",
    "run_loop",
    "save_scaler_state",
]

DECISION_INTERVAL_S = 10.0
SAMPLE_INTERVAL_S = 1.0
_READY_TIMEOUT_S = 300.0
_MAX_BACKOFF_S = 60.0
_STATE_FILE = "autoscaler.json"

Log = Callable[[str], None]


@dataclass(frozen=True)
class ScalingEvent:
    at: float
    before: int
    after: int
    inputs: dict[str, float]


@dataclass
class Watch:
    """What the operator remembers of one API between ticks (in memory)."""

    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=4000))
    retry_at: float = 0.0
    failures: int = 0


def parse_in_flight(text: str) -> float | None:
    """The `cortexlite_in_flight_requests` gauge in a Prometheus exposition (None when absent)."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("cortexlite_in_flight_requests") and not line.startswith("cortexlite_in_flight_requests_"):
            try:
                total += float(line.rsplit(" ", 1)[1])
                seen = True
            except (IndexError, ValueError):
                continue
    return total if seen else None


def run_loop(tick: Callable[..., None], decision_interval: float, stop: Callable[[], bool]) -> None:
    """`tick(decide_now=...)` every second until `stop()`; `decide_now` every `decision_interval` seconds."""
    next_decision = time.time() + decision_interval
    while not stop():
        started = time.monotonic()
        due = time.time() >= next_decision
        tick(decide_now=due)
        if due:
            next_decision += decision_interval * max(1, int((time.time() - next_decision) // decision_interval) + 1)
        time.sleep(max(0.0, SAMPLE_INTERVAL_S - (time.monotonic() - started)))


def last_event(state: EnvState, name: str) -> ScalingEvent | None:
    """The API's last autoscaling event, as the operator recorded it."""
    data = state.read_api_file(name, _STATE_FILE)
    event = data.get("last_event") if isinstance(data, dict) else None
    if not isinstance(event, dict):
        return None
    try:
        return ScalingEvent(float(event["at"]), int(event["before"]), int(event["after"]), dict(event["inputs"]))
    except (KeyError, TypeError, ValueError):
        return None


def check_engine(ws: Workspace) -> None:
    """An operator told which Docker engine it serves (`CORTEXLITE_ENGINE_ID`) refuses to work on another."""
    from cortexlite.backends.container import DockerBackend

    expected = ws.settings.engine_id
    if not expected or not isinstance(ws.backend, DockerBackend):
        return
    found = ws.backend.engine.identity()
    if found != expected:
        raise ConfigError(
            f"the operator of environment {ws.environment.name} reaches the Docker engine {found} at "
            f"{ws.backend.engine.address}, not the environment's ({expected}): give the engine's socket on its "
            f"host with `cortexlite env add {ws.environment.name} ... --host-socket PATH`"
        )


class Operator:
    def __init__(self, ws: Workspace, log: Log, *, decision_interval: float = DECISION_INTERVAL_S) -> None:
        self.ws = ws
        self.log = log
        self.decision_interval = decision_interval
        self._watches: dict[str, Watch] = {}
        self._http = httpx.Client(timeout=1.0, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def run(self, stop: Callable[[], bool]) -> None:
        self.log(
            f"operator of environment {self.ws.environment.name} started (decisions every {self.decision_interval:g}s)"
        )
        run_loop(self.tick, self.decision_interval, stop)

    def tick(self, *, decide_now: bool) -> None:
        """One second's work: the gateway, then each API's samples, healing and (when due) scaling."""
        self._heal_gateway()
        names = self.ws.state.names()
        for gone in set(self._watches) - set(names):
            del self._watches[gone]
        for name in names:
            try:
                self._tend(name, decide_now)
            except CortexliteError as exc:
                self.log(f"{name}: {exc}")

    # --- one API --------------------------------------------------------------------------------

    def _tend(self, name: str, decide_now: bool) -> None:
        record = self.ws.state.api(name)
        if record is None or self.ws.state.marker(name) is not None:
            return  # being created, updated, or rolled back: the CLI's
        watch = self._watches.setdefault(name, Watch())
        replicas = self.ws.backend.replicas(name)
        with ThreadPoolExecutor(max_workers=8) as pool:
            probes = list(pool.map(self.ws.backend.probe, replicas))
        ready = [
            replica for replica, probe in zip(replicas, probes, strict=True) if probe.status is ReplicaStatus.READY
        ]
        self._sample(watch, ready)
        gone = [
            (replica, probe.reason)
            for replica, probe in zip(replicas, probes, strict=True)
            if probe.status is ReplicaStatus.EXITED
        ]
        live = len(replicas) - len(gone)
        if (gone or live < record.requested) and time.time() >= watch.retry_at:
            self._heal(record, gone, record.requested - live, watch)
        elif decide_now and not record.dev:  # a dev API keeps its one replica
            self._autoscale(record, watch)

    def _sample(self, watch: Watch, ready: list[Replica]) -> None:
        def scrape(replica: Replica) -> float | None:
            code, text = self.ws.backend.fetch(replica, "/metrics")
            return parse_in_flight(text) if code == 200 else None

        if not ready:
            watch.samples.append(Sample(time.time(), 0.0))
            return
        with ThreadPoolExecutor(max_workers=8) as pool:
            values = [value for value in pool.map(scrape, ready) if value is not None]
        watch.samples.append(Sample(time.time(), sum(values)))

    @contextmanager
    def _holding(self, name: str) -> Iterator[ApiRecord | None]:
        """The API's record while this operator holds its lock; None when a command holds it, an update
        is recorded, or the API is gone (then the operator leaves it alone this time)."""
        lock = self.ws.state.lock(name)
        if not lock.acquire(blocking=False):
            yield None
            return
        try:
            current = self.ws.state.api(name)
            yield current if current is not None and self.ws.state.marker(name) is None else None
        finally:
            lock.release()

    def _heal(self, record: ApiRecord, gone: list[tuple[Replica, str | None]], missing: int, watch: Watch) -> None:
        with self._holding(record.name) as current:
            if current is not None:
                self._replace(current, gone, missing, watch)

    def _replace(self, current: ApiRecord, gone: list[tuple[Replica, str | None]], missing: int, watch: Watch) -> None:
        try:
            for replica, reason in gone:
                self.log(f"healing: {current.name} replica {replica.id} {reason or 'is gone'}; starting a replacement")
            if missing > len(gone):
                self.log(f"healing: {current.name} has {current.requested - missing} of {current.requested} replica(s)")
            started = time.monotonic()
            self._roll(current, current.requested)
            took = time.monotonic() - started
            self.log(f"healing: {current.name} is back to {current.requested} ready replica(s) in {took:.1f}s")
            watch.failures, watch.retry_at = 0, 0.0
        except CortexliteError as exc:
            watch.failures += 1
            delay = min(_MAX_BACKOFF_S, 2.0**watch.failures)
            watch.retry_at = time.time() + delay
            self.log(f"healing: {current.name}: {exc}; trying again in {delay:g}s")

    def _autoscale(self, record: ApiRecord, watch: Watch) -> None:
        with self._holding(record.name) as current:
            if current is not None:
                self._scale(current, watch)

    def _scale(self, current: ApiRecord, watch: Watch) -> None:
        try:
            api_dir = self.ws.state.api_dir(current.name)
            now = time.time()
            decision = decide(
                policy_for(current.release().api), watch.samples, current.requested, load_scaler_state(api_dir), now
            )
            save_scaler_state(api_dir, decision, current.requested, now)
            if decision.replicas == current.requested:
                return
            self.log(event_line(current.name, current.requested, decision))
            self._roll(current, decision.replicas)
            self.ws.state.save_api(current.model_copy(update={"requested": decision.replicas}))
        except CortexliteError as exc:
            self.log(f"autoscaling: {current.name}: {exc}; keeping {current.requested} replica(s)")

    def _roll(self, record: ApiRecord, target: int) -> None:
        updater = Updater(
            self.ws.backend, self.ws.membership, self.ws.state, lambda line: self.log(f"  {line}"),
            ready_timeout=_READY_TIMEOUT_S,
        )  # fmt: skip
        updater.roll(record.release(), Path(record.snapshot), target)

    def _heal_gateway(self) -> None:
        if self.ws.gateway.running():
            return
        self.log("healing: the gateway is not running; starting it")
        try:
            what, _ = self.ws.gateway.ensure(self.log)
        except CortexliteError as exc:
            self.log(f"healing: the gateway could not start: {exc}")
            return
        self.log(f"healing: the gateway is back ({what})")


def event_line(name: str, before: int, decision: Decision) -> str:
    inputs = ", ".join(f"{key} {value:g}" for key, value in decision.inputs.items())
    return f"autoscaling event: {name} {before} -> {decision.replicas} ({decision.reason}; {inputs})"


def load_scaler_state(api_dir: Path) -> ScalerState:
    data = read_json(api_dir / _STATE_FILE)
    if not isinstance(data, dict):
        return ScalerState()
    started = data.get("started_at")
    recommendations = tuple((float(at), int(count)) for at, count in data.get("recommendations", []))
    return ScalerState(float(started) if started is not None else None, recommendations)


def save_scaler_state(api_dir: Path, decision: Decision, before: int, now: float) -> None:
    previous = read_json(api_dir / _STATE_FILE)
    event: Any = previous.get("last_event") if isinstance(previous, dict) else None
    if decision.replicas != before:
        event = asdict(ScalingEvent(now, before, decision.replicas, decision.inputs))
    data = {
        "started_at": decision.state.started_at,
        "recommendations": [list(item) for item in decision.state.recommendations],
        "last_event": event,
    }
    atomic_write(api_dir / _STATE_FILE, json.dumps(data))
