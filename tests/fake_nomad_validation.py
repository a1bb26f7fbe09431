"""What the fake Nomad agent refuses before it acts, in Nomad's words: request checks and job validation.

A job body is decoded first (Go's decoder: HTTP 400 with its message), then checked for `Job` and
`Job.ID` (400), then validated: Nomad's result is a go-multierror text nested per group, service and
task (`1 error occurred:\\n\\t* Task group api validation failed: ...`), answered with HTTP 500 on
register and plan, and inside a 200 on `/v1/validate/job`. Only the validation rules cortexlite's jobs
can trip are repeated: IDs and names, task groups and tasks, counts, scaling bounds, service names and
providers, check intervals and timeouts (at least 1s). Scale and variable requests are checked here too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from tests.nomad_schema import DECODE, STRICT, Issue, job_request_issues

__all__ = [
    "PLAN_KEYS",
    "VALIDATE_KEYS",
    "ApiError",
    "check_enforce_index",
    "check_scale",
    "check_variable",
    "checked_job",
    "go_duration",
    "multierror",
    "parse_go_duration",
    "refuse_invalid",
    "strict_text",
    "validation_errors",
]

SECOND = 1_000_000_000
_JOB_TYPES = ("service", "batch", "system", "sysbatch")
_RFC1123_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}
# Keys a plan or validate body may carry besides Job (JobPlanRequest, JobValidateRequest).
PLAN_KEYS: dict[str, type] = {"Diff": bool, "PolicyOverride": bool, "Region": str, "Namespace": str, "SecretID": str}
VALIDATE_KEYS: dict[str, type] = {"Region": str, "Namespace": str, "SecretID": str}
_VARIABLE_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")


class ApiError(Exception):
    """An error answer: its status and text/plain body, as Nomad's HTTP layer writes them."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def checked_job(
    body: object, path_id: str | None, keys: Mapping[str, type] | None = None, need_id: bool = True
) -> tuple[dict[str, Any], list[Issue]]:
    """The Job of a register, plan or validate body and its strict-check findings; ApiError for a 400.

    `keys` are the endpoint's other top-level keys (None: the body is a whole JobRegisterRequest).
    """
    body = {} if body is None else body  # JSON null decodes to an empty request
    if keys is None or not isinstance(body, dict):
        issues = job_request_issues(body)
    else:
        issues = job_request_issues({"Job": body["Job"]} if "Job" in body else {}) + _key_issues(body, keys)
    decode = [issue for issue in issues if issue.kind == DECODE]
    if decode:
        raise ApiError(400, str(decode[0].go_error))
    job = body.get("Job") if isinstance(body, dict) else None
    if not isinstance(job, dict):
        raise ApiError(400, "Job must be specified")
    if job.get("ID") is None and need_id:
        raise ApiError(400, "Job ID hasn't been provided")
    if path_id is not None and job.get("ID") != path_id:
        raise ApiError(400, "Job ID does not match name")
    return copy.deepcopy(job), [issue for issue in issues if issue.kind == STRICT]


def refuse_invalid(job: dict[str, Any], strict: list[Issue]) -> None:
    """Register and plan: Nomad's validation errors, then the strict findings, as a 500."""
    errors = validation_errors(job)
    if errors:
        raise ApiError(500, multierror(errors))
    if strict:
        raise ApiError(500, strict_text(strict))


def check_enforce_index(body: object, current: int | None) -> None:
    """`EnforceIndex`: register only over the job modify index the client read (`current`: None, no job)."""
    if not isinstance(body, dict) or body.get("EnforceIndex") is not True:
        return
    expected = int(body.get("JobModifyIndex") or 0)
    prefix = f"Enforcing job modify index {expected}"
    if current is None and expected:
        raise ApiError(500, f"{prefix}: job does not exist")
    if current is not None and not expected:
        raise ApiError(500, f"{prefix}: job already exists")
    if current is not None and expected != current:
        raise ApiError(500, f"{prefix}: job exists with conflicting job modify index: {current}")


def strict_text(issues: list[Issue]) -> str:
    listed = "".join(f"\n\t* {issue}" for issue in issues)
    return f"fake-nomad strict check: Nomad would decode this job but silently drop or ignore:{listed}\n"


