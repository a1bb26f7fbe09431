"""Fuzzing the spec loaders: whatever a spec file holds, it loads, or fails with a `SpecError` naming the file.

The runtime (`load_api_specs`) and the control plane (`load_project`) read the same mutated documents;
the control plane must fail wherever the runtime does, with the same message. A spec that loads must
also survive the trip to a replica: the resolved-spec JSON it becomes loads back to the same API.

A non-finite number (.inf, .nan), which JSON cannot hold, is refused where it is written, `predictor.config`
included (`test_non_finite_numbers_are_refused_where_written`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings

from cortexlite.project import Project, load_project
from cortexlite_runtime.errors import SpecError
from cortexlite_runtime.spec import ApiSpec, ResolvedSpec
from cortexlite_runtime.specfile import load_api_specs, load_resolved_spec
from tests.fuzz.spec_documents import PROJECT_FILES, resolved_spec_documents, spec_documents

pytestmark = pytest.mark.timeout(120)

_FUZZ = settings(max_examples=300, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
_FILE_LEVEL = ("invalid YAML", "cannot read the file", "the file is empty", "expected a list of APIs", "no APIs")
_LOCATION = re.compile(r"^cortexlite\.yaml(:\d+:\d+)?: ")
T = TypeVar("T")


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-project")
    for name, text in PROJECT_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _names(data: bytes) -> set[str]:
    """The API names in a document, for checking the labels of messages."""
    try:
        value = yaml.safe_load(data.decode("utf-8"))
    except Exception:
        return set()
    items = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
    return {item["name"] for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)}


def _check_message(message: str, data: bytes) -> None:
    message.encode("utf-8")  # printable as is: no lone surrogate
    assert "Traceback" not in message
    assert len(message) <= 4 * len(data) + 4096, f"a message of {len(message)} characters"
    for line in message.splitlines():
        assert line.startswith("cortexlite.yaml:"), message
    rest = _LOCATION.sub("", message.split("\n", 1)[0])
    if rest.startswith(_FILE_LEVEL):
        return
    label = rest.split(": ", 1)[0]
    assert re.fullmatch(r"api #\d+", label) or label in _names(data), f"{label!r} names no API: {message}"


def _outcome(load: Callable[[], T], data: bytes) -> T | str:
    """What `load` returned, or its `SpecError`'s message (checked); any other exception fails the test."""
    try:
        return load()
    except SpecError as exc:
        _check_message(str(exc), data)
        return str(exc)


def _non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    return isinstance(value, list | tuple) and any(_non_finite(item) for item in value)


def _check_resolves(apis: list[ApiSpec], directory: Path) -> None:
    """Each API becomes the resolved spec a replica reads, and reads back the same."""
    path = directory / "resolved.json"
    for api in apis:
        assert not _non_finite(api.model_dump()), "a non-finite number was loaded"
        path.write_text(ResolvedSpec(api=api, spec_hash="h").model_dump_json())
        assert load_resolved_spec(path).api == api


@_FUZZ
@given(spec_documents())
def test_any_spec_file_loads_or_names_the_problem(project_dir: Path, data: bytes) -> None:
    spec = project_dir / "cortexlite.yaml"
    spec.write_bytes(data)
    notices: list[str] = []
    runtime: list[ApiSpec] | str = _outcome(lambda: load_api_specs(spec, notices), data)
    project: Project | str = _outcome(lambda: load_project(project_dir), data)
    if isinstance(runtime, str):
        event("SpecError", _LOCATION.sub("", runtime).split(":", 1)[0][:30])
        assert project == runtime, "the control plane and the runtime disagree"
        return
    event("loaded by the runtime" if isinstance(project, str) else "loaded by both")
    assert all(notice.startswith("cortexlite.yaml: ") for notice in notices), notices
    _check_resolves(runtime, project_dir)
    if isinstance(project, Project):
        assert list(project.apis) == runtime
        assert list(project.notices) == notices


@_FUZZ
@given(resolved_spec_documents())
def test_any_resolved_spec_loads_or_names_the_problem(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "resolved-fuzz.json"
    path.write_bytes(data)
    outcome: Any = None
    try:
        outcome = load_resolved_spec(path)
    except SpecError as exc:
        message = str(exc)
        message.encode("utf-8")
        assert "Traceback" not in message
        assert all(line.startswith(str(path)) for line in message.splitlines()), message
    assert outcome is None or isinstance(outcome, ResolvedSpec)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("- name: a\n  autoscaling: {downscale_stabilization_period: .inf}\n", "downscale_stabilization_period"),
        ("- name: a\n  autoscaling: {max_upscale_factor: .inf, downscale_tolerance: .inf}\n", "max_upscale_factor"),
        ("- name: a\n  predictor: {server_side_batching: {max_batch_size: 2, batch_interval: .inf}}\n",
         "batch_interval"),
        ("- name: a\n  predictor: {config: {threshold: .nan}}\n", "threshold"),
        ("- name: a\n  predictor: {config: {nested: {list: [1, -.inf]}}}\n", "nested.list.1"),
        ("- name: a\n  compute: {cpu: .nan}\n", "cpu"),
        ("- name: a\n  networking: {timeout: .inf}\n", "timeout"),
        ("- name: a\n  autoscaling: {target_replica_concurrency: .nan}\n", "target_replica_concurrency"),
        ("- name: a\n  compute: {mem: " + "9" * 400 + "}\n", "mem"),
        ("- name: a\n  autoscaling: {window: 1e400}\n", "window"),
    ],
    ids=["infinite-duration", "infinite-factors", "infinite-batch-interval", "nan-in-config", "inf-deep-in-config",
         "nan-cpu", "infinite-timeout", "nan-concurrency", "400-digit-memory", "overflowing-window"],
)  # fmt: skip
def test_non_finite_numbers_are_refused_where_written(tmp_path: Path, text: str, field: str) -> None:
    spec = tmp_path / "cortexlite.yaml"
    spec.write_text(text)
    with pytest.raises(SpecError) as refused:
        load_api_specs(spec)
    message = str(refused.value)
    assert field in message and "Traceback" not in message, message
    assert len(message) < 1000, message
