"""The experiments: interleaved wrk rounds against started servers, and idle memory.

Every loop is bounded: a fixed number of rounds x servers x connection counts, each wrk run
bounded in time, each server start bounded by its readiness timeout.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .control import ControlResults, run_control
from .docker_suite import DockerResults, run_docker
from .errors import BenchError
from .load import PAYLOAD, LoadResult, run_wrk, write_script
from .machine import load_average, machine_facts, runtime_fingerprint
from .memory import tree_pss_mb
from .reload_suite import ReloadResults, run_reload
from .servers import PROJECTS, Server, ceiling_spec, running, runtime_spec
from .storage_suite import StorageResults, run_storage

__all__ = [
    "BATCH_OFF",
    "BATCH_ON",
    "CEILING",
    "RUNTIME",
    "THREADED",
    "BenchSettings",
    "Results",
    "Sample",
    "run_suite",
]

CEILING = "ceiling"
RUNTIME = "runtime"
# The runtime with predict always handed to its thread: what the hop costs without the inline path.
THREADED = "runtime threaded"
BATCH_OFF = "batching off"
BATCH_ON = "batching on"

Progress = Callable[[str], None]
# `BENCH_SUITES=control make bench` runs one part; the report leaves out what did not run.
SUITES = ("runtime", "batching", "control", "docker", "storage", "reload")


@dataclass(frozen=True)
class BenchSettings:
    seconds: int = 10
    rounds: int = 3
    connections: tuple[int, ...] = (1, 8, 64)
    batch_connections: int = 64
    warmup_seconds: int = 1
    idle_pause: float = 2.0
    gateway_connections: int = 64
    suites: tuple[str, ...] = SUITES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BenchSettings:
        env = os.environ if environ is None else environ
        return cls(
            seconds=_positive(env, "BENCH_SECONDS", 10),
            rounds=_positive(env, "BENCH_ROUNDS", 3),
            suites=_suites(env.get("BENCH_SUITES", "")),
        )


@dataclass(frozen=True)
class Sample:
    """One wrk run: which experiment and server, at how many connections, in which round."""

    experiment: str
    server: str
    connections: int
    round: int
    result: LoadResult


@dataclass
class Results:
    settings: BenchSettings
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    machine: dict[str, str] = field(default_factory=machine_facts)
    load_before: str = field(default_factory=load_average)
    load_after: str = ""
    runtime_after: str = ""
    samples: list[Sample] = field(default_factory=list)
    memory_mb: dict[str, list[float]] = field(default_factory=dict)
    control: ControlResults | None = None
    docker: DockerResults | None = None
    storage: StorageResults | None = None
    reload: ReloadResults | None = None


def run_suite(settings: BenchSettings, progress: Progress) -> Results:
    results = Results(settings)
    with tempfile.TemporaryDirectory(prefix="cortexlite-bench-") as tmp:
        runner = _Runner(settings, Path(tmp), results, progress)
        if "runtime" in settings.suites:
            for index in range(settings.rounds):
                progress(f"round {index + 1}/{settings.rounds}: ceiling vs runtime")
                runner.latency_round(index)
        if "batching" in settings.suites:
            for index in range(settings.rounds):
                progress(f"round {index + 1}/{settings.rounds}: batching off vs on")
                runner.batching_round(index)
        if "control" in settings.suites:
            progress("control plane: cold start, no-change redeploy, gateway hop")
            results.control = run_control(
                Path(tmp) / "control", runner.script, rounds=settings.rounds, seconds=settings.seconds,
                connections=settings.gateway_connections, progress=progress,
            )  # fmt: skip
        if "docker" in settings.suites:
            progress("docker: cold start against a bare `docker run`")
            results.docker = run_docker(Path(tmp) / "docker", rounds=settings.rounds, progress=progress)
        if "storage" in settings.suites:
            progress("storage: our S3 client against the bare minio SDK, on SeaweedFS")
            results.storage = run_storage(Path(tmp) / "storage", progress=progress)
        if "reload" in settings.suites:
            progress("reload: file write -> first answer from the new code, against a redeploy")
            results.reload = run_reload(Path(tmp) / "reload", progress=progress)
    results.load_after = load_average()
    results.runtime_after = runtime_fingerprint()
    return results


class _Runner:
    def __init__(self, settings: BenchSettings, workdir: Path, results: Results, progress: Progress) -> None:
        self.settings = settings
        self.workdir = workdir
        self.results = results
        self.progress = progress
        self.script = write_script(workdir)

    def latency_round(self, index: int) -> None:
        """Both servers up at once; for each connection count, ceiling then runtime, back to back."""
        iris = PROJECTS / "iris"
        specs = [
            ceiling_spec(CEILING, iris),
            runtime_spec(RUNTIME, iris),
            runtime_spec(THREADED, iris, extra_env={"CORTEXLITE_INLINE_PREDICT_LIMIT": "0"}),
        ]
        with running(specs, self.workdir) as servers:
            self._idle_memory(servers)
            self._warm_up(servers)
            for connections in self.settings.connections:
                for server in servers:
                    self._measure(server, "latency", connections, index)

    def batching_round(self, index: int) -> None:
        specs = [
            runtime_spec(BATCH_OFF, PROJECTS / "fixed_cost"),
            runtime_spec(BATCH_ON, PROJECTS / "fixed_cost_batched"),
        ]
        with running(specs, self.workdir) as servers:
            self._warm_up(servers)
            for server in servers:
                self._measure(server, "batching", self.settings.batch_connections, index)

    def _idle_memory(self, servers: Sequence[Server]) -> None:
        """PSS of each server with the model loaded, after one request and a pause."""
        for server in servers:
            _post_once(server)
        time.sleep(self.settings.idle_pause)
        for server in servers:
            mb = tree_pss_mb(server.pid)
            self.results.memory_mb.setdefault(server.spec.name, []).append(mb)
            self.progress(f"  {server.spec.name:<12} idle PSS {mb:.1f} MB")

    def _warm_up(self, servers: Sequence[Server]) -> None:
        for server in servers:
            run_wrk(server.url, self.script, 8, self.settings.warmup_seconds)

    def _measure(self, server: Server, experiment: str, connections: int, index: int) -> None:
        _check_alive(server)
        result = run_wrk(server.url, self.script, connections, self.settings.seconds)
        _check_alive(server)
        self.results.samples.append(Sample(experiment, server.spec.name, connections, index, result))
        errors = f", {result.errors} errors" if result.errors else ""
        self.progress(
            f"  {server.spec.name:<12} c={connections:<3} {result.requests_per_second:9.1f} req/s  "
            f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms{errors}"
        )


def _post_once(server: Server) -> None:
    request = urllib.request.Request(
        server.url, data=PAYLOAD.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
    except OSError as exc:
        raise BenchError(f"{server.spec.name}: the warm-up request failed: {exc}") from exc
    try:
        json.loads(answer)
    except ValueError as exc:
        raise BenchError(f"{server.spec.name}: the warm-up answer is not JSON: {answer[:200]!r}") from exc


def _check_alive(server: Server) -> None:
    code = server.process.poll()
    if code is not None:
        raise BenchError(f"{server.spec.name} (pid {server.pid}) exited with code {code} during the benchmark")


def _suites(raw: str) -> tuple[str, ...]:
    if not raw.strip():
        return SUITES
    chosen = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        raise BenchError(f"BENCH_SUITES: unknown {', '.join(unknown)} (known: {', '.join(SUITES)})")
    return chosen


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BenchError(f"{name}: expected a positive integer (got {raw!r})") from None
    if value < 1:
        raise BenchError(f"{name}: expected a positive integer (got {value})")
    return value