def _key_issues(body: dict[str, Any], keys: Mapping[str, type]) -> list[Issue]:
    issues = []
    for key, value in body.items():
        if key == "Job":
            continue
        if key not in keys:
            issues.append(Issue(key, f"unknown key {key!r} for this request"))
        elif not isinstance(value, keys[key]):
            kind, expected = type(value).__name__, keys[key].__name__
            go_error = f"json: cannot unmarshal {kind} into Go struct field .{key} of type {expected}"
            issues.append(Issue(key, f"expected {expected}, got {kind}", DECODE, go_error))
    return issues


def check_scale(body: object, group: dict[str, Any] | None) -> tuple[int | None, str, str, Any]:
    """`(Count, Target.Group, Message, Meta)` of a scale request for `group` (None: not found)."""
    if not isinstance(body, dict):
        raise ApiError(400, "json: cannot unmarshal into Go value of type api.ScalingRequest")
    count, target = body.get("Count"), body.get("Target")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise ApiError(400, f"json: cannot unmarshal {type(count).__name__} into Go struct field .Count of type int64")
    name = target.get("Group") if isinstance(target, dict) else None
    if not name:
        raise ApiError(400, "missing task group name for scaling action")
    if group is None:
        raise ApiError(400, f'task group "{name}" specified for scaling does not exist in job')
    if count is not None and count < 0:
        raise ApiError(400, "scaling action count can't be negative")
    scaling = group.get("Scaling") or {}
    low, high = scaling.get("Min"), scaling.get("Max")
    if count is not None and low is not None and count < low:
        raise ApiError(400, f"group count was less than scaling policy minimum: {count} < {low}")
    if count is not None and high is not None and count > high:
        raise ApiError(400, f"group count was greater than scaling policy maximum: {count} > {high}")
    return count, str(name), str(body.get("Message") or ""), body.get("Meta")


def check_variable(path: str, body: object) -> dict[str, str]:
    """The Items of a variable write to `path`."""
    if not _VARIABLE_PATH.match(path):
        raise ApiError(400, f'invalid path "{path}"')
    if path.split("/", maxsplit=1)[0] == "nomad" and not (path == "nomad/jobs" or path.startswith("nomad/jobs/")):
        raise ApiError(400, '"nomad" is a reserved top-level directory path, but you may write variables to '
                            '"nomad/jobs" or below')  # fmt: skip
    if not isinstance(body, dict):
        raise ApiError(400, "variable missing required Items object")
    if body.get("Path") not in (None, path):
        raise ApiError(400, f'variable path "{body.get("Path")}" does not match the request path "{path}"')
    items = body.get("Items")
    if not isinstance(items, dict) or not items:
        raise ApiError(400, "variable missing required Items object")
    if not all(isinstance(value, str) for value in items.values()):
        raise ApiError(400, "json: cannot unmarshal number into Go struct field VariableDecrypted.Items of type string")
    return {str(key): str(value) for key, value in items.items()}


