"""Response bodies of the fake Nomad agent: the recorded reference bodies, with fields filled from its state.

Every body starts as a copy of a recorded one (`tests/data/nomad/responses/*.json`), so keys, nesting and
the fields a client never reads stay as Nomad sends them; the fake overwrites what its state decides.
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.nomad_schema import load_response

__all__ = [
    "Alloc",
    "Deployment",
    "allocation_body",
    "allocation_stub",
    "deployment_body",
    "deployment_group",
    "event",
    "failed_placement",
    "iso_time",
    "job_stub",
    "plan_answer",
    "write_answer",
]

NODE_ID = "5e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
NODE_NAME = "fake-nomad-node"
_GAVE_UP = 'Exceeded allowed attempts 2 in interval 30m0s and mode is "fail"'
DEFAULT_FAILED_EVENTS: list[dict[str, Any]] = [
    {
        "Type": "Terminated",
        "DisplayMessage": 'Exit Code: 1, Exit Message: "Docker container exited with non-zero exit code: 1"',
        "Details": {"exit_code": "1", "signal": "0", "oom_killed": "false"},
        "ExitCode": 1,
    },
    {
        "Type": "Not Restarting",
        "DisplayMessage": _GAVE_UP,
        "Details": {"fails_task": "true", "restart_reason": _GAVE_UP},
        "FailsTask": True,
        "RestartReason": _GAVE_UP,
    },
]


@dataclass(eq=False)
class Deployment:
    id: str
    job_id: str
    version: int
    job_modify_index: int
    job_create_index: int
    groups: dict[str, dict[str, Any]]
    create_index: int
    modify_index: int
    status: str = "running"
    description: str = "Deployment is running"
    create_time: int = field(default_factory=time.time_ns)
    modify_time: int = field(default_factory=time.time_ns)

    def settle(self, status: str, description: str, index: int) -> None:
        self.status, self.description, self.modify_index, self.modify_time = status, description, index, time.time_ns()


@dataclass(eq=False)
class Alloc:
    id: str
    eval_id: str
    job_id: str
    group: str
    index: int
    version: int
    tasks: list[str]
    deployment_id: str | None
    create_index: int
    modify_index: int
    client_status: str = "running"
    desired_status: str = "run"
    healthy: bool | None = None
    failed_events: list[dict[str, Any]] | None = None
    create_time: int = field(default_factory=time.time_ns)
    modify_time: int = field(default_factory=time.time_ns)

    @property
    def name(self) -> str:
        return f"{self.job_id}.{self.group}[{self.index}]"

    def touch(self, index: int) -> None:
        self.modify_index, self.modify_time = index, time.time_ns()


def iso_time(nanoseconds: int | None = None) -> str:
    stamp = nanoseconds if nanoseconds is not None else time.time_ns()
    moment = datetime.fromtimestamp(stamp / 1e9, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp % 1_000_000_000:09d}Z"


def write_answer(index: int, eval_id: str, job_modify_index: int) -> dict[str, Any]:
    """The answer of register, scale and deregister (`job-register.json`)."""
    body: dict[str, Any] = load_response("job-register")["body"]
    body.update(EvalID=eval_id, EvalCreateIndex=index if eval_id else 0, JobModifyIndex=job_modify_index, Index=index)
    return body


def deployment_body(deployment: Deployment, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = load_response("deployment-running")["body"]
    body.update(
        ID=deployment.id, Namespace=namespace, JobID=deployment.job_id, JobVersion=deployment.version,
        JobModifyIndex=deployment.job_modify_index, JobSpecModifyIndex=deployment.job_modify_index,
        JobCreateIndex=deployment.job_create_index, TaskGroups=copy.deepcopy(deployment.groups),
        Status=deployment.status, StatusDescription=deployment.description, CreateIndex=deployment.create_index,
        ModifyIndex=deployment.modify_index, CreateTime=deployment.create_time, ModifyTime=deployment.modify_time,
    )  # fmt: skip
    return body


def deployment_group(update: dict[str, Any], count: int) -> dict[str, Any]:
    """A deployment's `TaskGroups.<name>` entry at the start of the rollout."""
    entry: dict[str, Any] = load_response("deployment-running")["body"]["TaskGroups"]["api"]
    deadline = int(update.get("ProgressDeadline") or 600_000_000_000)
    entry.update(
        AutoRevert=bool(update.get("AutoRevert")), AutoPromote=bool(update.get("AutoPromote")),
        ProgressDeadline=deadline, RequireProgressBy=iso_time(time.time_ns() + deadline), Promoted=False,
        PlacedCanaries=None, DesiredCanaries=int(update.get("Canary") or 0), DesiredTotal=count,
        PlacedAllocs=count, HealthyAllocs=0, UnhealthyAllocs=0,
    )  # fmt: skip
    return entry


