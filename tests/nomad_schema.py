"""A strict check of Nomad job JSON against Nomad's API field map (`tests/data/nomad/`).

Nomad decodes a register body with Go's `encoding/json`: keys match case-insensitively and unknown
keys are dropped without a word, so a misspelt key is simply lost. This walk fails loudly instead:

- an unknown key, or a known one spelt with another case, is an error;
- values must have their field's JSON type; `duration_ns` and `integer` must be JSON integers that fit
  the Go width (`uint64` rejects negatives); `opaque` structs accept any object;
- null is accepted only where Go has a pointer, a slice or a map;
- `Job.ID`, `Job.TaskGroups`, `TaskGroups[].Name`, `TaskGroups[].Tasks`, `Tasks[].Name` and
  `Tasks[].Driver` are required; a docker task's `Config` is walked against `docker-config-keys.json`.

Each finding is an `Issue`; `Issue.go_error` holds the text Nomad's decoder would answer (HTTP 400) for
a value Go cannot decode, and is None where Nomad would accept the body silently.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "DATA_DIR",
    "DECODE",
    "REQUIRED",
    "STRICT",
    "Issue",
    "api_fields",
    "assert_valid_job",
    "assert_valid_job_request",
    "check_job",
    "check_job_request",
    "docker_config_keys",
    "job_request_issues",
    "load_response",
    "reference_request",
]

DATA_DIR = Path(__file__).resolve().parent / "data" / "nomad"

# Issue kinds: what Nomad itself does with such a body.
DECODE = "decode"  # Go's decoder refuses it: HTTP 400
REQUIRED = "required"  # Nomad's validation refuses it: HTTP 400 (Job, Job.ID) or 500
STRICT = "strict"  # Nomad accepts it, and silently drops or ignores what was meant

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "int": (-(2**63), 2**63 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "time.Duration": (-(2**63), 2**63 - 1),
}
_JSON_KINDS = {bool: "bool", str: "string", int: "number", float: "number", list: "array", dict: "object"}


@dataclass(frozen=True)
class Issue:
    path: str
    message: str
    kind: str = STRICT
    go_error: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@functools.cache
def api_fields() -> dict[str, Any]:
    return dict(json.loads((DATA_DIR / "api-fields.json").read_text()))


@functools.cache
def docker_config_keys() -> dict[str, Any]:
    return dict(json.loads((DATA_DIR / "docker-config-keys.json").read_text()))


def reference_request() -> dict[str, Any]:
    """A fresh copy of the reference register body (`requests/job-register.json`)."""
    return dict(json.loads((DATA_DIR / "requests" / "job-register.json").read_text())["body"])


@functools.cache
def _response(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA_DIR / "responses" / f"{name}.json").read_text()))


def load_response(name: str) -> dict[str, Any]:
    """A fresh copy of `responses/<name>.json` (the whole exchange: request, status, headers, body)."""
    return copy.deepcopy(_response(name))


# --- public checks ------------------------------------------------------------------------------


def job_request_issues(body: object) -> list[Issue]:
    """Every problem of a register body `{"Job": {...}, ...}`, walked from `JobRegisterRequest`."""
    issues: list[Issue] = []
    _Walker(issues).struct(body, api_fields()["root"], "", [])
    return issues


def check_job_request(body: object) -> list[str]:
    return [str(issue) for issue in job_request_issues(body)]


def check_job(job: object) -> list[str]:
    """The checks of `check_job_request` for a bare Job."""
    return check_job_request({"Job": job})


def assert_valid_job_request(body: object) -> None:
    errors = check_job_request(body)
    if errors:
        listed = "\n".join(f"  - {error}" for error in errors)
        raise AssertionError(f"the Nomad job request fails the strict API check ({len(errors)}):\n{listed}")


def assert_valid_job(job: object) -> None:
    assert_valid_job_request({"Job": job})


# --- the walk -----------------------------------------------------------------------------------


class _Walker:
    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        self.fields = api_fields()

    def add(self, path: str, message: str, kind: str = STRICT, go_error: str | None = None) -> None:
        self.issues.append(Issue(path or "<body>", message, kind, go_error))

    def struct(self, value: object, name: str, path: str, stack: list[str], go: str | None = None) -> None:
        if not isinstance(value, dict):
            go_type = go or f"*{name}"
            self.add(path, f"expected an object ({name}), got {_got(value)}", DECODE, _go_error(value, stack, go_type))
            return
        fields: dict[str, Any] = self.fields["structs"][name]
        spelled = {key.lower(): key for key in fields}
        for key, item in value.items():
            where = _join(path, key)
            descriptor = fields.get(key)
            if descriptor is not None:
                self.value(item, descriptor, where, [*stack, key])
            elif key.lower() in spelled:
                expected = spelled[key.lower()]
                self.add(where, f"unknown key {key!r}: the field is spelt {expected!r} (Nomad would match it)")
            else:
                self.add(where, f"unknown key {key!r} for {name}{_skipped_note(name, key)}")
        self.required(value, name, path)
        if name == "Task" and value.get("Driver") == "docker":
            _DockerWalker(self).task(value, path)

    def required(self, value: dict[str, Any], name: str, path: str) -> None:
        present = {key.lower() for key in value}
        for key in self.fields["required"].get(name, []):
            found = value.get(key)
            if key not in value and key.lower() in present:
                continue  # already reported as a misspelling
            if found in (None, "", []):
                hint = self.fields["required_errors"].get(f"{name}.{key}", "")
                what = "must be a non-empty list" if isinstance(found, list) else "is required"
                self.add(_join(path, key), what + (f" (Nomad: {hint})" if hint else ""), REQUIRED)

    def value(self, value: object, descriptor: Any, path: str, stack: list[str]) -> None:
        spec = _descriptor(descriptor)
        go = str(spec.get("go", ""))
        kind = spec["type"]
        if value is None:
            if not _nullable(kind, go):
                self.add(path, f"null is not allowed: the Go field is a non-pointer {go or kind}")
            return
        if kind == "object":
            self.nested(value, spec, path, stack, go)
        elif kind == "array":
            self.sequence(value, spec, path, stack, go)
        elif kind == "map":
            self.mapping(value, spec, path, stack, go)
        else:
            self.scalar(value, spec, path, stack, go or _DEFAULT_GO.get(kind, kind))

    def nested(self, value: object, spec: dict[str, Any], path: str, stack: list[str], go: str) -> None:
        ref = str(spec["ref"])
        if spec.get("opaque") or ref in self.fields["opaque"] or ref not in self.fields["structs"]:
            if not isinstance(value, dict):
                self.add(path, f"expected an object ({ref}), got {_got(value)}", DECODE, _go_error(value, stack, go))
            return
        self.struct(value, ref, path, stack, go)

    def sequence(self, value: object, spec: dict[str, Any], path: str, stack: list[str], go: str) -> None:
        if not isinstance(value, list):
            self.add(path, f"expected an array, got {_got(value)}", DECODE, _go_error(value, stack, go or "[]any"))
            return
        element = _element(spec["items"], go.removeprefix("[]") if go.startswith("[]") else "")
        for position, item in enumerate(value):
            self.value(item, element, f"{path}[{position}]", stack)

    def mapping(self, value: object, spec: dict[str, Any], path: str, stack: list[str], go: str) -> None:
        if not isinstance(value, dict):
            self.add(path, f"expected an object, got {_got(value)}", DECODE, _go_error(value, stack, go or "map"))
            return
        element = _element(spec["values"], go.removeprefix("map[string]") if go.startswith("map[") else "")
        for key, item in value.items():
            self.value(item, element, f"{path}[{json.dumps(key)}]", stack)

    def scalar(self, value: object, spec: dict[str, Any], path: str, stack: list[str], go: str) -> None:
        kind = spec["type"]
        problem = _scalar_problem(value, kind, spec, go)
        if problem is not None:
            self.add(path, problem, DECODE, _scalar_go_error(value, kind, stack, go))


_DEFAULT_GO = {
    "string": "string", "bool": "bool", "integer": "int", "number": "float64", "duration_ns": "time.Duration",
    "time": "time.Time", "bytes": "[]byte", "any": "interface{}",
}  # fmt: skip


def _descriptor(descriptor: Any) -> dict[str, Any]:
    if isinstance(descriptor, dict):
        return descriptor
    name = str(descriptor)
    if name in api_fields()["type_vocabulary"]:
        return {"type": name}
    return {"type": "object", "ref": name}


def _element(descriptor: Any, go: str) -> dict[str, Any]:
    """The descriptor of an array item or map value, with its Go type cut from the container's."""
    spec = dict(_descriptor(descriptor))
    if go and "go" not in spec:
        spec["go"] = go
    return spec