def multierror(errors: list[str]) -> str:
    """go-multierror's ListFormatFunc."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    points = "\n\t".join(f"* {error}" for error in errors)
    return f"{len(errors)} errors occurred:\n\t{points}\n\n"


def go_duration(nanoseconds: int) -> str:
    """Go's `time.Duration.String()`: 5ns, 1.5ms, 2s, 1m30s, 1h0m0s."""
    if nanoseconds == 0:
        return "0s"
    sign, value = ("-" if nanoseconds < 0 else ""), abs(nanoseconds)
    if value < SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if value >= size:
                return sign + _trim(value / size) + unit
    hours, rest = divmod(value, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    seconds = _trim(rest / SECOND) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    return f"{sign}{minutes}m{seconds}" if minutes else sign + seconds


def _trim(number: float) -> str:
    return f"{number:.9f}".rstrip("0").rstrip(".")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (`5s`, `300ms`, `1m30s`); ValueError when it is not one."""
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"time: invalid duration {text!r}")
    return total / SECOND


def validation_errors(job: dict[str, Any]) -> list[str]:
    """The top-level entries of Nomad's multierror for `job` (empty when it is valid)."""
    errors = _job_errors(job)
    groups = job.get("TaskGroups") or []
    seen: dict[str, int] = {}
    for position, group in enumerate(groups, start=1):
        name = group.get("Name") or ""
        if not name:
            errors.append(f"Job task group {position} missing name")
        elif name in seen:
            errors.append(f"Job task group {position} redefines '{name}' from group {seen[name]}")
        else:
            seen[name] = position
    for group in groups:
        group_errors = _group_errors(group)
        if group_errors:
            errors.append(f"Task group {group.get('Name') or ''} validation failed: {multierror(group_errors)}")
    return errors


def _job_errors(job: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    job_id = job.get("ID")
    if not job_id:
        errors.append("Missing job ID")
    elif " " in job_id:
        errors.append("Job ID contains a space")
    job_type = job.get("Type") or "service"
    if job_type not in _JOB_TYPES:
        errors.append(f'Invalid job type: "{job_type}"')
    priority = job.get("Priority")
    if priority is not None and not 1 <= priority <= 100:
        errors.append("Job priority must be between [1, 100]")
    if not job.get("TaskGroups"):
        errors.append("Missing job task groups")
    return errors


def _group_errors(group: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if not group.get("Name"):
        errors.append("Missing task group name")
    count = group.get("Count")
    if count is not None and count < 0:
        errors.append("Task group count can't be negative")
    errors += _scaling_errors(group)
    if not group.get("Tasks"):
        errors.append("Missing tasks for task group")
    services = _service_errors(group.get("Services") or [])
    if services:
        errors.append(f"Task group service validation failed: {multierror(services)}")
    for task in group.get("Tasks") or []:
        task_errors = _task_errors(task)
        if task_errors:
            errors.append(f"Task {task.get('Name') or ''} validation failed: {multierror(task_errors)}")
    return errors


def _scaling_errors(group: dict[str, Any]) -> list[str]:
    scaling = group.get("Scaling")
    if not scaling:
        return []
    errors: list[str] = []
    low, high = scaling.get("Min"), scaling.get("Max")
    count = group.get("Count")
    count = count if count is not None else (low if low is not None else 1)
    if high is None:
        errors.append("Scaling policy invalid: maximum count must be specified")
    elif low is not None and high < low:
        errors.append("Scaling policy invalid: maximum count must not be less than minimum count")
    if low is not None and count < low:
        errors.append("Scaling policy invalid: task group count must not be less than minimum count in scaling policy")
    if high is not None and count > high:
        errors.append(
            "Scaling policy invalid: task group count must not be greater than maximum count in scaling policy"
        )
    return errors


def _task_errors(task: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    name = task.get("Name") or ""
    if not name:
        errors.append("Missing task name")
    elif "/" in name or "\\" in name:
        errors.append("Task name cannot include slashes")
    elif name == "alloc":
        errors.append("Task name cannot be 'alloc'")
    if not task.get("Driver"):
        errors.append("Missing task driver")
    services = _service_errors(task.get("Services") or [])
    if services:
        errors.append(f"Task service validation failed: {multierror(services)}")
    return errors


def _service_errors(services: list[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    for position, service in enumerate(services):
        found = _one_service_errors(service)
        if found:
            errors.append(f"Service[{position}] {service.get('Name') or ''} validation failed: {multierror(found)}")
    return errors


def _one_service_errors(service: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    name = service.get("Name") or ""
    if not _RFC1123_LABEL.match(name) and "${" not in name:
        errors.append(
            "Service name must be valid per RFC 1123 and can contain only alphanumeric characters or dashes "
            f'and must be no longer than 63 characters: "{name}"'
        )
    provider = service.get("Provider") or "consul"
    if provider not in ("consul", "nomad"):
        errors.append(f"Service provider must be one of 'consul' or 'nomad', got {provider!r}")
    for check in service.get("Checks") or []:
        errors += _check_errors(check, provider)
    return errors


def _check_errors(check: dict[str, Any], provider: str) -> list[str]:
    errors: list[str] = []
    kind = check.get("Type") or ""
    if provider == "nomad" and kind not in ("http", "tcp"):
        errors.append(f'invalid check type ("{kind}"), must be one of "http" or "tcp" for Nomad services')
    if kind == "http" and not check.get("Path"):
        errors.append("http type must have http path")
    elif kind == "http" and re.match(r"^[a-z]+://", str(check.get("Path"))):
        errors.append("http checks may only use a relative path")
    interval, timeout = int(check.get("Interval") or 0), int(check.get("Timeout") or 0)
    if interval == 0:
        errors.append("missing required value interval. Interval cannot be less than 1s")
    elif interval < SECOND:
        errors.append(f"interval ({go_duration(interval)}) cannot be lower than 1s")
    if timeout == 0:
        errors.append("missing required value timeout. Timeout cannot be less than 1s")
    elif timeout < SECOND:
        errors.append(f"timeout ({go_duration(timeout)}) is lower than required minimum timeout 1s")
    return errors