def allocation_stub(alloc: Alloc, namespace: str, job_type: str) -> dict[str, Any]:
    body: dict[str, Any] = load_response("job-allocations")["body"][0]
    body.update(_alloc_fields(alloc, namespace))
    body["JobType"] = job_type
    return body


def allocation_body(alloc: Alloc, namespace: str, job: dict[str, Any], ports: list[dict[str, Any]]) -> dict[str, Any]:
    """`GET /v1/allocation/:id`; `ports` are `AllocatedResources.Shared.Ports` entries (Label, Value, To, HostIP)."""
    body: dict[str, Any] = load_response("allocation-read")["body"]
    body.update(_alloc_fields(alloc, namespace))
    body["Job"] = copy.deepcopy(job)
    group: dict[str, Any] = next((g for g in job.get("TaskGroups") or [] if g.get("Name") == alloc.group), {})
    networks = [_network(ports)] if ports else None
    allocated = body["AllocatedResources"]
    allocated["Tasks"] = {task["Name"]: _allocated_task(task) for task in group.get("Tasks") or []}
    allocated["TaskLifecycles"] = {task["Name"]: task.get("Lifecycle") for task in group.get("Tasks") or []}
    allocated["Shared"].update(Networks=networks, Ports=ports)
    body["Resources"]["Networks"] = copy.deepcopy(networks)
    body["TaskResources"] = {name: _legacy_resources(task) for name, task in allocated["Tasks"].items()}
    body["Metrics"]["ScoreMetaData"][0]["NodeID"] = NODE_ID
    return body


def _alloc_fields(alloc: Alloc, namespace: str) -> dict[str, Any]:
    client = {"running": "Tasks are running", "failed": "Failed tasks", "complete": "All tasks have completed"}
    status = None
    if alloc.healthy is not None:
        status = {
            "Healthy": alloc.healthy, "Timestamp": iso_time(alloc.modify_time), "Canary": False,
            "ModifyIndex": alloc.modify_index,
        }  # fmt: skip
    return {
        "ID": alloc.id, "EvalID": alloc.eval_id, "Name": alloc.name, "Namespace": namespace, "NodeID": NODE_ID,
        "NodeName": NODE_NAME, "JobID": alloc.job_id, "JobVersion": alloc.version, "TaskGroup": alloc.group,
        "DesiredStatus": alloc.desired_status, "ClientStatus": alloc.client_status,
        "ClientDescription": client.get(alloc.client_status, ""), "DeploymentID": alloc.deployment_id or "",
        "DeploymentStatus": status, "TaskStates": {task: _task_state(alloc) for task in alloc.tasks},
        "CreateIndex": alloc.create_index, "ModifyIndex": alloc.modify_index, "CreateTime": alloc.create_time,
        "ModifyTime": alloc.modify_time,
    }  # fmt: skip


def _task_state(alloc: Alloc) -> dict[str, Any]:
    state: dict[str, Any] = load_response("allocation-read")["body"]["TaskStates"]["predictor"]
    started = iso_time(alloc.create_time)
    if alloc.client_status == "failed":
        events = [event(**entry) for entry in alloc.failed_events or DEFAULT_FAILED_EVENTS]
        finished = iso_time(alloc.modify_time)
        state.update(State="dead", Failed=True, Restarts=2, StartedAt=started, FinishedAt=finished, Events=events)
    elif alloc.client_status == "complete":
        state.update(State="dead", Failed=False, StartedAt=started, FinishedAt=iso_time(alloc.modify_time))
    else:
        state.update(StartedAt=started)
        for entry in state["Events"]:
            entry["Time"] = alloc.create_time
    return dict(state)


def event(**fields: Any) -> dict[str, Any]:
    """A full task event (every key Nomad sends), with `fields` over blank values."""
    blank: dict[str, Any] = load_response("allocation-read")["body"]["TaskStates"]["predictor"]["Events"][0]
    for key, value in blank.items():
        blank[key] = {} if isinstance(value, dict) else type(value)()
    blank["Time"] = time.time_ns()
    blank.update(copy.deepcopy(fields))
    return dict(blank)


def _network(ports: list[dict[str, Any]]) -> dict[str, Any]:
    dynamic = [{"Label": p["Label"], "Value": p["Value"], "To": p["To"], "HostNetwork": "default"} for p in ports]
    return {"Mode": "host", "IP": ports[0]["HostIP"], "DynamicPorts": dynamic}