def _nullable(kind: str, go: str) -> bool:
    if kind in ("array", "map"):
        return True
    return go.startswith(("*", "[]", "map[")) or go in ("any", "interface{}")


def _scalar_problem(value: object, kind: str, spec: dict[str, Any], go: str) -> str | None:
    if kind == "string":
        return None if isinstance(value, str) else f"expected string, got {_got(value)}"
    if kind == "bool":
        return None if isinstance(value, bool) else f"expected bool, got {_got(value)}"
    if kind in ("integer", "duration_ns"):
        what = "integer nanoseconds" if kind == "duration_ns" else f"integer ({go.lstrip('*')})"
        if not isinstance(value, int) or isinstance(value, bool):
            return f"expected {what}, got {_got(value)}"
        low, high = _INT_RANGES.get(go.lstrip("*"), _INT_RANGES["int64"])
        return None if low <= value <= high else f"expected {what} in [{low}, {high}], got {value}"
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"expected number, got {_got(value)}"
    if kind == "time":
        return None if _is_rfc3339(value) else f"expected an RFC 3339 time string, got {_got(value)}"
    if kind == "bytes":
        return None if _is_base64(value) else f"expected a base64 string, got {_got(value)}"
    if kind == "any":
        shaped = spec.get("shape") != "object" or isinstance(value, dict)
        return None if shaped else f"expected an object, got {_got(value)}"
    raise AssertionError(f"api-fields.json: unknown descriptor type {kind!r}")


