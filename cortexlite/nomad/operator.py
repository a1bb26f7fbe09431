"""The operator of a Nomad environment: Cortex's autoscaling through Nomad's scale API.

Nomad heals (restart and reschedule policies) and rolls out; the operator only decides counts.
Every second it reads each API's running allocations (their addresses from Nomad) and sums their
`cortexlite_in_flight_requests`; every decision interval `autoscaling.decide` gives the count,
and a change goes to `POST /v1/job/:id/scale` with the decision's inputs in the event's meta
(what `get` shows as the last scaling). Nomad refuses to scale while a deployment runs (400): the
next decision tries again. The policy comes from the job itself (the resolved spec in its
template), so the operator needs nothing but the cluster: it runs anywhere, a Nomad job included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from cortexlite.autoscaling import Decision, Policy, Sample, decide, policy_for
from cortexlite.errors import CortexliteError, NomadError
from cortexlite.nomad.cluster import Cluster
from cortexlite.nomad.job import GROUP, SPEC_PATH, job_id
from cortexlite.nomad.status import alloc_address
from cortexlite.operator import Watch, event_line, load_scaler_state, parse_in_flight, run_loop, save_scaler_state
from cortexlite.state import EnvState
from cortexlite_runtime.spec import ApiSpec

__all__ = ["NomadOperator", "policy_of_job"]

Log = Callable[[str], None]


def policy_of_job(job: dict[str, Any]) -> Policy | None:
    """The autoscaling policy of a cortexlite job, from the resolved spec its task writes (None: not one)."""
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            for template in task.get("Templates") or []:
                if template.get("DestPath") != SPEC_PATH:
                    continue
                try:
                    resolved = json.loads(template.get("EmbeddedTmpl") or "")
                    return policy_for(ApiSpec.model_validate(resolved["api"]))
                except (ValueError, KeyError, TypeError):
                    return None
    return None


class NomadOperator:
    def __init__(self, cluster: Cluster, log: Log, *, decision_interval: float = 10.0) -> None:
        self.cluster = cluster
        self.log = log
        self.decision_interval = decision_interval
        self.state = EnvState(cluster.settings.home, cluster.environment.name)
        self._watches: dict[str, Watch] = {}
        self._jobs: dict[str, tuple[int, dict[str, Any]]] = {}  # api -> (JobModifyIndex, job)
        self._addresses: dict[str, str | None] = {}  # allocation id -> its http address
        self._http = httpx.Client(timeout=1.0, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def run(self, stop: Callable[[], bool]) -> None:
        name = self.cluster.environment.name
        self.log(
            f"operator of Nomad environment {name} ({self.cluster.nomad.address}) started "
            f"(decisions every {self.decision_interval:g}s)"
        )
        run_loop(self.tick, self.decision_interval, stop)

    def tick(self, *, decide_now: bool) -> None:
        try:
            stubs = self.cluster.api_jobs()
        except NomadError as exc:
            self.log(f"Nomad: {exc}")
            return
        for gone in set(self._watches) - set(stubs):
            del self._watches[gone]
        for name, stub in stubs.items():
            try:
                self._tend(name, stub, decide_now)
            except CortexliteError as exc:
                self.log(f"{name}: {exc}")

    def _tend(self, name: str, stub: dict[str, Any], decide_now: bool) -> None:
        job = self._job(name, stub)
        if job is None:
            return
        watch = self._watches.setdefault(name, Watch())
        allocations, _ = self.cluster.client.allocations(job_id(name))
        running = [alloc for alloc in allocations if alloc.get("ClientStatus") == "running"]
        watch.samples.append(Sample(time.time(), self._in_flight(running)))
        if decide_now:
            self._decide(name, job, watch)

    def _job(self, name: str, stub: dict[str, Any]) -> dict[str, Any] | None:
        index = int(stub.get("JobModifyIndex") or stub.get("ModifyIndex") or 0)
        cached = self._jobs.get(name)
        if cached is None or cached[0] != index or index == 0:
            job = self.cluster.client.job(job_id(name))
            if job is None:
                return None
            self._jobs[name] = (index, job)
        return self._jobs[name][1]

    def _in_flight(self, running: list[dict[str, Any]]) -> float:
        def scrape(alloc: dict[str, Any]) -> float:
            alloc_id = str(alloc.get("ID"))
            if alloc_id not in self._addresses:
                self._addresses[alloc_id] = alloc_address(self.cluster, alloc_id)
            address = self._addresses[alloc_id]
            if address is None:
                return 0.0
            try:
                answer = self._http.get(f"{address}/metrics")
            except httpx.HTTPError:
                return 0.0
            value = parse_in_flight(answer.text) if answer.status_code == 200 else None
            return value or 0.0

        live = {str(alloc.get("ID")) for alloc in running}
        for gone in set(self._addresses) - live:
            del self._addresses[gone]
        if not running:
            return 0.0
        with ThreadPoolExecutor(max_workers=8) as pool:
            return float(sum(pool.map(scrape, running)))

    def _decide(self, name: str, job: dict[str, Any], watch: Watch) -> None:
        policy = policy_of_job(job)
        if policy is None:
            return
        current = self._count(name)
        api_dir = self.state.api_dir(name)
        now = time.time()
        decision = decide(policy, watch.samples, current, load_scaler_state(api_dir), now)
        save_scaler_state(api_dir, decision, current, now)
        if decision.replicas == current:
            return
        self.log(event_line(name, current, decision))
        self._scale(name, current, decision)

    def _count(self, name: str) -> int:
        """The group's count now (the job in the cache may predate the last scaling)."""
        job = self.cluster.client.job(job_id(name)) or {}
        groups = job.get("TaskGroups") or []
        return int(groups[0].get("Count") or 0) if groups else 0

    def _scale(self, name: str, current: int, decision: Decision) -> None:
        meta: dict[str, Any] = {"cortexlite.before": str(current), "cortexlite.after": str(decision.replicas)}
        meta |= {f"cortexlite.input.{key}": f"{value:g}" for key, value in decision.inputs.items()}
        message = f"cortexlite operator: {current} -> {decision.replicas} ({decision.reason})"
        try:
            self.cluster.client.scale(job_id(name), GROUP, decision.replicas, message, meta)
        except NomadError as exc:
            if exc.status == 400 and "deployment" in str(exc):
                self.log(f"autoscaling: {name}: a deployment is running; trying again at the next decision")
                return
            raise
        self.log(f"autoscaling: {name} scaled to {decision.replicas} replica(s) through Nomad")
