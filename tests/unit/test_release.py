"""Releases: which spec changes replace replicas (`version`) and which only update the API (`spec_hash`)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cortexlite.release import make_release, replica_fingerprint, spec_data
from cortexlite_runtime.spec import RESOLVED_SPEC_VERSION, ApiSpec, ResolvedSpec

_PROJECT = "p" * 64
_RUNTIME = "venv-3f2a"


def _base() -> dict[str, Any]:
    return {
        "name": "iris",
        "predictor": {"type": "python", "path": "predictor.py", "config": {"threshold": 0.5}},
        "compute": {"cpu": 1, "mem": "512Mi"},
        "autoscaling": {"min_replicas": 1, "max_replicas": 4},
        "update_strategy": {"max_surge": "25%", "max_unavailable": 0},
        "networking": {"endpoint": "/iris"},
    }


def _changed(path: str, value: object) -> dict[str, Any]:
    data = _base()
    *parents, key = path.split(".")
    section = data
    for parent in parents:
        section = section.setdefault(parent, {})
    section[key] = value
    return data


def _release(data: dict[str, Any], project: str = _PROJECT, runtime: str = _RUNTIME) -> Any:
    return make_release(ApiSpec.model_validate(data), project, runtime)


def test_same_input_same_release() -> None:
    first, second = _release(_base()), _release(copy.deepcopy(_base()))
    assert (first.version, first.spec_hash) == (second.version, second.spec_hash)
    assert len(first.version) == len(first.spec_hash) == 12
    assert (first.name, first.project_hash, first.runtime) == ("iris", _PROJECT, _RUNTIME)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("predictor.path", "other.py"),
        ("predictor.config", {"threshold": 0.6}),
        ("predictor.env", {"MODE": "fast"}),
        ("predictor.processes_per_replica", 2),
        ("predictor.threads_per_process", 4),
        ("predictor.model_path", "s3://models/iris"),
        ("predictor.server_side_batching", {"max_batch_size": 8, "batch_interval": "10ms"}),
        ("compute.cpu", 2),
        ("compute.mem", "1Gi"),
        ("compute.gpu", 1),
        ("autoscaling.max_replica_concurrency", 16),
        ("name", "iris-two"),
    ],
)
def test_replica_changes_change_the_version(path: str, value: object) -> None:
    before, after = _release(_base()), _release(_changed(path, value))
    assert after.version != before.version
    assert after.spec_hash != before.spec_hash


def test_setting_the_default_cap_changes_the_version() -> None:
    # Once set, Cortex 0.15's CORTEX_MAX_WORKER_CONCURRENCY no longer applies in the replica.
    before, after = _release(_base()), _release(_changed("autoscaling.max_replica_concurrency", 1024))
    assert after.version != before.version
    assert after.resolved_spec()["api"] != before.resolved_spec()["api"]


@pytest.mark.parametrize(
    ("project", "runtime"),
    [("q" * 64, _RUNTIME), (_PROJECT, "venv-9999")],
)
def test_project_or_runtime_change_the_version(project: str, runtime: str) -> None:
    before, after = _release(_base()), _release(_base(), project, runtime)
    assert after.version != before.version
    assert after.spec_hash == before.spec_hash


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("autoscaling.min_replicas", 2),
        ("autoscaling.max_replicas", 10),
        ("autoscaling.init_replicas", 2),
        ("autoscaling.target_replica_concurrency", 3),
        ("autoscaling.window", "120s"),
        ("update_strategy.max_surge", 1),
        ("update_strategy.max_unavailable", "50%"),
        ("networking.endpoint", "/flowers"),
        ("networking.endpoint", "/"),
        ("tracker", {"model_type": "classification"}),
    ],
)
def test_deployment_changes_keep_the_version(path: str, value: object) -> None:
    before, after = _release(_base()), _release(_changed(path, value))
    assert after.version == before.version
    assert after.spec_hash != before.spec_hash


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"name": "a", "compute": {"cpu": "500m"}}, {"name": "a", "compute": {"cpu": 0.5}}),
        ({"name": "a", "compute": {"mem": "1Ki"}}, {"name": "a", "compute": {"mem": 1024}}),
        ({"name": "a", "networking": {"endpoint": "flowers/"}}, {"name": "a", "networking": {"endpoint": "/flowers"}}),
        (
            {"name": "a", "autoscaling": {"workers_per_replica": 2}},
            {"name": "a", "predictor": {"processes_per_replica": 2}, "autoscaling": {}},
        ),
        ({"name": "a", "endpoint": "/x"}, {"name": "a", "networking": {"endpoint": "/x"}}),
    ],
)
def test_spellings_of_one_spec_hash_alike(first: dict[str, Any], second: dict[str, Any]) -> None:
    one, other = _release(first), _release(second)
    assert (one.version, one.spec_hash) == (other.version, other.spec_hash)


@pytest.mark.parametrize(
    "data",
    [
        _base(),
        {"name": "bare"},
        _changed("autoscaling.max_replica_concurrency", 8),
        {
            "name": "onnx",
            "kind": "SyncAPI",
            "predictor": {"type": "onnx", "model": "s3://b/m.onnx"},
            "autoscaling": {"threads_per_worker": 2, "window": "1m"},
            "endpoint": "/o",
        },
        _changed("predictor.server_side_batching", {"max_batch_size": 4, "batch_interval": "100ms"}),
    ],
)
def test_resolved_spec_validates_to_the_same_api(data: dict[str, Any]) -> None:
    release = _release(data)
    resolved = release.resolved_spec()
    assert json.loads(json.dumps(resolved)) == resolved  # plain JSON, as CORTEX_API_SPEC carries it
    parsed = ResolvedSpec.model_validate(resolved)
    assert parsed.api == release.api
    assert (parsed.version, parsed.spec_hash, parsed.project_hash) == (
        RESOLVED_SPEC_VERSION,
        release.spec_hash,
        _PROJECT,
    )
    again = make_release(parsed.api, _PROJECT, _RUNTIME)
    assert (again.version, again.spec_hash) == (release.version, release.spec_hash)


def test_resolved_spec_keeps_unset_fields_unset() -> None:
    api = _release(_base()).resolved_spec()["api"]
    assert api["autoscaling"] == {"min_replicas": 1, "max_replicas": 4}
    assert "max_replica_concurrency" not in api["autoscaling"]
    assert set(api["predictor"]) == {"type", "path", "config"}
    assert "tracker" not in api and "kind" not in api
    parsed = ResolvedSpec.model_validate(_release(_base()).resolved_spec())
    assert "max_replica_concurrency" not in parsed.api.autoscaling.model_fields_set
    assert spec_data(ApiSpec.model_validate({"name": "bare"})) == {"name": "bare"}


def test_resolved_spec_keeps_a_set_cap() -> None:
    api = _release(_changed("autoscaling.max_replica_concurrency", 8)).resolved_spec()["api"]
    assert api["autoscaling"]["max_replica_concurrency"] == 8


def test_fingerprint_records_whether_the_cap_was_set() -> None:
    unset = replica_fingerprint(ApiSpec.model_validate({"name": "a"}))
    default = replica_fingerprint(
        ApiSpec.model_validate({"name": "a", "autoscaling": {"max_replica_concurrency": 1024}})
    )
    assert (unset["max_replica_concurrency"], unset["cap_set"]) == (1024, False)
    assert (default["max_replica_concurrency"], default["cap_set"]) == (1024, True)
    assert set(unset) == {"name", "predictor", "compute", "max_replica_concurrency", "cap_set"}