def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _skipped_note(struct: str, key: str) -> str:
    for skipped in api_fields()["skipped_fields"]:
        if skipped["struct"] == struct and skipped["field"] == key:
            return ' (tagged json:"-": Nomad never reads it from JSON)'
    return ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _got(value: object) -> str:
    text = json.dumps(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


# --- Go's decoder messages ----------------------------------------------------------------------


def _go_type(go: str) -> str:
    """The Go type as `encoding/json` names it in an error: pointer stripped, api types qualified."""
    bare = re.sub(r"\bany\b|interface\{\}", "interface {}", go.removeprefix("*"))
    return re.sub(r"(?<![\w.])([A-Z]\w*)", r"api.\1", bare)


def _go_error(value: object, stack: list[str], go: str) -> str:
    kind = _JSON_KINDS.get(type(value), "value")
    return _unmarshal_error(kind, stack, go)


def _scalar_go_error(value: object, kind: str, stack: list[str], go: str) -> str:
    if kind == "time" and isinstance(value, str):
        return f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse'
    if kind == "bytes" and isinstance(value, str):
        return "illegal base64 data at input byte 0"
    what = _JSON_KINDS.get(type(value), "value")
    if kind in ("integer", "duration_ns") and isinstance(value, int | float) and not isinstance(value, bool):
        what = f"number {json.dumps(value)}"  # a fraction, or out of the Go type's range
    return _unmarshal_error(what, stack, go)


def _unmarshal_error(what: str, stack: list[str], go: str) -> str:
    """`json: cannot unmarshal X into Go struct field S.Job.TaskGroups.Tasks.F of type T`."""
    if not stack:
        return f"json: cannot unmarshal {what} into Go value of type {_go_type(go)}"
    owner = _owner_struct(stack)
    field = ".".join(stack)
    return f"json: cannot unmarshal {what} into Go struct field {owner}.{field} of type {_go_type(go)}"


def _owner_struct(stack: list[str]) -> str:
    """The struct that declares the last field of `stack`, found by walking the field names."""
    fields = api_fields()
    name = str(fields["root"])
    for key in stack[:-1]:
        spec = _descriptor(fields["structs"].get(name, {}).get(key, {"type": "any"}))
        while spec["type"] in ("array", "map"):
            spec = _descriptor(spec.get("items") or spec.get("values"))
        if spec["type"] != "object":
            break
        name = str(spec["ref"])
    return name


# --- docker Config ------------------------------------------------------------------------------


class _DockerWalker:
    """`Task.Config` of a docker task against `docker-config-keys.json` (the server never checks it)."""

    def __init__(self, walker: _Walker) -> None:
        self.walker = walker

    def add(self, path: str, message: str) -> None:
        self.walker.add(path, f"{message} (docker driver config)")

    def task(self, task: dict[str, Any], path: str) -> None:
        config = task.get("Config")
        where = _join(path, "Config")
        if config is None:
            self.add(where, "the docker driver needs a Config object with at least 'image'")
        if not isinstance(config, dict):
            return  # a Config of the wrong type is already reported
        self.block(config, docker_config_keys()["keys"], where)
        if config.get("runtime") not in (None, "nvidia") and _wants_nvidia(task):
            self.add(_join(where, "runtime"), "leave unset for a task given NVIDIA devices (the driver picks it)")

    def block(self, value: dict[str, Any], keys: dict[str, Any], path: str) -> None:
        spelled = {key.lower(): key for key in keys}
        for key, item in value.items():
            where = _join(path, key)
            spec = keys.get(key)
            if spec is not None:
                self.item(item, spec, where)
            elif key.lower() in spelled:
                self.add(where, f"unknown key {key!r}: the docker key is spelt {spelled[key.lower()]!r}")
            else:
                self.add(where, f"unknown key {key!r}")
        for key, spec in keys.items():
            if spec.get("required") and value.get(key) in (None, ""):
                self.add(_join(path, key), "is required")

    def item(self, value: object, spec: dict[str, Any], path: str) -> None:
        if value is None:
            return  # an optional HCL attribute set to null is the same as absent
        kind = spec["kind"]
        if kind == "block":
            if isinstance(value, dict):
                self.block(value, spec["keys"], path)
            else:
                self.add(path, f"expected an object (block), got {_got(value)}")
        elif kind == "block_list":
            if not isinstance(value, list):
                self.add(path, f"expected an array of objects (repeatable block), got {_got(value)}")
                return
            for position, entry in enumerate(value):
                if isinstance(entry, dict):
                    self.block(entry, spec["keys"], f"{path}[{position}]")
                else:
                    self.add(f"{path}[{position}]", f"expected an object, got {_got(entry)}")
        elif kind == "block_attrs":
            self.hcl(value, f"map({spec['hcl_type']})", path)
        else:
            self.hcl(value, spec["hcl_type"], path)

    def hcl(self, value: object, hcl_type: str, path: str) -> None:
        nested = re.fullmatch(r"(list|map)\((.*)\)", hcl_type)
        if nested is None:
            if not _hcl_primitive(value, hcl_type):
                self.add(path, f"expected {hcl_type}, got {_got(value)}")
            return
        container, inner = nested.groups()
        if container == "list" and isinstance(value, list):
            for position, entry in enumerate(value):
                self.hcl(entry, inner, f"{path}[{position}]")
        elif container == "map" and isinstance(value, dict):
            for key, entry in value.items():
                self.hcl(entry, inner, f"{path}[{json.dumps(key)}]")
        else:
            self.add(path, f"expected {hcl_type}, got {_got(value)}")


def _hcl_primitive(value: object, hcl_type: str) -> bool:
    if hcl_type == "string":
        return isinstance(value, str)
    if hcl_type == "bool":
        return isinstance(value, bool)
    if hcl_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    raise AssertionError(f"docker-config-keys.json: unknown HCL type {hcl_type!r}")


def _wants_nvidia(task: dict[str, Any]) -> bool:
    resources = task.get("Resources") or {}
    devices = resources.get("Devices") if isinstance(resources, dict) else None
    return any(isinstance(d, dict) and str(d.get("Name", "")).startswith("nvidia") for d in devices or [])