def _allocated_task(task: dict[str, Any]) -> dict[str, Any]:
    resources = task.get("Resources") or {}
    devices = []
    for device in resources.get("Devices") or []:
        vendor, _, kind = str(device.get("Name", "")).rpartition("/")
        ids = [f"GPU-{uuid.uuid4()}" for _ in range(int(device.get("Count") or 1))]
        devices.append({"Vendor": vendor or "nvidia", "Type": kind, "Name": "Fake Tesla T4", "DeviceIDs": ids})
    memory = {"MemoryMB": int(resources.get("MemoryMB") or 300), "MemoryMaxMB": int(resources.get("MemoryMaxMB") or 0)}
    cpu = {"CpuShares": int(resources.get("CPU") or 100), "ReservedCores": None}
    return {"Cpu": cpu, "Memory": memory, "Networks": None, "Devices": devices or None}


def _legacy_resources(allocated: dict[str, Any]) -> dict[str, Any]:
    legacy: dict[str, Any] = load_response("allocation-read")["body"]["TaskResources"]["predictor"]
    legacy.update(CPU=allocated["Cpu"]["CpuShares"], MemoryMB=allocated["Memory"]["MemoryMB"], Devices=None)
    return dict(legacy)


def job_stub(job: dict[str, Any], allocs: list[Alloc], with_meta: bool) -> dict[str, Any]:
    """An entry of `GET /v1/jobs`."""
    summary: dict[str, dict[str, int]] = {}
    for group in job.get("TaskGroups") or []:
        counts = dict.fromkeys(("Queued", "Complete", "Failed", "Running", "Starting", "Lost", "Unknown"), 0)
        for alloc in allocs:
            if alloc.group == group.get("Name"):
                key = {"running": "Running", "failed": "Failed", "complete": "Complete"}[alloc.client_status]
                counts[key] += 1
        summary[str(group.get("Name"))] = counts
    stub = {key: job.get(key) for key in _STUB_KEYS}
    stub["JobSummary"] = {
        "JobID": job["ID"], "Namespace": job.get("Namespace"), "Summary": summary, "Children": None,
        "CreateIndex": job.get("CreateIndex"), "ModifyIndex": job.get("ModifyIndex"),
    }  # fmt: skip
    if with_meta:
        stub["Meta"] = job.get("Meta")
    return stub


_STUB_KEYS = (
    "ID", "ParentID", "Name", "Namespace", "Datacenters", "NodePool", "Type", "Priority", "Periodic",
    "ParameterizedJob", "Stop", "Status", "StatusDescription", "Version", "CreateIndex", "ModifyIndex",
    "JobModifyIndex", "SubmitTime",
)  # fmt: skip


def failed_placement(reason: dict[str, int], exhausted: bool, failures: int) -> dict[str, Any]:
    """A `FailedTGAllocs.<group>` entry (`job-plan-unplaceable.json`)."""
    metrics: dict[str, Any] = load_response("job-plan-unplaceable")["body"]["FailedTGAllocs"]["api"]
    metrics.update(NodesEvaluated=1, NodesInPool=1, NodesAvailable={"dc1": 1}, CoalescedFailures=max(0, failures - 1))
    if exhausted:
        metrics.update(NodesFiltered=0, ConstraintFiltered=None, NodesExhausted=1, DimensionExhausted=reason)
    else:
        metrics.update(NodesFiltered=1, ConstraintFiltered=reason)
    return dict(metrics)


# --- plan ---------------------------------------------------------------------------------------

_UPDATE_KEYS = (
    "Ignore", "Place", "Migrate", "Stop", "InPlaceUpdate", "DestructiveUpdate", "Canary", "Preemptions",
    "Disconnect", "Reconnect", "RescheduleNow", "RescheduleLater",
)  # fmt: skip
_UPDATE_WORDS = {
    "Place": "create", "DestructiveUpdate": "create/destroy update", "InPlaceUpdate": "in-place update",
    "Ignore": "ignore", "Stop": "destroy",
}  # fmt: skip


def plan_answer(
    job: dict[str, Any], previous: dict[str, Any] | None, gpus: int, with_diff: bool, index: int
) -> dict[str, Any]:
    """`POST /v1/job/:id/plan` (`job-plan.json`): what the scheduler would do to go from `previous` to `job`."""
    old_groups = {str(g.get("Name")): g for g in (previous or {}).get("TaskGroups") or []}
    meta_changed = previous is not None and previous.get("Meta") != job.get("Meta")
    updates = {
        str(g["Name"]): _group_updates(job, g, old_groups.get(str(g["Name"])), meta_changed) for g in job["TaskGroups"]
    }
    for name, old in old_groups.items():
        updates.setdefault(name, dict(dict.fromkeys(_UPDATE_KEYS, 0), Stop=int(old.get("Count") or 0)))
    failed = {name: entry for name, entry in placements(job, gpus).items() if entry is not None}
    body: dict[str, Any] = load_response("job-plan")["body"]
    body.update(
        Annotations={"DesiredTGUpdates": updates, "PreemptedAllocs": None}, FailedTGAllocs=failed or None,
        JobModifyIndex=int((previous or {}).get("JobModifyIndex") or 0), CreatedEvals=_blocked_evals(job, failed),
        Diff=_job_diff(job, previous, updates) if with_diff else None, Index=index,
    )  # fmt: skip
    return body


