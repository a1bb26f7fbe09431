"""The interface every backend implements, and the readiness probe they share.

A backend starts, finds and stops replicas; it knows nothing of rollouts or routing. The updater
(`cortexlite.updater`) drives it and the gateway membership together.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from cortexlite.logtail import LogLine, follow, tail_lines
from cortexlite.project import Project
from cortexlite.release import Release

__all__ = ["Backend", "Prepared", "Probe", "Replica", "ReplicaStatus", "probe_readiness", "readiness_answer"]

LogSink = Callable[[str], None]


class ReplicaStatus(StrEnum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    EXITED = "exited"
    STOPPING = "stopping"


@dataclass(frozen=True)
class Replica:
    id: str
    api: str
    version: str
    address: str  # the URL the gateway routes to and the probe reads
    created_at: float
    detail: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Probe:
    status: ReplicaStatus
    reason: str | None = None
    # A named cause the API's status shows, e.g. `error (out of memory)`.
    condition: str | None = None


@dataclass(frozen=True)
class Prepared:
    """What a backend needs to run a project's API: the runtime identity and a note for the user."""

    runtime: str
    created: bool
    detail: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """One engine's way of running replicas (processes, containers, Nomad allocations)."""

    kind: str

    @abstractmethod
    def runtime_for(self, project: Project, api: str) -> str:
        """The runtime identity `prepare` would give, without making anything (for `--dry-run`)."""

    @abstractmethod
    def prepare(self, project: Project, api: str, log: LogSink) -> Prepared:
        """Make what replicas of `api` need (a venv, an image); reused when it exists."""

    @abstractmethod
    def start(self, release: Release, snapshot: Path, spec_file: Path) -> Replica:
        """Start one replica of `release` (returns at once; `probe` tells when it is ready)."""

    @abstractmethod
    def replicas(self, api: str) -> list[Replica]:
        """The API's replicas that exist now (a dead one is still listed until `forget`)."""

    @abstractmethod
    def probe(self, replica: Replica) -> Probe:
        """Whether `replica` is starting, ready, failed (with the reason) or gone."""

    @abstractmethod
    def stop(self, replicas: Sequence[Replica], timeout: float) -> None:
        """SIGTERM-like stop; wait up to `timeout` for the drain, then kill; forget them."""

    @abstractmethod
    def log_file(self, replica: Replica) -> Path | None:
        """Where the replica's log is, when it is a local file."""

    @abstractmethod
    def describe_start(self, release: Release, snapshot: Path, spec_file: Path) -> dict[str, Any]:
        """What `start` would run, as data (`deploy --dry-run`)."""

    def ship(self, snapshot: Path, log: LogSink) -> None:  # noqa: B027 - optional hook
        """Put the snapshot where replicas can read it (storage, for engines on other machines)."""

    def control_address(self, replica: Replica) -> str:
        """Where the control plane reaches the replica (its probes, its metrics): by default its address."""
        return replica.address

    def fetch(self, replica: Replica, path: str) -> tuple[int, str]:
        """GET `path` of the replica: (status, body); status 0 when it does not answer."""
        client = self.__dict__.get("_fetch_client")
        if client is None:
            client = self.__dict__["_fetch_client"] = httpx.Client(timeout=1.0, trust_env=False)
        try:
            answer = client.get(f"{self.control_address(replica)}{path}")
        except httpx.HTTPError:
            return 0, ""
        return answer.status_code, answer.text

    def log_tail(self, replica: Replica, count: int) -> list[str]:
        """The last `count` raw lines the replica logged (default: its log file)."""
        path = self.log_file(replica)
        return tail_lines(path, count) if path is not None else []

    def follow_logs(self, replicas: Callable[[], list[Replica]], stop: Callable[[], bool]) -> Iterator[LogLine]:
        """New lines of every replica `replicas()` lists, from now until `stop()` (default: log files)."""

        def sources() -> dict[str, Path]:
            found = {}
            for replica in replicas():
                path = self.log_file(replica)
                if path is not None:
                    found[replica.id] = path
            return found

        return follow(sources, stop)

    def compute_shortfall(self, release: Release, missing: int) -> str | None:
        """Why `missing` more replicas of `release` could not start now (GPUs held elsewhere); None: they could."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def probe_readiness(client: httpx.Client, address: str) -> Probe:
    """`/readyz` of a live replica: 200 ready; 503 failed (with the runtime's reason), stopping, or starting."""
    try:
        answer = client.get(f"{address}/readyz")
    except httpx.HTTPError:
        return Probe(ReplicaStatus.STARTING, "not answering yet")
    return readiness_answer(answer.status_code, answer.text)


def readiness_answer(code: int, text: str) -> Probe:
    """What `/readyz` answering `code` with `text` means (code 0: no answer)."""
    if code == 200:
        return Probe(ReplicaStatus.READY)
    if code == 0:
        return Probe(ReplicaStatus.STARTING, "not answering yet")
    try:
        body = json.loads(text)
    except ValueError:
        body = {}
    answer_code = code
    status = body.get("status") if isinstance(body, dict) else None
    if status == "failed":
        return Probe(ReplicaStatus.FAILED, str(body.get("error") or "the predictor failed to start"))
    if status == "shutting down":
        return Probe(ReplicaStatus.STOPPING, "shutting down")
    return Probe(ReplicaStatus.STARTING, str(status or f"/readyz answered {answer_code}"))
