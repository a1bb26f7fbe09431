"""The strict Nomad job check: the reference request passes, and each kind of mistake is named at its path."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.nomad_schema import (
    DATA_DIR,
    DECODE,
    STRICT,
    api_fields,
    assert_valid_job,
    assert_valid_job_request,
    check_job,
    check_job_request,
    docker_config_keys,
    job_request_issues,
    load_response,
    reference_request,
)

Body = dict[str, Any]
_TASK = "Job.TaskGroups[0].Tasks[0]"
_CHECK = "Job.TaskGroups[0].Services[0].Checks[0]"


def _at(body: Body, where: str) -> Body:
    """A dict inside the reference request: job, group, task, config, device or check."""
    job: Body = body["Job"]
    if where == "job":
        return job
    group = job["TaskGroups"][0]
    task = group["Tasks"][0]
    places: dict[str, Body] = {
        "group": group, "task": task, "config": task["Config"], "device": task["Resources"]["Devices"][0],
        "check": group["Services"][0]["Checks"][0],
    }  # fmt: skip
    return places[where]


def _set(where: str, key: str, value: object) -> Callable[[Body], None]:
    def mutate(body: Body) -> None:
        _at(body, where)[key] = value

    return mutate


def _drop(where: str, key: str) -> Callable[[Body], None]:
    def mutate(body: Body) -> None:
        del _at(body, where)[key]

    return mutate


def _rename(where: str, old: str, new: str) -> Callable[[Body], None]:
    def mutate(body: Body) -> None:
        place = _at(body, where)
        place[new] = place.pop(old)

    return mutate


def _checked(mutate: Callable[[Body], None]) -> list[str]:
    body = reference_request()
    mutate(body)
    return check_job_request(body)


def test_the_reference_request_passes() -> None:
    body = reference_request()
    assert check_job_request(body) == []
    assert check_job(body["Job"]) == []
    assert_valid_job_request(body)
    assert_valid_job(body["Job"])


# Each mutation of the reference request gives exactly one error: (path, words it must contain).
MUTATIONS: list[tuple[str, Callable[[Body], None], str, str]] = [
    ("unknown key", _set("job", "Foo", 1), "Job.Foo", "unknown key 'Foo' for Job"),
    ("case only", _rename("job", "TaskGroups", "taskGroups"), "Job.taskGroups", "spelt 'TaskGroups'"),
    ("case only, nested", _rename("task", "KillTimeout", "killTimeout"), f"{_TASK}.killTimeout", "'KillTimeout'"),
    ("string duration", _set("task", "KillTimeout", "30s"), f"{_TASK}.KillTimeout",
     'expected integer nanoseconds, got str "30s"'),
    ("float duration", _set("task", "ShutdownDelay", 5e9), f"{_TASK}.ShutdownDelay",
     "expected integer nanoseconds, got float 5000000000.0"),
    ("bool for integer", _set("group", "Count", True), "Job.TaskGroups[0].Count",
     "expected integer (int), got bool true"),
    ("string for integer", _set("job", "Priority", "50"), "Job.Priority", 'expected integer (int), got str "50"'),
    ("missing Job.ID", _drop("job", "ID"), "Job.ID", "is required"),
    ("empty TaskGroups", _set("job", "TaskGroups", []), "Job.TaskGroups", "must be a non-empty list"),
    ("missing group name", _drop("group", "Name"), "Job.TaskGroups[0].Name", "is required"),
    ("empty Tasks", _set("group", "Tasks", []), "Job.TaskGroups[0].Tasks", "must be a non-empty list"),
    ("missing Task.Driver", _drop("task", "Driver"), f"{_TASK}.Driver",
     "is required (Nomad: empty: 'Missing task driver')"),
    ("unknown docker key", _set("config", "imagee", "x"), f"{_TASK}.Config.imagee",
     "unknown key 'imagee' (docker driver config)"),
    ("docker key case", _set("config", "Image", "x"), f"{_TASK}.Config.Image", "spelt 'image'"),
    ("missing docker image", _drop("config", "image"), f"{_TASK}.Config.image", "is required (docker driver config)"),
    ("docker type", _set("config", "ports", "http"), f"{_TASK}.Config.ports", 'expected list(string), got str "http"'),
    ("docker block list", _set("config", "mount", [{"type": "bind", "sauce": "/x"}]), f"{_TASK}.Config.mount[0].sauce",
     "unknown key 'sauce'"),
    ("docker runtime with GPUs", _set("config", "runtime", "runc"), f"{_TASK}.Config.runtime", "leave unset"),
    ("deep nested struct", _set("check", "CheckRestart", {"Limit": 3, "Grace": "10s"}), f"{_CHECK}.CheckRestart.Grace",
     "expected integer nanoseconds"),
    ("deep unknown key", _set("check", "Intervall", 5_000_000_000), f"{_CHECK}.Intervall", "unknown key 'Intervall'"),
    ("map of arrays", _set("check", "Header", {"X-Probe": "yes"}), f'{_CHECK}.Header["X-Probe"]', "expected an array"),
    ("null for non-pointer", _set("check", "Type", None), f"{_CHECK}.Type", "null is not allowed"),
    ("null for non-pointer int", _set("task", "ShutdownDelay", None), f"{_TASK}.ShutdownDelay", "null is not allowed"),
    ("uint64 below zero", _set("device", "Count", -1),
     f"{_TASK}.Resources.Devices[0].Count", "expected integer (uint64) in [0, "),
    ("int8 overflow", _set("job", "Affinities", [{"LTarget": "a", "RTarget": "b", "Operand": "=", "Weight": 200}]),
     "Job.Affinities[0].Weight", "int8"),
    ("array item type", _set("job", "Datacenters", ["dc1", 2]), "Job.Datacenters[1]", "expected string, got int 2"),
    ("map value type", _set("job", "Meta", {"replicas": 2}), 'Job.Meta["replicas"]', "expected string, got int 2"),
    ("object for string", _set("job", "Type", {"x": 1}), "Job.Type", "expected string"),
    ("string for struct", _set("job", "Update", "rolling"), "Job.Update", "expected an object (UpdateStrategy)"),
    ("bytes", _set("job", "Payload", "not base64!"), "Job.Payload", "expected a base64 string"),
    ("shape object", _set("task", "Config", ["image"]), f"{_TASK}.Config", "expected an object"),
    ("json:\"-\" field", _set("group", "Volumes", {"v": {"Type": "host", "ExtraKeysHCL": ["x"]}}),
     'Job.TaskGroups[0].Volumes["v"].ExtraKeysHCL', 'json:"-"'),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "path", "words"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_a_mistake_is_named_at_its_path(mutate: Callable[[Body], None], path: str, words: str) -> None:
    errors = _checked(mutate)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{path}: "), errors
    assert words in errors[0]


def test_the_brief_example_message_is_exact() -> None:
    errors = _checked(_set("task", "KillTimeout", "30s"))
    assert errors == ['Job.TaskGroups[0].Tasks[0].KillTimeout: expected integer nanoseconds, got str "30s"']


@pytest.mark.parametrize(
    "mutate",
    [
        _set("job", "Priority", None),  # *int
        _set("job", "Datacenters", None),  # slice
        _set("job", "Meta", None),  # map
        _set("task", "Vault", {"Policies": ["x"], "anything": {"goes": True}}),  # opaque
        _set("task", "Identities", [{"Name": "vault", "Audience": ["x"]}]),  # array of an opaque struct
        _set("group", "Scaling", {"Min": 1, "Max": 4, "Policy": {"cooldown": "1m"}}),  # any, shape object
        _set("config", "labels", [{"team": "ml"}]),
        _set("config", "storage_opt", {"size": "10G"}),
        _set("config", "logging", {"type": "json-file", "config": [{"max-size": "10m"}]}),
        _set("config", "command", None),  # an optional HCL attribute set to null
    ],
    ids=[
        "pointer",
        "slice",
        "map",
        "opaque",
        "opaque items",
        "any object",
        "list(map)",
        "block_attrs",
        "block",
        "hcl null",
    ],
)
def test_what_nomad_reads_is_accepted(mutate: Callable[[Body], None]) -> None:
    assert _checked(mutate) == []


def test_docker_config_is_only_walked_for_the_docker_driver() -> None:
    body = reference_request()
    task = body["Job"]["TaskGroups"][0]["Tasks"][0]
    task.update(Driver="exec", Config={"command": "/bin/serve", "whatever": 1})
    assert check_job_request(body) == []


def test_decode_issues_carry_gos_decoder_message() -> None:
    body = reference_request()
    body["Job"]["TaskGroups"][0]["Services"][0]["Checks"][0]["Interval"] = "5s"
    (issue,) = job_request_issues(body)
    assert issue.kind == DECODE
    assert issue.go_error == load_response("job-register-error-400")["body_text"]


def test_silently_dropped_keys_are_strict_issues_without_a_decoder_message() -> None:
    body = reference_request()
    body["Job"]["Foo"] = 1
    (issue,) = job_request_issues(body)
    assert (issue.kind, issue.go_error) == (STRICT, None)


def test_a_body_that_is_not_an_object_and_a_missing_job() -> None:
    assert check_job_request([]) == ["<body>: expected an object (JobRegisterRequest), got list []"]
    (error,) = check_job_request({"PreserveCounts": True})
    assert error.startswith("Job: is required") and "Job must be specified" in error


def test_assert_valid_job_request_lists_every_error() -> None:
    body = reference_request()
    body["Job"]["Foo"] = 1
    body["Job"]["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = "30s"
    with pytest.raises(AssertionError) as raised:
        assert_valid_job_request(body)
    assert "(2)" in str(raised.value)
    assert "Job.Foo" in str(raised.value) and "KillTimeout" in str(raised.value)


def test_the_field_map_is_complete() -> None:
    """Every descriptor uses a known type and every struct reference resolves (or is opaque)."""
    fields = api_fields()
    vocabulary, structs, opaque = set(fields["type_vocabulary"]), fields["structs"], set(fields["opaque"])
    assert fields["root"] in structs

    def resolves(item: object) -> bool:
        if isinstance(item, dict):
            return descriptor_ok(item)
        return item in vocabulary or item in structs or item in opaque

    def descriptor_ok(descriptor: dict[str, Any]) -> bool:
        kind = descriptor["type"]
        if kind == "object":
            return descriptor["ref"] in structs or descriptor["ref"] in opaque
        if kind in ("array", "map"):
            return resolves(descriptor.get("items") or descriptor.get("values"))
        return kind in vocabulary

    broken = [f"{name}.{key}" for name, struct in structs.items() for key, d in struct.items() if not descriptor_ok(d)]
    assert broken == []
    assert docker_config_keys()["keys"]["image"]["required"] is True


def test_the_data_keeps_its_provenance() -> None:
    assert api_fields()["_provenance"]["repo"] == "hashicorp/nomad"
    assert docker_config_keys()["_provenance"]["repo"] == "hashicorp/nomad"
    assert (DATA_DIR / "PROVENANCE.md").is_file()
    for path in [*sorted((DATA_DIR / "responses").glob("*.json")), DATA_DIR / "requests" / "job-register.json"]:
        assert "_source" in json.loads(path.read_text()), path.name


_ENDPOINTS = [
    r"/v1/jobs", r"/v1/validate/job", r"/v1/job/[^/]+", r"/v1/job/[^/]+/(plan|deployment|allocations|scale)",
    r"/v1/allocation/[0-9a-f-]{36}", r"/v1/client/fs/logs/[0-9a-f-]{36}",
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(p.stem for p in (DATA_DIR / "responses").glob("*.json")))
def test_each_response_fixture_names_a_well_formed_request(name: str) -> None:
    exchange = load_response(name)
    method, target = exchange["request"]["method"], exchange["request"]["path"]
    assert method in ("GET", "PUT", "POST", "DELETE")
    url = urlsplit(target)
    assert not url.scheme and not url.netloc and " " not in target
    assert any(re.fullmatch(pattern, url.path) for pattern in _ENDPOINTS), target
    assert all(key and value for key, value in parse_qsl(url.query, keep_blank_values=True))
    writes = ("/v1/jobs", "/v1/validate/job", "/plan", "/scale")
    if method == "POST":
        assert url.path.endswith(writes)
    assert isinstance(exchange["status"], int)
    assert ("body" in exchange) != ("body_text" in exchange)
    kind = exchange["headers"]["Content-Type"]
    assert kind == ("application/json" if "body" in exchange or name == "logs-framed" else "text/plain")