def _group_updates(
    job: dict[str, Any], group: dict[str, Any], old: dict[str, Any] | None, meta_changed: bool
) -> dict[str, int]:
    updates = dict.fromkeys(_UPDATE_KEYS, 0)
    count = int(group.get("Count") or 0)
    if old is None:
        updates["Place"] = count
        return updates
    old_count = int(old.get("Count") or 0)
    kept = min(count, old_count)
    updates.update(Place=max(0, count - old_count), Stop=max(0, old_count - count))
    if meta_changed or old.get("Tasks") != group.get("Tasks"):
        parallel = int({**(job.get("Update") or {}), **(group.get("Update") or {})}.get("MaxParallel") or kept)
        updates.update(DestructiveUpdate=min(kept, parallel), Ignore=kept - min(kept, parallel))
    elif _without_count(old) != _without_count(group):
        updates["InPlaceUpdate"] = kept
    else:
        updates["Ignore"] = kept
    return updates


def _without_count(group: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in group.items() if key != "Count"}


def placements(job: dict[str, Any], gpus: int) -> dict[str, dict[str, Any] | None]:
    """Groups the one fake node cannot place, for want of GPUs: `FailedTGAllocs` entries."""
    found: dict[str, dict[str, Any] | None] = {}
    for group in job["TaskGroups"]:
        per_alloc = sum(
            int(device.get("Count") or 1)
            for task in group.get("Tasks") or []
            for device in (task.get("Resources") or {}).get("Devices") or []
            if _is_gpu(str(device.get("Name", "")))
        )
        count = int(group.get("Count") or 0)
        if not per_alloc or not count or per_alloc * count <= gpus:
            found[str(group["Name"])] = None
        elif per_alloc > gpus:
            found[str(group["Name"])] = failed_placement({"missing devices": 1}, False, count)
        else:
            failures = count - gpus // per_alloc
            found[str(group["Name"])] = failed_placement({"devices: no devices match request": 1}, True, failures)
    return found


def _is_gpu(name: str) -> bool:
    parts = name.split("/")
    return parts[0] in ("nvidia", "gpu") or (len(parts) > 1 and parts[1] == "gpu")


def _blocked_evals(job: dict[str, Any], failed: dict[str, Any]) -> list[dict[str, Any]] | None:
    if not failed:
        return None
    blocked: dict[str, Any] = load_response("job-plan-unplaceable")["body"]["CreatedEvals"][0]
    blocked.update(ID=str(uuid.uuid4()), PreviousEval=str(uuid.uuid4()), JobID=job["ID"], Type=job.get("Type"))
    return [blocked]


def _job_diff(
    job: dict[str, Any], previous: dict[str, Any] | None, updates: dict[str, dict[str, int]]
) -> dict[str, Any]:
    old_groups = {str(g.get("Name")): g for g in (previous or {}).get("TaskGroups") or []}
    groups = [_group_diff(g, old_groups.get(str(g["Name"])), updates[str(g["Name"])]) for g in job["TaskGroups"]]
    names = {str(g["Name"]) for g in job["TaskGroups"]}
    groups += [_group_diff(None, old, updates[name]) for name, old in old_groups.items() if name not in names]
    kind = "Added" if previous is None else ("Edited" if any(g["Type"] != "None" for g in groups) else "None")
    return {"Type": kind, "ID": job["ID"], "Fields": None, "Objects": None, "TaskGroups": groups}


def _group_diff(group: dict[str, Any] | None, old: dict[str, Any] | None, updates: dict[str, int]) -> dict[str, Any]:
    current = group if group is not None else old or {}
    kind = "Added" if old is None else "Deleted" if group is None else "Edited" if old != group else "None"
    old_tasks = {str(t.get("Name")): t for t in (old or {}).get("Tasks") or []}
    tasks = []
    for task in current.get("Tasks") or []:
        before = old_tasks.get(str(task.get("Name")))
        task_kind = kind if kind in ("Added", "Deleted") else ("None" if before == task else "Edited")
        notes = {"Added": ["forces create"], "Deleted": ["forces destroy"], "Edited": ["forces create/destroy update"]}
        tasks.append({"Type": task_kind, "Name": task.get("Name"), "Fields": None, "Objects": None,
                      "Annotations": notes.get(task_kind)})  # fmt: skip
    words = {_UPDATE_WORDS[key]: value for key, value in updates.items() if key in _UPDATE_WORDS and value}
    name = current.get("Name")
    return {"Type": kind, "Name": name, "Fields": None, "Objects": None, "Tasks": tasks, "Updates": words}
