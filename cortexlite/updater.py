"""The rollout loop: drives a backend and the gateway membership with `rollout.next_step`.

Invariants, for every backend:
- a replica joins routing only after its `/readyz` answered 200;
- a replica leaves routing (confirmed by Traefik's API) before it is told to stop, and is given
  its drain time (shutdown delay + grace period) before it is killed;
- a new replica that fails, exits or is not ready in time stops the loop with `ReplicaFailure`,
  carrying its reason and last log lines; the caller rolls back (a roll to the previous release).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from cortexlite.backends.base import Backend, Replica, ReplicaStatus
from cortexlite.errors import ComputeUnavailable, CortexliteError
from cortexlite.gateway import Membership
from cortexlite.logtail import render
from cortexlite.release import Release
from cortexlite.rollout import Fleet, Step, budget, next_step
from cortexlite.state import EnvState

__all__ = ["DEFAULT_READY_TIMEOUT_S", "STOP_TIMEOUT_S", "ReplicaFailure", "Updater"]

DEFAULT_READY_TIMEOUT_S = 600.0
# The runtime's default shutdown delay (2 s) + grace period (30 s) + 5 s.
STOP_TIMEOUT_S = 37.0
LOG_LINES = 20
_POLL_S = 0.02

Report = Callable[[str], None]


@dataclass
class ReplicaFailure(CortexliteError):
    replica: Replica
    reason: str
    log_lines: list[str]

    def __str__(self) -> str:
        return f"replica {self.replica.id} of {self.replica.api}: {self.reason}"


class Updater:
    def __init__(
        self,
        backend: Backend,
        membership: Membership,
        state: EnvState,
        report: Report,
        *,
        ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
        stop_timeout: float = STOP_TIMEOUT_S,
    ) -> None:
        self.backend = backend
        self.membership = membership
        self.state = state
        self.report = report
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._stopping: list[threading.Thread] = []
        self._retired: set[str] = set()

    def roll(self, release: Release, snapshot: Path, target: int, replace: Collection[str] = ()) -> None:
        """Bring the API to `target` ready replicas of `release`, all in routing, and no others."""
        api, endpoint = release.name, release.api.endpoint
        spec_file = self.state.spec_file(release)
        limits = budget(release.api.update_strategy, target)
        deadlines: dict[str, float] = {}
        self._clean(api, endpoint, release.api.networking.timeout)
        while True:
            replicas = [r for r in self.backend.replicas(api) if r.id not in self._retired]
            routed = set(self.membership.members(api))
            new = [r for r in replicas if r.version == release.version and r.id not in replace]
            old = [r for r in replicas if r not in new]
            for replica in new:
                if replica.address not in routed and self._ready(replica, deadlines):
                    routed.add(replica.address)
                    timeout = release.api.networking.timeout
                    self.membership.set(api, endpoint, sorted(routed), prediction_timeout=timeout)
                    self.report(f"{api}: replica {replica.id} is ready and serving")
            new_starting = [r for r in new if r.address not in routed]
            old_serving = [r for r in old if r.address in routed]
            fleet = Fleet(
                target=target,
                old_serving=len(old_serving),
                old_idle=len(old) - len(old_serving),
                new_serving=len(new) - len(new_starting),
                new_starting=len(new_starting),
            )
            step = next_step(fleet, limits)
            if step.done:
                break
            self._retire(api, endpoint, routed, _chosen(step, old, new, routed))
            for _ in range(step.start):
                replica = self._start(release, snapshot, spec_file, surge=bool(old))
                deadlines[replica.id] = time.monotonic() + self.ready_timeout
                self.report(f"{api}: starting replica {replica.id} ({replica.address})")
            if step.idle:
                time.sleep(_POLL_S)
        self.finish()

    def retire_all(self, api: str) -> None:
        """Take every replica of `api` out of routing, then stop them (used by delete)."""
        self.membership.remove(api)
        replicas = self.backend.replicas(api)
        if replicas:
            self.report(f"{api}: stopping {len(replicas)} replica(s)")
            self.backend.stop(replicas, self.stop_timeout)

    def finish(self) -> None:
        """Wait for the replicas this updater stopped to finish draining."""
        for thread in self._stopping:
            thread.join()
        self._stopping.clear()

    # --- steps ----------------------------------------------------------------------------------

    def _ready(self, replica: Replica, deadlines: dict[str, float]) -> bool:
        probe = self.backend.probe(replica)
        if probe.status is ReplicaStatus.READY:
            return True
        if probe.status in (ReplicaStatus.FAILED, ReplicaStatus.EXITED, ReplicaStatus.STOPPING):
            raise self._failure(replica, probe.reason or probe.status.value)
        deadline = deadlines.setdefault(replica.id, time.monotonic() + self.ready_timeout)
        if time.monotonic() > deadline:
            raise self._failure(replica, f"not ready after {self.ready_timeout:g}s ({probe.reason})")
        return False

    def _start(self, release: Release, snapshot: Path, spec_file: Path, *, surge: bool) -> Replica:
        try:
            return self.backend.start(release, snapshot, spec_file)
        except ComputeUnavailable as exc:
            draining = [thread for thread in self._stopping if thread.is_alive()]
            if draining:
                # Replicas this update retired still hold their GPUs until they have drained.
                self.report(f"{release.name}: waiting for {len(draining)} draining replica(s) to free their GPUs")
                self.finish()
                return self._start(release, snapshot, spec_file, surge=surge)
            if not surge:
                raise
            raise ComputeUnavailable(
                f"{exc}. An update starts new replicas before it stops old ones (max_surge): free GPUs, or "
                "replace replicas in place with `update_strategy: {max_surge: 0, max_unavailable: 1}`"
            ) from exc

    def _retire(self, api: str, endpoint: str, routed: set[str], replicas: list[Replica]) -> None:
        if not replicas:
            return
        leaving = {r.address for r in replicas} & routed
        if leaving:
            routed -= leaving
            self.membership.set(api, endpoint, sorted(routed))
        for replica in replicas:
            self._retired.add(replica.id)
            self.report(f"{api}: replica {replica.id} left routing; draining")
        thread = threading.Thread(
            target=self.backend.stop, args=(replicas, self.stop_timeout), name=f"stop-{api}", daemon=True
        )
        thread.start()
        self._stopping.append(thread)

    def _clean(self, api: str, endpoint: str, prediction_timeout: float) -> None:
        """Before a roll: dead, failed or draining replicas out, routing reduced to replicas that exist."""
        replicas = self.backend.replicas(api)
        broken = []
        for replica in replicas:
            probe = self.backend.probe(replica)
            # A draining replica was told to stop by an update that was interrupted: it goes too.
            if probe.status in (ReplicaStatus.EXITED, ReplicaStatus.FAILED, ReplicaStatus.STOPPING):
                self.report(f"{api}: removing replica {replica.id} ({probe.reason})")
                broken.append(replica)
        alive = {r.address for r in replicas if r not in broken}
        routed = set(self.membership.members(api))
        if routed or self.membership.has(api):
            # Also rewrites the router when the endpoint changed; a new API gets its file with its first replica.
            self.membership.set(api, endpoint, sorted(routed & alive), prediction_timeout=prediction_timeout)
        if broken:
            self.backend.stop(broken, timeout=5)

    def _failure(self, replica: Replica, reason: str) -> ReplicaFailure:
        lines = [render(line)[0] for line in self.backend.log_tail(replica, LOG_LINES)]
        return ReplicaFailure(replica, reason, lines)


def _chosen(step: Step, old: list[Replica], new: list[Replica], routed: set[str]) -> list[Replica]:
    """Which replicas `step` retires: idle before serving, the oldest old ones, the newest new ones."""
    old_idle = [r for r in old if r.address not in routed]
    old_serving = [r for r in old if r.address in routed]
    new_starting = sorted((r for r in new if r.address not in routed), key=lambda r: -r.created_at)
    new_serving = sorted((r for r in new if r.address in routed), key=lambda r: -r.created_at)
    return (
        old_idle[: step.retire_old_idle]
        + old_serving[: step.retire_old_serving]
        + new_starting[: step.retire_new_starting]
        + new_serving[: step.retire_new_serving]
    )
