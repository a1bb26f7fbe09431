"""Classifying why an API fails, describing it in one line, and keeping the last failed deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cortexlite.errors import BackendError, ComputeUnavailable, CortexliteError, DockerError, ImageBuildError, VenvError
from cortexlite.failures import (
    FailureKind,
    classify_error,
    classify_readiness,
    classify_rollout,
    describe_error,
    died_starting,
    log_text,
    one_line,
    redact,
    status_of,
)
from cortexlite.nomad.status import _alloc_kind
from cortexlite.state import DeployFailure, EnvState

_BUILD_FAILED = (
    "building cortexlite/deps:0123456789ab failed: The command '/bin/sh -c set -eu;     project=/tmp/x; "
    "bash dependencies.sh' returned a non-zero code: 3\nlast lines of the build:\n  running dependencies.sh"
)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("PythonPredictor.__init__ failed: ValueError: the model file is corrupt (predictor.py:3)", "predictor"),
        ("importing predictor.py failed: ModuleNotFoundError: No module named 'torch'", "predictor"),
        ("predictor file predictor.py not found in /mnt/project", "predictor"),
        ("dependencies.sh failed (exit code 1):\n  apt-get: not found", "dependency"),
        ("pip install -r requirements.txt failed (exit code 1):\n  ERROR: No matching distribution", "dependency"),
        (".env:3: expected KEY=VALUE (got 'oops')", "dependency"),
    ],
)
def test_a_replica_the_runtime_reports_failed(reason: str, kind: str) -> None:
    expected = FailureKind.PREDICTOR_INIT if kind == "predictor" else FailureKind.DEPENDENCY_INSTALL
    assert classify_readiness(reason) is expected


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        # The backends' own words (backends/process.py, backends/container.py).
        ("the process (pid 4242) exited with code 1", FailureKind.PREDICTOR_INIT),
        ("the process (pid 4242) is no longer running", FailureKind.PREDICTOR_INIT),
        ("the container exited with code 1; Docker is restarting it (restart 2)", FailureKind.PREDICTOR_INIT),
        ("the container is gone", FailureKind.PREDICTOR_INIT),
        (
            "out of memory: the kernel killed it at its memory limit (128 MiB); raise compute.mem",
            FailureKind.OUT_OF_MEMORY,
        ),
        ("PythonPredictor.__init__ failed: KeyError: 'weights'", FailureKind.PREDICTOR_INIT),
        ("pip install -r requirements.txt failed (exit code 1):", FailureKind.DEPENDENCY_INSTALL),
        # Too slow, or stopped from outside: nothing of the replica's own.
        ("not ready after 600s (loading predictor)", None),
        ("shutting down", None),
    ],
)
def test_a_new_replica_that_never_became_ready(reason: str, kind: FailureKind | None) -> None:
    assert classify_rollout(reason) is kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ComputeUnavailable("answer needs 1 GPU(s) but this machine has none"), FailureKind.COMPUTE_UNAVAILABLE),
        (
            DockerError(
                "Docker engine at unix:///var/run/docker.sock: create: Range of CPUs is from 0.01 to 2.00, "
                "as there are only 2 CPUs available"
            ),
            FailureKind.COMPUTE_UNAVAILABLE,
        ),
        (
            BackendError("cannot start a replica of answer with 1 GPU(s): Docker cannot give containers GPUs here"),
            FailureKind.COMPUTE_UNAVAILABLE,
        ),
        (
            VenvError("pip install -r requirements.txt failed (exit code 1); last lines:\n  ERROR: ..."),
            FailureKind.DEPENDENCY_INSTALL,
        ),
        (VenvError("python -m venv failed (exit code 1); last lines:\n  ..."), FailureKind.IMAGE_BUILD),
        (ImageBuildError(_BUILD_FAILED), FailureKind.DEPENDENCY_INSTALL),
        (ImageBuildError("building cortexlite/runtime:ab12 failed: no space left on device"), FailureKind.IMAGE_BUILD),
        (
            ImageBuildError("base image python:3.11-slim is not on the Docker engine and cannot be pulled: ..."),
            FailureKind.IMAGE_BUILD,
        ),
        (BackendError("no free port for a replica in 30000-30999"), None),
        (CortexliteError("the gateway did not apply the change"), None),
    ],
)
def test_a_deploy_that_failed_before_or_while_starting_replicas(error: Exception, kind: FailureKind | None) -> None:
    assert classify_error(error) is kind


def test_a_failed_step_in_one_line_and_whose_output_it_is() -> None:
    error = ImageBuildError(_BUILD_FAILED)
    assert describe_error(error, ["dependencies.sh"]) == (
        "building the dependency image cortexlite/deps:0123456789ab failed: dependencies.sh exited with code 3",
        "the build of cortexlite/deps:0123456789ab",
    )
    both = describe_error(error, ["dependencies.sh", "requirements.txt"])[0]
    assert both.endswith("dependencies.sh or pip install -r requirements.txt exited with code 3")
    runtime = ImageBuildError(_BUILD_FAILED.replace("cortexlite/deps:0123456789ab", "cortexlite/runtime:ab12"))
    assert (
        describe_error(runtime)[0] == "building the image cortexlite/runtime:ab12 failed: a RUN step exited with code 3"
    )
    pip = VenvError("pip install -r requirements.txt failed (exit code 1); last lines:\n  ERROR: No matching")
    assert describe_error(pip) == (
        "pip install -r requirements.txt failed (exit code 1)",
        "pip install -r requirements.txt",
    )
    assert describe_error(ComputeUnavailable("answer needs 1 GPU(s)")) == ("answer needs 1 GPU(s)", None)


def test_the_status_names_the_class() -> None:
    assert status_of(FailureKind.PREDICTOR_INIT) == "error (predictor init error)"
    assert status_of(FailureKind.OUT_OF_MEMORY) == "error (out of memory)"
    assert status_of(FailureKind.COMPUTE_UNAVAILABLE) == "compute unavailable"
    assert status_of(None) == "error"


def test_a_replica_that_died_while_starting() -> None:
    starting = ["10:00:00.000 INFO    cortexlite-runtime 0.1.0 serving /mnt/project on 127.0.0.1:30000",
                "10:00:00.010 INFO    API answer: python predictor predictor.py"]  # fmt: skip
    assert died_starting(starting)
    assert not died_starting([*starting, "10:00:01.000 INFO    ready", "10:00:02.000 INFO    POST / 200"])
    assert died_starting([*starting, "10:00:01.000 INFO    ready", *starting]), "the last start counts"
    assert not died_starting(["Segmentation fault"]), "no start-up in sight: unknown"


def test_log_lines_as_people_read_them() -> None:
    record = {"time": "2026-01-05T10:00:00+00:00", "level": "ERROR", "message": "boom", "exception": "Trace\n  x"}
    lines = log_text([json.dumps(record), "plain output", "   "])
    assert [line.split(" ", 1)[1] for line in lines[:1]] == ["ERROR   boom"]
    assert lines[1:] == ["Trace", "  x", "plain output"]
    assert one_line("\n  first line  \nsecond") == "first line"
    assert len(one_line("x" * 1000)) == 400


def test_secrets_are_masked() -> None:
    text = "fetching with key s3cr3t-key from https://user:hunter2@pypi.example/simple"
    assert redact(text, ["s3cr3t-key"]) == "fetching with key <secret> from https://user:***@pypi.example/simple"


def test_the_last_failed_deploy_is_kept_until_cleared(tmp_path: Path) -> None:
    state = EnvState(tmp_path, "local")
    failure = DeployFailure(
        at=1.0, action="create", kind=FailureKind.DEPENDENCY_INSTALL, message="pip install failed",
        endpoint="/answer", log_source="pip install -r requirements.txt", log_tail=["ERROR: no such package"],
    )  # fmt: skip
    state.record_failure("answer", failure)
    assert state.deploy_failure("answer") == failure
    assert state.names() == ["answer"], "an API whose creation failed is listed (get, delete, down)"
    state.clear_failure("answer")
    assert state.deploy_failure("answer") is None and state.names() == []
    state.record_failure("answer", failure)
    state.forget_api("answer")
    assert state.deploy_failure("answer") is None


def test_nomad_allocations_are_classified_from_events_then_logs() -> None:
    def alloc(*events: dict[str, Any]) -> dict[str, Any]:
        return {"TaskStates": {"predictor": {"Events": list(events)}}}

    oom = {"Type": "Terminated", "DisplayMessage": "Exit Code: 137", "Details": {"oom_killed": "true"}}
    assert _alloc_kind(alloc(oom), []) is FailureKind.OUT_OF_MEMORY
    exited = {"Type": "Terminated", "DisplayMessage": "Exit Code: 1"}
    not_ready = ["10:00:00.000 ERROR   not ready: dependencies.sh failed (exit code 2):"]
    assert _alloc_kind(alloc(exited), not_ready) is FailureKind.DEPENDENCY_INSTALL
    starting = ["10:00:00.000 INFO    cortexlite-runtime 0.1.0 serving /mnt/project on 0.0.0.0:8888"]
    assert _alloc_kind(alloc(exited), starting) is FailureKind.PREDICTOR_INIT
    assert _alloc_kind(alloc(exited), ["something else"]) is None
