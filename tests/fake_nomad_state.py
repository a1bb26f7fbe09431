"""The cluster behind the fake Nomad agent: jobs and their versions, deployments, allocations, variables, logs.

Nomad's rules as the fake plays them (simplified where a client cannot tell the difference):
- a job version changes only when its spec does; a new version whose task groups (ignoring `Count`) or
  `Meta` changed gets a deployment: its allocations are placed at once, then healthy or failed after the
  scripted delay; a change of counts only (register or scale) adjusts allocations without a deployment;
- a failed deployment leaves one failed allocation of its version; with `AutoRevert` and an older stable
  version, the job goes back to that version's spec as a new version and the old allocations keep serving;
- a newer deployment cancels a running one; scaling is refused while one runs.
Every change raises the index; blocking queries wait on `cond` for the job's index to pass theirs.

The methods named after endpoints take `(target, query, body)`: the job ID, allocation ID or variable
path from the URL, the query parameters and the parsed JSON body; they raise `ApiError` for error answers.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests import fake_nomad_shapes as shapes
from tests.fake_nomad_shapes import Alloc, Deployment
from tests.fake_nomad_validation import (
    PLAN_KEYS,
    VALIDATE_KEYS,
    ApiError,
    check_enforce_index,
    check_scale,
    check_variable,
    checked_job,
    multierror,
    refuse_invalid,
    validation_errors,
)
from tests.nomad_schema import load_response

__all__ = ["Cluster", "Script"]

Query = dict[str, str]
_SERVER_FIELDS = (
    "Stop", "Status", "StatusDescription", "Stable", "Version", "SubmitTime", "CreateIndex", "ModifyIndex",
    "JobModifyIndex",
)  # fmt: skip


@dataclass
class Script:
    outcome: str = "successful"  # successful | failed | running (forever)
    after: float = 0.3
    failed_events: list[dict[str, Any]] | None = None


@dataclass
class JobRecord:
    sent: dict[str, Any]  # the Job of the latest registration, as sent
    current: dict[str, Any]  # the job as Nomad holds it (server fields, counts, reverts)
    create_index: int
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployments: list[Deployment] = field(default_factory=list)
    allocs: list[Alloc] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    scaling_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def live(self) -> list[Alloc]:
        return [a for a in self.allocs if a.client_status == "running" and a.desired_status == "run"]

    def cancel_running(self, description: str, index: int) -> None:
        for deployment in self.deployments:
            if deployment.status == "running":
                deployment.settle("cancelled", description, index)


class Cluster:
    def __init__(self, namespace: str, region: str, gpus: int) -> None:
        self.namespace, self.region, self.gpus = namespace, region, gpus
        self.cond = threading.Condition(threading.RLock())
        self.index = 1000
        self.records: dict[str, JobRecord] = {}
        self.job_index: dict[str, int] = {}  # outlives a purge, for blocking queries
        self.variables: dict[str, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], bytearray] = {}
        self.addresses: dict[tuple[str, int], tuple[str, int]] = {}
        self.port_numbers: dict[tuple[str, str], int] = {}
        self.scripts: dict[str, Script] = {}
        self.timers: list[threading.Timer] = []
        self.closed = False

    def close(self) -> None:
        with self.cond:
            self.closed = True
            for timer in self.timers:
                timer.cancel()
            self.cond.notify_all()

    def bump(self, job_id: str | None = None) -> int:
        self.index += 1
        if job_id is not None:
            self.job_index[job_id] = self.index
        self.cond.notify_all()
        return self.index

    def current_index(self, job_id: str | None) -> int:
        return self.job_index.get(job_id, 1) if job_id is not None else self.index

    def wait_past(self, job_id: str | None, index: int, timeout: float) -> None:
        """A blocking query: return once the index of `job_id` (or the cluster's) passes `index`, or at timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.closed and self.current_index(job_id) <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def record(self, job_id: str, query: Query) -> JobRecord:
        record = self.records.get(job_id)
        if record is None or not self._own_namespace(query.get("namespace")):
            raise ApiError(404, "job not found")
        return record

    def _find(self, job_id: str, query: Query) -> JobRecord | None:
        return self.records.get(job_id) if self._own_namespace(query.get("namespace")) else None

    def _own_namespace(self, namespace: str | None) -> bool:
        return namespace in (None, "", self.namespace)

    def _require_namespace(self, namespace: str | None, what: str) -> None:
        if not self._own_namespace(namespace):
            raise ApiError(500, f'{what} is in nonexistent namespace "{namespace}"')

    # --- jobs -------------------------------------------------------------------------------------

    def list_jobs(self, _target: str, query: Query, _body: object) -> list[dict[str, Any]]:
        if query.get("namespace") not in (None, "", "*", self.namespace):
            return []
        prefix, with_meta = query.get("prefix", ""), query.get("meta") == "true"
        return [
            shapes.job_stub(record.current, record.allocs, with_meta)
            for job_id, record in sorted(self.records.items())
            if job_id.startswith(prefix)
        ]

    def read_job(self, job_id: str, query: Query, _body: object) -> dict[str, Any]:
        return copy.deepcopy(self.record(job_id, query).current)

    def validate(self, _target: str, _query: Query, body: object) -> dict[str, Any]:
        job, strict = checked_job(body, None, VALIDATE_KEYS, need_id=False)
        errors = validation_errors(job) + [f"fake-nomad strict check: {issue}" for issue in strict]
        answer: dict[str, Any] = load_response("validate-job-valid")["body"]
        if errors:
            answer.update(ValidationErrors=errors, Error=multierror(errors))
        return answer

    def plan(self, job_id: str, query: Query, body: object) -> dict[str, Any]:
        job, strict = checked_job(body, job_id, PLAN_KEYS)
        refuse_invalid(job, strict)
        record = self._find(job_id, query)
        previous = record.current if record is not None and not record.current.get("Stop") else None
        _default_counts(job)
        with_diff = isinstance(body, dict) and body.get("Diff") is True
        return shapes.plan_answer(job, previous, self.gpus, with_diff, self.index)

    def register(self, job_id: str, query: Query, body: object) -> dict[str, Any]:
        job, strict = checked_job(body, job_id or None)
        refuse_invalid(job, strict)
        self._require_namespace(job.get("Namespace") or query.get("namespace"), f"job {job['ID']!r}")
        if job.get("Region") not in (None, self.region):
            raise ApiError(500, "No path to region")
        record = self.records.get(job["ID"])
        check_enforce_index(body, int(record.current["JobModifyIndex"]) if record is not None else None)
        preserve = isinstance(body, dict) and body.get("PreserveCounts") is True
        return self._store(job, preserve)

    def _store(self, job: dict[str, Any], preserve_counts: bool) -> dict[str, Any]:
        sent = copy.deepcopy(job)
        record = self.records.get(job["ID"])
        previous = record.current if record is not None else None
        if preserve_counts and previous is not None:
            _preserve_counts(job, previous)
        _default_counts(job)
        self._fill_defaults(job)
        if record is not None and not record.current.get("Stop") and _spec(job) == _spec(record.current):
            record.sent = sent  # an unchanged job: no new version, no evaluation
            return shapes.write_answer(self.index, "", int(record.current["JobModifyIndex"]))
        index = self.bump(job["ID"])
        stored = self._new_version(job, record, index)
        if record is None:
            record = self.records[job["ID"]] = JobRecord(sent, stored, index)
        record.sent, record.current, record.versions[stored["Version"]] = sent, stored, stored
        eval_id = self._evaluate(record, "job-register", index)
        unplaceable = {name: entry for name, entry in shapes.placements(stored, self.gpus).items() if entry}
        if stored["Stop"]:
            self._stop(record, index)
        elif unplaceable:
            self._block(record, stored, index, eval_id, unplaceable)
        elif _needs_deployment(previous, stored):
            self._deploy(record, stored, index, eval_id)
        else:
            self._update_in_place(record, stored, eval_id, previous)
        return shapes.write_answer(index, eval_id, index)

    def _fill_defaults(self, job: dict[str, Any]) -> None:
        defaults = {
            "Region": self.region, "Namespace": self.namespace, "Name": job["ID"], "Type": "service",
            "Priority": 50, "Datacenters": ["*"], "NodePool": "default", "AllAtOnce": False,
        }  # fmt: skip
        for key, value in defaults.items():
            if job.get(key) is None:
                job[key] = value

    def _new_version(self, job: dict[str, Any], record: JobRecord | None, index: int) -> dict[str, Any]:
        stored = copy.deepcopy(job)
        stop = bool(job.get("Stop"))
        stored.update(
            Stop=stop, Status="dead" if stop else "running", StatusDescription="", Stable=False,
            Version=int(record.current["Version"]) + 1 if record is not None else 0, SubmitTime=time.time_ns(),
            CreateIndex=record.create_index if record is not None else index, ModifyIndex=index, JobModifyIndex=index,
        )  # fmt: skip
        return stored

    def _evaluate(self, record: JobRecord, trigger: str, index: int) -> str:
        job, now = record.current, time.time_ns()
        evaluation = {
            "ID": str(uuid.uuid4()), "Namespace": self.namespace, "Priority": job.get("Priority"),
            "Type": job.get("Type"), "TriggeredBy": trigger, "JobID": job["ID"], "JobModifyIndex": index,
            "Status": "complete", "StatusDescription": "", "CreateIndex": index, "ModifyIndex": index,
            "CreateTime": now, "ModifyTime": now,
        }  # fmt: skip
        record.evaluations.append(evaluation)
        return str(evaluation["ID"])

    def _block(self, record: JobRecord, job: dict[str, Any], index: int, eval_id: str, failed: dict[str, Any]) -> None:
        """No node has the GPUs: Nomad's blocked evaluation (waiting for capacity) and a deployment that places
        nothing; the previous version's allocations keep running."""
        blocked = copy.deepcopy(record.evaluations[-1])
        blocked.update(
            ID=str(uuid.uuid4()), Status="blocked", StatusDescription="created due to placement conflicts",
            TriggeredBy="queued-allocs", PreviousEval=eval_id, FailedTGAllocs=failed,
            QueuedAllocations={name: int(g["Count"]) for g in job["TaskGroups"] if (name := str(g["Name"])) in failed},
        )  # fmt: skip
        record.evaluations.append(blocked)
        self.scripts[job["ID"]] = Script("running")
        self._deploy(record, job, index, eval_id, place=False)

    def evaluations(self, job_id: str, query: Query, _body: object) -> list[dict[str, Any]]:
        record = self._find(job_id, query)
        return copy.deepcopy(record.evaluations) if record is not None else []

    def deregister(self, job_id: str, query: Query, _body: object) -> dict[str, Any]:
        record = self.record(job_id, query)
        index = self.bump(job_id)
        eval_id = self._evaluate(record, "job-deregister", index)
        if query.get("purge") == "true":
            record.cancel_running("Cancelled because job is stopped", index)
            del self.records[job_id]
        else:
            stored = self._new_version(dict(record.current, Stop=True), record, index)
            record.current = record.versions[stored["Version"]] = stored
            self._stop(record, index)
        answer: dict[str, Any] = load_response("job-deregister")["body"]
        answer.update(EvalID=eval_id, EvalCreateIndex=index, JobModifyIndex=index, Index=index)
        return answer

    def _stop(self, record: JobRecord, index: int) -> None:
        record.cancel_running("Cancelled because job is stopped", index)
        for alloc in record.live():
            alloc.desired_status, alloc.client_status = "stop", "complete"
            alloc.touch(index)

    # --- deployments ------------------------------------------------------------------------------

    def deployment(self, job_id: str, query: Query, _body: object) -> dict[str, Any] | None:
        record = self._find(job_id, query)
        if record is None or not record.deployments:
            return None
        return shapes.deployment_body(record.deployments[-1], self.namespace)

    def _deploy(self, record: JobRecord, job: dict[str, Any], index: int, eval_id: str, place: bool = True) -> None:
        script = self.scripts.pop(job["ID"], Script())
        for old in record.deployments:
            if old.status == "running":
                old.settle("cancelled", "Cancelled due to newer version of job", index)
                record.allocs = [a for a in record.allocs if a.deployment_id != old.id or a.healthy is not None]
        groups = {str(g["Name"]): shapes.deployment_group(_update(job, g), int(g["Count"])) for g in job["TaskGroups"]}
        deployment = Deployment(str(uuid.uuid4()), job["ID"], job["Version"], index, record.create_index, groups,
                                index, index)  # fmt: skip
        record.deployments.append(deployment)
        if not place:
            for entry in deployment.groups.values():
                entry["PlacedAllocs"] = 0
        for group in job["TaskGroups"] if place else []:
            record.allocs += [_alloc(job, group, n, eval_id, deployment.id) for n in range(int(group["Count"]))]
        if script.outcome != "running":
            timer = threading.Timer(script.after, self._finish, (job["ID"], deployment.id, script))
            timer.daemon = True
            self.timers.append(timer)
            timer.start()

    def _finish(self, job_id: str, deployment_id: str, script: Script) -> None:
        with self.cond:
            record = self.records.get(job_id)
            deployment = next((d for d in record.deployments if d.id == deployment_id), None) if record else None
            if self.closed or record is None or deployment is None or deployment.status != "running":
                return
            index = self.bump(job_id)
            if script.outcome == "failed":
                self._fail(record, deployment, script, index)
            else:
                self._succeed(record, deployment, index)

    def _succeed(self, record: JobRecord, deployment: Deployment, index: int) -> None:
        for alloc in record.allocs:
            if alloc.deployment_id == deployment.id:
                alloc.healthy = True
                alloc.touch(index)
        older = [a for a in record.live() if a.version < deployment.version]  # replaced by the rollout
        record.allocs = [a for a in record.allocs if a not in older]
        for group in deployment.groups.values():
            group.update(PlacedAllocs=group["DesiredTotal"], HealthyAllocs=group["DesiredTotal"])
        deployment.settle("successful", "Deployment completed successfully", index)
        record.versions[deployment.version]["Stable"] = True
        if not any(d.version == record.current["Version"] for d in record.deployments):
            record.current["Stable"] = True  # a later version without a deployment of its own

    def _fail(self, record: JobRecord, deployment: Deployment, script: Script, index: int) -> None:
        placed = sorted((a for a in record.allocs if a.deployment_id == deployment.id), key=lambda a: a.index)
        for group in deployment.groups.values():
            group.update(PlacedAllocs=0, HealthyAllocs=0, UnhealthyAllocs=0)
        if not placed:  # nothing to place (count 0): only the deadline can fail it
            deployment.settle("failed", "Failed due to progress deadline", index)
            return
        failed = placed[0]
        newer = [a for a in record.live() if a.version >= deployment.version and a is not failed]
        record.allocs = [a for a in record.allocs if a not in newer]
        failed.client_status, failed.healthy, failed.failed_events = "failed", False, script.failed_events
        failed.touch(index)
        deployment.groups[failed.group].update(PlacedAllocs=1, UnhealthyAllocs=1)
        description = "Failed due to unhealthy allocations"
        if any(group["AutoRevert"] for group in deployment.groups.values()):
            description += self._revert(record, deployment, index)
        deployment.settle("failed", description, index)

    def fail_deployment(self, deployment_id: str, query: Query, body: object) -> dict[str, Any]:
        """`POST /v1/deployment/fail/:id`: a running deployment marked failed (and auto-reverted when set)."""
        if not isinstance(body, dict) or body.get("DeploymentID") not in (None, deployment_id):
            raise ApiError(400, "Deployment ID does not match")
        for record in self.records.values():
            deployment = next((d for d in record.deployments if d.id == deployment_id), None)
            if deployment is None or not self._own_namespace(query.get("namespace")):
                continue
            if deployment.status != "running":
                raise ApiError(500, f"can't fail terminal deployment {deployment_id}")
            index = self.bump(str(record.current["ID"]))
            description = "Deployment marked as failed"
            if any(group["AutoRevert"] for group in deployment.groups.values()):
                description += self._revert(record, deployment, index)
            deployment.settle("failed", description, index)
            for evaluation in record.evaluations:
                if evaluation["Status"] == "blocked":  # a newer evaluation replaces what waited for capacity
                    evaluation.update(Status="cancelled", ModifyIndex=index)
            eval_id = self._evaluate(record, "deployment-watcher", index)
            return {"EvalID": eval_id, "EvalCreateIndex": index, "DeploymentModifyIndex": index, "Index": index}
        raise ApiError(404, f"deployment {deployment_id} not found")

    def _revert(self, record: JobRecord, deployment: Deployment, index: int) -> str:
        stable = [v for v, job in record.versions.items() if job.get("Stable") and v < deployment.version]
        if not stable:
            return " - no stable job version to auto revert to"
        if record.current["Version"] == deployment.version:
            target = copy.deepcopy(record.versions[max(stable)])
            target.update(Version=deployment.version + 1, Stable=True, SubmitTime=time.time_ns(), ModifyIndex=index,
                          JobModifyIndex=index)  # fmt: skip
            record.current = record.versions[target["Version"]] = target
            self._evaluate(record, "deployment-watcher", index)
            for alloc in record.live():
                alloc.version = target["Version"]
                alloc.touch(index)
        return f" - rolling back to job version {max(stable)}"

    def _update_in_place(
        self, record: JobRecord, job: dict[str, Any], eval_id: str, previous: dict[str, Any] | None
    ) -> None:
        """A new version without a deployment: allocations take it in place, and counts are met."""
        job["Stable"] = bool(previous and previous.get("Stable"))
        index = int(job["JobModifyIndex"])
        rolling = next((d for d in record.deployments if d.status == "running"), None)
        current = [a for a in record.live() if rolling is None or a.version >= rolling.version]
        for alloc in current:
            alloc.version = job["Version"]
            alloc.touch(index)
        for group in job["TaskGroups"]:
            live = sorted((a for a in current if a.group == group["Name"]), key=lambda a: a.index)
            for alloc in live[int(group["Count"]) :]:
                alloc.desired_status, alloc.client_status = "stop", "complete"
            taken = {a.index for a in live}
            free = (n for n in range(10**6) if n not in taken)
            record.allocs += [
                _alloc(job, group, next(free), eval_id, None) for _ in range(int(group["Count"]) - len(live))
            ]
        record.allocs = [a for a in record.allocs if a.client_status != "complete"]

    # --- allocations ------------------------------------------------------------------------------

    def allocations(self, job_id: str, query: Query, _body: object) -> list[dict[str, Any]]:
        record = self._find(job_id, query)
        if record is None:
            return []
        job_type = str(record.current.get("Type"))
        return [shapes.allocation_stub(alloc, self.namespace, job_type) for alloc in record.allocs]

    def allocation(self, alloc_id: str, query: Query, _body: object) -> dict[str, Any]:
        if not self._own_namespace(query.get("namespace")):
            raise ApiError(404, "alloc not found")
        record, alloc = self.find_alloc(alloc_id)
        job = record.versions.get(alloc.version, record.current)
        return shapes.allocation_body(alloc, self.namespace, job, self._ports(job, alloc))

    def find_alloc(self, alloc_id: str) -> tuple[JobRecord, Alloc]:
        for record in self.records.values():
            for alloc in record.allocs:
                if alloc.id == alloc_id:
                    return record, alloc
        raise ApiError(404, "alloc not found")

    def _ports(self, job: dict[str, Any], alloc: Alloc) -> list[dict[str, Any]]:
        """`AllocatedResources.Shared.Ports`: "http" as scripted, else 127.0.0.1 and a port from 20000 up."""
        group: dict[str, Any] = next((g for g in job["TaskGroups"] if g["Name"] == alloc.group), {})
        found = []
        for network in group.get("Networks") or []:
            for kind in ("ReservedPorts", "DynamicPorts"):
                for port in network.get(kind) or []:
                    label = str(port.get("Label"))
                    host, value = "127.0.0.1", int(port.get("Value") or 0) if kind == "ReservedPorts" else 0
                    if label == "http" and (alloc.job_id, alloc.index) in self.addresses:
                        host, value = self.addresses[(alloc.job_id, alloc.index)]
                    elif not value:
                        value = self.port_numbers.setdefault((alloc.id, label), 20000 + len(self.port_numbers))
                    found.append({"Label": label, "Value": value, "To": int(port.get("To") or value), "HostIP": host})
        return found

    # --- scaling ----------------------------------------------------------------------------------

    def scale(self, job_id: str, query: Query, body: object) -> dict[str, Any]:
        record = self.record(job_id, query)
        target = body.get("Target") if isinstance(body, dict) else None
        name = target.get("Group") if isinstance(target, dict) else None
        group = next((g for g in record.current["TaskGroups"] if g["Name"] == name), None)
        count, name, message, meta = check_scale(body, group)
        assert group is not None
        if any(d.status == "running" for d in record.deployments):
            raise ApiError(400, "job scaling blocked due to active deployment")
        previous = int(group["Count"])
        index = self.bump(job_id)
        eval_id = self._evaluate(record, "job-scaling", index)
        if count is not None and count != previous:
            job = copy.deepcopy(record.current)
            next(g for g in job["TaskGroups"] if g["Name"] == name)["Count"] = count
            stored = self._new_version(job, record, index)
            self._update_in_place(record, stored, eval_id, record.current)
            record.current = record.versions[stored["Version"]] = stored
        scaling_event = {
            "Message": message, "Meta": meta, "Time": time.time_ns(), "Count": count, "PreviousCount": previous,
            "Error": False, "EvalID": eval_id, "CreateIndex": index,
        }  # fmt: skip
        record.scaling_events.setdefault(name, []).insert(0, scaling_event)
        return shapes.write_answer(index, eval_id, int(record.current["JobModifyIndex"]))

    def scale_status(self, job_id: str, query: Query, _body: object) -> dict[str, Any]:
        record = self.record(job_id, query)
        job, groups = record.current, {}
        for group in job["TaskGroups"]:
            allocs = [a for a in record.allocs if a.group == group["Name"] and a.version == job["Version"]]
            groups[group["Name"]] = {
                "Desired": group["Count"], "Placed": len(allocs),
                "Running": sum(a.client_status == "running" for a in allocs),
                "Healthy": sum(a.healthy is True for a in allocs), "Unhealthy": sum(a.healthy is False for a in allocs),
                "Events": copy.deepcopy(record.scaling_events.get(group["Name"])) or None,
            }  # fmt: skip
        return {
            "JobID": job_id, "Namespace": self.namespace, "JobCreateIndex": job["CreateIndex"],
            "JobModifyIndex": job["JobModifyIndex"], "JobStopped": bool(job.get("Stop")), "TaskGroups": groups,
        }  # fmt: skip

    # --- the service catalog (what Traefik's Nomad provider reads) ---------------------------------

    def services(self, _target: str, query: Query, _body: object) -> list[dict[str, Any]]:
        """`GET /v1/services`: one entry per namespace, each service's name and the union of its tags."""
        if not self._own_namespace(query.get("namespace")):
            return []
        tags: dict[str, set[str]] = {}
        for registration in self._registrations():
            tags.setdefault(registration["ServiceName"], set()).update(registration["Tags"])
        services = [{"ServiceName": name, "Tags": sorted(found)} for name, found in sorted(tags.items())]
        return [{"Namespace": self.namespace, "Services": services}] if services else []

    def service(self, name: str, query: Query, _body: object) -> list[dict[str, Any]]:
        """`GET /v1/service/:name`: the registrations of running allocations (the address of their port)."""
        if not self._own_namespace(query.get("namespace")):
            return []
        return [registration for registration in self._registrations() if registration["ServiceName"] == name]

    def _registrations(self) -> list[dict[str, Any]]:
        found = []
        for record in self.records.values():
            if record.current.get("Stop"):
                continue
            for alloc in record.live():
                job = record.versions.get(alloc.version, record.current)
                group = next((g for g in job["TaskGroups"] if g["Name"] == alloc.group), {})
                ports = {port["Label"]: port for port in self._ports(job, alloc)}
                for service in group.get("Services") or []:
                    port = ports.get(str(service.get("PortLabel")))
                    if service.get("Provider") != "nomad" or port is None:
                        continue
                    found.append({
                        "ID": f"_nomad-task-{alloc.id}-group-{alloc.group}-{service['Name']}-{port['Label']}",
                        "ServiceName": service["Name"], "Namespace": self.namespace, "NodeID": shapes.NODE_ID,
                        "Datacenter": "dc1", "JobID": alloc.job_id, "AllocID": alloc.id,
                        "Tags": list(service.get("Tags") or []), "Address": port["HostIP"], "Port": port["Value"],
                        "CreateIndex": alloc.create_index, "ModifyIndex": alloc.modify_index,
                    })  # fmt: skip
        return found

    # --- variables, logs --------------------------------------------------------------------------

    def put_variable(self, path: str, query: Query, body: object) -> dict[str, Any]:
        self._require_namespace(query.get("namespace"), f"variable {path!r}")
        items = check_variable(path, body)
        if "cas" in query:  # check-and-set: only over the ModifyIndex the writer read (0: only a new variable)
            current = self.variables.get(path)
            if _cas_index(query["cas"]) != (current["ModifyIndex"] if current else 0):
                raise ApiError(409, json.dumps(current or {"Path": path}))  # Nomad answers with the conflicting one
        index, now = self.bump(), time.time_ns()
        existing = self.variables.get(path) or {"CreateIndex": index, "CreateTime": now}
        self.variables[path] = {
            "Namespace": self.namespace, "Path": path, "CreateIndex": existing["CreateIndex"], "ModifyIndex": index,
            "CreateTime": existing["CreateTime"], "ModifyTime": now, "Items": items,
        }  # fmt: skip
        return copy.deepcopy(self.variables[path])

    def get_variable(self, path: str, query: Query, _body: object) -> dict[str, Any]:
        variable = self.variables.get(path)
        if variable is None or not self._own_namespace(query.get("namespace")):
            raise ApiError(404, "variable not found")
        return copy.deepcopy(variable)

    def delete_variable(self, path: str, query: Query, _body: object) -> None:
        self._require_namespace(query.get("namespace"), f"variable {path!r}")
        self.variables.pop(path, None)
        self.bump()

    def add_log(self, job_id: str, stream: str, data: bytes) -> None:
        with self.cond:
            self.logs.setdefault((job_id, stream), bytearray()).extend(data)
            self.cond.notify_all()

    def log_data(self, job_id: str, stream: str, size: int = -1, timeout: float = 0.0) -> bytes:
        """The job's log so far; waits up to `timeout` for it to grow past `size` bytes."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.logs.get((job_id, stream), b"")) <= size and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return bytes(self.logs.get((job_id, stream), b""))


def _cas_index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f"failed to parse cas: {text!r}") from None


def _alloc(job: dict[str, Any], group: dict[str, Any], position: int, eval_id: str, deployment: str | None) -> Alloc:
    tasks = [str(task.get("Name")) for task in group.get("Tasks") or []]
    index = int(job["JobModifyIndex"])
    return Alloc(str(uuid.uuid4()), eval_id, job["ID"], str(group["Name"]), position, int(job["Version"]), tasks,
                 deployment, index, index)  # fmt: skip


def _spec(job: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in job.items() if key not in _SERVER_FIELDS}


def _shape(job: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """What makes Nomad replace allocations: the job's Meta and its groups apart from their counts."""
    groups = [{key: value for key, value in g.items() if key != "Count"} for g in job.get("TaskGroups") or []]
    return job.get("Meta"), groups


def _needs_deployment(previous: dict[str, Any] | None, job: dict[str, Any]) -> bool:
    if job.get("Type") != "service" or (job.get("Update") or {}).get("MaxParallel") == 0:
        return False
    return previous is None or bool(previous.get("Stop")) or _shape(previous) != _shape(job)


def _update(job: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
    """The group's update strategy: the job's, overridden key by key by the group's."""
    merged = dict(job.get("Update") or {})
    merged.update({key: value for key, value in (group.get("Update") or {}).items() if value is not None})
    return merged


def _preserve_counts(job: dict[str, Any], previous: dict[str, Any]) -> None:
    counts = {g["Name"]: g["Count"] for g in previous.get("TaskGroups") or []}
    for group in job.get("TaskGroups") or []:
        if group.get("Name") in counts:
            group["Count"] = counts[group["Name"]]


def _default_counts(job: dict[str, Any]) -> None:
    for group in job.get("TaskGroups") or []:
        if group.get("Count") is None:
            low = (group.get("Scaling") or {}).get("Min")
            group["Count"] = low if low is not None else 1
